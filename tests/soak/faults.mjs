#!/usr/bin/env node
// Long WorkOS-faults soak (issue 6 part 2). See docs/RELIABILITY.md.
//
//   USERSD_BIN=build-rel/daemon/usersd node tests/soak/faults.mjs \
//     [--users 300] [--updates 5000] [--workers 16] [--outage-ms 20000] [--repeat 1] [--seed N]
import { startDaemon, withFake } from '../integration/harness.mjs';
import { FAULTS_CONFIG, faultsRun } from './faults-lib.mjs';
import { manualScope } from './lib.mjs';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    users: { type: 'string', default: '300' },
    updates: { type: 'string', default: '5000' },
    workers: { type: 'string', default: '16' },
    'outage-ms': { type: 'string', default: '20000' },
    repeat: { type: 'string', default: '1' },
    seed: { type: 'string', default: String(Date.now() % 1e9) },
  },
});
const t = manualScope();
let code = 0;
try {
  for (let r = 0; r < +o.repeat; r++) {
    const seed = Number(o.seed) + r;
    const fake = await withFake({ t });
    const d = await startDaemon({ fake, t, configExtra: FAULTS_CONFIG });
    const f = await faultsRun({ fake, d, users: +o.users, updates: +o.updates, workers: +o.workers, outageMs: +o['outage-ms'], seed });
    console.log(JSON.stringify(f));
    if (f.upstreamDuringOutage !== 'offline') throw new Error('upstream not reported offline during the outage');
    if (f.outageSteadyMaxPerSecond > 6) throw new Error(`outage rate ${f.outageSteadyMaxPerSecond}/s above the bound of 6/s`);
    await d.stop();
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
