import { defineCheck } from '../../engine/check.js';

// The MAIL FROM parameters of the extensions the EHLO reply offers: SIZE (RFC 1870), BODY (8BITMIME,
// RFC 6152), SMTPUTF8 (RFC 6531), AUTH (RFC 4954 5). smtp-server has validated their values already.
const OFFERED = new Set(['SIZE', 'BODY', 'SMTPUTF8', 'AUTH']);

/** A MAIL FROM parameter of an extension that was not offered gets 555 5.5.4 (RFC 5321 4.1.1.11). */
export const mailParams = defineCheck({
  name: 'mail-params',
  phase: 'mail',
  reasons: ['mail.unknown_parameter'],
  settings: [],
  run(ctx) {
    const unknown = Object.keys(ctx.input.params).find((k) => !OFFERED.has(k.toUpperCase()));
    if (!unknown) return undefined;
    return { outcome: 'fail', reason: 'mail.unknown_parameter', vars: { parameter: unknown }, refuse: true };
  },
});
