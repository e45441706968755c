import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { config } from '../fakes.test.js';
import { type ListenerName, Session } from '../session.js';
import { ConnectionTracker, clientKey } from './limits.js';

let sessions = 0;
const session = (ip: string, listener: ListenerName = 'mx') =>
  new Session(`s${++sessions}`, listener, ip, 40000, 'test', 'mx.example.test');

describe('clientKey', () => {
  it('keeps an IPv4 address as it is', () => {
    assert.equal(clientKey('192.0.2.7'), '192.0.2.7');
  });

  it('reads an IPv4-mapped IPv6 address as the IPv4 address', () => {
    assert.equal(clientKey('::ffff:192.0.2.7'), '192.0.2.7');
  });

  it('keys an IPv6 address by its /64', () => {
    assert.equal(clientKey('2001:db8:1:2::5'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64');
    assert.notEqual(clientKey('2001:db8:1:3::5'), clientKey('2001:db8:1:2::5'));
  });

  it('gives the same /64 for zero-compressed and upper-case notations', () => {
    const key = clientKey('2001:db8::1');
    assert.equal(key, '2001:db8:0:0::/64');
    assert.equal(clientKey('2001:DB8:0:0:0:0:0:2'), key);
    assert.equal(clientKey('2001:db8:0:0:ffff::'), key);
    assert.equal(clientKey('2001:db8::'), key);
  });

  it('gives the same /64 when groups are written with leading zeros', () => {
    assert.equal(clientKey('2001:0db8:0001:0002::5'), clientKey('2001:db8:1:2::5'));
    assert.equal(clientKey('2001:db8:0000:0::1'), clientKey('2001:db8::1'));
  });
});

describe('ConnectionTracker', () => {
  const limits = (yaml: string) => config(`edge:\n${yaml}`);

  it('admits connections up to the per-client limit of the listener, then refuses', async () => {
    const cfg = limits('  listeners:\n    mx:\n      maxConnectionsPerClient: 2\n');
    const t = new ConnectionTracker();
    const [a, b, c] = [session('192.0.2.7'), session('192.0.2.7'), session('192.0.2.7')];
    assert.equal(await t.admit(a, cfg), undefined);
    assert.equal(await t.admit(b, cfg), undefined);
    assert.deepEqual(await t.admit(c, cfg), {
      reason: 'connect.too_many_from_client',
      vars: { connections: 3, limit: 2 },
    });
    assert.equal(a.admitted, true);
    assert.equal(c.admitted, false);
    assert.equal(t.open, 2);
  });

  it("does not hold a load balancer's health checks to the per-client limits, only to the listener's", async () => {
    const cfg = limits(
      '  listeners:\n    mx:\n      maxConnections: 3\n      maxConnectionsPerClient: 1\n      connectionsPerClientPerMinute: 1\n',
    );
    const t = new ConnectionTracker();
    const checks = [
      session('127.0.0.99'),
      session('127.0.0.99'),
      session('127.0.0.99'),
      session('127.0.0.99'),
    ];
    for (const s of checks) s.loadBalancer = true;
    assert.equal(await t.admit(checks[0] as Session, cfg), undefined);
    assert.equal(await t.admit(checks[1] as Session, cfg), undefined);
    assert.equal(await t.admit(checks[2] as Session, cfg), undefined);
    assert.equal((await t.admit(checks[3] as Session, cfg))?.reason, 'connect.too_busy');
    // The same address as a client (not its own connection) is a client like any other.
    t.release(checks[0] as Session);
    t.release(checks[1] as Session);
    const client = session('127.0.0.99');
    assert.equal(await t.admit(client, cfg), undefined);
    assert.equal((await t.admit(session('127.0.0.99'), cfg))?.reason, 'connect.rate_exceeded');
    t.release(client);
    t.release(checks[2] as Session);
    assert.equal(t.open, 0);
  });

  it('counts other clients and other listeners separately', async () => {
    const cfg = limits(
      '  listeners:\n    mx:\n      maxConnectionsPerClient: 1\n    submission:\n      maxConnectionsPerClient: 1\n',
    );
    const t = new ConnectionTracker();
    assert.equal(await t.admit(session('192.0.2.7'), cfg), undefined);
    assert.equal(await t.admit(session('192.0.2.8'), cfg), undefined);
    assert.equal(await t.admit(session('192.0.2.7', 'submission'), cfg), undefined);
    assert.equal((await t.admit(session('192.0.2.7'), cfg))?.reason, 'connect.too_many_from_client');
    assert.equal(
      (await t.admit(session('192.0.2.7', 'submission'), cfg))?.reason,
      'connect.too_many_from_client',
    );
  });

  it('counts an IPv4 client and its IPv4-mapped form as one client', async () => {
    const cfg = limits('  listeners:\n    mx:\n      maxConnectionsPerClient: 1\n');
    const t = new ConnectionTracker();
    assert.equal(await t.admit(session('192.0.2.7'), cfg), undefined);
    assert.equal((await t.admit(session('::ffff:192.0.2.7'), cfg))?.reason, 'connect.too_many_from_client');
  });

  it('counts the addresses of one IPv6 /64 as one client', async () => {
    const cfg = limits('  listeners:\n    mx:\n      maxConnectionsPerClient: 1\n');
    const t = new ConnectionTracker();
    assert.equal(await t.admit(session('2001:db8:1:2::a'), cfg), undefined);
    assert.equal((await t.admit(session('2001:db8:1:2::b'), cfg))?.reason, 'connect.too_many_from_client');
    assert.equal(await t.admit(session('2001:db8:1:3::a'), cfg), undefined);
  });

  it('refuses past the listener limit with connect.too_busy, leaving the other listener open', async () => {
    const cfg = limits('  listeners:\n    mx:\n      maxConnections: 2\n');
    const t = new ConnectionTracker();
    assert.equal(await t.admit(session('192.0.2.1'), cfg), undefined);
    assert.equal(await t.admit(session('192.0.2.2'), cfg), undefined);
    assert.deepEqual(await t.admit(session('192.0.2.3'), cfg), {
      reason: 'connect.too_busy',
      vars: { connections: 2, limit: 2 },
    });
    assert.equal(await t.admit(session('192.0.2.3', 'submission'), cfg), undefined);
  });

  it('refuses past edge.maxConnections on all listeners together', async () => {
    const cfg = limits('  maxConnections: 2\n');
    const t = new ConnectionTracker();
    assert.equal(await t.admit(session('192.0.2.1'), cfg), undefined);
    assert.equal(await t.admit(session('192.0.2.2', 'submission'), cfg), undefined);
    assert.deepEqual(await t.admit(session('192.0.2.3', 'submission'), cfg), {
      reason: 'connect.too_busy',
      vars: { connections: 2, limit: 2 },
    });
    assert.equal((await t.admit(session('192.0.2.4'), cfg))?.reason, 'connect.too_busy');
  });

  it('has no per-client or listener limit when they are 0', async () => {
    const cfg = limits(
      '  listeners:\n    mx:\n      maxConnections: 0\n      maxConnectionsPerClient: 0\n' +
        '      connectionsPerClientPerMinute: 0\n',
    );
    const t = new ConnectionTracker();
    for (let i = 0; i < 30; i++) assert.equal(await t.admit(session('192.0.2.7'), cfg), undefined);
    assert.equal(t.open, 30);
  });

  it('refuses new connections past connectionsPerClientPerMinute, even after releases', async () => {
    const cfg = limits('  listeners:\n    mx:\n      connectionsPerClientPerMinute: 2\n');
    const t = new ConnectionTracker();
    for (let i = 0; i < 2; i++) {
      const s = session('192.0.2.7');
      assert.equal(await t.admit(s, cfg), undefined);
      t.release(s);
    }
    const third = session('192.0.2.7');
    assert.deepEqual(await t.admit(third, cfg), { reason: 'connect.rate_exceeded', vars: { limit: 2 } });
    assert.equal(third.admitted, false);
    assert.equal(t.open, 0);
    assert.equal(await t.admit(session('192.0.2.8'), cfg), undefined, 'another client has its own count');
    assert.equal(await t.admit(session('192.0.2.7', 'submission'), cfg), undefined, 'per listener');
  });

  it('frees a slot on release', async () => {
    const cfg = limits('  listeners:\n    mx:\n      maxConnectionsPerClient: 1\n      maxConnections: 1\n');
    const t = new ConnectionTracker();
    const a = session('192.0.2.7');
    assert.equal(await t.admit(a, cfg), undefined);
    assert.notEqual(await t.admit(session('192.0.2.7'), cfg), undefined);
    t.release(a);
    assert.equal(a.admitted, false);
    assert.equal(t.open, 0);
    const b = session('192.0.2.7');
    assert.equal(await t.admit(b, cfg), undefined);
    assert.equal(b.admitted, true);
    assert.equal(t.open, 1);
  });

  it("frees exactly one of a client's slots when one of its connections closes", async () => {
    const cfg = limits('  listeners:\n    mx:\n      maxConnectionsPerClient: 2\n');
    const t = new ConnectionTracker();
    const a = session('192.0.2.7');
    await t.admit(a, cfg);
    await t.admit(session('192.0.2.7'), cfg);
    t.release(a);
    assert.equal(await t.admit(session('192.0.2.7'), cfg), undefined);
    assert.equal((await t.admit(session('192.0.2.7'), cfg))?.reason, 'connect.too_many_from_client');
    assert.equal(t.open, 2);
  });

  it('does nothing when releasing a session that was not admitted, or twice', async () => {
    const cfg = limits('  listeners:\n    mx:\n      maxConnectionsPerClient: 1\n');
    const t = new ConnectionTracker();
    const a = session('192.0.2.7');
    const refused = session('192.0.2.7');
    await t.admit(a, cfg);
    assert.notEqual(await t.admit(refused, cfg), undefined);
    t.release(refused);
    t.release(session('192.0.2.7'));
    assert.equal(t.open, 1);
    assert.equal((await t.admit(session('192.0.2.7'), cfg))?.reason, 'connect.too_many_from_client');
    t.release(a);
    t.release(a);
    assert.equal(t.open, 0);
    assert.equal(await t.admit(session('192.0.2.9'), cfg), undefined);
    assert.equal(t.open, 1);
  });
});
