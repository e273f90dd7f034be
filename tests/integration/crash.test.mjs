// Crash safety (issue 6 part 1), short version: SIGKILL at random moments
// under concurrent user.update/user.delete traffic, during a hot backup of a
// large store, and while the LMDB map grows. The checks are described in
// tests/soak/crash-lib.mjs; the long run is tests/soak/crash.mjs.
//
// Knobs: CRASH_ROUNDS (default 20), SEED (replay a failing run).
import { test } from 'node:test';
import { startDaemon, withFake } from './harness.mjs';
import { CRASH_CONFIG, backupKillRounds, crashRounds, resizeKillRounds } from '../soak/crash-lib.mjs';

const seed = Number(process.env.SEED ?? Date.now() % 1e9);

test(`SIGKILL under concurrent updates and deletes: nothing acknowledged is lost, no transactionId reused, every job delivered (seed ${seed})`, async (t) => {
  const fake = await withFake({ t });
  const d = await startDaemon({ fake, t, configExtra: CRASH_CONFIG });
  const rounds = Number(process.env.CRASH_ROUNDS ?? 20);
  const f = await crashRounds({ fake, d, t, rounds, users: 30, conns: 4, depth: 4, maxTrafficMs: 300, seed });
  t.diagnostic(JSON.stringify(f));
});

test(`SIGKILL during a hot backup of a large store: restart fine, a new backup works (seed ${seed})`, async (t) => {
  const fake = await withFake({ t });
  const f = await backupKillRounds({ fake, t, users: 30000, rounds: 3, seed });
  t.diagnostic(JSON.stringify(f));
});

test(`SIGKILL while the map grows (map_size_mib 1): the store opens with all acked data (seed ${seed})`, async (t) => {
  const fake = await withFake({ t });
  const f = await resizeKillRounds({ fake, t, rounds: 4, streams: 3, seed });
  t.diagnostic(JSON.stringify(f));
});
