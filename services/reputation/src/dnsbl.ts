import { isIP } from 'node:net';
import { ipv6Groups, plainIp } from '@smtpguard/networks';
import { smtpMetrics } from '@smtpguard/telemetry';
import type { CachingResolver } from './dns/resolver.js';
import { isNoData } from './dns/resolver.js';
import { type AnswerRules, classify } from './lists/answers.js';
import type { ListHealth, ListKind } from './lists/health.js';

export interface ListHit {
  zone: string;
  answers: string[];
  txt: string;
}

export interface ListResult<Z extends AnswerRules = AnswerRules> {
  hits: Array<ListHit & { rules: Z }>;
  /** Lists that could not be asked (timeout, SERVFAIL, an operator's error code). */
  failedZones: string[];
  /** Lists skipped because they failed their health check. */
  disabledZones: string[];
}

/** The DNS list query name of an IP: reversed octets (IPv4) or reversed nibbles (IPv6), RFC 5782. */
export function reverseName(ip: string): string {
  if (isIP(ip) === 4) return ip.split('.').reverse().join('.');
  if (isIP(ip) === 6) {
    return ipv6Groups(ip)
      .map((g) => g.padStart(4, '0'))
      .join('')
      .split('')
      .reverse()
      .join('.');
  }
  throw new Error(`not an IP address: ${ip}`);
}

/**
 * Looks one key (a reversed IP, or a domain for URI lists) up in every list, in parallel. Lists disabled by
 * the health check are not asked; a list that fails (timeout, SERVFAIL, an error code such as
 * 127.255.255.254) is reported in failedZones, never treated as a listing.
 */
export async function lookupLists<Z extends AnswerRules>(
  deps: { resolver: CachingResolver; health: ListHealth },
  zones: Z[],
  key: string,
  kind: ListKind,
): Promise<ListResult<Z>> {
  const out: ListResult<Z> = { hits: [], failedZones: [], disabledZones: [] };
  await Promise.all(
    zones.map(async (rules) => {
      const started = performance.now();
      const done = (outcome: 'listed' | 'not_listed' | 'error' | 'disabled') =>
        smtpMetrics.dnsList(rules.zone, kind, outcome, started);
      if (!(await deps.health.ready(rules.zone, kind))) {
        out.disabledZones.push(rules.zone);
        done('disabled');
        return;
      }
      const q = `${key}.${rules.zone}`;
      let answers: string[];
      try {
        answers = await deps.resolver.resolve4(q);
      } catch (err) {
        const failed = !isNoData(err);
        if (failed) out.failedZones.push(rules.zone);
        done(failed ? 'error' : 'not_listed');
        return;
      }
      const c = classify(rules, answers);
      if (c.errors.length && !c.listed.length) {
        out.failedZones.push(rules.zone);
        done('error');
        return;
      }
      done(c.listed.length ? 'listed' : 'not_listed');
      if (!c.listed.length) return;
      const txt = await deps.resolver.resolveTxt(q).then(
        (r) => r.map((parts) => parts.join('')).join(' '),
        () => '',
      );
      out.hits.push({ zone: rules.zone, answers: c.listed, txt, rules });
    }),
  );
  // Report in the configured order, whatever order the answers came in.
  const order = (z: string) => zones.findIndex((r) => r.zone === z);
  out.hits.sort((a, b) => order(a.zone) - order(b.zone));
  return out;
}

/** lookupLists for a client IP. */
export function checkLists<Z extends AnswerRules>(
  deps: { resolver: CachingResolver; health: ListHealth },
  zones: Z[],
  ip: string,
): Promise<ListResult<Z>> {
  return lookupLists(deps, zones, reverseName(plainIp(ip)), 'ip');
}
