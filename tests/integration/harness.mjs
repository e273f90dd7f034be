// Test harness for usersd integration tests (node:test, no npm dependencies).
//
//   import { withFake, startDaemon, connect, seedUser, tokenFor } from './harness.mjs';
//   const fake = await withFake();                 // stopped by an `after` hook
//   const d = await startDaemon({ fake });         // stopped (exit code 0 asserted) by an `after` hook
//   const c = await connect(d.socketPath);         // closed by an `after` hook
//   const wu = await seedUser(fake, { email: 'ada@example.com' });
//   const token = await tokenFor(fake, wu, { org_id: 'org_1', role: 'admin' });
//   const exit = await c.request('user.me', undefined, { token });
//
// Everything started here registers its own cleanup (last started, first
// cleaned) with node:test's `after` at the top level, with `t.after` when a
// test context is passed as `t`, or with a describe() block's after hook via
// `const scope = suiteScope()` and `{ t: scope }` in its before() hooks.
// Nothing binds a fixed port; each daemon lives in a fresh temp dir.
// stop() and the final cleanup also fail on ASan/LSan/UBSan reports in the
// daemon's output.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFake } from '../workos-fake/client.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE_DIR = process.env.USERSD_SOURCE_DIR ?? path.resolve(here, '../..');
export const USERSD_BIN = process.env.USERSD_BIN ?? path.resolve(here, '../../build/daemon/usersd');

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const ISO_MS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value (returned) or `timeoutMs` passes (throws). */
export async function waitFor(fn, { timeoutMs = 10000, intervalMs = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

// Cleanups run last-registered first (connections, then daemons, then fakes).
const stacks = new WeakMap();
const ROOT = {};
function registerCleanup(t, fn) {
  const key = t ?? ROOT;
  let stack = stacks.get(key);
  if (!stack) {
    stack = [];
    stacks.set(key, stack);
    const drain = async () => {
      let firstError;
      while (stack.length) {
        try {
          await stack.pop()();
        } catch (e) {
          firstError ??= e;
        }
      }
      if (firstError) throw firstError;
    };
    if (t) t.after(drain);
    else after(drain);
  }
  stack.push(fn);
}

/**
 * A cleanup scope for a describe() block: call it synchronously in the
 * describe body and pass the result as `t` to helpers used in its before()
 * hooks; everything is cleaned up by the suite's after hook.
 */
export function suiteScope() {
  const fns = [];
  after(async () => {
    let firstError;
    while (fns.length) {
      try {
        await fns.pop()();
      } catch (e) {
        firstError ??= e;
      }
    }
    if (firstError) throw firstError;
  });
  return { after: (fn) => fns.push(fn) };
}

// ------------------------------------------------------------------ fake

/** Starts the WorkOS fake (tests/workos-fake) and stops it after the suite (or test `t`). */
export async function withFake(opts = {}) {
  const { t, ...rest } = opts;
  // Generous: the fake makes an RSA key at start, slow on a loaded machine.
  const fake = await startFake({ startTimeoutMs: 60000, ...rest });
  registerCleanup(t, () => fake.stop());
  return fake;
}

let seq = 0;
const uniq = () => `${process.pid}-${Date.now().toString(36)}-${(seq++).toString(36)}`;

/**
 * Creates a WorkOS user in the fake. Fields: email, firstName, lastName,
 * picture (profile_picture_url; null for none), plus any raw WorkOS fields in `raw`.
 */
export async function seedUser(fake, { email, firstName = 'Ada', lastName = 'Lovelace', picture, raw = {} } = {}) {
  const u = uniq();
  return fake.createUser({
    email: email ?? `user-${u}@example.com`,
    first_name: firstName,
    last_name: lastName,
    profile_picture_url: picture === undefined ? `https://avatars.example.com/${u}.png` : picture,
    ...raw,
  });
}

/** identity.namespace's default (domain/identity.h). */
export const DEFAULT_IDENTITY_NAMESPACE = '2d0a2811-61d1-50ed-bfc0-e2ac6ad2e741';

/** RFC 9562 version-5 UUID of `name` in namespace `ns`. */
export function uuidV5(ns, name) {
  const bytes = Buffer.from(ns.replace(/-/g, ''), 'hex');
  const h = crypto.createHash('sha1').update(bytes).update(Buffer.from(name, 'utf8')).digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/** The id every host gives a WorkOS user (SPEC 4b), in the default namespace. */
export const sharedId = (workosId, ns = DEFAULT_IDENTITY_NAMESPACE) => uuidV5(ns, workosId);

/** An access token for a WorkOS user (claims: org_id, role, expiresIn, alg, ... as POST /__test/token takes). */
export function tokenFor(fake, workosUser, claims = {}) {
  return fake.mintToken({ sub: workosUser.id, ...claims });
}

// ---------------------------------------------------------------- config

// Block-style YAML for plain objects; scalars and arrays as JSON (valid YAML).
export function toYaml(obj, indent = '') {
  let out = '';
  for (const [k, v] of Object.entries(obj)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      out += `${indent}${k}:\n${toYaml(v, indent + '  ')}`;
    } else {
      out += `${indent}${k}: ${JSON.stringify(v)}\n`;
    }
  }
  return out;
}

function deepMerge(base, extra) {
  const out = { ...base };
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object' && !Array.isArray(out[k])) {
      out[k] = deepMerge(out[k], v);
    } else {
      out[k] = v;
    }
  }
  return out;
}

