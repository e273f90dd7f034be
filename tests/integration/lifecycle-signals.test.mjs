// Signals and lifecycle (SPEC section 6, issue 4 part 4):
//
//   * SIGTERM with requests in flight: every request gets an answer or its
//     connection closes cleanly (never half a frame), new connections are
//     refused, what was acknowledged is on disk, exit 0 within 10 s; a
//     request stuck on WorkOS does not hold the stop past the 5 s drain.
//   * SIGHUP: reloads what can be reloaded (log.level takes effect at once),
//     names the keys that need a restart, keeps the running config when the
//     new file is bad.
//   * A second instance on the same store refuses to start, clearly, and does
//     not disturb the first one (its socket stays); the lock dies with the
//     process (SIGKILL leaves no stale lock).
//   * sd_notify: READY=1 (only once the sockets answer), STATUS=, WATCHDOG=1
//     from the loop when WATCHDOG_USEC/WATCHDOG_PID say so, STOPPING=1 on
//     SIGTERM, all from the main pid (NotifyAccess=main). The notify socket is
//     a Unix datagram socket, which Node cannot open: a few lines of
//     /usr/bin/python3 receive the datagrams with their SCM_CREDENTIALS.
//
// Environment: USERSD_BIN (the daemon), USERSD_SOURCE_DIR.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFake } from '../workos-fake/client.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SOURCE_DIR = process.env.USERSD_SOURCE_DIR || path.resolve(here, '../..');
const BIN = process.env.USERSD_BIN || path.join(SOURCE_DIR, 'build/daemon/usersd');
const PYTHON = '/usr/bin/python3';

// --- helpers ----------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Removed when the test process exits, whether the tests passed or not.
const tmpdirs = [];
process.on('exit', () => tmpdirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
function tmpdir(tag) {
  // Short: Unix socket paths must stay under 108 bytes.
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `usersd-${tag}-`));
  tmpdirs.push(d);
  return d;
}

