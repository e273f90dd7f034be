// How long a full reconciliation (SPEC 4b) of N WorkOS users takes against
// the WorkOS-compatible test server, and at what request rate.
//
//   node bench/reconcile.mjs --bin build/daemon/usersd [--users 100000] [--rps 5]
//
// Seeds N users in the fake (no events), starts usersd with
// sync.reconcile.requests_per_second = rps, asks for admin.users.resync
// {all: true}, and prints the run's time, list requests and their rate as
// the fake logged them, and the users stored. Everything runs in a temp dir
// and is stopped at the end.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startFake } from '../tests/workos-fake/client.mjs';
import { call, canConnect, sleep, toYaml } from '../tests/integration/harness.mjs';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}
const bin = arg('bin', 'build/daemon/usersd');
const users = Number(arg('users', '100000'));
const rps = Number(arg('rps', '5'));

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'usd-rec-'));
const fake = await startFake({ maxLog: 1000000 });
let daemon;
try {
  for (let i = 0; i < users; i += 5000) {
    const batch = [];
    for (let j = i; j < Math.min(users, i + 5000); j++) batch.push({ email: `r${j}@example.com`, first_name: `R${j}`, last_name: 'K' });
    await fake.createUsers(batch);
  }
  const config = {
    socket: { path: path.join(dir, 'app.sock') },
    admin_socket: { path: path.join(dir, 'admin.sock') },
    store: { path: path.join(dir, 'store'), map_size_mib: 256 },
    workos: { base_url: fake.baseUrl, api_key: fake.apiKey, events_poll_seconds: 0 },
    sync: { reconcile: { requests_per_second: rps, interval_hours: 0 } },
    log: { level: 'warn' },
  };
  fs.writeFileSync(path.join(dir, 'usersd.yaml'), toYaml(config), { mode: 0o600 });
  daemon = spawn(bin, ['--config', path.join(dir, 'usersd.yaml')], { stdio: ['ignore', 'inherit', 'inherit'] });
  while (!(await canConnect(config.admin_socket.path))) await sleep(20);
  const admin = async (tag, payload) => {
    const r = await call(config.admin_socket.path, tag, payload);
    if (r.exit._tag !== 'Success') throw new Error(JSON.stringify(r.exit));
    return r.exit.value;
  };
  await fake.clearRequests();
  const t0 = Date.now();
  const started = await admin('admin.users.resync', { all: true });
  let s;
  for (;;) {
    s = (await admin('admin.status')).reconcile;
    if (s.state === 'idle' && s.runId === started.runId && s.finishedAt) break;
    await sleep(200);
  }
  const secs = (Date.now() - t0) / 1000;
  const lists = await fake.requests({ method: 'GET', path: '^/user_management/users$' });
  const span = (lists.at(-1).ts - lists[0].ts) / 1000;
  const stored = (await admin('admin.status')).users;
  console.log(JSON.stringify({
    users, rps, seconds: Number(secs.toFixed(1)), listRequests: lists.length,
    requestsPerSecond: Number(((lists.length - 1) / span).toFixed(2)), usersSeen: s.usersSeen, usersStored: stored,
    usersPerSecond: Math.round(s.usersSeen / secs),
  }));
} finally {
  if (daemon) {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
  }
  await fake.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
