// Daemon lifecycle (SPEC section 6): config checking, graceful stop,
// restarts, one daemon per store, offline restarts with the cached JWKS.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import {
  withFake,
  startDaemon,
  connect,
  newUser,
  tokenFor,
  ok,
  failure,
  runUsersd,
  makeTempDir,
  buildConfig,
  canConnect,
  waitFor,
} from './harness.mjs';

const fake = await withFake();

async function tempConfig(t, text) {
  const dir = await makeTempDir();
  t.after(() => fsp.rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'usersd.yaml');
  await fsp.writeFile(file, text, { mode: 0o600 });
  return { dir, file };
}

describe('--check-config', () => {
  test('a valid config passes', async (t) => {
    const dir = await makeTempDir();
    t.after(() => fsp.rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'usersd.yaml');
    await fsp.writeFile(file, buildConfig({ dir, fake, configExtra: { policy: { org_admins_manage_members: true } } }), { mode: 0o600 });
    const r = await runUsersd(['--config', file, '--check-config']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!fs.existsSync(path.join(dir, 'app.sock')), 'check-config does not start serving');
    assert.ok(!fs.existsSync(path.join(dir, 'store')), 'check-config does not create the store');
  });

  test('an unknown key fails and names the key and its line', async (t) => {
    const { file } = await tempConfig(
      t,
      ['# test config', 'socket:', '  path: /tmp/x.sock', '  max_lines_bytes: 4096', 'log:', '  level: debug', ''].join('\n'),
    );
    const r = await runUsersd(['--config', file, '--check-config']);
    assert.notEqual(r.code, 0);
    const out = r.stdout + r.stderr;
    assert.match(out, /socket\.max_lines_bytes/);
    assert.match(out, /line 4\b/);
  });

  test('a bad value fails and names the key and its line', async (t) => {
    const cases = [
      [['auth:', '  client_id: client_123', '  leeway_seconds: -5', ''], /auth\.leeway_seconds/, 3],
      [['log:', '  level: loud', ''], /log\.level/, 2],
      [['store: {path: /tmp/s}', 'socket:', '  max_connections: zero', ''], /socket\.max_connections/, 3],
      [['auth:', '  algorithms: [none]', ''], /auth\.algorithms/, 2],
      [['unknown_section:', '  a: 1', ''], /unknown_section/, 1],
    ];
    for (const [lines, key, line] of cases) {
      const { file } = await tempConfig(t, lines.join('\n'));
      const r = await runUsersd(['--config', file, '--check-config']);
      assert.notEqual(r.code, 0, lines.join('\n'));
      const out = r.stdout + r.stderr;
      assert.match(out, key, out);
      assert.match(out, new RegExp(`line ${line}\\b`), out);
    }
  });

  test('starting with a bad config exits non-zero with the same message', async (t) => {
    const { file } = await tempConfig(t, ['workos:', '  base_urll: http://127.0.0.1:1', ''].join('\n'));
    const r = await runUsersd(['--config', file]);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /workos\.base_urll.*line 2|line 2.*workos\.base_urll/);
  });
});

describe('graceful stop', () => {
  test('SIGTERM with requests in flight: they get answers, exit code 0, socket files removed', async () => {
    const d = await startDaemon({ fake });
    const c = await connect(d.socketPath);
    const users = [];
    for (let i = 0; i < 3; i++) users.push(await newUser(fake, c));
    // WorkOS answers slowly: each resetAvatar stays in flight for a while.
    await fake.setFaults([{ method: 'GET', path: '^/user_management/users/', delayMs: 800 }]);
    try {
      const slow = users.map((u) => c.request('user.resetAvatar', undefined, { token: u.token }));
      const fast = [];
      for (let i = 0; i < 30; i++) {
        const u = users[i % 3];
        fast.push(c.request('user.update', { id: u.me.id, firstName: `Stop${i}` }, { token: u.token }));
      }
      // Once the updates (sent after the resetAvatars) are answered, the
      // daemon has read everything: the resetAvatars are in flight.
      for (const e of await Promise.all(fast)) ok(e);
      d.sigterm();
      const replies = await Promise.all(slow);
      for (const e of replies) {
        assert.equal(e._tag, 'Exit');
        if (e.exit._tag !== 'Success') failure(e, 'InternalServerError');
      }
      const r = await d.stop();
      assert.equal(r.code, 0);
    } finally {
      await fake.clearFaults();
    }
    assert.ok(!fs.existsSync(d.socketPath), 'application socket removed');
    assert.ok(!fs.existsSync(d.adminPath), 'admin socket removed');
    assert.match(d.logs(), /stopp/i);

    // Everything acknowledged before the stop is there after a restart.
    await d.restart();
    const c2 = await connect(d.socketPath);
    const names = await Promise.all(users.map(async (u) => ok(await c2.request('user.me', undefined, { token: u.token })).firstName));
    assert.deepEqual(names, ['Stop27', 'Stop28', 'Stop29']);
  });

  test('new connections are refused once stopping', async () => {
    const d = await startDaemon({ fake });
    d.sigterm();
    await waitFor(async () => !(await canConnect(d.socketPath)), { what: 'the socket to close' });
    await d.stop();
  });
});