/**
 * The YAML text of a test config. `configExtra` is an object (deep-merged
 * into the base) or YAML text (appended; a top-level section it names
 * replaces the base's section of that name entirely).
 */
export function buildConfig({ dir, fake, configExtra }) {
  let base = {
    socket: { path: path.join(dir, 'app.sock') },
    // admin.backup writes only below admin_socket.backup_dir; tests back up
    // into temp dirs of their own.
    admin_socket: { path: path.join(dir, 'admin.sock'), backup_dir: os.tmpdir() },
    store: { path: path.join(dir, 'store') },
    auth: { client_id: fake?.clientId ?? 'client_123' },
    workos: fake ? { base_url: fake.baseUrl, api_key: fake.apiKey } : { base_url: 'http://127.0.0.1:9' },
    log: { level: 'debug' },
  };
  if (typeof configExtra === 'string') {
    for (const m of configExtra.matchAll(/^([A-Za-z_][A-Za-z0-9_]*)\s*:/gm)) delete base[m[1]];
    return `${toYaml(base)}${configExtra.endsWith('\n') ? configExtra : `${configExtra}\n`}`;
  }
  if (configExtra) base = deepMerge(base, configExtra);
  return toYaml(base);
}

export async function makeTempDir(prefix = 'usd-') {
  // Short on purpose: sun_path holds at most 107 bytes.
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

// ---------------------------------------------------------------- daemon

/** True when something accepts connections on the Unix socket `p`. */
export function canConnect(p) {
  return new Promise((resolve) => {
    const c = net.createConnection(p);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

const MAX_LOG = 4 * 1024 * 1024;

// ASan/LSan/UBSan reports (UBSan does not stop the process unless
// UBSAN_OPTIONS=halt_on_error=1, so its reports must be looked for).
const SANITIZER_RE = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: |SUMMARY: (Address|Undefined|Leak)/;

/** Fails when `text` (daemon output) holds a sanitizer report. */
export function assertNoSanitizerReport(text, what = 'usersd') {
  const m = SANITIZER_RE.exec(text);
  if (m) {
    const from = Math.max(0, m.index - 2000);
    assert.fail(`${what} output holds a sanitizer report:\n${text.slice(from, m.index + 6000)}`);
  }
}

/**
 * Runs a program to completion: resolves to {code, signal, stdout, stderr};
 * rejects on a timeout or a sanitizer report in its output.
 */
export function runProgram(cmd, args, { cwd, env, timeoutMs = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(env ?? {}) } });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => (stderr += d));
    const what = `${path.basename(cmd)} ${args.join(' ')}`;
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${what} did not exit within ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    proc.once('error', reject);
    proc.once('close', (code, signal) => {
      clearTimeout(timer);
      try {
        assertNoSanitizerReport(stdout + stderr, what);
      } catch (e) {
        return reject(e);
      }
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Runs usersd to completion (e.g. --check-config): resolves to {code, signal, stdout, stderr}. */
export function runUsersd(args, opts = {}) {
  return runProgram(USERSD_BIN, args, opts);
}

/**
 * Starts usersd with a fresh temp dir and config, waits until its socket
 * accepts connections. opts: {configExtra, fake, env, args, t, dir (reuse),
 * startTimeoutMs}. The daemon is stopped after the suite (or test `t`);
 * that final stop asserts exit code 0 when the daemon is still running.
 */
export async function startDaemon(opts = {}) {
  const { configExtra, fake, env, args = [], t, startTimeoutMs = 15000 } = opts;
  const dir = opts.dir ?? (await makeTempDir());
  const configPath = path.join(dir, 'usersd.yaml');
  // 0600: the config holds the API key, and usersd refuses a key in a file
  // every user may read.
  fs.writeFileSync(configPath, buildConfig({ dir, fake, configExtra }), { mode: 0o600 });

  let logText = '';
  const d = {
    dir,
    configPath,
    socketPath: path.join(dir, 'app.sock'),
    adminPath: path.join(dir, 'admin.sock'),
    proc: null,
    exited: null, // promise of {code, signal} for the current process
    logs: () => logText,
    running: () => d.proc && d.proc.exitCode === null && d.proc.signalCode === null,
  };

  const spawnOnce = async () => {
    const proc = spawn(USERSD_BIN, ['--config', configPath, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...(env ?? {}) },
    });
    const onData = (chunk) => {
      logText += chunk;
      if (logText.length > MAX_LOG) logText = logText.slice(-MAX_LOG / 2);
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    d.proc = proc;
    d.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`usersd exited during startup (code ${proc.exitCode}, signal ${proc.signalCode})\n${tail(logText)}`);
      }
      if (await canConnect(d.socketPath)) return;
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`usersd did not accept connections within ${startTimeoutMs} ms\n${tail(logText)}`);
      }
      await sleep(15);
    }
  };

  /**
   * Sends SIGTERM once (without waiting). A second SIGTERM during shutdown may
   * hit the default action once the daemon closed its signal handlers, so
   * stop() does not send another after this.
   */
  d.sigterm = () => {
    if (!d.proc || d.proc.termSent) return;
    d.proc.termSent = true;
    d.proc.kill('SIGTERM');
  };
  /** SIGTERM (unless sent already), wait for exit, assert exit code 0. Resolves to {code, signal}. */
  d.stop = async ({ timeoutMs = 15000 } = {}) => {
    if (!d.proc) return { code: null, signal: null };
    const proc = d.proc;
    if (proc.exitCode === null && proc.signalCode === null) d.sigterm();
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    const r = await d.exited;
    clearTimeout(timer);
    assertNoSanitizerReport(logText);
    assert.equal(r.code, 0, `usersd exit code (signal ${r.signal})\n${tail(logText)}`);
    return r;
  };
  /** SIGKILL, as in a crash. */
  d.kill = async () => {
    if (!d.proc) return;
    if (d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill('SIGKILL');
    await d.exited;
    assertNoSanitizerReport(logText);
  };
  /** Stops (exit code 0 asserted) if running, then starts again with the same dir and config. */
  d.restart = async () => {
    if (d.running()) await d.stop();
    await spawnOnce();
    return d;
  };
  /** Rewrites the config file (e.g. before a restart). */
  d.writeConfig = (extra) => fs.writeFileSync(configPath, buildConfig({ dir, fake, configExtra: extra }), { mode: 0o600 });

  registerCleanup(t, async () => {
    try {
      if (d.running()) await d.stop();
      else assertNoSanitizerReport(logText);
    } finally {
      if (!opts.dir) await fsp.rm(dir, { recursive: true, force: true });
    }
  });
  await spawnOnce();
  return d;
}

