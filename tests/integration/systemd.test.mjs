// systemd integration: the units in systemd/ and socket activation.
//
//   * systemd-analyze verify passes on the three units and
//     `systemd-analyze security --offline=yes` rates usersd.service <= 2.0;
//     the units agree with each other, with the config defaults and with the
//     sysusers.d/tmpfiles.d entries (which are applied to a scratch root).
//   * `cmake --install` puts every file where the units expect it.
//   * Socket activation the way systemd does it (systemd-socket-activate:
//     LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES=app:admin): the daemon serves on
//     the inherited sockets and never unlinks, re-creates or chmods them.
//   * The sandbox, checked statically (no systemd runs as PID 1 here): the
//     daemon runs a representative workload under strace, and every system
//     call, socket family, file path and memory mapping it uses must be
//     allowed by the unit's SystemCallFilter=, RestrictAddressFamilies=,
//     ProtectSystem=strict, ProcSubset=pid, PrivateDevices= and
//     MemoryDenyWriteExecute=.
//
// Environment: USERSD_BIN (the daemon), USERSD_SOURCE_DIR, USERSD_BUILD_DIR
// (for the install test). Needs the Debian "systemd" package (the Makefile
// installs it); strace is optional (the sandbox test skips without it).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFake } from '../workos-fake/client.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SOURCE_DIR = process.env.USERSD_SOURCE_DIR || path.resolve(here, '../..');
const BUILD_DIR = process.env.USERSD_BUILD_DIR || '';
const BIN = process.env.USERSD_BIN || path.join(SOURCE_DIR, 'build/daemon/usersd');
const UNIT_DIR = path.join(SOURCE_DIR, 'systemd');
const UNITS = ['usersd.service', 'usersd.socket', 'usersd-admin.socket'];

function which(cmd) {
  for (const dir of (process.env.PATH || '/usr/bin:/bin').split(':')) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {}
  }
  return null;
}
const ANALYZE = which('systemd-analyze');
const SOCKET_ACTIVATE = which('systemd-socket-activate');
const STRACE = which('strace');
const NO_SYSTEMD = 'systemd-analyze is not installed (Debian package "systemd"; `make deps` installs it)';

// Removed when the test process exits, whether the tests passed or not.
const tmpdirs = [];
process.on('exit', () => tmpdirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
function tmpdir(tag) {
  // Short: Unix socket paths must stay under 108 bytes.
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `usersd-${tag}-`));
  tmpdirs.push(d);
  return d;
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60000, ...opts });
  if (r.error) throw r.error;
  return r;
}

// Parses a unit file into {section: {key: [values]}}.
function parseUnit(text) {
  const out = {};
  let section = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const m = /^\[(.+)\]$/.exec(line);
    if (m) {
      section = out[m[1]] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0 || !section) continue;
    (section[line.slice(0, eq).trim()] ??= []).push(line.slice(eq + 1).trim());
  }
  return out;
}
const readUnit = (name) => parseUnit(fs.readFileSync(path.join(UNIT_DIR, name), 'utf8'));
const last = (arr) => (arr ? arr[arr.length - 1] : undefined);

// A copy of the units whose ExecStart= names the binary under test, so that
// `systemd-analyze verify` finds an executable.
function unitCopy() {
  const dir = tmpdir('units');
  for (const u of UNITS) {
    let text = fs.readFileSync(path.join(UNIT_DIR, u), 'utf8');
    if (u === 'usersd.service') text = text.replace(/^ExecStart=\/usr\/sbin\/usersd/m, `ExecStart=${BIN}`);
    fs.writeFileSync(path.join(dir, u), text);
  }
  return dir;
}

// --- a minimal client for the NDJSON form of the protocol -------------------

