// Helper for tests: spawn the WorkOS fake (server.mjs) as a child process and
// talk to its /__test control API. Uses only Node built-ins and global fetch.
//
//   import { startFake } from '../workos-fake/client.mjs';
//   const fake = await startFake();
//   const token = await fake.mintToken({ sub: 'user_01...' });
//   ...
//   await fake.stop();
//
// `connectFake(baseUrl)` gives the same helpers for a fake someone else
// started (e.g. `make run`).

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const SERVER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'server.mjs');

async function call(baseUrl, method, urlPath, body, headers = {}) {
  const res = await fetch(baseUrl + urlPath, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
  }
  return { status: res.status, headers: res.headers, body: json };
}

// Control-API call that must succeed; failures throw with the server's message.
async function control(baseUrl, method, urlPath, body) {
  const r = await call(baseUrl, method, urlPath, body);
  if (r.status >= 400) {
    const err = new Error(`workos-fake ${method} ${urlPath} -> ${r.status}: ${JSON.stringify(r.body)}`);
    err.status = r.status;
    err.body = r.body;
    throw err;
  }
  return r.body;
}

/**
 * Helpers bound to a running fake. `apiKey`/`clientId` must match the fake's.
 */
export function connectFake(baseUrl, { apiKey = 'sk_test_123', clientId = 'client_123' } = {}) {
  const c = (method, p, body) => control(baseUrl, method, p, body);
  return {
    baseUrl,
    apiKey,
    clientId,
    jwksUrl: `${baseUrl}/sso/jwks/${clientId}`,
    /** Claims for POST /__test/token ({sub, org_id, role, expiresIn, ...}); resolves to the JWT string. */
    mintToken: async (claims) => (await c('POST', '/__test/token', claims)).token,
    /** Like mintToken but resolves to {token, kid, header, claims}. */
    mintTokenDetailed: (claims) => c('POST', '/__test/token', claims),
    /** Upsert a user directly (no validation); pass emitEvent: true to also append an event. */
    createUser: (user) => c('POST', '/__test/users', user ?? {}),
    /** Bulk upsert: an array of users in one request. */
    createUsers: (list) => c('POST', '/__test/users', list),
    /** Stored user, or null when unknown (deleted). */
    getUser: async (id) => {
      const r = await call(baseUrl, 'GET', `/__test/users/${encodeURIComponent(id)}`);
      if (r.status === 404) return null;
      if (r.status >= 400) throw new Error(`workos-fake getUser -> ${r.status}`);
      return r.body;
    },
    /** The user WorkOS holds under this external_id (the real API: GET /user_management/users/external_id/:id), or null on 404. */
    getUserByExternalId: async (externalId) => {
      const r = await call(baseUrl, 'GET', `/user_management/users/external_id/${encodeURIComponent(externalId)}`, undefined, {
        authorization: `Bearer ${apiKey}`,
      });
      if (r.status === 404) return null;
      if (r.status >= 400) throw new Error(`workos-fake getUserByExternalId -> ${r.status}: ${JSON.stringify(r.body)}`);
      return r.body;
    },
    listUsers: () => c('GET', '/__test/users'),
    deleteUser: (id, { emitEvent = false } = {}) => c('DELETE', `/__test/users/${encodeURIComponent(id)}`, { emitEvent }),
    /** Request log; filter is {method?, path? (regex), since? (ms)}. */
    requests: (filter = {}) => {
      const qs = new URLSearchParams(Object.entries(filter).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)]));
      return c('GET', `/__test/requests${qs.size ? `?${qs}` : ''}`);
    },
    clearRequests: () => c('DELETE', '/__test/requests'),
    setFaults: (rules) => c('POST', '/__test/faults', { rules: Array.isArray(rules) ? rules : rules.rules }),
    getFaults: () => c('GET', '/__test/faults'),
    clearFaults: () => c('DELETE', '/__test/faults'),
    // Requests of `method` whose path matches `path` wait, received but not
    // applied, until release({order: 'arrival' | 'reverse', keepHolding}).
    hold: ({ method, path }) => c('POST', '/__test/hold', { method, path }),
    held: async () => (await c('GET', '/__test/held')).held,
    release: ({ order = 'arrival', keepHolding = false } = {}) => c('POST', '/__test/release', { order, keepHolding }),
    setDown: (down) => c('POST', '/__test/down', { down: Boolean(down) }),
    /** Switches where WorkOS's behaviour is not pinned down (README "Behaviour"); returns the new set. */
    setBehaviour: (patch) => c('POST', '/__test/behaviour', patch),
    getBehaviour: () => c('GET', '/__test/behaviour'),
    /** Append an arbitrary event: {event, data, created_at?, id?, context?}. */
    addEvent: (e) => c('POST', '/__test/events', e),
    listEvents: () => c('GET', '/__test/events'),
    /** New signing key; {keep: true} keeps the old one in the JWKS. Resolves to {kid, kids}. */
    rotateKey: (opts = {}) => c('POST', '/__test/rotate-key', opts),
    reset: () => c('POST', '/__test/reset'),
    info: () => c('GET', '/__test/info'),
    /** Flush --state-file now instead of waiting for the debounce. */
    save: () => c('POST', '/__test/save'),
    jwks: () => c('GET', `/sso/jwks/${clientId}`),
    /** Raw WorkOS API call with the API key: resolves to {status, headers, body}. */
    api: (method, p, body, { auth = true } = {}) =>
      call(baseUrl, method, p, body, auth ? { authorization: `Bearer ${apiKey}` } : {}),
  };
}

