// Crash-safety rounds (issue 6 part 1), shared by
// tests/integration/crash.test.mjs (short) and tests/soak/crash.mjs (long).
//
// A round: several connections send pipelined user.update / user.delete
// traffic for many users; SIGKILL at a random moment; restart on the same
// store; then check against the change feed (admin.changes) and the stored
// users (admin.users.get):
//   - every acknowledged mutation is in the feed under its transactionId,
//     with its op, user and value;
//   - no transactionId is reused: all acked ids are distinct, above every id
//     acked before the crash, and increasing in send order per connection;
//   - every user's stored value is the value of its newest feed entry, which
//     is at least as new as its last acknowledged write, and is a value a
//     client sent (acked, or unacked but committed);
// and at the end (fake up all along): outbox depth 0, no dead letters, and
// WorkOS holds exactly the local value of every user (deleted ones gone).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { canConnect, connect, newUser, ok, sleep, waitFor, startDaemon, makeTempDir } from '../integration/harness.mjs';

/** d.restart(), then wait for the admin socket too (startDaemon waits for the app socket only). */
export async function restart(d) {
  await d.restart();
  await waitFor(() => canConnect(d.adminPath), { what: 'the admin socket' });
}
import { admin, adminOk, readChanges, rng, log } from './lib.mjs';

export const CRASH_CONFIG = {
  workos: { timeout_ms: 2000, events_poll_seconds: 0 },
  outbox: { initial_backoff_ms: 50, max_backoff_ms: 500 },
  // Big settings fill the map fast; shared through WorkOS metadata they
  // would be refused (SPEC 4b budget), so this one host keeps them local.
  sync: { metadata: { enabled: false } },
  log: { level: 'warn' },
};

/**
 * Runs `rounds` kill/restart rounds on daemon `d` (started with CRASH_CONFIG
 * or similar). Returns figures.
 */
