// Several hosts, one WorkOS (SPEC 4b; issue 13 item 6), short version: three
// daemons, each behind its own proxy to one WorkOS test server, a seeded
// random workload over six users from several workers at once, one host
// partitioned from WorkOS for a while, another killed with SIGKILL and
// restarted; then the hosts must agree on every user within 2 poll
// intervals + the outbox drain (+ slack), with no dead letters. The checks
// are described in tests/soak/convergence-lib.mjs; the long run is
// tests/soak/convergence.mjs.
//
// Knobs: CONVERGENCE_SEED (replay a run), CONVERGENCE_DURATION_MS (workload,
// default 25000), CONVERGENCE_SLACK_MS (default 10000, for a loaded 2-core
// machine), CONVERGENCE_SPEC4B_CONFIG=0 (leave out identity.namespace and
// sync.metadata for a binary that refuses them), CONVERGENCE_DELETES (users
// deleted during the run, default 1), CONVERGENCE_DELETED_FIELDS=skip (compare
// deleted users on id and deleted state only), CONVERGENCE_LEGACY_ID=1 (one
// more user, imported with an earlier system's id while another host
// provisioned it offline: SPEC 4b re-keying), CONVERGENCE_IMPORT=0 (no
// admin.users.import in the workload), WORKOS_FAKE_METADATA_UPDATE,
// CONVERGENCE_FIELDS=columns (harness self-check against a daemon without
// SPEC 4b: WorkOS columns only; not a test of SPEC 4b).
import { test } from 'node:test';
import { convergenceRun } from '../soak/convergence-lib.mjs';

const seed = Number(process.env.CONVERGENCE_SEED ?? Date.now() % 1e9);

test(`three hosts converge after concurrent writes, a partition and a kill -9 (seed ${seed})`, { timeout: 400000 }, async (t) => {
  const log = (s) => t.diagnostic(s);
  const { figures, failures } = await convergenceRun({
    t,
    seed,
    hosts: 3,
    users: 6,
    durationMs: Number(process.env.CONVERGENCE_DURATION_MS ?? 25000),
    workers: 6,
    pollSeconds: 1,
    slackMs: Number(process.env.CONVERGENCE_SLACK_MS ?? 10000),
    probeSlackMs: Number(process.env.CONVERGENCE_PROBE_SLACK_MS ?? 3000),
    deletes: Number(process.env.CONVERGENCE_DELETES ?? 1),
    legacyId: process.env.CONVERGENCE_LEGACY_ID === '1',
    log,
  });
  t.diagnostic(JSON.stringify(figures));
  if (failures.length) {
    throw new Error(`${failures.length} failures (seed ${seed}; replay with CONVERGENCE_SEED=${seed}):\n${failures.join('\n')}\nfigures: ${JSON.stringify(figures)}`);
  }
});
