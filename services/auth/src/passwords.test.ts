import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hashPassword, isPasswordHash, verifyPassword } from './passwords.js';

describe('password hashes', () => {
  it('verifies the right password and refuses a wrong one', async () => {
    const h = await hashPassword('correct horse');
    assert.ok(isPasswordHash(h));
    assert.ok(!h.includes('correct horse'));
    assert.equal(await verifyPassword('correct horse', h), true);
    assert.equal(await verifyPassword('correct horsf', h), false);
  });

  it('salts: the same password hashes differently', async () => {
    assert.notEqual(await hashPassword('pw'), await hashPassword('pw'));
  });

  it('never matches a malformed hash', async () => {
    assert.equal(await verifyPassword('pw', 'plain:pw'), false);
  });
});
