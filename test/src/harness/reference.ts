import assert from 'node:assert/strict';

/** The reference every refusal ends with (catalog `_reference`: " (ref {reference})", 8 base-32 characters). */
export const REFERENCE = / \(ref ([0-9a-v]{8})\)$/;

/**
 * A refusal (4xx/5xx) as the catalog words it, without its reference, after asserting it has one; other replies
 * as they are. Tests compare exact wording with it while the reference (from the random session id) varies.
 */
export function unref(reply: string): string {
  if (/^[45]\d\d[ -]/.test(reply))
    assert.match(reply, REFERENCE, `a refusal ends with its reference: ${reply}`);
  return reply.replace(REFERENCE, '');
}

/** The reference in a refusal. */
export function referenceOf(reply: string): string {
  const m = REFERENCE.exec(reply);
  assert.ok(m, `no reference in ${reply}`);
  return m[1] as string;
}

/** A reply without its reference, if it has one (for expected values that may or may not carry it). */
export function withoutRef(reply: string): string {
  return reply.replace(REFERENCE, '');
}
