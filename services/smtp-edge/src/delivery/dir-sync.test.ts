import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DirSync } from './dir-sync.js';

/** A directory fsync the test finishes by hand; records when each one started. */
function manualSync() {
  const started: Array<{ finish: (err?: Error) => void }> = [];
  const syncOnce = () =>
    new Promise<void>((resolve, reject) => {
      started.push({ finish: (err) => (err ? reject(err) : resolve()) });
    });
  return { started, syncOnce };
}

const settledFlag = (p: Promise<void>) => {
  const state = { done: false, error: undefined as Error | undefined };
  p.then(
    () => {
      state.done = true;
    },
    (err: Error) => {
      state.done = true;
      state.error = err;
    },
  );
  return state;
};
const tick = () => new Promise((r) => setImmediate(r));

describe('DirSync (group commit of the spool directory fsync)', () => {
  it('starts a sync at once when none runs', async () => {
    const m = manualSync();
    const d = new DirSync('/spool/new', m.syncOnce);
    const a = settledFlag(d.sync());
    assert.equal(m.started.length, 1);
    m.started[0]?.finish();
    await tick();
    assert.equal(a.done, true);
  });

  it('callers arriving during a sync wait for the next one, which covers all of them', async () => {
    const m = manualSync();
    const d = new DirSync('/spool/new', m.syncOnce);
    const first = settledFlag(d.sync());
    // Renamed after the first sync started: it may not cover them.
    const later = [settledFlag(d.sync()), settledFlag(d.sync()), settledFlag(d.sync())];
    assert.equal(m.started.length, 1, 'one sync at a time');
    m.started[0]?.finish();
    await tick();
    assert.equal(first.done, true);
    assert.ok(
      later.every((s) => !s.done),
      'not answered by a sync that started before their rename',
    );
    assert.equal(m.started.length, 2, 'one more sync for all three');
    m.started[1]?.finish();
    await tick();
    assert.ok(later.every((s) => s.done && !s.error));
    assert.equal(m.started.length, 2);
  });

  it('a failed sync fails its caller, and the next caller gets a new sync', async () => {
    const m = manualSync();
    const d = new DirSync('/spool/new', m.syncOnce);
    const a = settledFlag(d.sync());
    m.started[0]?.finish(new Error('EIO'));
    await tick();
    assert.equal(a.error?.message, 'EIO');
    const b = settledFlag(d.sync());
    assert.equal(m.started.length, 2);
    m.started[1]?.finish();
    await tick();
    assert.equal(b.done, true);
    assert.equal(b.error, undefined);
  });
});
