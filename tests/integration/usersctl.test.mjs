// usersctl against the real daemon (SPEC section 5, issue 4 parts 1-2):
// every subcommand in human and --json form, --help everywhere, exit codes
// (0 ok, 1 failed, 2 usage, 3 cannot reach usersd), export/import round trip
// into a second daemon, watch with live changes and Ctrl-C, and the
// SO_PEERCRED refusal of a client running as another uid.
//
// Environment: USERSD_BIN (the daemon), USERSD_BUILD_DIR (usersctl is at
// $USERSD_BUILD_DIR/usersctl/usersctl).
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  withFake,
  startDaemon,
  connect,
  newUser,
  ok,
  suiteScope,
  waitFor,
  makeTempDir,
  sleep,
  UUID_RE,
} from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BUILD_DIR = process.env.USERSD_BUILD_DIR ?? path.resolve(here, '../../build');
const USERSCTL = path.join(BUILD_DIR, 'usersctl/usersctl');

/** Runs usersctl; resolves to {code, stdout, stderr}. opts: {input, env, uid, timeoutMs}. */
function ctl(args, { input, env, asNobody = false, bin = USERSCTL, timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const cmd = asNobody ? 'setpriv' : bin;
    const argv = asNobody ? ['--reuid=65534', '--regid=65534', '--clear-groups', bin, ...args] : args;
    const proc = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...(env ?? {}) } });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`usersctl ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    proc.once('error', reject);
    proc.once('close', (code) => {
      clearTimeout(timer);
      if (/ERROR: AddressSanitizer|runtime error: /.test(stderr)) return reject(new Error(`sanitizer report:\n${stderr}`));
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) proc.stdin.end(input);
    else proc.stdin.end();
  });
}

/** usersctl that must exit 0; resolves to stdout (parsed when --json is among the args). */
async function ctlOk(socket, args, opts) {
  const r = await ctl(['--socket', socket, ...args], opts);
  assert.equal(r.code, 0, `usersctl ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return args.includes('--json') ? JSON.parse(r.stdout) : r.stdout;
}

