#!/usr/bin/env node
// dev-run: the working local setup behind `make run`.
//
// Starts the WorkOS-compatible test server (tests/workos-fake) and usersd
// with a config in .run/, creates a demo user in the fake WorkOS, mints an
// access token for it and prints a command that calls user.me. Ctrl-C (or
// SIGTERM) stops both. State lives in .run/ and survives restarts.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFake } from '../tests/workos-fake/client.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
let bin = path.join(root, 'build/daemon/usersd');
for (let i = 0; i < args.length; i++) if (args[i] === '--bin') bin = path.resolve(root, args[++i]);
const runDir = path.join(root, '.run');
fs.mkdirSync(runDir, { recursive: true });
const rel = (p) => path.relative(process.cwd(), p) || '.';

const fake = await startFake({
  keyFile: path.join(runDir, 'workos-key.json'),
  stateFile: path.join(runDir, 'workos-state.json'),
  stderr: 'inherit',
});

// The demo user, created once and kept in the fake's state file.
const demoEmail = 'ada@example.com';
let demo = (await fake.listUsers()).find((u) => u.email === demoEmail);
if (!demo) {
  demo = await fake.createUser({
    email: demoEmail,
    first_name: 'Ada',
    last_name: 'Lovelace',
    profile_picture_url: 'https://avatars.example.com/ada.png',
  });
}

const socketPath = path.join(runDir, 'usersd.sock');
const adminPath = path.join(runDir, 'admin.sock');
const configPath = path.join(runDir, 'usersd.yaml');
fs.writeFileSync(
  configPath,
  `# Written by tools/dev-run.mjs for \`make run\`; see docs/CONFIGURATION.md.
socket: { path: ${JSON.stringify(socketPath)}, mode: "0660" }
admin_socket: { path: ${JSON.stringify(adminPath)} }
store: { path: ${JSON.stringify(path.join(runDir, 'store'))} }
auth: { client_id: ${JSON.stringify(fake.clientId)} }
workos:
  base_url: ${JSON.stringify(fake.baseUrl)}
  api_key: ${JSON.stringify(fake.apiKey)}
  events_poll_seconds: 5
log: { level: info }
`,
  { mode: 0o600 }, // it holds the API key: usersd refuses a key every user may read
);

const daemon = spawn(bin, ['--config', configPath], { stdio: ['ignore', 'inherit', 'inherit'] });
let stopping = false;
const stop = async (code = 0) => {
  if (stopping) return;
  stopping = true;
  daemon.kill('SIGTERM');
  await new Promise((r) => (daemon.exitCode !== null ? r() : daemon.once('exit', r)));
  await fake.stop();
  process.exit(code);
};
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
daemon.on('exit', (code) => {
  if (!stopping) {
    console.error(`usersd exited with code ${code}`);
    stop(code || 1);
  }
});

// Wait for the socket to accept connections.
const deadline = Date.now() + 10000;
for (;;) {
  const ok = await new Promise((resolve) => {
    const c = net.createConnection(socketPath);
    c.once('connect', () => (c.end(), resolve(true)));
    c.once('error', () => resolve(false));
  });
  if (ok) break;
  if (Date.now() > deadline) {
    console.error('usersd did not open its socket within 10 s');
    await stop(1);
  }
  await new Promise((r) => setTimeout(r, 50));
}

const token = await fake.mintToken({ sub: demo.id, org_id: 'org_demo', role: 'owner', expiresIn: 24 * 3600 });
fs.writeFileSync(path.join(runDir, 'token'), token + '\n');
const call = `node ${rel(path.join(root, 'tools/usersd-call.mjs'))} --socket ${rel(socketPath)} --token "$(cat ${rel(path.join(runDir, 'token'))})"`;
console.log(`
usersd is running (pid ${daemon.pid})
  socket        ${rel(socketPath)}
  admin socket  ${rel(adminPath)}
  config        ${rel(configPath)}
  WorkOS fake   ${fake.baseUrl} (demo user ${demo.email}, WorkOS id ${demo.id})

A token for the demo user (valid 24 h) is in ${rel(path.join(runDir, 'token'))}:
${token}

Try, in another terminal:
  ${call} user.me
  ${call} user.update '{"id":"<id from user.me>","firstName":"Augusta","timezone":"Europe/London"}'
  ${call} --jsonrpc user.finalizeOnboarding
  ${rel(path.join(path.dirname(bin), '../usersctl/usersctl'))} --socket ${rel(adminPath)} status

Ctrl-C stops usersd and the WorkOS fake.
`);
