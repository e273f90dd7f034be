// The installed package at work: /usr/sbin/usersd runs as the usersd system
// user with the paths of the packaged configuration (/run/usersd,
// /var/lib/usersd) against the WorkOS-compatible test server, serves user.me
// to a client, and /usr/bin/usersctl reaches it on the default admin socket.
// Run by tests/package/run.sh after `dpkg -i`, as root; systemd need not be
// PID 1 (the daemon is started the way usersd.service would start it).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withFake, connect, newUser, canConnect, sleep, suiteScope } from '../integration/harness.mjs';

const USERSD = process.env.USERSD_BIN ?? '/usr/sbin/usersd';
const USERSCTL = process.env.USERSCTL_BIN ?? '/usr/bin/usersctl';
const PACKAGED_CONFIG = '/etc/usersd/usersd.yaml';
const APP_SOCKET = '/run/usersd/usersd.sock';
const ADMIN_SOCKET = '/run/usersd/admin.sock';
const STORE = '/var/lib/usersd';

function id(flag, name) {
  return Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
}
function groupId(name) {
  const line = execFileSync('getent', ['group', name], { encoding: 'utf8' }).trim();
  return Number(line.split(':')[2]);
}

describe('the installed usersd', () => {
  const scope = suiteScope();
  let fake;
  let daemon;
  let logText = '';
  let exited;
  let dir;

  before(async () => {
    assert.equal(process.getuid(), 0, 'run as root (tests/package/run.sh)');
    fake = await withFake({ t: scope });
    // What StateDirectory=usersd (mode 0700) gives the service under systemd.
    fs.mkdirSync(STORE, { mode: 0o700 });
    fs.chownSync(STORE, id('-u', 'usersd'), id('-g', 'usersd'));
    // The packaged file (every key commented out) plus what this host needs.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'usd-pkg-'));
    fs.chmodSync(dir, 0o755);
    const config = path.join(dir, 'usersd.yaml');
    fs.writeFileSync(config, `${fs.readFileSync(PACKAGED_CONFIG, 'utf8')}
socket:
  group: usersd-clients
auth:
  client_id: ${fake.clientId}
workos:
  base_url: ${fake.baseUrl}
  events_poll_seconds: 1
`, { mode: 0o644 });
    // User=usersd, Group=usersd and its supplementary groups (usersd-clients),
    // the API key from the environment as systemd's credential would give it.
    daemon = spawn('setpriv', ['--reuid=usersd', '--regid=usersd', '--init-groups', '--', USERSD, '--config', config], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH, WORKOS_API_KEY: fake.apiKey },
    });
    daemon.stdout.on('data', (d) => (logText += d));
    daemon.stderr.on('data', (d) => (logText += d));
    exited = new Promise((resolve) => daemon.once('exit', (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + 20000;
    while (!(await canConnect(APP_SOCKET))) {
      assert.equal(daemon.exitCode, null, `usersd exited during startup:\n${logText}`);
      assert.ok(Date.now() < deadline, `usersd did not listen on ${APP_SOCKET}:\n${logText}`);
      await sleep(25);
    }
  });

  after(async () => {
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
      daemon.kill('SIGKILL');
      await exited;
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('it runs as usersd and creates its sockets in /run/usersd with the configured group', () => {
    const st = fs.statSync(APP_SOCKET);
    assert.ok(st.isSocket());
    assert.equal(st.uid, id('-u', 'usersd'));
    assert.equal(st.gid, groupId('usersd-clients'), 'socket.group: usersd-clients (usersd is a member, sysusers.d)');
    assert.equal(st.mode & 0o777, 0o660);
    const adm = fs.statSync(ADMIN_SOCKET);
    assert.equal(adm.mode & 0o777, 0o600);
    const status = fs.readFileSync(`/proc/${daemon.pid}/status`, 'utf8');
    // setpriv execs usersd, so the child's pid is the daemon's.
    assert.match(status, new RegExp(`^Uid:\\s+${id('-u', 'usersd')}\\s`, 'm'));
    assert.match(fs.readFileSync(`/proc/${daemon.pid}/comm`, 'utf8'), /^usersd/);
  });

  test('user.me provisions a WorkOS user with a token the test server minted', async () => {
    const c = await connect(APP_SOCKET);
    try {
      const { workos, me } = await newUser(fake, c, { email: 'ada.package@example.com' });
      assert.equal(me.email, 'ada.package@example.com');
      assert.equal(typeof me.id, 'string');
      assert.notEqual(me.id, workos.id, 'the local id is usersd\'s own');
    } finally {
      await c.close();
    }
    assert.ok(fs.existsSync(path.join(STORE, 'data.mdb')), 'the store is in /var/lib/usersd');
    assert.equal(fs.statSync(path.join(STORE, 'data.mdb')).uid, id('-u', 'usersd'));
  });

  test('the installed usersctl reads the status on the default admin socket', () => {
    const r = spawnSync(USERSCTL, ['status'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    assert.equal(r.status, 0, `usersctl status: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /^version\s+\d+\.\d+\.\d+/m);
    assert.match(r.stdout, /^users\s+1$/m);
    assert.match(r.stdout, /^store\s+\/var\/lib\/usersd /m);
    const j = spawnSync(USERSCTL, ['users', 'get', '--email', 'ada.package@example.com', '--json'], { encoding: 'utf8' });
    assert.equal(j.status, 0, `usersctl users get: ${j.stdout}${j.stderr}`);
    assert.equal(JSON.parse(j.stdout).email, 'ada.package@example.com');
  });

  test('SIGTERM stops it with exit code 0 and it removes its own sockets', async () => {
    daemon.kill('SIGTERM');
    const r = await exited;
    assert.deepEqual(r, { code: 0, signal: null }, logText);
    assert.ok(!fs.existsSync(APP_SOCKET));
    assert.ok(!fs.existsSync(ADMIN_SOCKET));
  });
});