describe('usersctl', () => {
  const scope = suiteScope();
  let fake, d, app, users;
  let sock;

  before(async () => {
    fake = await withFake({ t: scope });
    d = await startDaemon({ fake, t: scope, configExtra: { outbox: { initial_backoff_ms: 50, max_backoff_ms: 200 } } });
    sock = d.adminPath;
    app = await connect(d.socketPath, { t: scope });
    users = [];
    for (let i = 0; i < 3; i++) {
      users.push(await newUser(fake, app, { firstName: `Ctl${i}`, lastName: 'User', claims: { org_id: 'org_ctl', role: 'member' } }));
    }
  });

  test('status: a table by default, the SPEC object with --json', async () => {
    const out = await ctlOk(sock, ['status']);
    for (const label of ['version', 'uptime', 'users', 'last transaction', 'store', 'outbox', 'dead letters', 'upstream', 'events cursor', 'events feed', 'jwks']) {
      assert.match(out, new RegExp(`^${label} +\\S`, 'm'), `status lacks "${label}":\n${out}`);
    }
    const s = await ctlOk(sock, ['status', '--json']);
    assert.ok(s.users >= 3);
    assert.equal(s.store.path, path.join(d.dir, 'store'));
    // Global options may come first too, and the environment names the socket.
    const j = await ctl(['--json', 'status'], { env: { USERSD_ADMIN_SOCKET: sock } });
    assert.equal(j.code, 0, j.stderr);
    assert.equal(JSON.parse(j.stdout).version, s.version);
  });

  test('health: ok exits 0 in both forms', async () => {
    await waitFor(async () => (await ctl(['--socket', sock, 'health'])).code === 0, { what: 'health ok' });
    const out = await ctlOk(sock, ['health']);
    assert.match(out, /^health: ok/m);
    assert.match(out, /^\s+store\s+ok/m);
    assert.match(out, /^\s+writer\s+ok/m);
    const h = await ctlOk(sock, ['health', '--json']);
    assert.equal(h.ok, true);
    assert.equal(h.checks.jwks.ok, true);
  });

  test('metrics: the exposition as text, or {text} with --json', async () => {
    const out = await ctlOk(sock, ['metrics']);
    assert.match(out, /^# TYPE usersd_requests_total counter$/m);
    assert.match(out, /^usersd_outbox_depth \d+$/m);
    const m = await ctlOk(sock, ['metrics', '--json']);
    assert.match(m.text, /usersd_store_file_bytes/);
  });

  test('users list: table, --json, --limit and --after paging', async () => {
    const out = await ctlOk(sock, ['users', 'list']);
    assert.match(out, /^ID +EMAIL +NAME +WORKOS ID +ORGANIZATION +ROLE +STATE$/m);
    for (const u of users) assert.ok(out.includes(u.me.id), `list lacks ${u.me.id}`);
    assert.match(out, /Ctl0 User/);
    const all = await ctlOk(sock, ['users', 'list', '--json']);
    assert.ok(all.users.length >= 3);
    assert.equal(all.next, null);
    const page = await ctlOk(sock, ['users', 'list', '--limit', '1', '--json']);
    assert.equal(page.users.length, 1);
    assert.equal(page.next, page.users[0].id);
    const human = await ctlOk(sock, ['users', 'list', '--limit=1']);
    assert.match(human, new RegExp(`^more: usersctl users list --after ${page.next}$`, 'm'));
    const rest = await ctlOk(sock, ['users', 'list', '--after', page.next, '--json']);
    assert.equal(rest.users.length, all.users.length - 1);
  });

  test('users get: by id, --workos-id and --email; not found exits 1', async () => {
    const u = users[1];
    const out = await ctlOk(sock, ['users', 'get', u.me.id]);
    assert.match(out, new RegExp(`^id +${u.me.id}$`, 'm'));
    assert.match(out, new RegExp(`^workosId +${u.workos.id}$`, 'm'));
    assert.match(out, /^organizationId +org_ctl$/m);
    const byWorkos = await ctlOk(sock, ['users', 'get', '--workos-id', u.workos.id, '--json']);
    assert.equal(byWorkos.id, u.me.id);
    assert.equal(byWorkos.role, 'member');
    const byEmail = await ctlOk(sock, ['users', 'get', '--email', u.workos.email, '--json']);
    assert.equal(byEmail.id, u.me.id);
    const nf = await ctl(['--socket', sock, 'users', 'get', '--workos-id', 'user_missing']);
    assert.equal(nf.code, 1);
    assert.match(nf.stderr, /user not found: user_missing/);
    const bad = await ctl(['--socket', sock, 'users', 'get', 'not-a-uuid']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /id: must be a UUID/);
    const usage = await ctl(['--socket', sock, 'users', 'get']);
    assert.equal(usage.code, 2);
  });

  test('users export | import round trip into a second daemon', async () => {
    const dir = await makeTempDir('usd-ctl-');
    try {
      const file = path.join(dir, 'users.jsonl');
      const out = await ctlOk(sock, ['users', 'export', file]);
      assert.match(out, /^exported \d+ user\(s\) to /);
      const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
      const exported = lines.map((l) => JSON.parse(l));
      assert.ok(exported.length >= 3);
      for (const u of users) assert.ok(exported.some((e) => e.id === u.me.id && e.workosId === u.workos.id));
      // The same export on stdout.
      const stdoutExport = await ctlOk(sock, ['users', 'export']);
      assert.deepEqual(stdoutExport.trim().split('\n').map((l) => JSON.parse(l)), exported);

      const d2 = await startDaemon({ fake, configExtra: { workos: { events_poll_seconds: 0 } } });
      try {
        const imp = await ctlOk(d2.adminPath, ['users', 'import', file]);
        assert.match(imp, new RegExp(`^imported ${exported.length} user\\(s\\)`));
        const again = path.join(dir, 'again.jsonl');
        await ctlOk(d2.adminPath, ['users', 'export', again]);
        const reexported = fs.readFileSync(again, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
        // Every field survives, ids included: import keeps the given id of a new user.
        assert.deepEqual(reexported, exported);
        // Import from stdin, --json; upsert by workosId keeps ids.
        const j = await ctl(['--socket', d2.adminPath, '--json', 'users', 'import'], { input: `${lines[0]}\n\n${lines[1]}\n` });
        assert.equal(j.code, 0, j.stderr);
        const r = JSON.parse(j.stdout);
        assert.equal(r.count, 2);
        assert.ok(Number.isInteger(r.transactionId));
        // A bad line names the file and line; nothing of its batch is imported.
        const badFile = path.join(dir, 'bad.jsonl');
        fs.writeFileSync(badFile, `${JSON.stringify({ workosId: 'user_new_1', email: 'new1@example.com' })}\n${JSON.stringify({ workosId: 'user_new_2', email: 'not an email' })}\n`);
        const bad = await ctl(['--socket', d2.adminPath, 'users', 'import', badFile]);
        assert.equal(bad.code, 1);
        assert.match(bad.stderr, /bad\.jsonl:2: email:/);
        const missing = await ctl(['--socket', d2.adminPath, 'users', 'get', '--workos-id', 'user_new_1']);
        assert.equal(missing.code, 1);
        const notJson = await ctl(['--socket', d2.adminPath, 'users', 'import'], { input: '{"workosId":"x"}\nnope\n' });
        assert.equal(notJson.code, 1);
        assert.match(notJson.stderr, /stdin:2: not valid JSON/);
      } finally {
        await d2.stop();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('outbox: empty and waiting jobs, human and --json', async () => {
    await waitFor(async () => (await ctlOk(sock, ['outbox', '--json'])).jobs.length === 0, { what: 'an empty outbox' });
    assert.match(await ctlOk(sock, ['outbox']), /^the outbox is empty$/m);
    await fake.setDown(true);
    try {
      ok(await app.request('user.update', { id: users[0].me.id, lastName: 'Waiting' }, { token: users[0].token }));
      const j = await waitFor(async () => {
        const r = await ctlOk(sock, ['outbox', '--json', '--limit', '5']);
        return r.jobs.length > 0 && r;
      }, { what: 'a waiting job' });
      assert.equal(j.jobs[0].userId, users[0].me.id);
      const out = await ctlOk(sock, ['outbox']);
      assert.match(out, /^ID +USER +OP +ATTEMPTS +NEXT ATTEMPT +LAST ERROR$/m);
      assert.ok(out.includes(users[0].me.id));
    } finally {
      await fake.setDown(false);
    }
    await waitFor(async () => (await ctlOk(sock, ['outbox', '--json'])).jobs.length === 0, { timeoutMs: 15000, what: 'delivery after recovery' });
  });

  test('dead-letters list, retry and discard, human and --json', async () => {
    assert.match(await ctlOk(sock, ['dead-letters', 'list']), /^no dead letters$/m);
    const make = async (firstName) => {
      await fake.setFaults([{ method: 'PUT', path: '^/user_management/users/', status: 400 }]);
      try {
        ok(await app.request('user.update', { id: users[2].me.id, firstName }, { token: users[2].token }));
        return await waitFor(async () => {
          const r = await ctlOk(sock, ['dead-letters', 'list', '--json']);
          return r.deadLetters.length > 0 && r.deadLetters;
        }, { timeoutMs: 15000, what: 'a dead letter' });
      } finally {
        await fake.clearFaults();
      }
    };
    const [dl] = await make('Dead');
    const out = await ctlOk(sock, ['dead-letters', 'list']);
    assert.match(out, /^ID +USER +OP +FIELDS +STATUS +FAILED AT +BODY$/m);
    assert.match(out, /first_name=Dead/, "the field asked for, with its value");
    assert.match(out, new RegExp(`^${dl.id} +${users[2].me.id} +update +first_name=Dead +400 `, "m"));
    const unknown = await ctl(['--socket', sock, 'dead-letters', 'retry', String(dl.id + 999)]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no dead letter with id/);
    assert.match(await ctlOk(sock, ['dead-letters', 'retry', String(dl.id)]), /^re-queued 1 dead letter\(s\)$/m);
    await waitFor(async () => (await fake.getUser(users[2].workos.id)).first_name === 'Dead', { timeoutMs: 15000, what: 'the retried PUT' });

    await make('Dead2');
    assert.deepEqual(await ctlOk(sock, ['dead-letters', 'discard', '--all', '--json']), { count: 1 });
    assert.match(await ctlOk(sock, ['dead-letters', 'discard', '--all']), /^discarded 0 dead letter\(s\)$/m);
    assert.deepEqual(await ctlOk(sock, ['dead-letters', 'retry', '--all', '--json']), { count: 0 });
    const usage = await ctl(['--socket', sock, 'dead-letters', 'retry']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /give a dead letter ID or --all/);
  });

  test('jwks refresh: human and --json', async () => {
    assert.match(await ctlOk(sock, ['jwks', 'refresh']), /^JWKS refreshed: \d+ key\(s\)$/m);
    const r = await ctlOk(sock, ['jwks', 'refresh', '--json']);
    assert.ok(r.keys >= 1);
  });

  test('backup: absolute and relative paths, human and --json; an existing copy is refused', async () => {
    const dir = await makeTempDir('usd-ctl-bk-');
    try {
      const out = await ctlOk(sock, ['backup', path.join(dir, 'one')]);
      assert.match(out, new RegExp(`^backup written to ${dir}/one \\(.+, transactionId \\d+\\)$`, 'm'));
      assert.ok(fs.existsSync(path.join(dir, 'one', 'data.mdb')));
      // A relative PATH is taken from usersctl's working directory.
      const r = await new Promise((resolve, reject) => {
        const p = spawn(USERSCTL, ['--socket', sock, '--json', 'backup', 'two'], { cwd: dir });
        let stdout = '';
        p.stdout.on('data', (b) => (stdout += b));
        p.once('error', reject);
        p.once('close', (code) => resolve({ code, stdout }));
      });
      assert.equal(r.code, 0);
      const j = JSON.parse(r.stdout);
      assert.equal(j.path, path.join(dir, 'two'));
      assert.equal(j.bytes, fs.statSync(path.join(dir, 'two', 'data.mdb')).size);
      const again = await ctl(['--socket', sock, 'backup', path.join(dir, 'one')]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /already holds a data\.mdb/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('reload: reports reloaded and needs-restart keys, human and --json', async () => {
    d.writeConfig({ outbox: { initial_backoff_ms: 50, max_backoff_ms: 200 } });
    assert.match(await ctlOk(sock, ['reload']), /^configuration reloaded; nothing changed$/m);
    d.writeConfig({ outbox: { initial_backoff_ms: 50, max_backoff_ms: 200 }, log: { level: 'info' }, admin_socket: { path: sock, mode: '0660' } });
    try {
      const out = await ctlOk(sock, ['reload']);
      assert.match(out, /^reloaded: log\.level$/m);
      assert.match(out, /^needs restart \(running values kept\): admin_socket\.mode$/m);
      const j = await ctlOk(sock, ['reload', '--json']);
      assert.deepEqual(j, { reloaded: [], needsRestart: ['admin_socket.mode'] });
    } finally {
      d.writeConfig({ outbox: { initial_backoff_ms: 50, max_backoff_ms: 200 } });
      await ctlOk(sock, ['reload']);
    }
  });

  // watch runs until Ctrl-C: spawn it, read its lines as they come.
  function watch(args) {
    const proc = spawn(USERSCTL, ['--socket', sock, 'watch', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    let stderr = '';
    const lines = [];
    proc.stdout.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    proc.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise((resolve) => proc.once('close', (code) => resolve(code)));
    return { proc, lines, exited, stderr: () => stderr };
  }

  test('watch: prints live changes as lines and exits 0 on Ctrl-C', async () => {
    const w = watch([]);
    try {
      await sleep(300); // let it subscribe (it starts at the current last transactionId)
      const upd = ok(await app.request('user.update', { id: users[0].me.id, firstName: 'Watched', lastName: 'Now' }, { token: users[0].token }));
      const line = await waitFor(() => w.lines.find((l) => l.startsWith(`${upd.transactionId} `)), { what: `a line for ${upd.transactionId}` });
      assert.match(line, new RegExp(`^${upd.transactionId} +upsert +${users[0].me.id}  \\S+  Watched Now$`));
    } finally {
      w.proc.kill('SIGINT');
    }
    assert.equal(await w.exited, 0, w.stderr());
  });

  test('watch --since N --json: history first, then live, one JSON object per line', async () => {
    const last = (await ctlOk(sock, ['status', '--json'])).lastTransactionId;
    const w = watch(['--since', String(last - 3), '--json']);
    try {
      await waitFor(() => w.lines.some((l) => JSON.parse(l).transactionId === last), { what: 'the history up to now' });
      const hist = w.lines.map((l) => JSON.parse(l));
      assert.ok(hist.every((c, i) => c.transactionId > last - 3 && (i === 0 || c.transactionId > hist[i - 1].transactionId)));
      for (const c of hist) {
        assert.ok(c.op === 'upsert' || c.op === 'delete');
        assert.match(c.user.id, UUID_RE);
      }
      const del = ok(await app.request('user.delete', { id: users[1].me.id }, { token: users[1].token }));
      const live = await waitFor(() => w.lines.map((l) => JSON.parse(l)).find((c) => c.transactionId === del.transactionId), { what: 'the delete' });
      assert.equal(live.op, 'delete');
      assert.ok(live.user.deletedAt);
    } finally {
      w.proc.kill('SIGINT');
    }
    assert.equal(await w.exited, 0, w.stderr());
  });

  test('--help on every command; usage errors exit 2', async () => {
    const main = await ctl(['--help']);
    assert.equal(main.code, 0);
    assert.match(main.stdout, /^usage: usersctl /);
    for (const cmd of ['status', 'health', 'metrics', 'users', 'users list', 'users get', 'users export', 'users import', 'outbox',
      'dead-letters', 'dead-letters list', 'dead-letters retry', 'dead-letters discard', 'jwks', 'jwks refresh', 'backup', 'reload', 'watch']) {
      const r = await ctl([...cmd.split(' '), '--help']);
      assert.equal(r.code, 0, `${cmd} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^usage: usersctl ${cmd.split(' ')[0]}`), `${cmd} --help:\n${r.stdout}`);
      const h = await ctl(['help', ...cmd.split(' ')]);
      assert.equal(h.stdout, r.stdout);
    }
    for (const args of [[], ['bogus'], ['users'], ['users', 'frobnicate'], ['users', 'list', '--limit', 'x'], ['users', 'list', '--nope'],
      ['backup'], ['watch', 'extra'], ['status', 'extra'], ['--timeout', 'abc', 'status'], ['jwks']]) {
      const r = await ctl(['--socket', sock, ...args]);
      assert.equal(r.code, 2, `usersctl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
      assert.ok(r.stderr.length > 0);
    }
  });

  test('cannot connect: exit 3 with a clear message', async () => {
    const missing = path.join(d.dir, 'no-such.sock');
    const r = await ctl(['--socket', missing, 'status']);
    assert.equal(r.code, 3);
    assert.equal(r.stderr.trim(), `usersctl: usersd is not running (no socket at ${missing})`);
    // A socket file nobody listens on.
    const stale = path.join(d.dir, 'stale.sock');
    const net = await import('node:net');
    const srv = net.createServer();
    await new Promise((res) => srv.listen(stale, res));
    await new Promise((res) => srv.close(res));
    if (!fs.existsSync(stale)) fs.writeFileSync(stale, ''); // Node unlinks on close; any non-listening file will do
    const r2 = await ctl(['--socket', stale, 'status']);
    assert.equal(r2.code, 3);
    assert.match(r2.stderr, /usersd is not running|cannot connect/);
  });
});

// SO_PEERCRED: the socket's mode lets anyone connect; the daemon refuses
// uids that are not root, its own or configured.
const canSwitchUser = process.getuid?.() === 0 && fs.existsSync('/usr/bin/setpriv');

describe('usersctl as another uid', { skip: !canSwitchUser && 'needs root and setpriv' }, () => {
  const scope = suiteScope();
  let fake, dir, bin;

  before(async () => {
    fake = await withFake({ t: scope });
    // A place nobody (65534) can reach: a world-traversable dir with a copy
    // of usersctl (the build tree may not be readable by other users).
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'usd-peer-'));
    fs.chmodSync(dir, 0o755);
    bin = path.join(dir, 'usersctl');
    fs.copyFileSync(USERSCTL, bin);
    fs.chmodSync(bin, 0o755);
    scope.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  });

  async function daemonWith(adminSocket) {
    const d = await startDaemon({ fake, t: scope, configExtra: { admin_socket: adminSocket } });
    fs.chmodSync(d.dir, 0o755);
    return d;
  }

  test('a uid not allowed is refused by SO_PEERCRED with a clear message, and logged', async () => {
    const d = await daemonWith({ path: path.join(os.tmpdir(), `usd-peer-${process.pid}-a.sock`), mode: '0666' });
    const sockPath = path.join(os.tmpdir(), `usd-peer-${process.pid}-a.sock`);
    const r = await ctl(['--socket', sockPath, 'status'], { asNobody: true, bin });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`permission denied on ${sockPath.replace(/[.]/g, '\\.')} \\(run as root or a user in admin_socket\\.allowed_uids\\)`));
    await waitFor(() => /refused connection: peer not allowed.*uid=65534/.test(d.logs()), { what: 'the refusal in the log' });
    assert.match(d.logs(), /refused connection: peer not allowed.*pid=\d+.*uid=65534/);
    // Root is still welcome.
    assert.equal((await ctl(['--socket', sockPath, 'status'])).code, 0);
    await d.stop();
  });

  test('the socket file mode refuses before SO_PEERCRED does: exit 3, permission denied', async () => {
    const d = await daemonWith({ path: path.join(os.tmpdir(), `usd-peer-${process.pid}-b.sock`), mode: '0600' });
    const r = await ctl(['--socket', path.join(os.tmpdir(), `usd-peer-${process.pid}-b.sock`), 'status'], { asNobody: true, bin });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /permission denied on .* \(run as root or a user in admin_socket\.allowed_uids\)/);
    await d.stop();
  });

  test('allowed_uids admits that uid', async () => {
    const sockPath = path.join(os.tmpdir(), `usd-peer-${process.pid}-c.sock`);
    const d = await daemonWith({ path: sockPath, mode: '0666', allowed_uids: [65534] });
    const r = await ctl(['--socket', sockPath, '--json', 'status'], { asNobody: true, bin });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(JSON.parse(r.stdout).lastTransactionId >= 0);
    const h = await ctl(['--socket', sockPath, 'users', 'list'], { asNobody: true, bin });
    assert.equal(h.code, 0, h.stderr);
    await d.stop();
  });

  test('allowed_gids admits a supplementary group (SO_PEERGROUPS), and only a listed one', async () => {
    const sockPath = path.join(os.tmpdir(), `usd-peer-${process.pid}-e.sock`);
    const d = await daemonWith({ path: sockPath, mode: '0666', allowed_gids: [4242] });
    const as = (groups) => new Promise((resolve, reject) => {
      const p = spawn('setpriv', ['--reuid=65534', '--regid=65534', `--groups=${groups}`, bin, '--socket', sockPath, 'status'],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      p.stderr.on('data', (c) => (err += c));
      p.once('error', reject);
      p.once('close', (code) => resolve({ code, err }));
    });
    const member = await as('27,4242');
    assert.equal(member.code, 0, member.err);
    const other = await as('27,4243');
    assert.equal(other.code, 3, other.err);
    await d.stop();
  });

  test('allowed_gids admits a primary gid', async () => {
    const sockPath = path.join(os.tmpdir(), `usd-peer-${process.pid}-d.sock`);
    const d = await daemonWith({ path: sockPath, mode: '0666', allowed_gids: [65534] });
    const r = await ctl(['--socket', sockPath, 'status'], { asNobody: true, bin });
    assert.equal(r.code, 0, r.stderr);
    await d.stop();
  });
});