function connect(socketPath, { timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(socketPath);
    const timer = setTimeout(() => (sock.destroy(), reject(new Error(`connect ${socketPath}: timeout`))), timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      resolve(rpcClient(sock));
    });
    sock.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

function rpcClient(sock) {
  let buf = '';
  let nextId = 1;
  const pending = new Map();
  const pongs = [];
  sock.setEncoding('utf8');
  sock.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const msg = JSON.parse(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if (msg._tag === 'Pong') pongs.shift()?.(msg);
      else if (msg._tag === 'Exit' && pending.has(msg.requestId)) {
        pending.get(msg.requestId)(msg);
        pending.delete(msg.requestId);
      }
    }
  });
  sock.on('error', () => {});
  return {
    sock,
    call(tag, payload, token) {
      const id = String(nextId++);
      const req = { _tag: 'Request', id, tag, payload: payload ?? {}, headers: token ? [['authorization', `Bearer ${token}`]] : [] };
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${tag}: no reply within 10 s`)), 10000);
        pending.set(id, (m) => {
          clearTimeout(timer);
          resolve(m.exit);
        });
        sock.write(JSON.stringify(req) + '\n');
      });
    },
    ping() {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('Ping: no Pong within 10 s')), 10000);
        pongs.push((m) => {
          clearTimeout(timer);
          resolve(m);
        });
        sock.write('{"_tag":"Ping"}\n');
      });
    },
    close: () => sock.end(),
  };
}

function configYaml({ dir, fake, extra = '' }) {
  return `socket: { path: ${JSON.stringify(path.join(dir, 'app.sock'))}, mode: "0600" }
admin_socket: { path: ${JSON.stringify(path.join(dir, 'admin.sock'))}, backup_dir: ${JSON.stringify(dir)} }
store: { path: ${JSON.stringify(path.join(dir, 'store'))} }
auth: { client_id: ${JSON.stringify(fake.clientId)} }
workos:
  base_url: ${JSON.stringify(fake.baseUrl)}
  api_key: ${JSON.stringify(fake.apiKey)}
  events_poll_seconds: 0
log: { level: info }
${extra}`;
}

function waitExit(proc, timeoutMs) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`process ${proc.pid} still running after ${timeoutMs} ms`)), timeoutMs);
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

function collect(stream) {
  const o = { text: '' };
  stream.setEncoding('utf8');
  stream.on('data', (d) => (o.text += d));
  return o;
}

async function waitFor(pred, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Starts usersd through systemd-socket-activate with the app and admin
// sockets named as the two socket units name them. The tool execs the daemon
// (same pid) on the first connection, so the caller's first connect starts it.
function socketActivate({ dir, configPath, names = ['app', 'admin'], wrap = [], env = {} }) {
  const listen = names.map((n) => ['-l', path.join(dir, n === 'app' ? 'app.sock' : 'admin.sock')]).flat();
  // systemd-socket-activate passes only TERM, PATH, HOME and -E variables
  // on, as systemd would; the sanitizer settings of `make test` go through.
  const all = { ...process.env, ...env };
  const pass = ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS', 'TSAN_OPTIONS'].filter((k) => all[k]).map((k) => `--setenv=${k}=${all[k]}`);
  const args = [...wrap, SOCKET_ACTIVATE, ...listen, `--fdname=${names.join(':')}`, ...pass, '--', BIN, '--config', configPath];
  const proc = spawn(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], cwd: dir });
  const stderr = collect(proc.stderr);
  // "Listening on PATH as FD." comes after listen(); the node exists from bind() on.
  const listening = () => listen.filter((a) => a !== '-l').every((p) => stderr.text.includes(`Listening on ${p} as `));
  return { proc, stderr, listening };
}

// ---------------------------------------------------------------------------

describe('systemd units', { skip: ANALYZE ? false : NO_SYSTEMD }, () => {
  test('systemd-analyze verify passes on usersd.service, usersd.socket and usersd-admin.socket', () => {
    assert.ok(fs.existsSync(BIN), `USERSD_BIN ${BIN} does not exist`);
    const dir = unitCopy();
    const r = run(ANALYZE, ['verify', '--man=no', ...UNITS.map((u) => path.join(dir, u))]);
    // verify exits 0 on some warnings (unknown keys); any line about our
    // units is a failure.
    const ours = r.stderr
      .split('\n')
      .filter((l) => l.trim() && (l.includes(dir) || /usersd/.test(l)));
    assert.equal(r.status, 0, `systemd-analyze verify failed:\n${r.stderr}`);
    assert.deepEqual(ours, [], `systemd-analyze verify warned:\n${ours.join('\n')}`);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('systemd-analyze security --offline=yes rates usersd.service at 2.0 or lower', () => {
    const r = run(ANALYZE, ['security', '--offline=yes', '--no-pager', path.join(UNIT_DIR, 'usersd.service')]);
    const m = /Overall exposure level for usersd\.service:\s*([0-9.]+)/.exec(r.stdout + r.stderr);
    assert.ok(m, `no exposure level in the output:\n${r.stdout}\n${r.stderr}`);
    const score = Number(m[1]);
    // Printed so the score shows in the test log.
    console.log(`# usersd.service exposure level: ${score}`);
    assert.ok(score <= 2.0, `exposure ${score} > 2.0:\n${r.stdout}`);
  });

  test('the units agree with each other and with the daemon (notify, watchdog, names, paths)', () => {
    const svc = readUnit('usersd.service');
    const app = readUnit('usersd.socket');
    const adm = readUnit('usersd-admin.socket');
    const s = svc.Service;
    assert.equal(last(s.Type), 'notify');
    assert.equal(last(s.NotifyAccess), 'main');
    assert.match(last(s.ExecStart), /^\/usr\/sbin\/usersd --config \/etc\/usersd\/usersd\.yaml$/);
    assert.match(last(s.ExecReload), /kill -HUP \$MAINPID/);
    assert.ok(Number.parseInt(last(s.WatchdogSec), 10) > 0, 'WatchdogSec= is set');
    assert.equal(last(s.StateDirectory), 'usersd');
    assert.equal(last(s.RuntimeDirectory), 'usersd');
    // The socket units own the nodes in /run/usersd: the service must not
    // delete the directory (and with it the sockets) when it stops.
    assert.equal(last(s.RuntimeDirectoryPreserve), 'yes');
    assert.ok(s.LoadCredential.some((v) => v.startsWith('workos_api_key:')), 'LoadCredential=workos_api_key:…');
    assert.equal(last(s.User), 'usersd');
    assert.deepEqual(last(s.Sockets).split(/\s+/).sort(), ['usersd-admin.socket', 'usersd.socket']);
    // A TimeoutStopSec= well above the daemon's 5 s drain.
    assert.ok(Number.parseInt(last(s.TimeoutStopSec), 10) >= 10);

    // One FileDescriptorName= per socket unit; the socket activation tests
    // below pass the same names (LISTEN_FDNAMES=app:admin).
    assert.equal(last(app.Socket.FileDescriptorName), 'app');
    assert.equal(last(adm.Socket.FileDescriptorName), 'admin');
    assert.equal(app.Socket.ListenStream.length, 1);
    assert.equal(adm.Socket.ListenStream.length, 1);
    for (const u of [app, adm]) assert.equal(last(u.Socket.Service), 'usersd.service');
    assert.equal(last(app.Socket.SocketMode), '0660');
    assert.equal(last(adm.Socket.SocketMode), '0600');

    // Paths and modes agree with the config defaults (config/config.h) and the example config.
    const cfgH = fs.readFileSync(path.join(SOURCE_DIR, 'config/config.h'), 'utf8');
    const example = fs.readFileSync(path.join(UNIT_DIR, 'usersd.example.yaml'), 'utf8');
    assert.ok(cfgH.includes(`"${last(app.Socket.ListenStream)}"`), 'usersd.socket ListenStream= is the default socket.path');
    assert.ok(cfgH.includes(`"${last(adm.Socket.ListenStream)}"`), 'usersd-admin.socket ListenStream= is the default admin_socket.path');
    assert.ok(example.includes(`path: ${last(app.Socket.ListenStream)} `), 'example socket.path matches usersd.socket');
    assert.ok(example.includes(`path: ${last(adm.Socket.ListenStream)}`), 'example admin_socket.path matches usersd-admin.socket');
    const groupInExample = /^\s+group:\s*(\S+)/m.exec(example)?.[1];
    assert.equal(last(app.Socket.SocketGroup), groupInExample, 'SocketGroup= matches socket.group in the example config');
    assert.ok(cfgH.includes(`"/var/lib/${last(s.StateDirectory)}"`), 'StateDirectory= is the default store.path');
  });

  test('sysusers.d and tmpfiles.d entries create the user, the client group and /run/usersd', () => {
    const root = tmpdir('root');
    fs.mkdirSync(path.join(root, 'etc'));
    const su = run(which('systemd-sysusers') ?? 'systemd-sysusers', [`--root=${root}`, path.join(UNIT_DIR, 'usersd.sysusers')]);
    assert.equal(su.status, 0, `systemd-sysusers failed:\n${su.stderr}`);
    const passwd = fs.readFileSync(path.join(root, 'etc/passwd'), 'utf8');
    const group = fs.readFileSync(path.join(root, 'etc/group'), 'utf8');
    const user = /^usersd:x:(\d+):(\d+):[^:]*:\/var\/lib\/usersd:\/usr\/sbin\/nologin$/m.exec(passwd);
    assert.ok(user, `no usersd user in\n${passwd}`);
    assert.ok(Number(user[1]) < 1000, 'usersd is a system user');
    assert.match(group, /^usersd-clients:x:\d+:usersd$/m);
    assert.match(group, /^usersd:x:\d+:$/m);
    // Every user and group the socket units name exists.
    for (const name of ['usersd.socket', 'usersd-admin.socket']) {
      const u = readUnit(name).Socket;
      assert.match(passwd, new RegExp(`^${last(u.SocketUser)}:`, 'm'));
      assert.match(group, new RegExp(`^${last(u.SocketGroup)}:`, 'm'));
    }
    const tf = run(which('systemd-tmpfiles') ?? 'systemd-tmpfiles', [`--root=${root}`, '--create', path.join(UNIT_DIR, 'usersd.tmpfiles')]);
    assert.equal(tf.status, 0, `systemd-tmpfiles failed:\n${tf.stderr}`);
    const st = fs.statSync(path.join(root, 'run/usersd'));
    assert.ok(st.isDirectory());
    assert.equal(st.uid, Number(user[1]), '/run/usersd belongs to usersd, as RuntimeDirectory= will want it');
    assert.equal(st.mode & 0o7777, 0o755);
    // The API key's placeholder: LoadCredential= needs a file; usersd reads an
    // empty one as no key. A key written later is never truncated.
    fs.mkdirSync(path.join(root, 'etc/usersd'), { recursive: true });
    const key = path.join(root, 'etc/usersd/workos_api_key');
    const tf2 = run(which('systemd-tmpfiles') ?? 'systemd-tmpfiles', [`--root=${root}`, '--create', path.join(UNIT_DIR, 'usersd.tmpfiles')]);
    assert.equal(tf2.status, 0, `systemd-tmpfiles failed:\n${tf2.stderr}`);
    const ks = fs.statSync(key);
    assert.ok(ks.isFile());
    assert.equal(ks.size, 0);
    assert.equal(ks.mode & 0o7777, 0o600);
    assert.equal(ks.uid, 0);
    fs.writeFileSync(key, 'sk_written_by_the_admin\n');
    const tf3 = run(which('systemd-tmpfiles') ?? 'systemd-tmpfiles', [`--root=${root}`, '--create', path.join(UNIT_DIR, 'usersd.tmpfiles')]);
    assert.equal(tf3.status, 0, `systemd-tmpfiles failed:\n${tf3.stderr}`);
    assert.equal(fs.readFileSync(key, 'utf8'), 'sk_written_by_the_admin\n');
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('cmake --install puts the daemon, units, sysusers/tmpfiles entries and example config in place', {
    skip: BUILD_DIR && fs.existsSync(path.join(BUILD_DIR, 'cmake_install.cmake')) ? false : 'USERSD_BUILD_DIR is not a configured build directory',
  }, () => {
    const prefix = tmpdir('inst');
    const r = run('cmake', ['--install', BUILD_DIR, '--prefix', prefix], { timeout: 120000 });
    assert.equal(r.status, 0, `cmake --install failed:\n${r.stdout}\n${r.stderr}`);
    for (const f of [
      'sbin/usersd',
      'bin/usersctl',
      'lib/systemd/system/usersd.service',
      'lib/systemd/system/usersd.socket',
      'lib/systemd/system/usersd-admin.socket',
      'lib/sysusers.d/usersd.conf',
      'lib/tmpfiles.d/usersd.conf',
      'share/doc/usersd/usersd.example.yaml',
      'share/doc/usersd/DEPLOYMENT.md',
    ]) {
      assert.ok(fs.existsSync(path.join(prefix, f)), `${f} is not installed`);
    }
    const svc = parseUnit(fs.readFileSync(path.join(prefix, 'lib/systemd/system/usersd.service'), 'utf8'));
    // ExecStart= follows the configured prefix (/usr/sbin/usersd with -DCMAKE_INSTALL_PREFIX=/usr).
    assert.match(last(svc.Service.ExecStart), /^\/\S*\/sbin\/usersd --config \/etc\/usersd\/usersd\.yaml$/);
    const v = run(path.join(prefix, 'sbin/usersd'), ['--version']);
    assert.equal(v.status, 0);
    assert.match(v.stdout, /^usersd \d+\.\d+\.\d+/);
    // The example config is valid as shipped.
    const c = run(path.join(prefix, 'sbin/usersd'), ['--config', path.join(prefix, 'share/doc/usersd/usersd.example.yaml'), '--check-config']);
    assert.equal(c.status, 0, `example config rejected: ${c.stdout}${c.stderr}`);
    fs.rmSync(prefix, { recursive: true, force: true });
  });
});

