#!/usr/bin/env node
// Long convergence soak (SPEC 4b, issue 13 item 6). See the checks in
// tests/soak/convergence-lib.mjs; the short version is
// tests/integration/convergence.test.mjs.
//
//   USERSD_BIN=build/daemon/usersd node tests/soak/convergence.mjs \
//     [--hosts 3] [--users 12] [--rounds 5] [--duration-ms 60000] [--cycles 2]
//     [--workers 8] [--ops N (per round, default unbounded)] [--deletes 1] [--legacy-id]
//     [--metadata replace|merge] [--poll-seconds 1] [--slack-ms 10000]
//     [--probe-slack-ms 3000] [--seed N]
//
// Every round: random writes for --duration-ms (or --ops) from --workers
// workers over --users users on --hosts hosts, --cycles times one host cut
// off from WorkOS and another killed with SIGKILL; then writes stop, the
// partition heals and the hosts must agree. --metadata starts the WorkOS test
// server with WORKOS_FAKE_METADATA_UPDATE (metadata replaced or merged on
// PUT). --legacy-id adds a user imported on one host with an earlier
// system's id while another host provisioned it offline (SPEC 4b re-keying). Environment: CONVERGENCE_SEED (as --seed), CONVERGENCE_SPEC4B_CONFIG=0
// (leave out identity.namespace / sync.metadata), SOAK_QUIET=1.
// Prints one JSON line of figures; exit status 1 on any failure.
import { parseArgs } from 'node:util';
import { convergenceRun } from './convergence-lib.mjs';
import { log, manualScope } from './lib.mjs';

const { values: o } = parseArgs({
  options: {
    hosts: { type: 'string', default: '3' },
    users: { type: 'string', default: '12' },
    rounds: { type: 'string', default: '5' },
    'duration-ms': { type: 'string', default: '60000' },
    cycles: { type: 'string', default: '2' },
    workers: { type: 'string', default: '8' },
    ops: { type: 'string', default: '0' },
    deletes: { type: 'string', default: '1' },
    'legacy-id': { type: 'boolean', default: false },
    metadata: { type: 'string' },
    'poll-seconds': { type: 'string', default: '1' },
    'slack-ms': { type: 'string', default: '10000' },
    'probe-slack-ms': { type: 'string', default: '3000' },
    seed: { type: 'string', default: process.env.CONVERGENCE_SEED ?? String(Date.now() % 1e9) },
  },
});
if (o.metadata && !['replace', 'merge'].includes(o.metadata)) {
  console.error('--metadata must be replace or merge');
  process.exit(2);
}
const t = manualScope();
let code = 0;
try {
  const seed = Number(o.seed);
  console.log(`seed ${seed} (replay with --seed ${seed})`);
  const { figures, failures } = await convergenceRun({
    t,
    seed,
    hosts: +o.hosts,
    users: +o.users,
    rounds: +o.rounds,
    durationMs: +o['duration-ms'],
    cycles: +o.cycles,
    workers: +o.workers,
    maxOps: +o.ops > 0 ? +o.ops : Infinity,
    deletes: +o.deletes,
    legacyId: o['legacy-id'],
    metadataUpdate: o.metadata ?? process.env.WORKOS_FAKE_METADATA_UPDATE,
    pollSeconds: +o['poll-seconds'],
    slackMs: +o['slack-ms'],
    probeSlackMs: +o['probe-slack-ms'],
    log,
  });
  console.log(JSON.stringify(figures));
  if (failures.length) {
    console.error(`FAILED: ${failures.length} failures (seed ${seed}):\n${failures.join('\n')}`);
    code = 1;
  }
} catch (e) {
  console.error(`FAILED: ${e.stack ?? e}`);
  code = 1;
} finally {
  await t.run().catch((e) => {
    console.error(`cleanup: ${e.message}`);
    code = 1;
  });
}
process.exit(code);
