// WorkOS faults (issue 6 part 2), short version: ~500 updates for 50 users
// under a random mix of 500/502/503/429 (with and without Retry-After),
// delays past workos.timeout_ms (500 ms), dropped connections (some after
// applying the change) and a 3 s full outage. The checks are described in
// tests/soak/faults-lib.mjs; the long run is tests/soak/faults.mjs.
//
// Knobs: FAULTS_UPDATES (500), FAULTS_USERS (50), SEED.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, connect, newUser, ok, startDaemon, waitFor, withFake } from './harness.mjs';
import { FAULTS_CONFIG, MAX_BACKOFF_MS, faultsRun } from '../soak/faults-lib.mjs';

const seed = Number(process.env.SEED ?? Date.now() % 1e9);

test(`WorkOS faults and an outage: WorkOS ends with exactly the local values, in order, nothing lost, bounded outage rate (seed ${seed})`, async (t) => {
  const fake = await withFake({ t });
  const d = await startDaemon({ fake, t, configExtra: FAULTS_CONFIG });
  const f = await faultsRun({
    fake,
    d,
    users: Number(process.env.FAULTS_USERS ?? 50),
    updates: Number(process.env.FAULTS_UPDATES ?? 500),
    outageMs: 3000,
    seed,
  });
  t.diagnostic(JSON.stringify(f));
  assert.equal(f.upstreamDuringOutage, 'offline');
  // The whole outbox backs off (max_backoff_ms 1 s, full jitter): a few
  // probes per second at most, not one retry loop per user (50 users with
  // 50 ms initial backoff would be hundreds per second).
  // The first second holds the requests already in flight or due when WorkOS
  // went down (at most a few per workos.max_concurrency slot); after that the
  // sender probes about once per backoff interval.
  assert.ok(f.outageFirstSecond <= 40, `${f.outageFirstSecond} requests in the first second of the outage`);
  const bound = 6 * Math.ceil(1000 / MAX_BACKOFF_MS); // full jitter can put two probes close together
  assert.ok(f.outageSteadyMaxPerSecond <= bound, `${f.outageSteadyMaxPerSecond} requests in one second of the outage after the first (bound ${bound}): ${f.outagePerSecond}`);
});

// WorkOS limits AuthKit's /user_management/* to so many reads and writes per
// window per environment (1,000 and 500 per 10 s) and answers 429 with
// Retry-After past that; a fleet sharing one environment reaches it. Scaled
// down here: 10 reads and 10 writes per second for one host.
test('under WorkOS rate limits the outbox drains: 429s wait for Retry-After, nothing is dead-lettered or lost', async (t) => {
  const fake = await withFake({ t });
  const d = await startDaemon({
    fake,
    t,
    configExtra: {
      workos: { timeout_ms: 2000, events_poll_seconds: 0, max_concurrency: 8 },
      outbox: { initial_backoff_ms: 50, max_backoff_ms: 2000 },
      log: { level: 'warn' },
    },
  });
  const conn = await connect(d.socketPath, { t });
  const users = [];
  for (let i = 0; i < 20; i++) users.push(await newUser(fake, conn, { firstName: 'F', lastName: 'L' }));
  await waitFor(async () => (await call(d.adminPath, 'admin.status')).exit.value.outbox.depth === 0, { what: 'provisioning settled' });
  await fake.clearRequests();
  await fake.setBehaviour({ rateLimit: { windowMs: 1000, reads: 10, writes: 10 } });
  const t0 = Date.now();
  let n = 0;
  for (let round = 0; round < 5; round++) {
    await Promise.all(users.map(async (u) => {
      const patch = { id: u.me.id, firstName: `R${round}x${n++}` };
      if (round === 4) patch.timezone = 'Asia/Tokyo'; // a shared field: a GET, then a PUT
      ok(await conn.request('user.update', patch, { token: u.token }));
    }));
  }
  const status = await waitFor(async () => {
    const s = ok(await call(d.adminPath, 'admin.status'));
    return s.outbox.depth === 0 && s;
  }, { what: 'the outbox drained under the limit', timeoutMs: 90_000, intervalMs: 200 });
  const drainMs = Date.now() - t0;
  assert.equal(status.deadLetters, 0);
  for (const u of users) {
    const local = ok(await call(d.adminPath, 'admin.users.get', { id: u.me.id }));
    const remote = await fake.getUser(u.workos.id);
    assert.equal(remote.first_name, local.firstName, `user ${u.me.id}`);
    assert.ok(remote.metadata && Object.values(remote.metadata).join('').includes('Asia/Tokyo'), `user ${u.me.id}: the shared timezone`);
  }
  const log = await fake.requests({ path: '^/user_management/' });
  const limited = log.filter((r) => r.status === 429).length;
  const done = log.filter((r) => r.status >= 200 && r.status < 300).length;
  t.diagnostic(JSON.stringify({ drainMs, requests: log.length, done, limited }));
  assert.ok(limited > 0, 'the test reached the limit');
  // The sender holds every send until Retry-After, so the refused requests
  // stay a fraction of the delivered ones rather than a retry storm.
  assert.ok(limited <= done, `${limited} requests refused for ${done} delivered`);
});