function tail(text, n = 60) {
  const lines = text.split('\n');
  return lines.slice(-n).join('\n');
}

// ---------------------------------------------------------------- client

/**
 * A small NDJSON client for one connection. Replies are matched by id
 * (NDJSON `requestId`, JSON-RPC `id`); everything else (Pong, id-null
 * errors, unmatched replies) goes to the queue read by nextLine().
 */
export async function connect(socketPath, { t, timeoutMs = 15000 } = {}) {
  const sock = net.createConnection(socketPath);
  await new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  let buf = '';
  let nextId = 1;
  const effectPending = new Map(); // String(id) -> {resolve, reject, timer}
  const rpcPending = new Map();
  const queue = [];
  const waiters = [];
  let closed = false;
  let closeError = null;
  const closedPromise = new Promise((resolve) => sock.once('close', () => resolve()));

  const deliver = (msg) => {
    if (waiters.length) waiters.shift().resolve(msg);
    else queue.push(msg);
  };
  const settle = (map, key, msg) => {
    const p = map.get(key);
    if (!p) return false;
    map.delete(key);
    clearTimeout(p.timer);
    p.resolve(msg);
    return true;
  };
  const onLine = (line) => {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      deliver({ raw: line });
      return;
    }
    if (msg && typeof msg === 'object') {
      if (msg._tag === 'Exit' && msg.requestId !== undefined && settle(effectPending, String(msg.requestId), msg)) return;
      if (msg.jsonrpc === '2.0' && msg.id !== undefined && msg.id !== null && !msg.chunk && settle(rpcPending, String(msg.id), msg)) return;
    }
    deliver(msg);
  };
  sock.setEncoding('utf8');
  sock.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      onLine(line);
    }
  });
  sock.on('error', (e) => (closeError = e));
  sock.on('close', () => {
    closed = true;
    const err = new Error(`connection closed${closeError ? `: ${closeError.message}` : ''}`);
    for (const m of [effectPending, rpcPending]) {
      for (const p of m.values()) {
        clearTimeout(p.timer);
        p.reject(err);
      }
      m.clear();
    }
    for (const w of waiters.splice(0)) w.resolve(null);
  });

  const expect = (map, key, what) =>
    new Promise((resolve, reject) => {
      if (closed) return reject(new Error('connection closed'));
      const timer = setTimeout(() => {
        map.delete(key);
        reject(new Error(`no reply to ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      map.set(key, { resolve, reject, timer });
    });
  const authHeaders = (token, headers) => {
    const h = headers ? [...headers] : [];
    if (token !== undefined) h.push(['authorization', `Bearer ${token}`]);
    return h;
  };

  const c = {
    socket: sock,
    closed: closedPromise,
    isClosed: () => closed,
    /** NDJSON request; resolves to the Exit frame. opts: {token, id, headers (pairs or object)}. */
    request(tag, payload, { token, id, headers } = {}) {
      const rid = id ?? String(nextId++);
      const msg = { _tag: 'Request', id: rid, tag, headers: authHeaders(token, headers) };
      if (payload !== undefined) msg.payload = payload;
      const p = expect(effectPending, String(rid), `${tag} #${rid}`);
      sock.write(`${JSON.stringify(msg)}\n`);
      return p;
    },
    /** JSON-RPC request; resolves to the response. opts: {token, id, headers (pairs or object)}. */
    jsonrpc(method, params, { token, id, headers } = {}) {
      const rid = id ?? nextId++;
      let h = headers;
      if (!h || Array.isArray(h)) h = authHeaders(token, h);
      else if (token !== undefined) h = { ...h, authorization: `Bearer ${token}` };
      const msg = { jsonrpc: '2.0', id: rid, method, headers: h };
      if (params !== undefined) msg.params = params;
      const p = expect(rpcPending, String(rid), `${method} #${rid}`);
      sock.write(`${JSON.stringify(msg)}\n`);
      return p;
    },
    /** Writes a raw line (a '\n' is added when missing). */
    sendRaw(line) {
      sock.write(line.endsWith('\n') ? line : `${line}\n`);
    },
    /** Next unmatched message (parsed JSON, or {raw} when not JSON); null once closed. */
    nextLine(ms = timeoutMs) {
      if (queue.length) return Promise.resolve(queue.shift());
      if (closed) return Promise.resolve(null);
      return new Promise((resolve, reject) => {
        const w = {
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        };
        const timer = setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`no line within ${ms} ms`));
        }, ms);
        waiters.push(w);
      });
    },
    close() {
      sock.destroy();
      return closedPromise;
    },
  };
  registerCleanup(t, () => c.close());
  return c;
}

