// usersctl users resync (issue 12, the client side): argument parsing and
// --help; a daemon without admin.users.resync is reported clearly (exit 1);
// and the outputs and the --all --wait polling against a stand-in admin
// socket that answers as the issue 12 contract says:
//   admin.users.resync {id} | {workosId} -> {user, outcome}
//   admin.users.resync {all: true}       -> {started: true, runId}
//   admin.status -> {..., reconcile: {state, reason, startedAt, usersSeen,
//                     usersApplied, usersDeleted, pages, lastError, finishedAt}}
//
// Environment: USERSD_BIN (the daemon), USERSD_BUILD_DIR (usersctl is at
// $USERSD_BUILD_DIR/usersctl/usersctl).
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withFake, startDaemon, suiteScope, makeTempDir, runProgram } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BUILD_DIR = process.env.USERSD_BUILD_DIR ?? path.resolve(here, '../../build');
const USERSCTL = path.join(BUILD_DIR, 'usersctl/usersctl');
const haveScript = spawnSync('script', ['--version']).status === 0;

const run = (cmd, args, opts = {}) => runProgram(cmd, args, { timeoutMs: 30000, ...opts });
const ctl = (args) => run(USERSCTL, args);

const USER = {
  id: '0b6f5a52-3c1e-4a52-9f5e-2f4f7a0c9d11',
  workosId: 'user_resync_1',
  email: 'resync@example.com',
  firstName: 'Re',
  lastName: 'Sync',
  organizationId: 'org_1',
  role: 'member',
  deletedAt: null,
};

/**
 * A stand-in admin socket: NDJSON @effect/rpc, answering admin.users.resync
 * and admin.status from `script` (a function of the request that returns
 * {value} or {die}); records the requests.
 */
async function standIn(sockPath, answer) {
  const requests = [];
  const server = net.createServer((sock) => {
    let buf = '';
    sock.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.trim()) continue;
        const req = JSON.parse(line);
        if (req._tag !== 'Request') continue;
        requests.push({ tag: req.tag, payload: req.payload });
        const a = answer(req.tag, req.payload, requests);
        const exit = a.die !== undefined ? { _tag: 'Failure', cause: { _tag: 'Die', defect: a.die } } : { _tag: 'Success', value: a.value };
        sock.write(`${JSON.stringify({ _tag: 'Exit', requestId: req.id, exit })}\n`);
      }
    });
    sock.on('error', () => {});
  });
  await new Promise((res) => server.listen(sockPath, res));
  return { requests, close: () => new Promise((res) => server.close(res)) };
}

const reconcile = (state, n, extra = {}) => ({
  state,
  reason: 'admin',
  startedAt: '2026-12-03T10:00:00.000Z',
  usersSeen: n * 100,
  usersApplied: n * 90,
  usersDeleted: n,
  pages: n,
  lastError: null,
  finishedAt: state === 'idle' ? '2026-12-03T10:00:05.000Z' : null,
  ...extra,
});

