// WorkOS faults soak (issue 6 part 2), shared by
// tests/integration/faults.test.mjs (short) and tests/soak/faults.mjs (long).
//
// Many updates for many users while the fake answers a random mix of
// 500/502/503/429 (with and without Retry-After), delays past
// workos.timeout_ms, dropped connections (some after applying the change:
// "applied but the reply was lost"), and is fully down for a period. At the
// end: WorkOS holds exactly the local values of every user (first_name,
// last_name, email), deleted users are gone, outbox depth 0, no dead
// letters; for each user the PUT bodies WorkOS received follow the local
// commit order (per field, the transactionIds of the values sent never go
// back); and the request rate during the outage is bounded.
import assert from 'node:assert/strict';
import { canConnect, connect, newUser, ok, sleep, waitFor } from '../integration/harness.mjs';
import { admin, adminOk, readChanges, rng, log } from './lib.mjs';

export const TIMEOUT_MS = 500;
export const MAX_BACKOFF_MS = 1000;
export const FAULTS_CONFIG = {
  workos: { timeout_ms: TIMEOUT_MS, events_poll_seconds: 0, max_concurrency: 8 },
  outbox: { initial_backoff_ms: 50, max_backoff_ms: MAX_BACKOFF_MS },
  log: { level: 'warn' },
};

const P = '^/user_management/users/';
/** The fault mix (rules are tried in order, each with its own roll). */
export const FAULT_RULES = [
  { path: P, status: 500, probability: 0.06 },
  { path: P, status: 502, probability: 0.06 },
  { path: P, status: 503, retryAfter: 1, probability: 0.04 },
  { path: P, status: 503, probability: 0.04 },
  { path: P, status: 429, retryAfter: 1, probability: 0.04 },
  { path: P, status: 429, probability: 0.04 },
  { path: P, delayMs: TIMEOUT_MS + 400, probability: 0.04 }, // beyond the timeout
  { path: P, drop: true, probability: 0.04 },
  { path: P, drop: true, apply: true, probability: 0.04 }, // applied, reply lost
  { path: P, status: 500, apply: true, probability: 0.03 }, // applied, then 500
];

