import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { authservId, withoutOwnAuthResults } from './own-auth-results.js';

async function run(chunks: string[], host = 'mx.example.test') {
  const removed = { count: 0 };
  const out: Buffer[] = [];
  for await (const b of withoutOwnAuthResults(chunks, host, removed)) out.push(b);
  return { text: Buffer.concat(out).toString(), removed: removed.count };
}

describe('withoutOwnAuthResults (RFC 8601 5)', () => {
  const forged =
    'Authentication-Results: MX.example.test (forged);\r\n\tdkim=pass header.d=bank.test;\r\n dmarc=pass\r\n';
  const foreign = 'Authentication-Results: other.example; spf=pass smtp.mailfrom=a.test\r\n';
  const message = `Subject: hi\r\n${forged}${foreign}X-Other: 1\r\n\r\nAuthentication-Results: mx.example.test; body\r\n`;

  it('reads the authserv-id', () => {
    assert.equal(authservId(forged), 'mx.example.test');
    assert.equal(authservId('Authentication-Results: host.test 1; none'), 'host.test');
  });

  it("removes the fields in this host's name (continuations included), keeps others and the body", async () => {
    const expected = `Subject: hi\r\n${foreign}X-Other: 1\r\n\r\nAuthentication-Results: mx.example.test; body\r\n`;
    const whole = await run([message]);
    assert.deepEqual(whole, { text: expected, removed: 1 });
    // The same, cut at every position into two chunks.
    for (let i = 1; i < message.length; i++) {
      const split = await run([message.slice(0, i), message.slice(i)]);
      assert.equal(split.text, expected, `cut at ${i}`);
    }
  });

  it('removes a forged field at the very end of a message without a body', async () => {
    const r = await run(['Subject: x\r\nAuthentication-Results: mx.example.test;', '\r\n dkim=pass']);
    assert.deepEqual(r, { text: 'Subject: x\r\n', removed: 1 });
  });

  it('passes a message without an empty line, or without such fields, unchanged', async () => {
    assert.deepEqual(await run(['a\r\nb']), { text: 'a\r\nb', removed: 0 });
    const plain = 'Subject: x\r\n\r\nbody';
    assert.equal((await run([plain])).text, plain);
  });
});