describe('usersctl users resync', () => {
  const scope = suiteScope();
  let dir;

  before(async () => {
    dir = await makeTempDir('usd-ctl-resync-');
    scope.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  });

  test('--help, and usage errors exit 2 before connecting', async () => {
    const h = await ctl(['users', 'resync', '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /^usage: usersctl users resync \(ID \| --workos-id X \| --all\) \[--wait\]/);
    assert.equal((await ctl(['help', 'users', 'resync'])).stdout, h.stdout);
    assert.match((await ctl(['users', '--help'])).stdout, /usersctl users resync/);
    assert.match((await ctl(['--help'])).stdout, /users resync \(ID \| --workos-id X \| --all\) \[--wait\]/);
    const missing = path.join(dir, 'nobody.sock'); // a usage error must not get as far as connecting (exit 3)
    for (const [args, msg] of [
      [[], /give exactly one of ID, --workos-id X or --all/],
      [['--wait'], /give exactly one of/],
      [[USER.id, '--all'], /give exactly one of/],
      [[USER.id, '--workos-id', 'user_x'], /give exactly one of/],
      [['a', 'b'], /unexpected argument 'b'/],
      [[USER.id, '--wait'], /--wait goes with --all/],
      [['--workos-id'], /--workos-id needs a value/],
      [['--all', '--bogus'], /unknown option --bogus/],
      [['--all=1'], /unknown option --all/],
    ]) {
      const r = await ctl(['--socket', missing, 'users', 'resync', ...args]);
      assert.equal(r.code, 2, `resync ${args.join(' ')}: ${r.code} ${r.stderr}`);
      assert.match(r.stderr, msg);
      assert.match(r.stderr, /usage: usersctl users resync/);
    }
  });

  test('an older usersd without admin.users.resync: exit 1, says so', async () => {
    const sock = path.join(dir, 'old.sock');
    // What an older daemon answers: a ValidationError defect naming the method.
    const s = await standIn(sock, (tag) => ({ die: { name: 'ValidationError', message: `unknown method "${tag}"` } }));
    try {
      for (const args of [['--all'], ['--all', '--wait'], ['--workos-id', 'user_x'], [USER.id]]) {
        const r = await ctl(['--socket', sock, 'users', 'resync', ...args]);
        assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
        assert.equal(r.stdout, '');
        assert.match(r.stderr, /^usersctl: this usersd does not support users resync \((ValidationError: )?unknown method "admin\.users\.resync"\); it needs a newer usersd\n$/);
      }
    } finally {
      await s.close();
    }
  });

  test('against the real daemon: resync ID repairs a silent rename, --all --wait a silent delete', async () => {
    const fake = await withFake({ t: scope });
    const d = await startDaemon({ fake, t: scope, configExtra: { workos: { events_poll_seconds: 0 } } });
    const seed = async (first) => fake.createUser({ email: `ctl-${first}-${process.pid}@example.com`, first_name: first, last_name: 'K' });
    const a = await seed('Alpha');
    const b = await seed('Beta');
    const imported = await ctl(['--socket', d.adminPath, 'users', 'resync', '--workos-id', a.id]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stdout, /^outcome +created\n/);
    assert.equal((await ctl(['--socket', d.adminPath, 'users', 'resync', '--workos-id', b.id])).code, 0);
    // Changed and deleted in WorkOS without events (and the poller is off).
    await fake.createUser({ id: a.id, first_name: 'Renamed' });
    await fake.deleteUser(b.id);
    const local = JSON.parse((await ctl(['--socket', d.adminPath, '--json', 'users', 'get', '--workos-id', a.id])).stdout);
    const one = await ctl(['--socket', d.adminPath, 'users', 'resync', local.id]);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /^outcome +updated\n/);
    assert.match(one.stdout, /Renamed/);
    const all = await ctl(['--socket', d.adminPath, '--json', 'users', 'resync', '--all', '--wait']);
    assert.equal(all.code, 0, all.stderr);
    const answer = JSON.parse(all.stdout);
    assert.equal(answer.reconcile.state, 'idle');
    assert.equal(answer.reconcile.usersDeleted, 1);
    const gone = JSON.parse((await ctl(['--socket', d.adminPath, '--json', 'users', 'get', '--workos-id', b.id])).stdout);
    assert.ok(gone.deletedAt);
    // Deleted in WorkOS and here: said so (issue 22; it was "unchanged").
    const again = await ctl(['--socket', d.adminPath, 'users', 'resync', '--workos-id', b.id]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^outcome +already_deleted\n/);
    assert.match(again.stdout, /^deletedAt +\d{4}-/m);
    const never = JSON.parse((await ctl(['--socket', d.adminPath, '--json', 'users', 'resync', '--workos-id', 'user_never_here'])).stdout);
    assert.deepEqual([never.outcome, never.user, never.inWorkos], ['not_found_in_workos', null, false]);
  });

  test('one user: the outcome and the user; --json prints the answer as is', async () => {
    const sock = path.join(dir, 'one.sock');
    const s = await standIn(sock, (tag, p) => {
      if (tag !== 'admin.users.resync') return { die: `unknown method "${tag}"` };
      if (p.workosId === 'user_gone') return { value: { user: null, outcome: 'not_found_in_workos' } };
      return { value: { user: USER, outcome: 'updated' } };
    });
    try {
      const r = await ctl(['--socket', sock, 'users', 'resync', USER.id]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^outcome +updated\nid +0b6f5a52-3c1e-4a52-9f5e-2f4f7a0c9d11\nworkosId +user_resync_1\nemail +resync@example\.com\n/);
      const j = await ctl(['--socket', sock, '--json', 'users', 'resync', '--workos-id', 'user_gone']);
      assert.equal(j.code, 0, j.stderr);
      assert.deepEqual(JSON.parse(j.stdout), { user: null, outcome: 'not_found_in_workos' });
      const gone = await ctl(['--socket', sock, 'users', 'resync', '--workos-id=user_gone']);
      assert.equal(gone.stdout, 'outcome          not_found_in_workos\n');
      assert.deepEqual(s.requests.map((q) => q.payload), [{ id: USER.id }, { workosId: 'user_gone' }, { workosId: 'user_gone' }]);
    } finally {
      await s.close();
    }
  });

  test('--all starts a run; --wait polls admin.status every second until idle', async () => {
    const sock = path.join(dir, 'all.sock');
    let polls = 0;
    const s = await standIn(sock, (tag, p) => {
      if (tag === 'admin.users.resync') return { value: { started: true, runId: 'run-7' } };
      if (tag === 'admin.status') {
        polls++;
        return { value: { version: 'x', users: 1, reconcile: polls < 3 ? reconcile('running', polls) : reconcile('idle', 3) } };
      }
      return { die: `unknown method "${tag}"` };
    });
    try {
      const started = await ctl(['--socket', sock, 'users', 'resync', '--all']);
      assert.equal(started.code, 0, started.stderr);
      assert.equal(started.stdout, 'reconcile started (run run-7); follow it with usersctl status\n');
      assert.deepEqual(JSON.parse((await ctl(['--socket', sock, '--json', 'users', 'resync', '--all'])).stdout), { started: true, runId: 'run-7' });
      assert.equal(polls, 0);

      const t0 = Date.now();
      const w = await ctl(['--socket', sock, 'users', 'resync', '--all', '--wait']);
      assert.equal(w.code, 0, w.stderr);
      assert.equal(polls, 3);
      assert.ok(Date.now() - t0 >= 1900, 'polls a second apart');
      assert.equal(w.stdout, 'reconcile done: 300 users seen, 270 applied, 3 deleted, 3 pages\n');
      assert.equal(w.stderr, ''); // no terminal, no progress

      polls = 0;
      const j = await ctl(['--socket', sock, '--json', 'users', 'resync', '--all', '--wait']);
      assert.equal(j.code, 0, j.stderr);
      assert.deepEqual(JSON.parse(j.stdout), { started: true, runId: 'run-7', reconcile: reconcile('idle', 3) });
      assert.deepEqual(s.requests.filter((q) => q.tag === 'admin.users.resync').map((q) => q.payload), Array(4).fill({ all: true }));
    } finally {
      await s.close();
    }
  });

  test('--all --wait: a run that ends with an error exits 1; on a terminal the progress is drawn', async () => {
    const sock = path.join(dir, 'err.sock');
    let polls = 0;
    const s = await standIn(sock, (tag) => {
      if (tag === 'admin.users.resync') return { value: { started: true, runId: 'run-8' } };
      polls++;
      return { value: { reconcile: polls < 2 ? reconcile('running', 1) : reconcile('idle', 2, { lastError: 'WorkOS answered 500' }) } };
    });
    try {
      const r = await ctl(['--socket', sock, 'users', 'resync', '--all', '--wait']);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, 'reconcile failed: 200 users seen, 180 applied, 2 deleted, 2 pages; last error: WorkOS answered 500\n');
      assert.equal(r.stderr, 'usersctl: reconcile ended with an error: WorkOS answered 500\n');
      const j = await ctl(['--socket', sock, '--json', 'users', 'resync', '--all', '--wait']);
      assert.equal(j.code, 1);
      assert.equal(JSON.parse(j.stdout).reconcile.lastError, 'WorkOS answered 500');
      if (haveScript) {
        polls = 0;
        const quote = (x) => `'${x.replace(/'/g, `'\\''`)}'`;
        const t = await run('script', ['-qec', [USERSCTL, '--socket', sock, 'users', 'resync', '--all', '--wait'].map(quote).join(' '), '/dev/null']);
        assert.equal(t.code, 1);
        assert.match(t.stdout, /\rresync: 100 users seen, 90 applied, 1 deleted, 1 pages, \d+s elapsed\r\nreconcile failed: /);
      }
    } finally {
      await s.close();
    }
  });

  test('status shows the reconcile state when the daemon reports one', async () => {
    const sock = path.join(dir, 'status.sock');
    const s = await standIn(sock, () => ({
      value: {
        version: '9.9.9', uptimeSeconds: 5, users: 1, lastTransactionId: 3,
        store: { path: '/x', sizeBytes: 1, mapSizeBytes: 1, usedBytes: 1 }, outbox: { depth: 0, oldestAgeSeconds: null },
        deadLetters: 0, upstream: { state: 'online', since: null }, eventsCursor: null, jwks: { keys: 1, ageSeconds: 1 },
        reconcile: reconcile('running', 4),
      },
    }));
    try {
      const r = await ctl(['--socket', sock, 'status']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^reconcile +running \(admin\) since 2026-12-03T10:00:00\.000Z: 400 users seen, 360 applied, 4 deleted, 4 pages$/m);
    } finally {
      await s.close();
    }
  });
});