async function waitFor(pred, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

function waitExit(proc, timeoutMs) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pid ${proc.pid} still running after ${timeoutMs} ms`)), timeoutMs);
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

function writeConfig(dir, fake, { level = 'info', extra = '', socketDir = dir } = {}) {
  const p = path.join(dir, 'usersd.yaml');
  fs.writeFileSync(
    p,
    `socket: { path: ${JSON.stringify(path.join(socketDir, 'app.sock'))}, mode: "0600" }
admin_socket: { path: ${JSON.stringify(path.join(socketDir, 'admin.sock'))} }
store: { path: ${JSON.stringify(path.join(dir, 'store'))} }
auth: { client_id: ${JSON.stringify(fake.clientId)} }
workos:
  base_url: ${JSON.stringify(fake.baseUrl)}
  api_key: ${JSON.stringify(fake.apiKey)}
  timeout_ms: 30000
  events_poll_seconds: 0
log: { level: ${level} }
${extra}`,
    { mode: 0o600 }, // it holds the API key: usersd refuses a key every user may read
  );
  return p;
}

// Spawns the daemon; resolves once it logged "usersd ready" and its socket
// answers a Ping. `env` is added to the environment; `shell` runs it through
// /bin/sh so WATCHDOG_PID can be the daemon's own pid ($$ before exec).
function spawnDaemon(configPath, { env = {}, shell = false } = {}) {
  const args = ['--config', configPath];
  const proc = shell
    ? spawn('/bin/sh', ['-c', 'export WATCHDOG_PID=$$; exec "$0" "$@"', BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } })
    : spawn(BIN, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  const log = { text: '' };
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => (log.text += d));
  return { proc, log };
}

async function startDaemon(configPath, socketPath, opts) {
  const d = spawnDaemon(configPath, opts);
  await waitFor(() => /usersd ready/.test(d.log.text) || d.proc.exitCode !== null, 15000, 'usersd ready');
  assert.equal(d.proc.exitCode, null, `usersd exited during start:\n${d.log.text}`);
  assert.equal(await tryPing(socketPath), 'pong');
  return d;
}

async function stopDaemon(d, timeoutMs = 10000) {
  if (d.proc.exitCode !== null || d.proc.signalCode !== null) return { code: d.proc.exitCode, signal: d.proc.signalCode };
  d.proc.kill('SIGTERM');
  return waitExit(d.proc, timeoutMs);
}

// 'pong', 'refused' (connect failed) or 'closed' (connected, no Pong).
function tryPing(socketPath, timeoutMs = 3000) {
  return new Promise((resolve) => {
    const s = net.createConnection(socketPath);
    let buf = '';
    const done = (v) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done('closed'), timeoutMs);
    s.on('connect', () => s.write('{"_tag":"Ping"}\n'));
    s.on('data', (d) => {
      buf += d;
      if (buf.includes('"Pong"')) done('pong');
    });
    s.on('error', () => done(s.connecting ? 'refused' : 'closed'));
    s.on('close', () => done(s.connecting ? 'refused' : 'closed'));
  });
}

// A raw NDJSON connection: send lines, gather every reply line until close.
function rawConnection(socketPath) {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(socketPath);
    const c = { sock: s, replies: [], rest: '', closed: false, error: null };
    s.setEncoding('utf8');
    s.on('data', (d) => {
      c.rest += d;
      let nl;
      while ((nl = c.rest.indexOf('\n')) >= 0) {
        c.replies.push(c.rest.slice(0, nl));
        c.rest = c.rest.slice(nl + 1);
      }
    });
    c.closedP = new Promise((r) => s.on('close', () => ((c.closed = true), r())));
    s.on('error', (e) => (c.error = e));
    s.once('connect', () => resolve(c));
    s.once('error', reject);
  });
}

async function call(socketPath, tag, payload, token) {
  const c = await rawConnection(socketPath);
  c.sock.write(JSON.stringify({ _tag: 'Request', id: '1', tag, payload: payload ?? {}, headers: token ? [['authorization', `Bearer ${token}`]] : [] }) + '\n');
  await waitFor(() => c.replies.length > 0 || c.closed, 15000, `reply to ${tag}`);
  c.sock.end();
  assert.ok(c.replies.length > 0, `${tag}: connection closed without a reply`);
  return JSON.parse(c.replies[0]).exit;
}

const request = (id, tag, payload, token) =>
  JSON.stringify({ _tag: 'Request', id, tag, payload: payload ?? {}, headers: [['authorization', `Bearer ${token}`]] }) + '\n';

// --- tests --------------------------------------------------------------------

let fake;
before(async () => {
  assert.ok(fs.existsSync(BIN), `USERSD_BIN ${BIN} does not exist`);
  fake = await startFake();
});
after(async () => {
  await fake?.stop();
});

async function newUser(tag) {
  const u = await fake.createUser({ email: `${tag}-${Date.now()}@example.com`, first_name: 'Test', last_name: tag, profile_picture_url: 'https://example.com/p.png' });
  return fake.mintToken({ sub: u.id, expiresIn: 3600 });
}

describe('SIGTERM', () => {
  test('with pipelined updates in flight: every request answered or cleanly cut, acknowledged ones durable, exit 0 within 10 s', async (t) => {
    const dir = tmpdir('term');
    const cfg = writeConfig(dir, fake);
    const sock = path.join(dir, 'app.sock');
    let d = await startDaemon(cfg, sock);
    t.after(() => d.proc.kill('SIGKILL'));
    const token = await newUser('term');
    const me = await call(sock, 'user.me', undefined, token);
    assert.equal(me._tag, 'Success', JSON.stringify(me));
    const userId = me.value.id;

    const CONNS = 4;
    const PER_CONN = 150;
    const conns = await Promise.all(Array.from({ length: CONNS }, () => rawConnection(sock)));
    const sent = conns.map(() => new Map());
    await Promise.all(
      conns.map(
        (c, ci) =>
          new Promise((resolve) => {
            let batch = '';
            for (let i = 0; i < PER_CONN; i++) {
              const id = String(i + 1);
              const firstName = `N${ci}x${i}`;
              sent[ci].set(id, firstName);
              batch += request(id, 'user.update', { id: userId, firstName }, token);
            }
            c.sock.write(batch, resolve);
          }),
      ),
    );
    const t0 = Date.now();
    d.proc.kill('SIGTERM');
    // Once the loop has taken the signal, no new connection is served.
    await waitFor(() => /stopping/.test(d.log.text) || d.proc.exitCode !== null, 10000, 'the stopping log line');
    assert.notEqual(await tryPing(sock, 1000), 'pong', 'a new connection after SIGTERM is not served');
    const { code, signal } = await waitExit(d.proc, 10000);
    const stopMs = Date.now() - t0;
    assert.equal(signal, null);
    assert.equal(code, 0, d.log.text);
    assert.ok(stopMs < 10000, `stopped in ${stopMs} ms`);
    await Promise.all(conns.map((c) => Promise.race([c.closedP, sleep(5000)])));

    let ok = 0;
    let failed = 0;
    let best = null; // the acknowledged update with the highest transactionId
    for (const [ci, c] of conns.entries()) {
      assert.ok(c.closed, `connection ${ci} was closed`);
      assert.equal(c.rest, '', `connection ${ci} ended in the middle of a frame`);
      const seen = new Set();
      for (const line of c.replies) {
        const m = JSON.parse(line);
        assert.equal(m._tag, 'Exit', line);
        assert.ok(sent[ci].has(m.requestId), `reply to an unknown id: ${line}`);
        assert.ok(!seen.has(m.requestId), `two replies to ${m.requestId}`);
        seen.add(m.requestId);
        if (m.exit._tag === 'Success') {
          ok++;
          assert.equal(m.exit.value.data.firstName, sent[ci].get(m.requestId));
          if (!best || m.exit.value.transactionId > best.transactionId) best = { transactionId: m.exit.value.transactionId, firstName: sent[ci].get(m.requestId) };
        } else {
          failed++;
          assert.equal(m.exit._tag, 'Failure', line);
          assert.ok(m.exit.cause?._tag, line);
        }
      }
    }
    console.log(`# SIGTERM: ${ok} succeeded, ${failed} failed, ${CONNS * PER_CONN - ok - failed} unanswered (connection closed), stopped in ${stopMs} ms`);
    assert.match(d.log.text, /stopping.*SIGTERM/);
    assert.match(d.log.text, /usersd stopped/);
    assert.doesNotMatch(d.log.text, /open handles/);

    // What was acknowledged is on disk, and nothing after it was committed
    // without an answer.
    d = await startDaemon(cfg, sock);
    const again = await call(sock, 'user.me', undefined, token);
    assert.equal(again._tag, 'Success', JSON.stringify(again));
    if (best) assert.equal(again.value.firstName, best.firstName, 'the last acknowledged update is the stored state');
    const next = await call(sock, 'user.update', { id: userId, lastName: 'After' }, token);
    assert.equal(next._tag, 'Success', JSON.stringify(next));
    if (best) assert.ok(next.value.transactionId > best.transactionId);
    assert.equal((await stopDaemon(d)).code, 0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a request stuck on WorkOS does not hold the stop past the 5 s drain: exit 0 within 10 s', async (t) => {
    const dir = tmpdir('stuck');
    const cfg = writeConfig(dir, fake);
    const sock = path.join(dir, 'app.sock');
    const d = await startDaemon(cfg, sock);
    t.after(() => d.proc.kill('SIGKILL'));
    t.after(() => fake.clearFaults());
    const token = await newUser('stuck');
    assert.equal((await call(sock, 'user.me', undefined, token))._tag, 'Success');
    // user.resetAvatar asks WorkOS for the user; WorkOS now takes a minute.
    await fake.setFaults([{ method: 'GET', path: '^/user_management/users/', delayMs: 60000 }]);
    const c = await rawConnection(sock);
    c.sock.write(request('r1', 'user.resetAvatar', undefined, token) + request('r2', 'user.me', undefined, token));
    await waitFor(() => c.replies.length >= 1, 5000, 'the user.me reply');
    await sleep(200); // resetAvatar is waiting on WorkOS
    const t0 = Date.now();
    d.proc.kill('SIGTERM');
    const { code } = await waitExit(d.proc, 10000);
    const stopMs = Date.now() - t0;
    assert.equal(code, 0, d.log.text);
    assert.ok(stopMs < 10000, `stopped in ${stopMs} ms`);
    await Promise.race([c.closedP, sleep(2000)]);
    assert.ok(c.closed);
    assert.equal(c.rest, '');
    const r1 = c.replies.map((l) => JSON.parse(l)).find((m) => m.requestId === 'r1');
    // Either answered (with a failure, or from the last known picture) or cut
    // with the connection; never a hang.
    if (r1) assert.ok(['Success', 'Failure'].includes(r1.exit._tag), JSON.stringify(r1));
    console.log(`# stuck request: ${r1 ? JSON.stringify(r1.exit).slice(0, 160) : 'connection closed without a reply'}; stopped in ${stopMs} ms`);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('clients that go away', () => {
  test('a client that disconnects with replies pending does not kill the daemon (SIGPIPE)', async (t) => {
    const dir = tmpdir('pipe');
    const cfg = writeConfig(dir, fake);
    const sock = path.join(dir, 'app.sock');
    const d = await startDaemon(cfg, sock);
    t.after(() => d.proc.kill('SIGKILL'));
    // Many cheap requests (no token: UnauthorizedError), then gone before
    // reading a byte: the daemon's writes hit a closed socket.
    const batch = Array.from({ length: 5000 }, (_, i) => JSON.stringify({ _tag: 'Request', id: String(i), tag: 'user.me', headers: [] }) + '\n').join('');
    for (let round = 0; round < 3; round++) {
      const c = await rawConnection(sock);
      await new Promise((r) => c.sock.write(batch, r));
      c.sock.destroy();
    }
    await sleep(300);
    assert.equal(d.proc.signalCode, null, `usersd died of ${d.proc.signalCode}`);
    assert.equal(d.proc.exitCode, null, d.log.text);
    assert.equal(await tryPing(sock, 10000), 'pong');
    assert.equal((await stopDaemon(d, 20000)).code, 0, d.log.text);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('SIGHUP', () => {
  test('reloads log.level and timeouts at once, names what needs a restart, keeps the config when the file is bad', async (t) => {
    const dir = tmpdir('hup');
    const cfg = writeConfig(dir, fake, { level: 'info' });
    const sock = path.join(dir, 'app.sock');
    const d = await startDaemon(cfg, sock);
    t.after(() => d.proc.kill('SIGKILL'));
    const token = await newUser('hup');
    assert.equal((await call(sock, 'user.me', undefined, token))._tag, 'Success');
    assert.doesNotMatch(d.log.text, /^<7>/m, 'no debug lines at level info');

    // Reloadable: log.level, workos.timeout_ms, outbox.max_backoff_ms.
    // Needs a restart: socket.max_connections.
    writeConfig(dir, fake, { level: 'debug', extra: 'outbox: { max_backoff_ms: 60000 }\n' });
    const text = fs
      .readFileSync(cfg, 'utf8')
      .replace('timeout_ms: 30000', 'timeout_ms: 20000')
      .replace('mode: "0600" }', 'mode: "0600", max_connections: 100 }');
    fs.writeFileSync(cfg, text);
    const mark = d.log.text.length;
    d.proc.kill('SIGHUP');
    await waitFor(() => /configuration reloaded/.test(d.log.text.slice(mark)), 5000, 'the reload log line');
    const line = /configuration reloaded[^\n]*/.exec(d.log.text.slice(mark))[0];
    // Text log fields: k=v, or k="v" when v is empty or has spaces.
    const list = (k) => {
      const m = new RegExp(`\\b${k}=(?:"([^"]*)"|(\\S*))`).exec(line);
      return (m?.[1] ?? m?.[2] ?? '').split(',').filter(Boolean);
    };
    const reloaded = list('reloaded');
    const needsRestart = list('needs_restart');
    for (const k of ['log.level', 'workos.timeout_ms', 'outbox.max_backoff_ms']) assert.ok(reloaded.includes(k), `${k} reloaded: ${line}`);
    assert.ok(needsRestart.includes('socket.max_connections'), `socket.max_connections needs a restart: ${line}`);
    assert.ok(!reloaded.includes('socket.max_connections'));

    // log.level took effect: the next request is logged at debug.
    const mark2 = d.log.text.length;
    assert.equal((await call(sock, 'user.me', undefined, token))._tag, 'Success');
    await waitFor(() => /^<7>.*user\.me/m.test(d.log.text.slice(mark2)), 3000, 'a debug line for the request');
    assert.ok(!d.log.text.includes(token), 'the token is never logged');

    // A bad file: the daemon says so and keeps running on the old config.
    fs.writeFileSync(cfg, text + 'no_such_section: { x: 1 }\n');
    const mark3 = d.log.text.length;
    d.proc.kill('SIGHUP');
    await waitFor(() => /reload failed/.test(d.log.text.slice(mark3)), 5000, 'the reload failure');
    assert.match(d.log.text.slice(mark3), /^<3>reload failed; keeping the running configuration.*no_such_section/m);
    assert.equal(await tryPing(sock), 'pong');
    assert.equal((await call(sock, 'user.me', undefined, token))._tag, 'Success');
    assert.equal(d.proc.exitCode, null);
    assert.equal((await stopDaemon(d)).code, 0, d.log.text);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('one daemon per store', () => {
  test('a second instance refuses to start, clearly, and leaves the first one serving', async (t) => {
    const dir = tmpdir('dup');
    const cfg = writeConfig(dir, fake);
    const sock = path.join(dir, 'app.sock');
    let a = await startDaemon(cfg, sock);
    t.after(() => a.proc.kill('SIGKILL'));
    const ino = fs.statSync(sock).ino;

    // Same config, so also the same socket paths: the lock must come first.
    const b = spawnDaemon(cfg);
    t.after(() => b.proc.kill('SIGKILL'));
    const { code } = await waitExit(b.proc, 10000);
    assert.notEqual(code, 0);
    assert.match(b.log.text, new RegExp(`another usersd is already running on the store at ${path.join(dir, 'store').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.doesNotMatch(b.log.text, /usersd ready/);
    assert.equal(fs.statSync(sock).ino, ino, 'the first daemon\'s socket was not replaced');
    assert.equal(await tryPing(sock), 'pong', 'the first daemon still serves');

    // Different sockets, same store: refused too.
    const other = tmpdir('dup2');
    const cfg2 = writeConfig(other, fake);
    fs.writeFileSync(cfg2, fs.readFileSync(cfg2, 'utf8').replace(path.join(other, 'store'), path.join(dir, 'store')));
    const c = spawnDaemon(cfg2);
    t.after(() => c.proc.kill('SIGKILL'));
    assert.notEqual((await waitExit(c.proc, 10000)).code, 0);
    assert.match(c.log.text, /another usersd is already running/);

    // The lock dies with its process: after a SIGKILL the next start works.
    a.proc.kill('SIGKILL');
    await waitExit(a.proc, 5000);
    a = await startDaemon(cfg, sock);
    assert.equal((await stopDaemon(a)).code, 0, a.log.text);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(other, { recursive: true, force: true });
  });
});

// --- sd_notify ----------------------------------------------------------------

// Binds a Unix datagram socket at argv[1] and prints each datagram as a JSON
// line {pid, uid, msg} (pid/uid from SCM_CREDENTIALS).
const NOTIFY_LISTENER = `
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(sys.argv[1])
print(json.dumps({"listening": True}), flush=True)
while True:
    data, anc, flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = uid = None
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid, uid, gid = struct.unpack("iII", cdata[:12])
    print(json.dumps({"pid": pid, "uid": uid, "msg": data.decode("utf-8", "replace")}), flush=True)
`;

async function notifyListener(dir) {
  const sockPath = path.join(dir, 'notify.sock');
  const proc = spawn(PYTHON, ['-c', NOTIFY_LISTENER, sockPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const l = { proc, path: sockPath, messages: [], err: '' };
  let buf = '';
  proc.stderr.on('data', (d) => (l.err += d));
  proc.stdout.setEncoding('utf8');
  let listening;
  const ready = new Promise((r) => (listening = r));
  proc.stdout.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const m = JSON.parse(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if (m.listening) listening();
      else l.messages.push({ ...m, at: Date.now() });
    }
  });
  await Promise.race([ready, waitExit(proc, 10000).then(() => Promise.reject(new Error(`notify listener failed: ${l.err}`)))]);
  l.has = (re) => l.messages.some((m) => re.test(m.msg));
  return l;
}

describe('sd_notify', { skip: fs.existsSync(PYTHON) ? false : `${PYTHON} is needed to receive sd_notify datagrams` }, () => {
  test('READY=1 once the socket answers, WATCHDOG=1 from the loop, STOPPING=1 on SIGTERM, all from the main pid', async (t) => {
    const dir = tmpdir('notify');
    const cfg = writeConfig(dir, fake);
    const sock = path.join(dir, 'app.sock');
    const l = await notifyListener(dir);
    t.after(() => l.proc.kill('SIGKILL'));
    // WatchdogSec=1 s: a ping every 0.5 s.
    const d = spawnDaemon(cfg, { shell: true, env: { NOTIFY_SOCKET: l.path, WATCHDOG_USEC: '1000000' } });
    t.after(() => d.proc.kill('SIGKILL'));
    await waitFor(() => l.has(/^READY=1$/m) || d.proc.exitCode !== null, 15000, 'READY=1');
    assert.equal(d.proc.exitCode, null, d.log.text);
    // READY=1 means serving: the socket answers right away.
    assert.equal(await tryPing(sock, 1000), 'pong');
    const ready = l.messages.find((m) => /^READY=1$/m.test(m.msg));
    assert.match(ready.msg, /^STATUS=.+$/m, 'a STATUS= comes with READY=1');
    assert.ok(/usersd ready/.test(d.log.text), 'READY=1 after the ready log line (store open, sockets listening)');

    const readyIdx = l.messages.indexOf(ready);
    await waitFor(() => l.messages.slice(readyIdx).filter((m) => m.msg === 'WATCHDOG=1').length >= 4, 10000, 'four WATCHDOG=1');
    const wd = l.messages.filter((m) => m.msg === 'WATCHDOG=1');
    const gaps = wd.slice(1).map((m, i) => m.at - wd[i].at);
    // Every WatchdogSec/2; a gap of WatchdogSec would get the service killed.
    assert.ok(Math.max(...gaps) < 1000, `watchdog pings within WatchdogSec (gaps ${gaps.join(',')} ms)`);
    assert.ok(Math.min(...gaps) > 200, `no ping storm (gaps ${gaps.join(',')} ms)`);
    assert.ok(l.messages.indexOf(wd[0]) > readyIdx, 'no WATCHDOG=1 before READY=1');

    d.proc.kill('SIGTERM');
    assert.equal((await waitExit(d.proc, 10000)).code, 0, d.log.text);
    await waitFor(() => l.has(/^STOPPING=1$/m), 2000, 'STOPPING=1');
    for (const m of l.messages) assert.equal(m.pid, d.proc.pid, `"${m.msg}" from pid ${m.pid}, not the main pid ${d.proc.pid} (NotifyAccess=main)`);
    const stoppingIdx = l.messages.findIndex((m) => /^STOPPING=1$/m.test(m.msg));
    assert.ok(stoppingIdx > readyIdx);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('no WATCHDOG=1 when WATCHDOG_PID names another process', async (t) => {
    const dir = tmpdir('notify2');
    const cfg = writeConfig(dir, fake);
    const l = await notifyListener(dir);
    t.after(() => l.proc.kill('SIGKILL'));
    const d = spawnDaemon(cfg, { env: { NOTIFY_SOCKET: l.path, WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid) } });
    t.after(() => d.proc.kill('SIGKILL'));
    await waitFor(() => l.has(/^READY=1$/m), 15000, 'READY=1');
    await sleep(800);
    assert.ok(!l.has(/^WATCHDOG=1$/m), 'the watchdog belongs to another process');
    d.proc.kill('SIGTERM');
    assert.equal((await waitExit(d.proc, 10000)).code, 0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a daemon that cannot start never sends READY=1 and says why in STATUS=', async (t) => {
    const dir = tmpdir('notify3');
    const cfg = writeConfig(dir, fake);
    const sock = path.join(dir, 'app.sock');
    const first = await startDaemon(cfg, sock);
    t.after(() => first.proc.kill('SIGKILL'));
    const l = await notifyListener(dir);
    t.after(() => l.proc.kill('SIGKILL'));
    const d = spawnDaemon(cfg, { env: { NOTIFY_SOCKET: l.path } });
    assert.notEqual((await waitExit(d.proc, 10000)).code, 0);
    await sleep(100);
    assert.ok(!l.has(/^READY=1$/m), 'no READY=1');
    assert.ok(l.has(/^STATUS=.*another usersd is already running/m), JSON.stringify(l.messages));
    assert.equal((await stopDaemon(first)).code, 0);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