function spawnServer(args, { env, stderr, startTimeoutMs }) {
  const proc = spawn(process.execPath, [SERVER, ...args], {
    stdio: ['ignore', 'pipe', stderr === 'inherit' ? 'inherit' : 'pipe'],
    env: { ...process.env, ...(env ?? {}) },
  });
  let errText = '';
  proc.stderr?.on('data', (d) => {
    errText += d;
    if (errText.length > 64 * 1024) errText = errText.slice(-32 * 1024);
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`workos-fake did not start within ${startTimeoutMs} ms\n${errText}`));
    }, startTimeoutMs);
    const onExit = (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`workos-fake exited before listening (code ${code}, signal ${signal})\n${errText}`));
    };
    proc.once('exit', onExit);
    proc.stdout.on('data', function onData(d) {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      proc.off('exit', onExit);
      proc.stdout.off('data', onData);
      proc.stdout.resume(); // nothing else is printed, but never let the pipe fill
      try {
        resolve({ proc, ...JSON.parse(out.slice(0, nl)) });
      } catch (e) {
        proc.kill('SIGKILL');
        reject(new Error(`workos-fake printed an unexpected line: ${out.slice(0, nl)}`));
      }
    });
  });
}

function stopProcess(proc, timeoutMs = 5000) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    proc.kill('SIGTERM');
  });
}

/**
 * Spawn server.mjs and wait until it listens.
 *
 * opts: {port = 0, host, clientId = 'client_123', apiKey = 'sk_test_123',
 *        keyFile, stateFile, portFile, maxEvents, maxLog, verbose,
 *        eventsDefaultOrder, eventsIgnoreOrder, eventsIgnoreFilters, eventsIgnoreRangeStart, eventsRetentionMs,
 *        expiredCursor, tokenIssuer, metadataUpdate, externalIdConflictStatus,
 *        env, stderr ('pipe' | 'inherit'), startTimeoutMs = 15000}
 *
 * Resolves to connectFake()'s helpers plus {port, proc, stop(), restart()}.
 * restart() stops the fake and starts it again on the same port (pair it with
 * keyFile/stateFile to keep keys and data across the restart).
 */
export async function startFake(opts = {}) {
  const clientId = opts.clientId ?? 'client_123';
  const apiKey = opts.apiKey ?? 'sk_test_123';
  const args = (port) => {
    const a = ['--port', String(port), '--client-id', clientId, '--api-key', apiKey];
    if (opts.host) a.push('--host', opts.host);
    if (opts.keyFile) a.push('--key-file', opts.keyFile);
    if (opts.stateFile) a.push('--state-file', opts.stateFile);
    if (opts.portFile) a.push('--port-file', opts.portFile);
    if (opts.maxEvents !== undefined) a.push('--max-events', String(opts.maxEvents));
    if (opts.maxLog !== undefined) a.push('--max-log', String(opts.maxLog));
    if (opts.verbose) a.push('--verbose');
    // The events order a server uses when none is asked for; the environment
    // variable lets a whole test run switch it (newest first is WorkOS's).
    const order = opts.eventsDefaultOrder ?? process.env.WORKOS_FAKE_EVENTS_ORDER;
    if (order) a.push('--events-default-order', order);
    if (opts.eventsIgnoreOrder) a.push('--events-ignore-order');
    if (opts.eventsIgnoreFilters) a.push('--events-ignore-filters');
    if (opts.eventsIgnoreRangeStart) a.push('--events-ignore-range-start');
    if (opts.eventsRetentionMs !== undefined) a.push('--events-retention-ms', String(opts.eventsRetentionMs));
    if (opts.expiredCursor) a.push('--expired-cursor', opts.expiredCursor);
    if (opts.tokenIssuer) a.push('--token-issuer', opts.tokenIssuer);
    // How a PUT applies `metadata` (replace | merge); WORKOS_FAKE_METADATA_UPDATE
    // switches a whole run (the server reads it too; an explicit option wins).
    const metadataUpdate = opts.metadataUpdate ?? process.env.WORKOS_FAKE_METADATA_UPDATE;
    if (metadataUpdate) a.push('--metadata-update', metadataUpdate);
    if (opts.externalIdConflictStatus !== undefined) a.push('--external-id-conflict-status', String(opts.externalIdConflictStatus));
    // The form of events' created_at (iso | naive); the server also reads
    // WORKOS_FAKE_EVENTS_TIME_FORMAT, for a whole run.
    if (opts.eventsTimeFormat) a.push('--events-time-format', opts.eventsTimeFormat);
    return a;
  };
  const spawnOpts = { env: opts.env, stderr: opts.stderr, startTimeoutMs: opts.startTimeoutMs ?? 15000 };
  const started = await spawnServer(args(opts.port ?? 0), spawnOpts);
  const fake = {
    ...connectFake(started.baseUrl, { apiKey, clientId }),
    port: started.port,
    proc: started.proc,
    /** SIGTERM (SIGKILL after 5 s); resolves to the exit code. */
    stop: () => stopProcess(fake.proc),
    /** Hard kill, as in a crash: no state flush. */
    kill: () => {
      fake.proc.kill('SIGKILL');
      return new Promise((r) => (fake.proc.exitCode !== null || fake.proc.signalCode !== null ? r() : fake.proc.once('exit', () => r())));
    },
    restart: async () => {
      await stopProcess(fake.proc);
      const again = await spawnServer(args(fake.port), spawnOpts);
      fake.proc = again.proc;
      return fake;
    },
  };
  return fake;
}