export async function faultsRun({ fake, d, users: nUsers = 50, updates = 500, workers = 8, deleteFraction = 0.1, outageMs = 3000, seed = Date.now() }) {
  const rand = rng(seed);
  await waitFor(() => canConnect(d.adminPath), { what: 'the admin socket' });
  const boot = await connect(d.socketPath, { t: { after: () => {} } });
  const users = [];
  for (let i = 0; i < nUsers; i++) {
    const r = await newUser(fake, boot, { firstName: 'F', lastName: 'L' });
    users.push({ id: r.me.id, workosId: r.workos.id, token: r.token, deleted: false });
  }
  await boot.close();
  const startTx = (await adminOk(d, 'admin.status')).lastTransactionId;
  await fake.clearRequests();
  await fake.setFaults(FAULT_RULES);

  const conns = [];
  for (let i = 0; i < workers; i++) conns.push(await connect(d.socketPath, { t: { after: () => {} }, timeoutMs: 30000 }));
  let sent = 0;
  let acked = 0;
  let seq = 0;
  const tag = seed % 100000;
  const doUpdates = async (count) => {
    let left = count;
    await Promise.all(
      conns.map(async (c) => {
        while (left > 0) {
          left--;
          const u = rand.pick(users);
          const n = seq++;
          const patch = { id: u.id };
          const r = rand();
          if (r < 0.5) patch.firstName = `f${tag}x${n}`;
          else if (r < 0.8) patch.lastName = `l${tag}x${n}`;
          else if (r < 0.9) patch.email = `e${tag}x${n}@example.com`;
          else patch.timezone = rand.pick(['UTC', 'Asia/Tokyo']); // local only
          if (rand() < 0.2) patch.firstName = `g${tag}x${n}`;
          sent++;
          ok(await c.request('user.update', patch, { token: u.token }));
          acked++;
        }
      }),
    );
  };

  const t0 = Date.now();
  await doUpdates(Math.floor(updates * 0.4));
  // WorkOS fully down for a while; updates go on.
  await fake.setDown(true);
  const downFrom = Date.now();
  const during = doUpdates(Math.floor(updates * 0.2));
  await sleep(outageMs);
  await during;
  const downTo = Date.now();
  const statusDown = await adminOk(d, 'admin.status');
  await fake.setDown(false);
  await doUpdates(updates - Math.floor(updates * 0.4) - Math.floor(updates * 0.2));
  // Deletes, still under faults.
  const toDelete = users.slice(0, Math.round(nUsers * deleteFraction));
  for (const u of toDelete) {
    ok(await conns[0].request('user.delete', { id: u.id }, { token: u.token }));
    u.deleted = true;
  }
  const workloadMs = Date.now() - t0;
  for (const c of conns) await c.close();

  // Let the faults go on for a bit, then clear them and drain.
  await sleep(1000);
  const faults = await fake.getFaults();
  await fake.clearFaults();
  await waitFor(async () => (await adminOk(d, 'admin.status')).outbox.depth === 0, { timeoutMs: 60000, intervalMs: 200, what: 'outbox depth 0' });
  const drainedMs = Date.now() - t0;
  const s = await adminOk(d, 'admin.status');
  if (s.deadLetters !== 0) {
    const dl = await adminOk(d, 'admin.deadLetters.list', { limit: 20 });
    assert.fail(`${s.deadLetters} dead letters: ${JSON.stringify(dl.deadLetters).slice(0, 2000)}`);
  }

  // WorkOS holds exactly the local values.
  for (const u of users) {
    const w = await fake.getUser(u.workosId);
    if (u.deleted) {
      assert.equal(w, null, `deleted user ${u.workosId} is still in WorkOS`);
      continue;
    }
    const l = ok(await admin(d, 'admin.users.get', { id: u.id }));
    assert.ok(w, `user ${u.workosId} missing in WorkOS`);
    assert.deepEqual(
      { first_name: w.first_name, last_name: w.last_name, email: w.email },
      { first_name: l.firstName, last_name: l.lastName, email: l.email },
      `WorkOS state of ${u.workosId}`,
    );
  }

  // Per-user order: txid of every value, per user and field.
  const feed = await readChanges(d, startTx);
  const txOf = new Map(); // `${userId}|${field}|${value}` -> txid (first commit with that value)
  for (const e of feed) {
    for (const [f, k] of [['first_name', 'firstName'], ['last_name', 'lastName'], ['email', 'email']]) {
      const key = `${e.user.workosId}|${f}|${e.user[k]}`;
      if (!txOf.has(key)) txOf.set(key, e.transactionId);
    }
  }
  const reqs = await fake.requests({ path: P });
  let orderChecked = 0;
  const lastTx = new Map();
  for (const r of reqs) {
    if (r.method !== 'PUT' || !r.body || typeof r.body !== 'object') continue;
    const wid = r.path.split('/').pop();
    for (const [f, v] of Object.entries(r.body)) {
      // The WorkOS-owned fields of section 4; the shared-fields document and
      // external_id (SPEC 4b) are checked by the convergence suite.
      if (f === 'metadata' || f === 'external_id') continue;
      const tx = txOf.get(`${wid}|${f}|${v}`);
      assert.ok(tx, `PUT ${wid} sent ${f}=${v}, a value never committed locally`);
      const k = `${wid}|${f}`;
      assert.ok(tx >= (lastTx.get(k) ?? 0), `PUT ${wid} went back in order: ${f}=${v} (txid ${tx}) after txid ${lastTx.get(k)}`);
      lastTx.set(k, tx);
      orderChecked++;
    }
  }
  // DELETE after every PUT of that user.
  for (const u of toDelete) {
    const mine = reqs.filter((r) => r.path.endsWith(`/${u.workosId}`));
    const firstDel = mine.findIndex((r) => r.method === 'DELETE');
    assert.ok(firstDel >= 0, `no DELETE for ${u.workosId}`);
    assert.ok(mine.slice(firstDel).every((r) => r.method === 'DELETE'), `a PUT after the DELETE of ${u.workosId}`);
  }

  // Request rate during the outage.
  const inOutage = reqs.filter((r) => r.ts >= downFrom && r.ts <= downTo);
  const outageSec = (downTo - downFrom) / 1000;
  const perSecond = [];
  for (let s0 = downFrom; s0 < downTo; s0 += 1000) perSecond.push(inOutage.filter((r) => r.ts >= s0 && r.ts < s0 + 1000).length);
  const byFault = {};
  for (const r of reqs) {
    const k = r.fault ?? String(r.status);
    byFault[k] = (byFault[k] ?? 0) + 1;
  }
  const figures = {
    seed,
    users: nUsers,
    updates: acked,
    deletes: toDelete.length,
    workloadMs,
    drainedMs,
    requests: reqs.length,
    byFault,
    ruleHits: faults.map((f) => `${f.status ?? (f.drop ? 'drop' : 'delay')}${f.retryAfter ? '+RA' : ''}${f.apply ? '+apply' : ''}:${f.hits}`).join(' '),
    outageSec,
    outageRequests: inOutage.length,
    outageRatePerSec: +(inOutage.length / outageSec).toFixed(2),
    outagePerSecond: perSecond,
    outageFirstSecond: perSecond[0],
    outageSteadyMaxPerSecond: Math.max(...perSecond.slice(1)),
    upstreamDuringOutage: statusDown.upstream.state,
    orderChecked,
  };
  log(JSON.stringify(figures));
  return figures;
}
