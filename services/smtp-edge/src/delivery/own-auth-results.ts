const LF = 0x0a;
const CR = 0x0d;
// An Authentication-Results field is held until its end to read its authserv-id; past this size it is decided on
// what arrived (no real field is this long).
const MAX_HELD = 64 * 1024;

/** The authserv-id of an Authentication-Results field (RFC 8601 2.2), lower case; "" when there is none. */
export function authservId(field: string): string {
  const value = field.slice(field.indexOf(':') + 1).replace(/\([^)]*\)/g, ' ');
  return (value.split(';')[0] ?? '').trim().split(/\s+/)[0]?.toLowerCase() ?? '';
}

const isAuthResults = (line: Buffer) =>
  /^authentication-results\s*:/i.test(line.toString('latin1', 0, Math.min(line.length, 40)));

/**
 * The message with every Authentication-Results field of its header section that claims `hostname` as its
 * authserv-id removed: RFC 8601 5 requires an MTA to delete such fields it did not add itself, so that a sender
 * cannot forge "dkim=pass" in this host's name. The body and every other field pass unchanged, one output
 * buffer per input chunk; only an Authentication-Results field is held while its continuation lines arrive.
 * `removed` counts what was taken out.
 */
export async function* withoutOwnAuthResults(
  source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  hostname: string,
  removed: { count: number } = { count: 0 },
): AsyncGenerator<Buffer> {
  const own = hostname.toLowerCase();
  let inHeaders = true;
  /** The start of a line that continues in the next chunk. */
  let partial: Buffer[] = [];
  /** What the current field does with its continuation lines. */
  let mode: 'pass' | 'hold' | 'drop' = 'pass';
  let held: Buffer[] = [];
  let heldBytes = 0;
  const decide = (out: Buffer[]) => {
    if (mode !== 'hold') return;
    const text = Buffer.concat(held);
    held = [];
    heldBytes = 0;
    if (authservId(text.toString('latin1')) === own) {
      removed.count += 1;
      mode = 'drop';
    } else {
      out.push(text);
      mode = 'pass';
    }
  };
  for await (const raw of source) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
    if (!inHeaders) {
      yield chunk;
      continue;
    }
    const out: Buffer[] = [];
    let start = 0;
    while (inHeaders) {
      const i = chunk.indexOf(LF, start);
      if (i < 0) break;
      const piece = chunk.subarray(start, i + 1);
      const line = partial.length ? Buffer.concat([...partial, piece]) : piece;
      partial = [];
      start = i + 1;
      const first = line[0];
      if (first === 0x20 || first === 0x09) {
        // A continuation line belongs to the current field.
        if (mode === 'pass') out.push(line);
        else if (mode === 'hold') {
          held.push(line);
          heldBytes += line.length;
          if (heldBytes > MAX_HELD) decide(out);
        }
        continue;
      }
      decide(out);
      if (line.length <= 2 && (first === CR || first === LF)) {
        // The empty line: the header section ends, the rest passes as it is.
        out.push(line);
        inHeaders = false;
        mode = 'pass';
        break;
      }
      if (isAuthResults(line)) {
        mode = 'hold';
        held = [line];
        heldBytes = line.length;
      } else {
        mode = 'pass';
        out.push(line);
      }
    }
    if (start < chunk.length) {
      if (inHeaders) partial.push(chunk.subarray(start));
      else out.push(chunk.subarray(start));
    }
    if (out.length) yield out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
  }
  // A last line without its line end.
  const out: Buffer[] = [];
  const tail = partial.length ? Buffer.concat(partial) : undefined;
  if (tail && inHeaders && (tail[0] === 0x20 || tail[0] === 0x09)) {
    if (mode === 'hold') held.push(tail);
    else if (mode === 'pass') out.push(tail);
    decide(out);
  } else {
    decide(out);
    if (tail) out.push(tail);
  }
  if (out.length) yield Buffer.concat(out);
}
