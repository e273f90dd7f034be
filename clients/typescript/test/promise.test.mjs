// @usersd/client's Promise API (createUsersdClient) against the real daemon,
// plus small stand-in servers for what the daemon does not do on demand
// (never answering, dropping a connection mid-request, breaking the contract).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import fsp from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { withFake, startDaemon, connect, newUser, seedUser, tokenFor, ok, makeTempDir, sleep } from '../../../tests/integration/harness.mjs';
import { loadPackage } from './env.mjs';

const { client: pkg } = await loadPackage();
const {
  createUsersdClient,
  UnauthorizedError,
  UserNotFoundError,
  InternalServerError,
  UsersdClientError,
  UsersdValidationError,
  UsersdTimeoutError,
  UsersdConnectionError,
  UsersdProtocolError,
} = pkg;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// One fake and one daemon (org admins may manage members, so UserNotFoundError is reachable).
const fake = await withFake();
const d = await startDaemon({ fake, configExtra: { policy: { org_admins_manage_members: true } } });
const raw = await connect(d.socketPath);

/** A client closed after the test. */
function clientFor(t, opts) {
  const c = createUsersdClient(opts);
  t.after(() => c.close());
  return c;
}

/**
 * A stand-in daemon on a temp socket: `onLine(sock, msg)` sees each parsed
 * line. Resolves to {socketPath, lines, connections}; closed after the test.
 */
async function standIn(t, onLine) {
  const dir = await makeTempDir('usc-');
  const socketPath = path.join(dir, 's.sock');
  const lines = [];
  let connections = 0;
  const socks = new Set();
  const server = net.createServer((sock) => {
    connections++;
    socks.add(sock);
    sock.on('close', () => socks.delete(sock));
    sock.on('error', () => {});
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (chunk) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        lines.push(msg);
        onLine(sock, msg);
      }
    });
  });
  await new Promise((resolve) => server.listen(socketPath, resolve));
  t.after(async () => {
    for (const s of socks) s.destroy();
    await new Promise((resolve) => server.close(resolve));
    await fsp.rm(dir, { recursive: true, force: true });
  });
  return {
    socketPath,
    lines,
    connections: () => connections,
  };
}

const exitSuccess = (requestId, value) => `${JSON.stringify({ _tag: 'Exit', requestId, exit: { _tag: 'Success', value } })}\n`;
const someMe = (id) => ({
  id,
  organizationId: null,
  role: 'member',
  email: 'x@example.com',
  firstName: 'X',
  lastName: 'Y',
  avatarUrl: null,
  isOnboarded: false,
  timezone: null,
  settings: null,
});

