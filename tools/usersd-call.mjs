#!/usr/bin/env node
// usersd-call: send one request to a usersd socket and print the reply.
//
//   node tools/usersd-call.mjs [--socket PATH] [--token TOKEN] [--jsonrpc] METHOD [PAYLOAD_JSON]
//
// Uses the @effect/rpc NDJSON form by default, the JSON-RPC form with
// --jsonrpc. The token may also come from $USERSD_TOKEN. No dependencies.
import net from 'node:net';

const args = process.argv.slice(2);
let socket = process.env.USERSD_SOCKET || '/run/usersd/usersd.sock';
let token = process.env.USERSD_TOKEN || '';
let jsonrpc = false;
const rest = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--socket') socket = args[++i];
  else if (a === '--token') token = args[++i];
  else if (a === '--jsonrpc') jsonrpc = true;
  else if (a === '--help' || a === '-h') {
    console.log('usage: usersd-call.mjs [--socket PATH] [--token TOKEN] [--jsonrpc] METHOD [PAYLOAD_JSON]');
    process.exit(0);
  } else rest.push(a);
}
if (rest.length < 1) {
  console.error('usersd-call: METHOD is required (e.g. user.me)');
  process.exit(2);
}
const [method, payloadText] = rest;
let payload;
try {
  payload = payloadText ? JSON.parse(payloadText) : undefined;
} catch (e) {
  console.error(`usersd-call: PAYLOAD_JSON is not JSON: ${e.message}`);
  process.exit(2);
}
const headers = token ? [['authorization', `Bearer ${token}`]] : [];
const msg = jsonrpc
  ? { jsonrpc: '2.0', id: 1, method, params: payload ?? {}, headers }
  : { _tag: 'Request', id: '1', tag: method, payload: payload ?? {}, headers };

const conn = net.createConnection(socket);
let buf = '';
conn.on('connect', () => conn.write(JSON.stringify(msg) + '\n'));
conn.on('data', (d) => {
  buf += d;
  const nl = buf.indexOf('\n');
  if (nl < 0) return;
  const reply = JSON.parse(buf.slice(0, nl));
  console.log(JSON.stringify(reply, null, 2));
  conn.end();
  const failed = jsonrpc ? 'error' in reply : reply.exit?._tag !== 'Success';
  process.exitCode = failed ? 1 : 0;
});
conn.on('error', (e) => {
  console.error(`usersd-call: cannot reach ${socket}: ${e.message}`);
  process.exit(1);
});