/** One request on a fresh connection (NDJSON unless {jsonrpc: true}). */
export async function call(socketPath, tag, payload, opts = {}) {
  const c = await connect(socketPath, { t: { after: () => {} } }); // closed below
  try {
    return opts.jsonrpc ? await c.jsonrpc(tag, payload, opts) : await c.request(tag, payload, opts);
  } finally {
    await c.close();
  }
}

// ------------------------------------------------------ reply assertions

/** The success value of an NDJSON Exit frame (asserts Success). */
export function ok(exit) {
  assert.equal(exit?._tag, 'Exit', `not an Exit frame: ${JSON.stringify(exit)}`);
  assert.equal(exit.exit._tag, 'Success', `expected Success, got ${JSON.stringify(exit.exit)}`);
  return exit.exit.value;
}

/** The typed error of an NDJSON Exit frame (asserts Failure/Fail and the tag when given). */
export function failure(exit, tag) {
  assert.equal(exit?._tag, 'Exit', `not an Exit frame: ${JSON.stringify(exit)}`);
  assert.equal(exit.exit._tag, 'Failure', `expected Failure, got ${JSON.stringify(exit.exit)}`);
  assert.equal(exit.exit.cause._tag, 'Fail', `expected a Fail cause, got ${JSON.stringify(exit.exit.cause)}`);
  if (tag) assert.equal(exit.exit.cause.error._tag, tag, `error: ${JSON.stringify(exit.exit.cause.error)}`);
  return exit.exit.cause.error;
}