export async function crashRounds({ fake, d, t, rounds = 20, users: nUsers = 40, conns = 4, depth = 4, deleteRate = 0.02, maxTrafficMs = 400, seed = Date.now() }) {
  const rand = rng(seed);
  const NOCLEAN = { after: () => {} };
  let boot = await connect(d.socketPath, { t: NOCLEAN });
  const users = [];
  const byId = new Map();
  const addUser = async () => {
    const r = await newUser(fake, boot, { firstName: 'Init', lastName: 'User' });
    const u = { id: r.me.id, workosId: r.workos.id, token: r.token, deleted: false, deleteSent: false, lastAcked: 0, committedValues: new Set(['Init']) };
    users.push(u);
    byId.set(u.id, u);
    return u;
  };
  for (let i = 0; i < nUsers; i++) await addUser();
  await boot.close();

  const allAcked = new Set();
  let maxAckedBefore = 0;
  const figures = { rounds: 0, acked: 0, ackedUpdates: 0, ackedDeletes: 0, unackedCommitted: 0, sent: 0, replaced: 0 };
  let valueSeq = 0;

  for (let round = 0; round < rounds; round++) {
    // Replace deleted users so the population stays at nUsers.
    const live = users.filter((u) => !u.deleted);
    if (live.length < nUsers) {
      boot = await connect(d.socketPath, { t: NOCLEAN });
      for (let i = live.length; i < nUsers; i++) {
        await addUser();
        figures.replaced++;
      }
      await boot.close();
    }
    const roundStart = (await adminOk(d, 'admin.status')).lastTransactionId;
    const pool = users.filter((u) => !u.deleted);
    const acked = []; // {conn, sendSeq, txid, user, op, value}
    const sentValues = new Map(); // value -> user (unacked ones may be committed)
    let running = true;
    const clients = [];
    for (let ci = 0; ci < conns; ci++) clients.push(await connect(d.socketPath, { t: NOCLEAN, timeoutMs: 20000 }));
    const workers = [];
    const failures = [];
    for (let ci = 0; ci < conns; ci++) {
      let sendSeq = 0;
      for (let w = 0; w < depth; w++) {
        workers.push(
          (async () => {
            while (running) {
              const u = rand.pick(pool);
              const del = !u.deleteSent && rand() < deleteRate;
              const seq = sendSeq++;
              let value;
              let p;
              figures.sent++;
              if (del) {
                u.deleteSent = true;
                p = clients[ci].request('user.delete', { id: u.id }, { token: u.token });
              } else {
                value = `v${seed % 100000}x${valueSeq++}`;
                sentValues.set(value, u);
                const patch = { id: u.id, firstName: value };
                if (rand() < 0.3) patch.timezone = rand.pick(['UTC', 'Europe/Paris', null]);
                p = clients[ci].request('user.update', patch, { token: u.token });
              }
              let exit;
              try {
                exit = await p;
              } catch {
                return; // connection closed by the kill: unacknowledged
              }
              if (exit.exit._tag !== 'Success') continue; // e.g. the user was deleted meanwhile
              const txid = del ? exit.exit.value.transactionId : exit.exit.value.transactionId;
              acked.push({ conn: ci, sendSeq: seq, txid, user: u, op: del ? 'delete' : 'upsert', value });
            }
          })().catch((e) => failures.push(e)),
        );
      }
    }
    await sleep(50 + rand.int(maxTrafficMs));
    await d.kill();
    running = false;
    await Promise.all(workers);
    // A worker's failure is raised here, after every worker stopped: thrown
    // from a worker it would be an unhandled rejection, ending the process
    // without its cleanup (daemons and the fake left running).
    if (failures.length) throw failures[0];
    for (const c of clients) await c.close();
    await restart(d);

    // --- checks
    for (const a of acked) {
      assert.ok(Number.isInteger(a.txid) && a.txid > maxAckedBefore, `round ${round}: txid ${a.txid} not above ${maxAckedBefore} (reused?)`);
      assert.ok(!allAcked.has(a.txid), `round ${round}: transactionId ${a.txid} acknowledged twice`);
      allAcked.add(a.txid);
    }
    for (let ci = 0; ci < conns; ci++) {
      const mine = acked.filter((a) => a.conn === ci).sort((x, y) => x.sendSeq - y.sendSeq);
      for (let i = 1; i < mine.length; i++) {
        assert.ok(mine[i].txid > mine[i - 1].txid, `round ${round}, conn ${ci}: txid ${mine[i].txid} (send #${mine[i].sendSeq}) after ${mine[i - 1].txid} (send #${mine[i - 1].sendSeq})`);
      }
    }
    const feed = await readChanges(d, roundStart);
    const byTxid = new Map();
    for (let i = 0; i < feed.length; i++) {
      if (i) assert.ok(feed[i].transactionId > feed[i - 1].transactionId, 'feed ids increase');
      byTxid.set(feed[i].transactionId, feed[i]);
    }
    for (const a of acked) {
      const e = byTxid.get(a.txid);
      assert.ok(e, `round ${round}: acknowledged transactionId ${a.txid} (${a.op} ${a.user.id}) missing from the change feed after SIGKILL`);
      assert.equal(e.op, a.op, `txid ${a.txid} op`);
      assert.equal(e.user.id, a.user.id, `txid ${a.txid} user`);
      if (a.op === 'upsert') assert.equal(e.user.firstName, a.value, `txid ${a.txid} value`);
      a.user.lastAcked = Math.max(a.user.lastAcked, a.txid);
      if (a.op === 'delete') a.user.deleted = true;
    }
    const ackedTx = new Set(acked.map((a) => a.txid));
    for (const e of feed) {
      const u = byId.get(e.user.id);
      if (!u) continue;
      if (e.op === 'delete') u.deleted = true;
      if (e.op === 'upsert' && e.user.firstName !== 'Init') {
        assert.ok(sentValues.has(e.user.firstName) && sentValues.get(e.user.firstName) === u, `round ${round}: feed has a value nobody sent: ${e.user.firstName}`);
        u.committedValues.add(e.user.firstName);
        if (!ackedTx.has(e.transactionId)) figures.unackedCommitted++;
      }
    }
    // Stored state = newest feed entry, at least as new as the last ack.
    const touched = new Set(feed.map((e) => e.user.id));
    for (const id of touched) {
      const u = byId.get(id);
      if (!u) continue;
      const last = feed.filter((e) => e.user.id === id).at(-1);
      assert.ok(last.transactionId >= u.lastAcked, `user ${id}: newest change ${last.transactionId} older than acked ${u.lastAcked}`);
      const got = await admin(d, 'admin.users.get', { id });
      if (u.deleted) {
        if (got.exit._tag === 'Success') assert.ok(got.exit.value.deletedAt, `deleted user ${id} has no deletedAt`);
      } else {
        const v = ok(got);
        assert.equal(v.firstName, last.user.firstName, `user ${id}: stored value is not its newest change`);
        assert.equal(v.deletedAt, null);
      }
    }
    maxAckedBefore = Math.max(maxAckedBefore, ...acked.map((a) => a.txid), roundStart);
    figures.rounds++;
    figures.acked += acked.length;
    figures.ackedUpdates += acked.filter((a) => a.op === 'upsert').length;
    figures.ackedDeletes += acked.filter((a) => a.op === 'delete').length;
    log(`round ${round + 1}/${rounds}: ${acked.length} acked, feed ${feed.length}, killed after round start tx ${roundStart}`);
  }

  // --- every job of every committed mutation delivered, in the end.
  await waitFor(async () => {
    const s = await adminOk(d, 'admin.status');
    return s.outbox.depth === 0 && s;
  }, { timeoutMs: 60000, intervalMs: 100, what: 'outbox depth 0' });
  const s = await adminOk(d, 'admin.status');
  if (s.deadLetters !== 0) {
    const dl = await adminOk(d, 'admin.deadLetters.list', { limit: 20 });
    const u = byId.get(dl.deadLetters[0].userId);
    const reqs = u ? (await fake.requests({ path: `/${u.workosId}$` })).map((r) => `${r.ts} ${r.method} ${r.status} ${JSON.stringify(r.body)}`) : [];
    const feed = u ? (await readChanges(d, 0)).filter((e) => e.user.id === u.id).map((e) => `${e.transactionId} ${e.op} ${e.user.firstName}`) : [];
    assert.fail(`${s.deadLetters} dead letters: ${JSON.stringify(dl.deadLetters).slice(0, 600)}\nrequests for ${u?.workosId}:\n${reqs.join('\n')}\nfeed:\n${feed.join('\n')}`);
  }
  for (const u of users) {
    const local = await admin(d, 'admin.users.get', { id: u.id });
    const w = await fake.getUser(u.workosId);
    if (u.deleted) {
      assert.equal(w, null, `deleted user ${u.workosId} still in WorkOS`);
    } else {
      const v = ok(local);
      assert.ok(w, `user ${u.workosId} missing from WorkOS`);
      assert.equal(w.first_name, v.firstName, `WorkOS first_name of ${u.workosId}`);
      assert.ok(u.committedValues.has(v.firstName), `${v.firstName} was committed`);
    }
  }
  figures.users = users.length;
  figures.seed = seed;
  return figures;
}