describe('socket activation', { skip: SOCKET_ACTIVATE ? false : 'systemd-socket-activate is not installed (Debian package "systemd")' }, () => {
  let fake;
  let token;
  before(async () => {
    fake = await startFake();
    const u = await fake.createUser({ email: 'grace@example.com', first_name: 'Grace', last_name: 'Hopper' });
    token = await fake.mintToken({ sub: u.id, org_id: 'org_1', role: 'member' });
  });
  after(async () => {
    await fake?.stop();
  });

  test('serves on the inherited app and admin sockets and leaves them as systemd made them', async (t) => {
    const dir = tmpdir('act');
    const configPath = path.join(dir, 'usersd.yaml');
    fs.writeFileSync(configPath, configYaml({ dir, fake }), { mode: 0o600 });
    const { proc, stderr, listening } = socketActivate({ dir, configPath });
    t.after(() => proc.kill('SIGKILL'));
    const appPath = path.join(dir, 'app.sock');
    const adminPath = path.join(dir, 'admin.sock');
    await waitFor(listening, 10000, 'systemd-socket-activate to listen');
    // What SocketMode=0660 would have made; the config says 0600, which the
    // daemon must not apply to a socket it did not create.
    fs.chmodSync(appPath, 0o660);
    const before = { app: fs.statSync(appPath), admin: fs.statSync(adminPath) };

    // The first connection starts the daemon (systemd-socket-activate execs
    // it in place); the connection waits in the listen backlog meanwhile.
    const c = await connect(appPath);
    assert.deepEqual(await c.ping(), { _tag: 'Pong' });
    const me = await c.call('user.me', undefined, token);
    assert.equal(me._tag, 'Success', JSON.stringify(me));
    assert.equal(me.value.email, 'grace@example.com');

    const a = await connect(adminPath);
    assert.deepEqual(await a.ping(), { _tag: 'Pong' });

    assert.match(stderr.text, /using socket passed by systemd.*socket=app/);
    assert.match(stderr.text, /using socket passed by systemd.*socket=admin/);
    for (const [name, p] of [['app', appPath], ['admin', adminPath]]) {
      const now = fs.statSync(p);
      assert.equal(now.ino, before[name].ino, `${name} socket was re-created`);
      assert.equal(now.mode, before[name].mode, `${name} socket mode changed`);
    }

    c.close();
    a.close();
    proc.kill('SIGTERM');
    const { code } = await waitExit(proc, 15000);
    assert.equal(code, 0, stderr.text);
    // Still there after the daemon stopped: systemd owns them (RemoveOnStop=no).
    for (const [name, p] of [['app', appPath], ['admin', adminPath]]) {
      assert.ok(fs.existsSync(p), `${name} socket was unlinked`);
      assert.equal(fs.statSync(p).ino, before[name].ino);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('with only the app socket passed, the daemon creates the admin socket itself', async (t) => {
    const dir = tmpdir('act1');
    const configPath = path.join(dir, 'usersd.yaml');
    fs.writeFileSync(configPath, configYaml({ dir, fake }), { mode: 0o600 });
    const { proc, stderr, listening } = socketActivate({ dir, configPath, names: ['app'] });
    t.after(() => proc.kill('SIGKILL'));
    const appPath = path.join(dir, 'app.sock');
    const adminPath = path.join(dir, 'admin.sock');
    await waitFor(listening, 10000, 'systemd-socket-activate to listen');
    const c = await connect(appPath);
    assert.deepEqual(await c.ping(), { _tag: 'Pong' });
    await waitFor(() => /usersd ready/.test(stderr.text), 10000, 'usersd ready');
    assert.equal(fs.statSync(adminPath).mode & 0o777, 0o600, 'admin_socket.mode applies to a socket the daemon creates');
    const a = await connect(adminPath);
    assert.deepEqual(await a.ping(), { _tag: 'Pong' });
    assert.match(stderr.text, /using socket passed by systemd.*socket=app/);
    assert.doesNotMatch(stderr.text, /using socket passed by systemd.*socket=admin/);
    c.close();
    a.close();
    proc.kill('SIGTERM');
    assert.equal((await waitExit(proc, 15000)).code, 0, stderr.text);
    assert.ok(fs.existsSync(appPath), 'the inherited app socket stays');
    assert.ok(!fs.existsSync(adminPath), 'the admin socket the daemon created is removed on exit');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

// --- the sandbox, checked against an strace of a real run -------------------

// Expands `systemd-analyze syscall-filter` groups into sets of names.
function syscallGroups() {
  const r = run(ANALYZE, ['syscall-filter', '--no-pager']);
  const groups = new Map();
  let cur = null;
  for (const line of r.stdout.split('\n')) {
    if (/^@\S+$/.test(line)) groups.set(line, (cur = []));
    else if (cur && /^\s+(@[a-z0-9_-]+|[a-z0-9_]+)$/.test(line)) cur.push(line.trim());
    else if (!line.trim()) cur = null;
  }
  const expand = (name, seen = new Set()) => {
    if (!name.startsWith('@')) return new Set([name]);
    if (seen.has(name)) return new Set();
    seen.add(name);
    const out = new Set();
    for (const m of groups.get(name) ?? []) for (const s of expand(m, seen)) out.add(s);
    return out;
  };
  return expand;
}

// The allow list the unit's SystemCallFilter= lines produce: the first line
// is an allow list (which always includes @default), later "~" lines remove.
function allowedSyscalls(unit) {
  const expand = syscallGroups();
  const allowed = new Set(expand('@default'));
  let first = true;
  for (const v of unit.Service.SystemCallFilter ?? []) {
    const deny = v.startsWith('~');
    const names = (deny ? v.slice(1) : v).split(/\s+/).filter(Boolean);
    assert.ok(!(first && deny), 'the first SystemCallFilter= is an allow list');
    first = false;
    for (const n of names) for (const s of expand(n.replace(/:.*$/, ''))) (deny ? allowed.delete(s) : allowed.add(s));
  }
  return allowed;
}

// strace -f output of the daemon's own process tree (after the execve of
// USERSD_BIN), resumed calls joined to their starts.
function parseTrace(text, bin) {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.includes(`execve("${bin}"`) && / = 0$/.test(l));
  assert.ok(start >= 0, 'the trace contains the daemon execve');
  const calls = [];
  const unfinished = new Map();
  for (const l of lines.slice(start)) {
    let m = /^(\d+)\s+(.*)$/.exec(l);
    if (!m) continue;
    const [, pid, rest] = m;
    if (rest.startsWith('<... ')) {
      const u = unfinished.get(pid);
      const r = /^<\.\.\. ([a-z0-9_]+) resumed>(.*)$/.exec(rest);
      if (u && r) {
        calls.push({ pid, name: r[1], text: u + r[2] });
        unfinished.delete(pid);
      }
      continue;
    }
    m = /^([a-z0-9_]+)\((.*)$/.exec(rest);
    if (!m) continue;
    if (rest.endsWith('<unfinished ...>')) unfinished.set(pid, rest.replace(/\s*<unfinished \.\.\.>$/, ''));
    else calls.push({ pid, name: m[1], text: rest });
  }
  for (const [pid, t] of unfinished) calls.push({ pid, name: /^([a-z0-9_]+)/.exec(t)[1], text: t });
  return calls;
}

const ok = (c) => !/\) = -1 /.test(c.text) && !/= \? $/.test(c.text);
const firstPath = (c) => /"((?:[^"\\]|\\.)*)"/.exec(c.text)?.[1];

// Checks one call against the file-system side of the sandbox. `writable`
// stands in for StateDirectory=/RuntimeDirectory= (and PrivateTmp=).
function fsViolation(c, writable) {
  const p = firstPath(c);
  if (!p || !p.startsWith('/')) return null;
  const succeeded = ok(c);
  // Read by glibc's malloc when it trims a thread arena; when hidden it keeps
  // its default, so the sandbox changes nothing.
  const harmless = ['/proc/sys/vm/overcommit_memory'];
  if (p.startsWith('/proc/') && succeeded && !/^\/proc\/(self|thread-self|\d+)(\/|$)/.test(p) && !harmless.includes(p))
    return `ProcSubset=pid hides ${p}`;
  if (/^\/(home|root|run\/user)(\/|$)/.test(p) && succeeded) return `ProtectHome=yes hides ${p}`;
  const pseudo = /^\/dev\/(null|zero|full|random|urandom|tty|ptmx|pts\/|shm\/|log$|stdin|stdout|stderr|fd\/)/;
  if (p.startsWith('/dev/') && !pseudo.test(p) && succeeded) return `PrivateDevices=yes hides ${p}`;
  const writes =
    ['mkdir', 'mkdirat', 'unlink', 'unlinkat', 'rmdir', 'rename', 'renameat', 'renameat2', 'link', 'linkat', 'symlink', 'symlinkat', 'chmod', 'fchmodat', 'truncate', 'mknod', 'mknodat'].includes(c.name) ||
    (['open', 'openat', 'creat'].includes(c.name) && /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/.test(c.text));
  if (writes && !writable.some((w) => p === w || p.startsWith(w + '/')) && !/^\/(dev\/(null|shm\/)|proc\/(self|thread-self|\d+)\/)/.test(p))
    return `ProtectSystem=strict: ${c.name} ${p} is outside the writable directories`;
  return null;
}

describe('sandbox', { skip: !ANALYZE ? NO_SYSTEMD : !SOCKET_ACTIVATE ? 'systemd-socket-activate is not installed' : !STRACE ? 'strace is not installed (apt-get install strace)' : false }, () => {
  test('a full run under strace stays inside the unit\'s sandbox', async (t) => {
    const unit = readUnit('usersd.service');
    const allowed = allowedSyscalls(unit);
    const families = new Set(last(unit.Service.RestrictAddressFamilies).split(/\s+/));
    assert.equal(last(unit.Service.MemoryDenyWriteExecute), 'yes');
    // Probe: strace may be refused ptrace in some containers.
    const probe = run(STRACE, ['-f', '-qq', '-o', '/dev/null', '/bin/true']);
    if (probe.status !== 0) {
      t.skip(`strace cannot trace here: ${probe.stderr.trim()}`);
      return;
    }
    const fake = await startFake();
    t.after(() => fake.stop());
    const u = await fake.createUser({ email: 'ada@example.com', first_name: 'Ada', last_name: 'Lovelace', profile_picture_url: 'https://example.com/a.png' });
    const token = await fake.mintToken({ sub: u.id });

    const dir = tmpdir('sbx');
    const configPath = path.join(dir, 'usersd.yaml');
    // "localhost" so name resolution (NSS, /etc/hosts, resolv.conf) is in the trace too.
    const local = { ...fake, baseUrl: fake.baseUrl.replace('127.0.0.1', 'localhost') };
    fs.writeFileSync(configPath, configYaml({ dir, fake: local }).replace('events_poll_seconds: 0', 'events_poll_seconds: 1'), { mode: 0o600 });
    const tracePath = path.join(dir, 'trace.txt');
    const { proc, stderr, listening } = socketActivate({
      dir,
      configPath,
      wrap: [STRACE, '-f', '-qq', '-s', '200', '-o', tracePath],
      // LeakSanitizer cannot run under ptrace (ASan builds of `make test`).
      env: { ASAN_OPTIONS: [process.env.ASAN_OPTIONS, 'detect_leaks=0'].filter(Boolean).join(':') },
    });
    t.after(() => proc.kill('SIGKILL'));
    const appPath = path.join(dir, 'app.sock');
    await waitFor(listening, 15000, 'the sockets');

    // The workload: provisioning (WorkOS fetch), updates (outbox PUTs), the
    // events poller, admin status/metrics/backup, a reload, a stop.
    const c = await connect(appPath, { timeoutMs: 30000 });
    const me = await c.call('user.me', undefined, token);
    assert.equal(me._tag, 'Success', JSON.stringify(me));
    for (let i = 0; i < 5; i++) {
      const r = await c.call('user.update', { id: me.value.id, firstName: `Ada${i}` }, token);
      assert.equal(r._tag, 'Success', JSON.stringify(r));
    }
    await c.call('user.resetAvatar', undefined, token);
    // Admin calls are here for their system calls (mdb_env_copy2, stat);
    // their results are the admin tests' business.
    const a = await connect(path.join(dir, 'admin.sock'));
    for (const [tag, payload] of [['admin.status'], ['admin.metrics'], ['admin.backup', { path: path.join(dir, 'backup') }]]) {
      assert.ok(['Success', 'Failure'].includes((await a.call(tag, payload))._tag));
    }
    await new Promise((r) => setTimeout(r, 1500)); // an events poll and the outbox sends
    // Signals go to the daemon, not to strace (its parent).
    const daemonPid = Number(fs.readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
    assert.ok(daemonPid > 0, 'found the daemon under strace');
    process.kill(daemonPid, 'SIGHUP');
    await waitFor(() => /configuration reloaded/.test(stderr.text), 10000, 'the reload');
    c.close();
    a.close();
    process.kill(daemonPid, 'SIGTERM');
    assert.equal((await waitExit(proc, 20000)).code, 0, stderr.text);

    // The checker itself catches what it should.
    assert.ok(fsViolation({ name: 'openat', text: 'openat(AT_FDCWD, "/etc/usersd/x", O_WRONLY|O_CREAT, 0600) = 3' }, [dir]));
    assert.ok(fsViolation({ name: 'openat', text: 'openat(AT_FDCWD, "/proc/meminfo", O_RDONLY) = 3' }, [dir]));
    assert.ok(fsViolation({ name: 'openat', text: 'openat(AT_FDCWD, "/dev/sda", O_RDONLY) = 3' }, [dir]));
    assert.equal(fsViolation({ name: 'openat', text: `openat(AT_FDCWD, "${dir}/store/data.mdb", O_RDWR|O_CREAT, 0600) = 3` }, [dir]), null);
    assert.equal(fsViolation({ name: 'openat', text: 'openat(AT_FDCWD, "/proc/self/maps", O_RDONLY) = 3' }, [dir]), null);

    const calls = parseTrace(fs.readFileSync(tracePath, 'utf8'), BIN);
    const problems = new Map();
    const note = (what, c) => problems.has(what) || problems.set(what, c.text.slice(0, 200));
    // Sanitizer runtimes (make test builds with ASan+UBSan) make calls the
    // daemon does not; under systemd they would get EPERM (SystemCallErrorNumber=).
    const sanitized = fs.readFileSync(BIN).includes('__asan_init') || fs.readFileSync(BIN).includes('__tsan_init');
    const sanitizerOnly = new Set(['setrlimit', 'personality', 'sched_setaffinity', 'ptrace', 'prctl', 'process_vm_readv']);
    const forgiven = new Set();
    for (const c of calls) {
      if (!allowed.has(c.name)) {
        if (sanitized && sanitizerOnly.has(c.name)) forgiven.add(c.name);
        else note(`SystemCallFilter= denies ${c.name}()`, c);
      }
      const fam = /^socket(?:pair)?\((AF_[A-Z0-9]+)/.exec(c.text)?.[1];
      if (fam && !families.has(fam)) note(`RestrictAddressFamilies= denies ${fam}`, c);
      if ((c.name === 'mmap' || c.name === 'mprotect' || c.name === 'pkey_mprotect') && /PROT_EXEC/.test(c.text) &&
          (c.name !== 'mmap' || /PROT_WRITE/.test(c.text)) && !(sanitized && c.name === 'mprotect'))
        note(`MemoryDenyWriteExecute= refuses ${c.name} with PROT_EXEC`, c);
      const v = fsViolation(c, [dir, '/tmp', '/var/tmp']);
      if (v) note(v, c);
    }
    if (forgiven.size) console.log(`# sanitizer runtime only (EPERM under the unit): ${[...forgiven].join(' ')}`);
    const names = new Set(calls.map((c) => c.name));
    console.log(`# ${calls.length} calls, ${names.size} distinct system calls: ${[...names].sort().join(' ')}`);
    assert.ok(names.has('flock') && names.has('mmap'), 'the trace covers the store');
    assert.ok(calls.some((c) => /^socket\(AF_INET6?,/.test(c.text)), 'the trace covers HTTP');
    assert.deepEqual([...problems].map(([k, v]) => `${k}\n    ${v}`), [], 'sandbox violations');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
