const CRLF_LF = 0x0a;

/** The authserv-id of an Authentication-Results field (RFC 8601 2.2), lower case; "" when there is none. */
export function authservId(field: string): string {
  const value = field.slice(field.indexOf(':') + 1).replace(/\([^)]*\)/g, ' ');
  return (value.split(';')[0] ?? '').trim().split(/\s+/)[0]?.toLowerCase() ?? '';
}

/**
 * The message with every Authentication-Results field of its header section that claims `hostname` as its
 * authserv-id removed: RFC 8601 5 requires an MTA to delete such fields it did not add itself, so that a sender
 * cannot forge "dkim=pass" in this host's name. The body and every other field pass unchanged; a field is held
 * only while its continuation lines arrive. `removed` counts what was taken out.
 */
export async function* withoutOwnAuthResults(
  source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  hostname: string,
  removed: { count: number } = { count: 0 },
): AsyncGenerator<Buffer> {
  const own = hostname.toLowerCase();
  let inHeaders = true;
  let line: Buffer[] = [];
  let field: Buffer[] = [];
  const flush = function* (): Generator<Buffer> {
    if (!field.length) return;
    const text = Buffer.concat(field);
    field = [];
    const head = text.toString('latin1', 0, Math.min(text.length, 4096));
    if (/^authentication-results\s*:/i.test(head) && authservId(head) === own) {
      removed.count += 1;
      return;
    }
    yield text;
  };
  for await (const raw of source) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
    if (!inHeaders) {
      yield chunk;
      continue;
    }
    let start = 0;
    for (let i = chunk.indexOf(CRLF_LF); i >= 0; i = chunk.indexOf(CRLF_LF, start)) {
      line.push(chunk.subarray(start, i + 1));
      start = i + 1;
      const whole = line.length === 1 ? (line[0] as Buffer) : Buffer.concat(line);
      line = [];
      const first = whole[0];
      if (whole.length <= 2 && (first === 0x0d || first === CRLF_LF)) {
        // The empty line: the header section ends, the rest passes as it is.
        yield* flush();
        yield whole;
        inHeaders = false;
        break;
      }
      if (first === 0x20 || first === 0x09) field.push(whole);
      else {
        yield* flush();
        field.push(whole);
      }
    }
    if (!inHeaders) {
      if (start < chunk.length) yield chunk.subarray(start);
    } else if (start < chunk.length) line.push(chunk.subarray(start));
  }
  yield* flush();
  if (line.length) yield Buffer.concat(line);
}