/** Path of usersd-seed next to USERSD_BUILD_DIR (or null). */
export function seedBin() {
  const dirs = [process.env.USERSD_BUILD_DIR, path.resolve(path.dirname(process.env.USERSD_BIN ?? ''), '..')].filter(Boolean);
  for (const b of dirs) {
    const p = path.join(b, 'bench', 'usersd-seed');
    if (fs.existsSync(p)) return p;
  }
  return null;
}

/**
 * Kill during a hot backup of a large store, `rounds` times: restart works,
 * acked data is there, and a new backup works. Returns figures.
 */
export async function backupKillRounds({ fake, t, users: nUsers = 50000, rounds = 3, seed = Date.now() }) {
  const rand = rng(seed);
  const dir = await makeTempDir('usd-bkc-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bin = seedBin();
  let seeded = 0;
  if (bin) {
    execFileSync(bin, ['--store', path.join(dir, 'store'), '--users', String(nUsers), '--map-mib', '1024'], { stdio: 'pipe' });
    seeded = nUsers;
  }
  const d = await startDaemon({ fake, t, dir, configExtra: { ...CRASH_CONFIG, store: { map_size_mib: 1024 } } });
  if (!bin) {
    // No seeder: import in batches instead (slower, smaller).
    nUsers = Math.min(nUsers, 5000);
    for (let i = 0; i < nUsers; i += 500) {
      const batch = [];
      for (let j = i; j < Math.min(nUsers, i + 500); j++) batch.push({ workosId: `user_imp_${j}`, email: `imp${j}@example.com`, firstName: 'Imp', lastName: `N${j}` });
      await adminOk(d, 'admin.users.import', { users: batch });
    }
    seeded = nUsers;
  }
  const status0 = await adminOk(d, 'admin.status');
  // Time one full backup to know when to kill.
  const t0 = Date.now();
  const full = await adminOk(d, 'admin.backup', { path: path.join(dir, 'bk-timing') });
  const backupMs = Date.now() - t0;
  fs.rmSync(path.join(dir, 'bk-timing'), { recursive: true, force: true });
  const figures = { seeded, storeBytes: status0.store.sizeBytes, backupBytes: full.bytes, backupMs, rounds: 0, killedMidBackup: 0 };
  for (let r = 0; r < rounds; r++) {
    const app = await connect(d.socketPath, { t: { after: () => {} } });
    const u = await newUser(fake, app, { firstName: 'Before' });
    const ack = ok(await app.request('user.update', { id: u.me.id, lastName: `Round${r}` }, { token: u.token }));
    await app.close();
    const c = await connect(d.adminPath, { t: { after: () => {} } });
    const p = c.request('admin.backup', { path: path.join(dir, `bk-${r}`) }).catch(() => null);
    await sleep(Math.max(1, rand.int(Math.max(2, backupMs))));
    await d.kill();
    const res = await p;
    if (!res) figures.killedMidBackup++;
    await c.close();
    await restart(d);
    const got = await adminOk(d, 'admin.users.get', { id: u.me.id });
    assert.equal(got.lastName, `Round${r}`);
    const s = await adminOk(d, 'admin.status');
    assert.ok(s.lastTransactionId >= ack.transactionId);
    assert.equal(s.users, status0.users + r + 1);
    const again = await adminOk(d, 'admin.backup', { path: path.join(dir, `bk-${r}-again`) });
    assert.equal(again.transactionId, s.lastTransactionId);
    assert.equal(again.bytes, fs.statSync(path.join(dir, `bk-${r}-again`, 'data.mdb')).size);
    fs.rmSync(path.join(dir, `bk-${r}`), { recursive: true, force: true });
    fs.rmSync(path.join(dir, `bk-${r}-again`), { recursive: true, force: true });
    figures.rounds++;
    log(`backup round ${r + 1}/${rounds}: ${res ? 'backup finished before the kill' : 'killed mid-backup'}`);
  }
  await d.stop();
  return figures;
}

/**
 * Kill while the map grows: map_size_mib 1, max 1024 (never reached: the
 * point is growth, not the limit, which limits.test.mjs covers); imports of
 * ~256 KiB each; SIGKILL at a random point; restart; every acked import is
 * there (all its users, in the feed under its transactionId). Once the map
 * passes FRESH_STORE_BYTES the store is checked in full and replaced by a
 * fresh one, so that long runs keep exercising growth from 1 MiB and stay
 * far from the maximum and the disk's size.
 */
const FRESH_STORE_BYTES = 256 * 1024 * 1024;
export async function resizeKillRounds({ fake, t, rounds = 4, streams = 3, seed = Date.now() }) {
  const rand = rng(seed);
  const start = () => startDaemon({ fake, t, configExtra: { ...CRASH_CONFIG, store: { map_size_mib: 1, max_map_size_mib: 1024 } } });
  let d = await start();
  const pad = 'p'.repeat(8000);
  const acked = [];
  let n = 0;
  let maxMap = 0;
  let imports = 0;
  let checked = 0;
  let stores = 1;
  // Every user of every acked import is there.
  const fullCheck = async () => {
    for (const a of acked) {
      for (const w of a.batch) {
        ok(await admin(d, 'admin.users.get', { workosId: w }));
        checked++;
      }
    }
  };
  for (let r = 0; r < rounds; r++) {
    let running = true;
    const workers = [];
    const failures = [];
    for (let s = 0; s < streams; s++) {
      workers.push(
        (async () => {
          const c = await connect(d.adminPath, { t: { after: () => {} }, timeoutMs: 20000 });
          try {
            while (running) {
              const batch = [];
              for (let j = 0; j < 32; j++, n++) batch.push({ workosId: `user_grow_${seed % 1000}_${n}`, email: `grow${n}.${seed % 1000}@example.com`, firstName: 'Grow', lastName: `N${n}`, settings: { pad } });
              let exit;
              try {
                exit = await c.request('admin.users.import', { users: batch });
              } catch {
                return;
              }
              const v = ok(exit);
              acked.push({ txid: v.transactionId, batch: batch.map((b) => b.workosId) });
              imports++;
            }
          } finally {
            await c.close();
          }
        })().catch((e) => failures.push(e)),
      );
    }
    await sleep(100 + rand.int(900));
    await d.kill();
    running = false;
    await Promise.all(workers);
    if (failures.length) throw failures[0];  // see crashRounds
    await restart(d);
    const s = await adminOk(d, 'admin.status');
    maxMap = Math.max(maxMap, s.store.mapSizeBytes);
    for (const a of acked) {
      assert.ok(s.lastTransactionId >= a.txid);
      // Spot-check the first and last user of every acked batch.
      for (const w of [a.batch[0], a.batch.at(-1)]) {
        const u = await adminOk(d, 'admin.users.get', { workosId: w });
        assert.equal(u.settings.pad.length, 8000);
      }
    }
    log(`resize round ${r + 1}/${rounds}: ${imports} imports acked so far, map ${s.store.mapSizeBytes} B, file ${s.store.sizeBytes} B`);
    if (s.store.mapSizeBytes > FRESH_STORE_BYTES && r < rounds - 1) {
      await fullCheck();
      await d.stop();
      fs.rmSync(path.join(d.dir, 'store'), { recursive: true, force: true });  // the disk, on long runs
      acked.length = 0;
      d = await start();
      stores++;
    }
  }
  const s = await adminOk(d, 'admin.status');
  await fullCheck();  // and the last store in full
  await d.stop();
  return { rounds, imports, stores, usersChecked: checked, finalMapBytes: s.store.mapSizeBytes, fileBytes: s.store.sizeBytes, maxMap };
}
