import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type DataFacts, DataInspector, emptyFacts, type InspectorOptions } from './inspector.js';

interface Inspected {
  facts: DataFacts;
  /** What the inspector passed on, as latin1 text. */
  out: string;
  inspector: DataInspector;
}

/** Writes each chunk (latin1 text) as its own write, ends the stream and collects what is passed on. */
async function inspect(
  chunks: string[],
  opts: Partial<InspectorOptions> = {},
  between?: (inspector: DataInspector, index: number) => void,
): Promise<Inspected> {
  const inspector = new DataInspector({ normalize: false, violated: () => false, ...opts });
  const out: Buffer[] = [];
  inspector.on('data', (chunk: Buffer) => out.push(chunk));
  const ended = new Promise((resolve) => inspector.once('end', resolve));
  chunks.forEach((chunk, i) => {
    inspector.write(Buffer.from(chunk, 'latin1'));
    between?.(inspector, i);
  });
  inspector.end();
  await ended;
  return { facts: inspector.facts, out: Buffer.concat(out).toString('latin1'), inspector };
}

describe('DataInspector', { timeout: 5000 }, () => {
  it('passes a clean message through unchanged and counts its octets', async () => {
    const msg = 'Subject: hi\r\n\r\nHello\r\n';
    const { facts, out } = await inspect(['Subject: hi\r\n', '\r\nHel', 'lo\r\n']);
    assert.equal(out, msg);
    assert.deepEqual(facts, { ...emptyFacts(), bytes: msg.length, longestLine: 13, headerBytes: 15 });
  });

  it('counts the header section up to its empty line, or all of a message without one', async () => {
    const split = await inspect(['Subject: hi\r\nX-A: ', 'b\r\n\r\nbody line\r\n']);
    assert.equal(split.facts.headerBytes, 'Subject: hi\r\nX-A: b\r\n\r\n'.length);
    const none = await inspect(['0123456789\r\n', '0123456789\r\n']);
    assert.equal(none.facts.headerBytes, 24);
  });

  it('starts with empty facts (complete is set by the receiver)', async () => {
    const { facts, out } = await inspect([]);
    assert.equal(out, '');
    assert.deepEqual(facts, emptyFacts());
    assert.equal(facts.complete, false);
  });

  describe('bare LF, bare CR and NUL', () => {
    it('counts bare LF with the offset of the first', async () => {
      const { facts, out } = await inspect(['a\nb\r\nc\n']);
      assert.deepEqual(facts.bareLf, { count: 2, first: 1 });
      assert.deepEqual(facts.bareCr, { count: 0, first: -1 });
      assert.equal(out, 'a\nb\r\nc\n', 'reject mode passes the bytes as they are');
    });

    it('counts bare CR with the offset of the first', async () => {
      const { facts } = await inspect(['ab\rc\r\nd\r\re\r\n']);
      assert.deepEqual(facts.bareCr, { count: 3, first: 2 });
      assert.deepEqual(facts.bareLf, { count: 0, first: -1 });
    });

    it('counts NUL with the offset of the first', async () => {
      const { facts } = await inspect(['x\r\na\0b\0\r\n']);
      assert.deepEqual(facts.nul, { count: 2, first: 4 });
    });

    it('gives offsets in the whole message, across chunks', async () => {
      const { facts } = await inspect(['abcd', 'ef\ng', '\0', 'h\ri']);
      assert.deepEqual(facts.bareLf, { count: 1, first: 6 });
      assert.deepEqual(facts.nul, { count: 1, first: 8 });
      assert.deepEqual(facts.bareCr, { count: 1, first: 10 });
    });

    it('does not count a CR at the end of a chunk followed by LF at the start of the next', async () => {
      const { facts, out } = await inspect(['abc\r', '\ndef\r\n']);
      assert.deepEqual(facts.bareCr, { count: 0, first: -1 });
      assert.deepEqual(facts.bareLf, { count: 0, first: -1 });
      assert.equal(out, 'abc\r\ndef\r\n');
    });

    it('counts a CR at the end of a chunk followed by another octet as bare, at its own offset', async () => {
      const { facts, out } = await inspect(['abc\r', 'def\r\n']);
      assert.deepEqual(facts.bareCr, { count: 1, first: 3 });
      assert.equal(out, 'abc\rdef\r\n');
    });

    it('counts a CR at the end of a chunk followed by a CR LF as one bare CR', async () => {
      const { facts } = await inspect(['a\r', '\r\nb']);
      assert.deepEqual(facts.bareCr, { count: 1, first: 1 });
      assert.deepEqual(facts.bareLf, { count: 0, first: -1 });
    });

    it('counts a CR at the end of a chunk followed by an LF after an empty chunk as no anomaly', async () => {
      const { facts } = await inspect(['a\r', '', '\nb']);
      assert.deepEqual(facts.bareCr, { count: 0, first: -1 });
      assert.deepEqual(facts.bareLf, { count: 0, first: -1 });
    });

    it('counts a CR that ends the message as bare and still passes it on', async () => {
      const { facts, out } = await inspect(['abc\r\n', 'def\r']);
      assert.deepEqual(facts.bareCr, { count: 1, first: 8 });
      assert.equal(facts.bytes, 9);
      assert.equal(out, 'abc\r\ndef\r');
    });

    it('counts an LF at the start of the message as bare', async () => {
      const { facts } = await inspect(['\nabc']);
      assert.deepEqual(facts.bareLf, { count: 1, first: 0 });
    });
  });

  describe('longest line', () => {
    it('counts the longest line with its CRLF', async () => {
      const { facts } = await inspect(['ab\r\nabcdef\r\nx\r\n']);
      assert.equal(facts.longestLine, 8);
    });

    it('counts a line split across chunks as one line', async () => {
      const { facts } = await inspect(['abc', 'def', '\r\nx\r\n']);
      assert.equal(facts.longestLine, 8);
    });

    it('counts a line split between its CR and its LF as one line', async () => {
      const { facts } = await inspect(['abcdef\r', '\nxy\r\n']);
      assert.equal(facts.longestLine, 8);
    });

    it('counts a line still growing without LF, also before the message ends', async () => {
      const growing = new DataInspector({ normalize: false, violated: () => false });
      growing.resume();
      growing.write(Buffer.from('a'.repeat(50)));
      assert.equal(growing.facts.longestLine, 50);
      growing.write(Buffer.from('b'.repeat(70)));
      assert.equal(growing.facts.longestLine, 120);
      const { facts } = await inspect(['x\r\n', 'a'.repeat(50), 'b'.repeat(70)]);
      assert.equal(facts.longestLine, 120);
    });

    it('counts a last line that ends in a bare CR with that CR', async () => {
      const { facts } = await inspect(['ab\r\n', 'abcd\r']);
      assert.equal(facts.longestLine, 5);
    });
  });

  describe('Received headers', () => {
    it('counts Received fields of the header section in any case, and no others', async () => {
      const msg =
        'Received: from a\r\n by b\r\nreceived: c\r\nRECEIVED: d\r\nX-Received: e\r\nSubject: Received: f\r\n' +
        '\r\nReceived: in the body\r\n';
      const { facts } = await inspect([msg]);
      assert.equal(facts.receivedHeaders, 3);
    });

    it('counts a "Received:" split across chunks', async () => {
      const { facts } = await inspect([
        'X: y\r\nRec',
        'eiv',
        'ed',
        ': from a\r\nReceived',
        ': from b\r\n\r\nbody\r\n',
      ]);
      assert.equal(facts.receivedHeaders, 2);
    });

    it('ends the header section at an empty line split across chunks', async () => {
      const { facts } = await inspect(['Received: a\r\n\r', '\nReceived: body\r\n']);
      assert.equal(facts.receivedHeaders, 1);
      const split2 = await inspect(['Received: a\r\n', '\r\nReceived: body\r\n']);
      assert.equal(split2.facts.receivedHeaders, 1);
    });

    it('ends the header section at an empty line of a bare LF', async () => {
      const { facts } = await inspect(['Received: a\n\nReceived: b\n']);
      assert.equal(facts.receivedHeaders, 1);
    });

    it('counts nothing in a message that starts with its body', async () => {
      const { facts } = await inspect(['\r\nReceived: a\r\n']);
      assert.equal(facts.receivedHeaders, 0);
    });

    it('does not count a field name that only starts like Received', async () => {
      const { facts } = await inspect(['Receive: a\r\nReceived-SPF: pass\r\nReceived\r\n\r\n']);
      assert.equal(facts.receivedHeaders, 0);
    });
  });

  describe('normalize mode', () => {
    it('turns bare LF and bare CR into CRLF and drops NUL, keeping CRLF and counting what it found', async () => {
      const { facts, out } = await inspect(['a\nb\rc\0d\r\ne'], { normalize: true });
      assert.equal(out, 'a\r\nb\r\ncd\r\ne');
      assert.deepEqual(facts.bareLf, { count: 1, first: 1 });
      assert.deepEqual(facts.bareCr, { count: 1, first: 3 });
      assert.deepEqual(facts.nul, { count: 1, first: 5 });
      assert.equal(facts.bytes, 10, 'the octets as the client sent them');
    });

    it('keeps a CRLF split across chunks and rewrites a bare CR at a chunk end', async () => {
      const { out } = await inspect(['a\r', '\nb\r', 'c\n', '\0', 'd\r\r', '\n'], { normalize: true });
      assert.equal(out, 'a\r\nb\r\nc\r\nd\r\n\r\n');
    });

    it('rewrites a CR that ends the message', async () => {
      const { out, facts } = await inspect(['abc\r\n', 'x\r'], { normalize: true });
      assert.equal(out, 'abc\r\nx\r\n');
      assert.equal(facts.bareCr.count, 1);
    });

    it('passes a clean message unchanged', async () => {
      const msg = 'Subject: x\r\n\r\nbody\r\n';
      const { out } = await inspect([msg.slice(0, 7), msg.slice(7)], { normalize: true });
      assert.equal(out, msg);
    });
  });

  describe('stopping', () => {
    it('stop() passes nothing more on but keeps counting', async () => {
      const { facts, out, inspector } = await inspect(['abc\r\n', 'def\n', 'ghi\0'], {}, (insp, i) => {
        if (i !== 0) return;
        assert.equal(insp.passing, true);
        insp.stop();
      });
      assert.equal(out, 'abc\r\n');
      assert.equal(inspector.passing, false);
      assert.equal(facts.bytes, 13);
      assert.deepEqual(facts.bareLf, { count: 1, first: 8 });
      assert.deepEqual(facts.nul, { count: 1, first: 12 });
    });

    it('stop() also holds back a CR that ends the message', async () => {
      const { out, facts } = await inspect(['abc', 'd\r'], {}, (insp, i) => {
        if (i === 0) insp.stop();
      });
      assert.equal(out, 'abc');
      assert.equal(facts.bareCr.count, 1);
    });

    it('stops passing bytes from the chunk where violated() first says true, and asks no more', async () => {
      const asked: number[] = [];
      const { facts, out, inspector } = await inspect(['12345', '67890', 'abcde', 'fgh'], {
        violated: (f) => {
          asked.push(f.bytes);
          return f.bytes > 10;
        },
      });
      assert.equal(out, '1234567890');
      assert.deepEqual(asked, [5, 10, 15]);
      assert.equal(facts.bytes, 18);
      assert.equal(inspector.passing, false);
    });

    it('gives violated() the facts of the chunk just read', async () => {
      const { out } = await inspect(['ok\r\n', 'bad\nline\r\n', 'more\r\n'], {
        violated: (f) => f.bareLf.count > 0,
      });
      assert.equal(out, 'ok\r\n');
    });

    it('asks violated() about a CR that ends the message before passing it on', async () => {
      const { out } = await inspect(['abc\r'], { violated: (f) => f.bareCr.count > 0 });
      assert.equal(out, 'abc');
    });
  });

  it('finds the same facts and output however the message is cut into chunks', async () => {
    const msg = 'Received: a\r\nrEcEiVeD: b\n\rX: \0y\r\n\r\nReceived: c\r\rbody\nend\r';
    for (const normalize of [false, true]) {
      const whole = await inspect([msg], { normalize });
      for (let i = 1; i < msg.length; i++) {
        for (let j = i; j < msg.length; j += 3) {
          const cut = await inspect([msg.slice(0, i), msg.slice(i, j), msg.slice(j)], { normalize });
          assert.deepEqual(cut.facts, whole.facts, `cut at ${i} and ${j}`);
          assert.equal(cut.out, whole.out, `cut at ${i} and ${j}`);
        }
      }
    }
  });
});
