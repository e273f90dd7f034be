#!/usr/bin/env node
// Long socket-abuse run: the abuse suite with bigger knobs, repeated.
//
//   USERSD_BIN=build-rel/daemon/usersd node tests/soak/abuse.mjs [--repeat 5] [--connections 10000] [--garbage-mb 1000] [--pipeline 100000]
//
// Needs `ulimit -n` above connections + 100 (the daemon inherits it).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    repeat: { type: 'string', default: '5' },
    connections: { type: 'string', default: '10000' },
    'garbage-mb': { type: 'string', default: '1000' },
    pipeline: { type: 'string', default: '100000' },
  },
});
const here = path.dirname(fileURLToPath(import.meta.url));
for (let r = 0; r < +o.repeat; r++) {
  const res = spawnSync(process.execPath, ['--test', path.join(here, '../integration/abuse.test.mjs')], {
    stdio: 'inherit',
    env: { ...process.env, ABUSE_CONNECTIONS: o.connections, ABUSE_GARBAGE_MB: o['garbage-mb'], ABUSE_PIPELINE: o.pipeline },
  });
  if (res.status !== 0) process.exit(res.status ?? 1);
}
