#!/usr/bin/env node
// outbox_drain: how fast the outbox drains into a local WorkOS-compatible
// server (SPEC section 7: at least 2,000 jobs/s).
//
//   node bench/outbox_drain.mjs [--bin build/daemon/usersd] [--jobs 5000] [--concurrency 8]
//
// N users are provisioned (org "org_bench"), WorkOS is taken down, one
// update per user is queued through an org admin's token (durable before the
// reply), WorkOS comes back, and the time between the first and the last
// accepted PUT in the fake's request log gives the rate. Prints one JSON line.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFake } from '../tests/workos-fake/client.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = { bin: path.join(root, 'build/daemon/usersd'), jobs: 5000, concurrency: 8 };
for (let i = 0; i < args.length; i++) {
  const k = args[i].replace(/^--/, '');
  if (!(k in opt)) {
    console.error(`unknown option ${args[i]}`);
    process.exit(2);
  }
  opt[k] = k === 'bin' ? path.resolve(args[++i]) : Number(args[++i]);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function connect(socketPath) {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(socketPath);
    const waiting = new Map();
    let next = 1;
    let buf = '';
    s.on('data', (d) => {
      buf += d;
      for (let nl; (nl = buf.indexOf('\n')) >= 0; ) {
        const msg = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        waiting.get(msg.requestId)?.(msg);
        waiting.delete(msg.requestId);
      }
    });
    s.once('error', reject);
    s.once('connect', () =>
      resolve({
        call(tag, payload, token) {
          const id = String(next++);
          return new Promise((res) => {
            waiting.set(id, (m) => res(m.exit));
            s.write(JSON.stringify({ _tag: 'Request', id, tag, payload, headers: [['authorization', `Bearer ${token}`]] }) + '\n');
          });
        },
        close: () => s.end(),
      }),
    );
  });
}

async function pool(items, width, fn) {
  let i = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (i < items.length) {
      const k = i++;
      await fn(items[k], k);
    }
  }));
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'usersd-drain-'));
const fake = await startFake({ maxLog: Math.max(100000, opt.jobs * 3) });
const config = path.join(dir, 'usersd.yaml');
fs.writeFileSync(config, `socket: { path: ${JSON.stringify(path.join(dir, 'app.sock'))} }
admin_socket: { path: ${JSON.stringify(path.join(dir, 'admin.sock'))} }
store: { path: ${JSON.stringify(path.join(dir, 'store'))} }
auth: { client_id: ${JSON.stringify(fake.clientId)} }
workos: { base_url: ${JSON.stringify(fake.baseUrl)}, api_key: ${JSON.stringify(fake.apiKey)}, events_poll_seconds: 0, max_concurrency: ${opt.concurrency} }
outbox: { initial_backoff_ms: 50, max_backoff_ms: 500 }
policy: { org_admins_manage_members: true }
log: { level: warn }
`, { mode: 0o600 });
const daemon = spawn(opt.bin, ['--config', config], { stdio: ['ignore', 'inherit', 'inherit'] });
try {
  const socketPath = path.join(dir, 'app.sock');
  let conn;
  for (let i = 0; ; i++) {
    try {
      conn = await connect(socketPath);
      break;
    } catch (e) {
      if (i > 200) throw e;
      await sleep(50);
    }
  }
  const list = Array.from({ length: opt.jobs }, (_, i) => ({ email: `bench${i}@example.com`, first_name: 'B', last_name: `${i}` }));
  const created = [];
  for (let i = 0; i < list.length; i += 1000) created.push(...(await fake.createUsers(list.slice(i, i + 1000))));
  const admin = await fake.createUser({ email: 'bench-admin@example.com', first_name: 'A', last_name: 'A' });
  const adminToken = await fake.mintToken({ sub: admin.id, org_id: 'org_bench', role: 'admin', expiresIn: 3600 });
  await conn.call('user.me', {}, adminToken);
  const ids = new Array(created.length);
  await pool(created, 32, async (u, k) => {
    const token = await fake.mintToken({ sub: u.id, org_id: 'org_bench', role: 'member', expiresIn: 3600 });
    const me = await conn.call('user.me', {}, token);
    if (me._tag !== 'Success') throw new Error(`provisioning failed: ${JSON.stringify(me)}`);
    ids[k] = me.value.id;
  });

  await fake.setDown(true);
  const queuedAt = Date.now();
  await pool(ids, 64, async (id) => {
    const r = await conn.call('user.update', { id, firstName: 'Drained' }, adminToken);
    if (r._tag !== 'Success') throw new Error(`update failed: ${JSON.stringify(r)}`);
  });
  const queueMs = Date.now() - queuedAt;
  await sleep(200);
  await fake.clearRequests();
  const upAt = Date.now();
  await fake.setDown(false);
  let ok = [];
  for (;;) {
    const log = await fake.requests({ method: 'PUT' });
    ok = log.filter((r) => r.status === 200);
    if (ok.length >= opt.jobs) break;
    if (Date.now() - upAt > 120000) throw new Error(`only ${ok.length} of ${opt.jobs} delivered in 120 s`);
    await sleep(100);
  }
  const first = ok[0].ts;
  const last = ok[ok.length - 1].ts;
  const drainMs = Math.max(1, last - first);
  console.log(JSON.stringify({
    jobs: opt.jobs,
    concurrency: opt.concurrency,
    queue_ms: queueMs,
    drain_ms: drainMs,
    jobs_per_s: Math.round((ok.length / drainMs) * 1000),
    from_up_ms: last - upAt,
    puts: ok.length,
  }));
  conn.close();
} finally {
  daemon.kill('SIGTERM');
  await new Promise((r) => (daemon.exitCode !== null ? r() : daemon.once('exit', r)));
  await fake.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