describe('restarts', () => {
  test('users survive a restart and transactionIds keep increasing', async () => {
    const d = await startDaemon({ fake });
    let c = await connect(d.socketPath);
    const u = await newUser(fake, c, { claims: { org_id: 'org_r', role: 'admin' } });
    const t1 = ok(await c.request('user.update', { id: u.me.id, timezone: 'Europe/Berlin', settings: { theme: { a: 1 } } }, { token: u.token }));
    const t2 = ok(await c.request('user.finalizeOnboarding', undefined, { token: u.token }));
    await c.close();
    await d.restart();
    c = await connect(d.socketPath);
    const me = ok(await c.request('user.me', undefined, { token: u.token }));
    assert.deepEqual(me, { ...u.me, timezone: 'Europe/Berlin', settings: { theme: { a: 1 } }, isOnboarded: true });
    const t3 = ok(await c.request('user.update', { id: u.me.id, lastName: 'Again' }, { token: u.token }));
    assert.ok(t3.transactionId > t2.transactionId && t2.transactionId > t1.transactionId);
    assert.equal(t3.data.createdAt, t1.data.createdAt);
    // A user first seen after the restart gets a fresh id and a higher transactionId.
    const v = await newUser(fake, c);
    assert.notEqual(v.me.id, u.me.id);
    const t4 = ok(await c.request('user.finalizeOnboarding', undefined, { token: v.token }));
    assert.ok(t4.transactionId > t3.transactionId);
  });

  test('acknowledged changes survive SIGKILL', async () => {
    const d = await startDaemon({ fake });
    let c = await connect(d.socketPath);
    const u = await newUser(fake, c);
    const acks = await Promise.all(
      Array.from({ length: 25 }, (_, i) => c.request('user.update', { id: u.me.id, firstName: `K${i}` }, { token: u.token })),
    );
    const last = acks.map(ok).reduce((a, b) => (b.transactionId > a.transactionId ? b : a));
    await d.kill();
    await d.restart();
    c = await connect(d.socketPath);
    const me = ok(await c.request('user.me', undefined, { token: u.token }));
    assert.equal(me.firstName, last.data.firstName, 'the last acknowledged update is durable');
    const next = ok(await c.request('user.finalizeOnboarding', undefined, { token: u.token }));
    assert.ok(next.transactionId > last.transactionId, 'no transactionId is reused after a crash');
  });

  test('a second daemon on the same store refuses to start with a clear message', async (t) => {
    const d = await startDaemon({ fake });
    const dir2 = await makeTempDir();
    t.after(() => fsp.rm(dir2, { recursive: true, force: true }));
    const cfg = path.join(dir2, 'usersd.yaml');
    await fsp.writeFile(cfg, buildConfig({ dir: dir2, fake, configExtra: { store: { path: path.join(d.dir, 'store') } } }), { mode: 0o600 });
    const r = await runUsersd(['--config', cfg]);
    assert.notEqual(r.code, 0);
    const out = r.stdout + r.stderr;
    assert.match(out, /already running|in use|locked/i, out);
    assert.ok(out.includes(path.join(d.dir, 'store')), `names the store: ${out}`);
    assert.ok(!fs.existsSync(path.join(dir2, 'app.sock')), 'the second daemon opened no socket');

    // Same socket path, another store: refused too, and the first keeps its socket.
    await fsp.writeFile(cfg, buildConfig({ dir: dir2, fake, configExtra: { socket: { path: d.socketPath } } }), { mode: 0o600 });
    const r2 = await runUsersd(['--config', cfg]);
    assert.notEqual(r2.code, 0);
    assert.match(r2.stdout + r2.stderr, /already|listening|in use/i);

    const c = await connect(d.socketPath);
    const u = await newUser(fake, c);
    assert.ok(u.me.id);
  });

  test('a restarted daemon verifies tokens with the cached JWKS while WorkOS is unreachable', async (t) => {
    const f2 = await withFake({ t });
    const d = await startDaemon({ fake: f2, t, configExtra: { workos: { timeout_ms: 1000 } } });
    let c = await connect(d.socketPath, { t });
    const u = await newUser(f2, c, { claims: { org_id: 'org_off' } });
    const unused = await tokenFor(f2, u.workos, { org_id: 'org_off' }); // never presented before the restart
    const unknownKid = await tokenFor(f2, u.workos, { kid: 'sso_oidc_key_pair_gone' });
    await c.close();
    await d.stop();
    await f2.stop(); // WorkOS is gone entirely (connection refused)
    await d.restart();
    c = await connect(d.socketPath, { t });
    const me = ok(await c.request('user.me', undefined, { token: unused }));
    assert.deepEqual(me, u.me);
    const upd = ok(await c.request('user.update', { id: u.me.id, firstName: 'Offline' }, { token: unused }));
    assert.equal(upd.data.firstName, 'Offline');
    // An unknown kid cannot be refetched: refused, promptly.
    const t0 = Date.now();
    failure(await c.request('user.me', undefined, { token: unknownKid }), 'UnauthorizedError');
    assert.ok(Date.now() - t0 < 5000);
  });
});