describe('Promise API against usersd', () => {
  test('me, update, finalizeOnboarding, resetAvatar, delete: typed plain results', async (t) => {
    const u = await newUser(fake, raw, { claims: { org_id: 'org_p', role: 'admin' }, firstName: 'Pia', picture: 'https://img.example.com/p.png' });
    const users = clientFor(t, { socketPath: d.socketPath });

    const me = await users.me(u.token);
    assert.deepEqual(me, {
      id: u.me.id,
      organizationId: 'org_p',
      role: 'admin',
      email: u.workos.email,
      firstName: 'Pia',
      lastName: u.me.lastName,
      avatarUrl: 'https://img.example.com/p.png',
      isOnboarded: false,
      timezone: null,
      settings: null,
    });

    const upd = await users.update(u.token, u.me.id, { firstName: 'Patched', timezone: 'Europe/Paris', avatarUrl: 'https://mine.example.com/a.png', settings: { doNotDisturb: true, extra: [1] } });
    assert.ok(Number.isInteger(upd.transactionId) && upd.transactionId > 0);
    assert.equal(upd.data.id, u.me.id);
    assert.equal(upd.data.firstName, 'Patched');
    assert.equal(upd.data.lastName, u.me.lastName, 'an absent field is unchanged');
    assert.equal(upd.data.timezone, 'Europe/Paris');
    assert.equal(upd.data.avatarUrl, 'https://mine.example.com/a.png');
    assert.deepEqual(upd.data.settings, { doNotDisturb: true, extra: [1] });
    assert.equal(upd.data.userType, 'user');
    assert.ok(upd.data.createdAt instanceof Date);
    assert.ok(Math.abs(upd.data.createdAt.getTime() - Date.now()) < 60_000);
    assert.ok(upd.data.updatedAt instanceof Date);
    assert.equal(upd.data.deletedAt, null);
    assert.equal('workosId' in upd.data, false);

    const cleared = await users.update(u.token, u.me.id, { timezone: null });
    assert.equal(cleared.data.timezone, null);
    assert.equal(cleared.data.firstName, 'Patched');
    assert.ok(cleared.transactionId > upd.transactionId);

    const fin = await users.finalizeOnboarding(`Bearer ${u.token}`); // an already prefixed token is kept as is
    assert.equal(fin.data.isOnboarded, true);
    assert.ok(fin.transactionId > cleared.transactionId);

    const reset = await users.resetAvatar(u.token);
    assert.equal(reset.data.avatarUrl, 'https://img.example.com/p.png');
    assert.ok(reset.transactionId > fin.transactionId);

    const del = await users.delete(u.token, u.me.id);
    assert.ok(del.transactionId > reset.transactionId);
    assert.deepEqual(Object.keys(del), ['transactionId']);
    await assert.rejects(users.me(u.token), UnauthorizedError, 'a deleted user\'s token is refused');
  });

  test('UnauthorizedError: bad, expired and foreign tokens, as the schema class', async (t) => {
    const u = await newUser(fake, raw);
    const other = await newUser(fake, raw);
    const expired = await tokenFor(fake, u.workos, { expiresIn: -3600 });
    const users = clientFor(t, { socketPath: d.socketPath });
    const attempts = [
      users.me('not-a-token'),
      users.finalizeOnboarding(expired),
      users.update(u.token, other.me.id, { firstName: 'Nope' }),
      users.delete(u.token, other.me.id),
    ];
    for (const p of attempts) {
      const err = await p.then(() => assert.fail('expected UnauthorizedError'), (e) => e);
      assert.ok(err instanceof UnauthorizedError, `got ${err?.name}: ${err?.message}`);
      assert.ok(err instanceof Error);
      assert.equal(err._tag, 'UnauthorizedError');
      assert.equal(typeof err.message, 'string');
      assert.ok(err.detail.length > 0);
      assert.ok(!err.detail.includes(expired));
    }
    // Nothing changed for the other user.
    assert.equal((await users.me(other.token)).firstName, other.me.firstName);
  });

  test('UserNotFoundError carries the userId', async (t) => {
    const org = 'org_p_del';
    const admin = await newUser(fake, raw, { claims: { org_id: org, role: 'owner' } });
    const member = await newUser(fake, raw, { claims: { org_id: org, role: 'member' } });
    const users = clientFor(t, { socketPath: d.socketPath });
    await users.delete(admin.token, member.me.id);
    for (const p of [users.delete(admin.token, member.me.id), users.update(admin.token, member.me.id, { lastName: 'Ghost' })]) {
      const err = await p.then(() => assert.fail('expected UserNotFoundError'), (e) => e);
      assert.ok(err instanceof UserNotFoundError, `got ${err?.name}: ${err?.message}`);
      assert.equal(err.userId, member.me.id);
    }
  });

  test('InternalServerError: resetAvatar with WorkOS down and no picture known', async (t) => {
    const f2 = await withFake({ t });
    const d2 = await startDaemon({ fake: f2, t, configExtra: { workos: { timeout_ms: 2000 } } });
    const wu = await seedUser(f2);
    const token = await tokenFor(f2, wu);
    await f2.setDown(true);
    const users = clientFor(t, { socketPath: d2.socketPath });
    await users.me(token); // provisioned offline: no picture known
    const err = await users.resetAvatar(token).then(() => assert.fail('expected InternalServerError'), (e) => e);
    assert.ok(err instanceof InternalServerError, `got ${err?.name}: ${err?.message}`);
    assert.equal(typeof err.message, 'string');
  });

  test('invalid payloads: UsersdValidationError from the daemon and from the client', async (t) => {
    const u = await newUser(fake, raw);
    const users = clientFor(t, { socketPath: d.socketPath });
    const fromDaemon = await users.update(u.token, u.me.id, { timezone: 'Not/AZone' }).then(() => assert.fail('expected a ValidationError'), (e) => e);
    assert.ok(fromDaemon instanceof UsersdValidationError, `got ${fromDaemon?.name}: ${fromDaemon?.message}`);
    assert.ok(fromDaemon instanceof UsersdClientError);
    assert.equal(fromDaemon.source, 'daemon');
    assert.match(fromDaemon.message, /timezone/);
    const taken = await newUser(fake, raw);
    const dup = await users.update(u.token, u.me.id, { email: taken.workos.email.toUpperCase() }).then(() => assert.fail('expected a ValidationError'), (e) => e);
    assert.ok(dup instanceof UsersdValidationError);
    assert.match(dup.message, /email already in use/);

    const fromClient = await users.update(u.token, 'not-a-uuid', { firstName: 'X' }).then(() => assert.fail('expected a ValidationError'), (e) => e);
    assert.ok(fromClient instanceof UsersdValidationError, `got ${fromClient?.name}`);
    assert.equal(fromClient.source, 'client');
    assert.match(fromClient.message, /id/);
    const wrongType = await users.update(u.token, u.me.id, { firstName: 42 }).then(() => assert.fail('expected a ValidationError'), (e) => e);
    assert.equal(wrongType.source, 'client');
    assert.match(wrongType.message, /firstName/);
    assert.equal((await users.me(u.token)).timezone, null, 'nothing changed');
    await assert.rejects(users.me(''), TypeError);
  });

  test('daemon restarts in the middle of use: the same client reconnects', async (t) => {
    const f3 = await withFake({ t });
    const d3 = await startDaemon({ fake: f3, t });
    const wu = await seedUser(f3);
    const token = await tokenFor(f3, wu);
    const users = clientFor(t, { socketPath: d3.socketPath, timeoutMs: 15_000 });
    const before = await users.me(token);

    // A graceful restart between calls.
    await d3.restart();
    const afterRestart = await users.me(token);
    assert.equal(afterRestart.id, before.id);

    // Calls made while the daemon is down wait for it, within their timeout.
    await d3.stop();
    const pending = [users.me(token), users.update(token, before.id, { lastName: 'Back' }), users.finalizeOnboarding(token)];
    await sleep(400);
    await d3.restart();
    const [me, upd, fin] = await Promise.all(pending);
    assert.equal(me.id, before.id);
    assert.equal(upd.data.lastName, 'Back');
    assert.equal(fin.data.isOnboarded, true);

    // A crash (SIGKILL) too: the next call reconnects to the new daemon.
    await d3.kill();
    const afterCrash = users.me(token);
    await sleep(200);
    await d3.restart();
    assert.equal((await afterCrash).lastName, 'Back');

    // Daemon gone for longer than the call's timeout: UsersdConnectionError naming the socket, not a hang.
    await d3.stop();
    const err = await users.me(token, { timeoutMs: 300 }).then(() => assert.fail('expected a connection error'), (e) => e);
    assert.ok(err instanceof UsersdConnectionError, `got ${err?.name}: ${err?.message}`);
    assert.equal(err.sent, false);
    assert.ok(err.message.includes(d3.socketPath));
    await d3.restart();
    assert.equal((await users.me(token)).id, before.id);
  });

  test('no daemon at all: UsersdConnectionError after the timeout, with the connect error as cause', async (t) => {
    const dir = await makeTempDir('usc-');
    t.after(() => fsp.rm(dir, { recursive: true, force: true }));
    const users = clientFor(t, { socketPath: path.join(dir, 'nothing.sock'), timeoutMs: 250 });
    const started = Date.now();
    const err = await users.me('tok').then(() => assert.fail('expected a connection error'), (e) => e);
    const took = Date.now() - started;
    assert.ok(err instanceof UsersdConnectionError, `got ${err?.name}`);
    assert.equal(err.sent, false);
    assert.equal(err.cause?.code, 'ENOENT');
    assert.ok(took >= 240 && took < 5000, `took ${took} ms`);
  });

  test('no reply within the timeout: UsersdTimeoutError, and the daemon is sent an Interrupt', async (t) => {
    const s = await standIn(t, () => {}); // reads, never answers
    const users = clientFor(t, { socketPath: s.socketPath, timeoutMs: 5000 });
    const err = await users.me('tok', { timeoutMs: 200 }).then(() => assert.fail('expected a timeout'), (e) => e);
    assert.ok(err instanceof UsersdTimeoutError, `got ${err?.name}`);
    assert.equal(err.sent, true);
    assert.equal(err.timeoutMs, 200);
    await sleep(50);
    const [req, interrupt] = s.lines;
    assert.equal(req._tag, 'Request');
    assert.equal(req.tag, 'user.me');
    assert.deepEqual(req.headers, [['authorization', 'Bearer tok']]);
    assert.equal('payload' in req, false);
    assert.deepEqual(interrupt, { _tag: 'Interrupt', requestId: req.id, interruptors: [] });
  });

  test('connection dropped with a request in flight: UsersdConnectionError (sent), then the next call reconnects', async (t) => {
    const id = '7f2d7a9e-5d1c-4e8f-9a0b-1c2d3e4f5a6b';
    const s = await standIn(t, (sock, msg) => {
      if (msg._tag !== 'Request') return;
      if (s.connections() === 1) sock.destroy(); // the first connection dies mid-request
      else sock.write(exitSuccess(msg.id, someMe(id)));
    });
    const users = clientFor(t, { socketPath: s.socketPath });
    const err = await users.me('tok').then(() => assert.fail('expected a connection error'), (e) => e);
    assert.ok(err instanceof UsersdConnectionError, `got ${err?.name}`);
    assert.equal(err.sent, true);
    assert.match(err.message, /may have been applied/);
    assert.equal((await users.me('tok')).id, id);
    assert.equal(s.connections(), 2);
  });

  test('a reply outside the contract is a UsersdProtocolError, not a silently wrong value', async (t) => {
    const s = await standIn(t, (sock, msg) => {
      if (msg._tag !== 'Request') return;
      if (msg.tag === 'user.me') sock.write(exitSuccess(msg.id, someMe('not-a-uuid')));
      else sock.write(`${JSON.stringify({ _tag: 'Exit', requestId: msg.id, exit: { _tag: 'Failure', cause: { _tag: 'Die', defect: { name: 'Oops', message: 'unknown method' } } } })}\n`);
    });
    const users = clientFor(t, { socketPath: s.socketPath });
    const bad = await users.me('tok').then(() => assert.fail('expected a protocol error'), (e) => e);
    assert.ok(bad instanceof UsersdProtocolError, `got ${bad?.name}`);
    assert.match(bad.message, /id/);
    const defect = await users.finalizeOnboarding('tok').then(() => assert.fail('expected a protocol error'), (e) => e);
    assert.ok(defect instanceof UsersdProtocolError);
    assert.match(defect.message, /unknown method/);
  });

  test('close() fails pending calls, later calls, and is idempotent; abort signals work', async (t) => {
    const s = await standIn(t, () => {});
    const users = createUsersdClient({ socketPath: s.socketPath });
    const ac = new AbortController();
    const aborted = users.me('tok', { signal: ac.signal });
    const pending = users.me('tok').then(() => assert.fail('expected rejection'), (e) => e);
    await sleep(50);
    ac.abort(new Error('changed my mind'));
    await assert.rejects(aborted, /changed my mind/);
    await users.close();
    const err = await pending;
    assert.ok(err instanceof UsersdConnectionError);
    assert.equal(err.sent, true);
    await assert.rejects(users.me('tok'), UsersdConnectionError);
    await users.close();
    const interrupts = s.lines.filter((l) => l._tag === 'Interrupt');
    assert.deepEqual(interrupts.map((l) => l.requestId), [s.lines[0].id]);
  });

  test('many concurrent calls on one client share one connection and each gets its own answer', async (t) => {
    const u = await newUser(fake, raw);
    const users = clientFor(t, { socketPath: d.socketPath });
    const out = await Promise.all(
      Array.from({ length: 60 }, (_, i) => (i % 2 ? users.me(u.token) : users.update(u.token, u.me.id, { lastName: `C${i}` }))),
    );
    out.forEach((v, i) => {
      if (i % 2) assert.equal(v.id, u.me.id);
      else assert.equal(v.data.lastName, `C${i}`);
    });
    const ids = out.filter((_, i) => i % 2 === 0).map((v) => v.transactionId);
    assert.equal(new Set(ids).size, ids.length, 'distinct transactionIds');
    assert.match(u.me.id, UUID_RE);
  });

  test('a script that forgets close() still exits once its calls are done', async () => {
    const u = await newUser(fake, raw);
    const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
    const script = `import { createUsersdClient } from ${JSON.stringify(dist)};
      const users = createUsersdClient({ socketPath: process.env.SOCK });
      const me = await users.me(process.env.TOKEN);
      console.log(me.id);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, SOCK: d.socketPath, TOKEN: u.token },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const [code, signal] = await new Promise((resolve) => child.once('exit', (c, s) => resolve([c, s])));
    clearTimeout(timer);
    assert.equal(signal, null, `the script hung (killed); output: ${out}`);
    assert.equal(code, 0, out);
    assert.equal(out.trim(), u.me.id);
  });
});

test('the daemon is still healthy after all of that', async () => {
  const u = await newUser(fake, raw);
  assert.match(ok(await raw.request('user.me', undefined, { token: u.token })).id, UUID_RE);
});
