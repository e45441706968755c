import { NetworkList } from '@smtpguard/networks';

/** How a list reads its A answers (reputation.*.zones[].answers / bitmask / errorAnswers). */
export interface AnswerRules {
  zone: string;
  answers: string[];
  bitmask: number;
  errorAnswers: string[];
}

export interface Classified {
  /** Answers that mean "listed". */
  listed: string[];
  /** Answers that are the operator's error codes (the query failed). */
  errors: string[];
}

const compiled = new WeakMap<AnswerRules, { answers?: NetworkList; errors: NetworkList }>();

function lists(rules: AnswerRules): { answers?: NetworkList; errors: NetworkList } {
  let c = compiled.get(rules);
  if (!c) {
    c = {
      answers: rules.answers.length ? new NetworkList(rules.answers) : undefined,
      errors: new NetworkList(rules.errorAnswers),
    };
    compiled.set(rules, c);
  }
  return c;
}

/**
 * Sorts a list's A answers: the operator's error codes (127.255.255.0/24 by default) are errors, never
 * listings; a listing is an answer the zone names (answers), or whose last octet has a bit of the bitmask, or
 * — when the zone names neither — any 127.0.0.0/8 answer except 127.0.0.1 (RFC 5782 2.1: 127.0.0.1 is never
 * a listing, answers outside 127/8 are not DNSxL answers).
 */
export function classify(rules: AnswerRules, answers: string[]): Classified {
  const { answers: named, errors } = lists(rules);
  const out: Classified = { listed: [], errors: [] };
  for (const a of answers) {
    if (errors.match(a)) {
      out.errors.push(a);
      continue;
    }
    if (!a.startsWith('127.') || a === '127.0.0.1') continue;
    const last = Number(a.split('.')[3]);
    const byMask = rules.bitmask > 0 && (last & rules.bitmask) !== 0;
    if (named ? named.match(a) || byMask : rules.bitmask > 0 ? byMask : true) out.listed.push(a);
  }
  return out;
}

/** Compiles the rules now, so that a bad entry is an error at start rather than at the first lookup. */
export function validateRules(rules: AnswerRules): void {
  lists(rules);
}