/** The defect of an NDJSON Exit frame (asserts Failure/Die, defect name ValidationError by default). */
export function defect(exit, name = 'ValidationError') {
  assert.equal(exit?._tag, 'Exit', `not an Exit frame: ${JSON.stringify(exit)}`);
  assert.equal(exit.exit._tag, 'Failure', `expected Failure, got ${JSON.stringify(exit.exit)}`);
  assert.equal(exit.exit.cause._tag, 'Die', `expected a Die cause, got ${JSON.stringify(exit.exit.cause)}`);
  const d = exit.exit.cause.defect;
  assert.equal(typeof d, 'object');
  if (name) assert.equal(d.name, name, `defect: ${JSON.stringify(d)}`);
  assert.equal(typeof d.message, 'string');
  return d;
}

/** The typed error of a JSON-RPC response (asserts code and tag). */
export function rpcFailure(resp, code, tag) {
  assert.equal(resp.jsonrpc, '2.0');
  assert.ok(resp.error, `expected an error, got ${JSON.stringify(resp)}`);
  assert.equal(resp.error._tag, 'Cause');
  assert.equal(resp.error.code, code, JSON.stringify(resp.error));
  assert.equal(typeof resp.error.message, 'string');
  assert.equal(resp.error.data._tag, 'Fail');
  if (tag) assert.equal(resp.error.data.error._tag, tag);
  return resp.error.data.error;
}

/**
 * Seeds a WorkOS user, mints a token and provisions the local user with
 * user.me. Resolves to {workos, token, me, claims}.
 */
export async function newUser(fake, client, { claims = {}, publishedId = true, ...seed } = {}) {
  let workos = await seedUser(fake, seed);
  // Most suites test one host, so the user's id is taken as already
  // published (SPEC 4b: external_id set by another host) and provisioning
  // queues nothing; publishedId: false leaves external_id empty.
  if (publishedId && !workos.external_id) workos = await fake.createUser({ ...workos, external_id: sharedId(workos.id) });
  const token = await tokenFor(fake, workos, claims);
  const me = ok(await client.request('user.me', undefined, { token }));
  return { workos, token, me, claims };
}
