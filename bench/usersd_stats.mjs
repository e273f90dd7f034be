#!/usr/bin/env node
// bench/usersd_stats.mjs — what bench/compare.sh reads between runs, on one line:
//
//   node bench/usersd_stats.mjs --admin ADMIN_SOCK [--fake URL] [--clear-fake]
//
// Prints "users outbox_depth syncs commits workos_requests writes": the
// store's user count and outbox depth (admin.status), usersd_store_syncs_total
// and usersd_store_commits_total (admin.metrics; "n/a" from a binary without
// them), the number of User Management requests in the WorkOS-compatible test
// server's request log (GET /__test/requests; "n/a" without --fake), and
// usersd_writer_ops_total.
// --clear-fake empties that log afterwards (DELETE /__test/requests).
import net from 'node:net';

const args = process.argv.slice(2);
let admin = '';
let fake = '';
let clear = false;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--admin') admin = args[++i];
  else if (args[i] === '--fake') fake = args[++i];
  else if (args[i] === '--clear-fake') clear = true;
  else {
    console.error(`usersd_stats: unknown argument ${args[i]}`);
    process.exit(2);
  }
}
if (!admin) {
  console.error('usage: usersd_stats.mjs --admin ADMIN_SOCK [--fake URL] [--clear-fake]');
  process.exit(2);
}

// One admin request, its Exit's success value.
function call(tag) {
  return new Promise((resolve, reject) => {
    const s = net.connect(admin);
    let buf = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.write(JSON.stringify({ _tag: 'Request', id: '1', tag, payload: {}, headers: [] }) + '\n'));
    s.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      s.destroy();
      const m = JSON.parse(buf.slice(0, nl));
      if (m?.exit?._tag !== 'Success') reject(new Error(`${tag}: ${buf.slice(0, nl)}`));
      else resolve(m.exit.value);
    });
    s.on('error', reject);
  });
}

const status = await call('admin.status');
const metrics = (await call('admin.metrics')).text;
const metric = (name) => {
  const m = metrics.match(new RegExp(`^${name}(?:\\{\\})? ([0-9.e+]+)$`, 'm'));
  return m ? String(Math.round(Number(m[1]))) : 'n/a';
};
let workos = 'n/a';
if (fake) {
  const r = await fetch(`${fake}/__test/requests?path=${encodeURIComponent('^/user_management/')}`);
  workos = String((await r.json()).length);
  if (clear) await fetch(`${fake}/__test/requests`, { method: 'DELETE' });
}
console.log(
  [
    status.users,
    status.outbox.depth,
    metric('usersd_store_syncs_total'),
    metric('usersd_store_commits_total'),
    workos,
    metric('usersd_writer_ops_total'),
  ].join(' '),
);
