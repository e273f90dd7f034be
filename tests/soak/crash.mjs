#!/usr/bin/env node
// Long crash-safety run (issue 6 part 1). See docs/RELIABILITY.md.
//
//   USERSD_BIN=build-rel/daemon/usersd USERSD_BUILD_DIR=build-rel node tests/soak/crash.mjs \
//     [--rounds 500] [--users 100] [--conns 8] [--depth 8] [--traffic-ms 800] \
//     [--backup-rounds 20] [--backup-users 300000] [--resize-rounds 50] [--seed N]
//
// Prints one JSON line of figures per part; exits non-zero on the first failed check.
import { startDaemon, withFake } from '../integration/harness.mjs';
import { CRASH_CONFIG, backupKillRounds, crashRounds, resizeKillRounds } from './crash-lib.mjs';
import { manualScope } from './lib.mjs';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    rounds: { type: 'string', default: '500' },
    users: { type: 'string', default: '100' },
    conns: { type: 'string', default: '8' },
    depth: { type: 'string', default: '8' },
    'traffic-ms': { type: 'string', default: '800' },
    'backup-rounds': { type: 'string', default: '20' },
    'backup-users': { type: 'string', default: '300000' },
    'resize-rounds': { type: 'string', default: '50' },
    seed: { type: 'string', default: String(Date.now() % 1e9) },
  },
});
const seed = Number(o.seed);
const t = manualScope();
let code = 0;
try {
  const fake = await withFake({ t });
  const d = await startDaemon({ fake, t, configExtra: CRASH_CONFIG });
  const f = await crashRounds({ fake, d, t, rounds: +o.rounds, users: +o.users, conns: +o.conns, depth: +o.depth, maxTrafficMs: +o['traffic-ms'], seed });
  console.log(JSON.stringify({ part: 'updates+deletes', ...f }));
  await d.stop();
  if (+o['backup-rounds'] > 0) console.log(JSON.stringify({ part: 'backup', ...(await backupKillRounds({ fake, t, users: +o['backup-users'], rounds: +o['backup-rounds'], seed })) }));
  if (+o['resize-rounds'] > 0) console.log(JSON.stringify({ part: 'resize', ...(await resizeKillRounds({ fake, t, rounds: +o['resize-rounds'], seed })) }));
} catch (e) {
  console.error(`FAILED (seed ${seed}): ${e.stack ?? e}`);
  code = 1;
} finally {
  await t.run().catch((e) => {
    console.error(`cleanup: ${e.message}`);
    code = 1;
  });
}
process.exit(code);
