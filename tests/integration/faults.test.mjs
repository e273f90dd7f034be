// WorkOS faults (issue 6 part 2), short version: ~500 updates for 50 users
// under a random mix of 500/502/503/429 (with and without Retry-After),
// delays past workos.timeout_ms (500 ms), dropped connections (some after
// applying the change) and a 3 s full outage. The checks are described in
// tests/soak/faults-lib.mjs; the long run is tests/soak/faults.mjs.
//
// Knobs: FAULTS_UPDATES (500), FAULTS_USERS (50), SEED.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, withFake } from './harness.mjs';
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
