#!/usr/bin/env node
// WorkOS-compatible fake for usersd's integration tests and `make run`.
//
// It serves the slice of the WorkOS API that usersd talks to (JWKS, User
// Management users, Events) with the real wire shapes, plus an unauthenticated
// control API under /__test/ that tests use to seed users, mint access tokens,
// inspect the request log and inject faults. No npm dependencies: Node >= 20.
//
// Usage: node server.mjs [--port 0] [--host 127.0.0.1] [--client-id client_123]
//          [--api-key sk_test_123] [--key-file path.json] [--state-file path.json]
//          [--port-file path] [--max-events 500000] [--max-log 100000] [--verbose]
//          [--metadata-update replace|merge] [--external-id-conflict-status 400|409|422]
//          (and the behaviour switches listed by --help; see README.md)
//
// Once listening it prints exactly one line on stdout:
//   {"port":N,"baseUrl":"http://127.0.0.1:N"}
// Everything else (only with --verbose) goes to stderr.

import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

// ---------------------------------------------------------------------------
// Identifiers

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

// Monotonic ULIDs: event ids must sort in creation order even when many are
// created within one millisecond, because GET /events pages by `after=<id>`.
let ulidLastTime = -1;
const ulidRandom = new Array(16).fill(0);

function ulid() {
  let now = Date.now();
  if (now <= ulidLastTime) {
    now = ulidLastTime;
    // Same (or earlier, if the clock stepped back) millisecond: increment the
    // 80-bit random part so the id still sorts after the previous one.
    let i = 15;
    while (i >= 0 && ulidRandom[i] === 31) ulidRandom[i--] = 0;
    if (i < 0) {
      now = ++ulidLastTime; // random part overflowed: borrow the next ms
      for (let j = 0; j < 16; j++) ulidRandom[j] = crypto.randomInt(32);
    } else {
      ulidRandom[i]++;
    }
  } else {
    ulidLastTime = now;
    const bytes = crypto.randomBytes(16);
    for (let j = 0; j < 16; j++) ulidRandom[j] = bytes[j] & 31;
  }
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32] + time;
    t = Math.floor(t / 32);
  }
  let rand = '';
  for (let j = 0; j < 16; j++) rand += CROCKFORD[ulidRandom[j]];
  return time + rand;
}

const newUserId = () => `user_${ulid()}`;
const newEventId = () => `event_${ulid()}`;
const newKid = () => `sso_oidc_key_pair_${ulid()}`;

const b64url = (buf) => Buffer.from(buf).toString('base64url');

// ---------------------------------------------------------------------------
// Signing keys and a self-signed certificate for the JWKS `x5c` member.
//
// Real WorkOS JWKS entries carry x5c and x5t#S256 next to n/e; serving them too
// keeps a verifier that (wrongly) depends on either honest in tests.

function derLength(n) {
  if (n < 0x80) return Buffer.from([n]);
  const bytes = [];
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n >>>= 8;
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const der = (tag, ...parts) => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
};
const derSeq = (...p) => der(0x30, ...p);
const derSet = (...p) => der(0x31, ...p);
const DER_NULL = Buffer.from([0x05, 0x00]);
function derOid(dotted) {
  const arcs = dotted.split('.').map(Number);
  const out = [40 * arcs[0] + arcs[1]];
  for (const arc of arcs.slice(2)) {
    const chunk = [arc & 0x7f];
    let v = Math.floor(arc / 128);
    while (v > 0) {
      chunk.unshift((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(...chunk);
  }
  return der(0x06, Buffer.from(out));
}
function derUInt(buf) {
  // DER integers are signed: a leading 1 bit needs a 0x00 pad to stay positive.
  return der(0x02, buf[0] & 0x80 ? Buffer.concat([Buffer.from([0]), buf]) : buf);
}
function derTime(d) {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z'; // YYYYMMDDHHMMSSZ
  const year = d.getUTCFullYear();
  // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
  return year < 2050 ? der(0x17, Buffer.from(iso.slice(2))) : der(0x18, Buffer.from(iso));
}

function selfSignedCertDer(privateKey, publicKey, commonName) {
  const sha256WithRsa = derSeq(derOid('1.2.840.113549.1.1.11'), DER_NULL);
  const name = derSeq(derSet(derSeq(derOid('2.5.4.3'), der(0x0c, Buffer.from(commonName)))));
  const serial = crypto.randomBytes(16);
  serial[0] &= 0x7f;
  const now = Date.now();
  const tbs = derSeq(
    der(0xa0, derUInt(Buffer.from([2]))), // version v3
    derUInt(serial),
    sha256WithRsa,
    name,
    derSeq(derTime(new Date(now - 86400e3)), derTime(new Date(now + 10 * 365 * 86400e3))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
  );
  const signature = crypto.sign('sha256', tbs, privateKey);
  return derSeq(tbs, sha256WithRsa, der(0x03, Buffer.concat([Buffer.from([0]), signature])));
}

function makeKeyEntry(kid, privateKeyPem) {
  const privateKey = crypto.createPrivateKey(privateKeyPem);
  const publicKey = crypto.createPublicKey(privateKey);
  const { n, e } = publicKey.export({ format: 'jwk' });
  const cert = selfSignedCertDer(privateKey, publicKey, `WorkOS fake ${kid}`);
  return {
    kid,
    privateKeyPem,
    privateKey,
    publicKey,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }),
    jwk: {
      alg: 'RS256',
      kty: 'RSA',
      use: 'sig',
      x5c: [cert.toString('base64')],
      n,
      e,
      kid,
      'x5t#S256': b64url(crypto.createHash('sha256').update(cert).digest()),
    },
  };
}

async function generateKeyEntry() {
  const privateKeyPem = await new Promise((resolve, reject) =>
    crypto.generateKeyPair(
      'rsa',
      { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } },
      (err, _pub, priv) => (err ? reject(err) : resolve(priv)),
    ),
  );
  return makeKeyEntry(newKid(), privateKeyPem);
}

// Writes via a temp file + rename so a concurrent reader (or a crash) never
// sees a half-written file.
function writeFileAtomic(file, data) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

// ---------------------------------------------------------------------------
// Validation helpers (WorkOS-style 4xx bodies)

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const PASSWORD_HASH_TYPES = new Set(['bcrypt', 'firebase-scrypt', 'ssha', 'scrypt', 'pbkdf2', 'argon2']);
const USER_WRITABLE = new Set([
  'email', 'first_name', 'last_name', 'email_verified', 'password', 'password_hash',
  'password_hash_type', 'external_id', 'metadata', 'locale',
]);

const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

function validationError(errors) {
  return {
    status: 422,
    body: {
      code: 'invalid_request_parameters',
      message: 'Validation failed.',
      errors: errors.map(([field, code, message]) => ({ field, code, message })),
    },
  };
}

// Limits from WorkOS's "Metadata and External IDs" guide (authkit/metadata):
// external ids are unique in the environment and at most 64 characters; a
// user has at most 10 metadata pairs, keys up to 40 and values up to 600 ASCII
// characters. (WorkOS's OpenAPI description is looser: external_id 128,
// metadata 50 keys. The fake enforces the guide, the stricter of the two.)
const LIMITS = Object.freeze({ externalIdMax: 64, metadataMaxKeys: 10, metadataKeyMax: 40, metadataValueMax: 600 });
const ASCII_RE = /^[\x00-\x7F]*$/;

// Checks a create/update body against the WorkOS DTOs. `nullableNames` is true
// for create (first_name/last_name may be null there, not on update).
// `metadataNullValues` lets a metadata value be null (a PUT in merge mode,
// where null removes the key); otherwise values must be strings. The number of
// metadata keys is checked by the caller, on the map as it would be stored.
function checkUserFields(body, { nullableNames, metadataNullValues = false }) {
  const errors = [];
  for (const key of Object.keys(body)) {
    if (!USER_WRITABLE.has(key)) errors.push([key, 'unknown_field', `property ${key} should not exist`]);
  }
  const str = (k, nullable) => {
    if (!(k in body)) return;
    const v = body[k];
    if (v === null ? !nullable : typeof v !== 'string') {
      errors.push([k, 'invalid_type', `${k} must be a string${nullable ? ' or null' : ''}`]);
    }
  };
  if ('email' in body) {
    if (typeof body.email !== 'string') errors.push(['email', 'invalid_type', 'email must be a string']);
    else if (!EMAIL_RE.test(body.email)) errors.push(['email', 'invalid_email', 'email must be an email']);
  }
  str('first_name', nullableNames);
  str('last_name', nullableNames);
  if ('email_verified' in body && typeof body.email_verified !== 'boolean' && !(nullableNames && body.email_verified === null)) {
    errors.push(['email_verified', 'invalid_type', 'email_verified must be a boolean']);
  }
  str('password', nullableNames);
  str('password_hash', false);
  if ('password_hash_type' in body && !PASSWORD_HASH_TYPES.has(body.password_hash_type)) {
    errors.push(['password_hash_type', 'invalid_enum_value', `password_hash_type must be one of ${[...PASSWORD_HASH_TYPES].join(', ')}`]);
  }
  if ('password_hash' in body !== 'password_hash_type' in body) {
    errors.push(['password_hash', 'required', 'password_hash and password_hash_type go together']);
  }
  str('locale', true);
  if ('external_id' in body && body.external_id !== null) {
    const v = body.external_id;
    if (typeof v !== 'string') errors.push(['external_id', 'invalid_type', 'external_id must be a string or null']);
    else if (v.length === 0 || !ASCII_RE.test(v)) errors.push(['external_id', 'invalid_format', 'external_id must be 1 or more ASCII characters']);
    else if (v.length > LIMITS.externalIdMax) errors.push(['external_id', 'too_long', `external_id must be at most ${LIMITS.externalIdMax} characters`]);
  }
  if ('metadata' in body && body.metadata !== null) {
    const m = body.metadata;
    if (!isPlainObject(m)) errors.push(['metadata', 'invalid_type', 'metadata must be an object or null']);
    else {
      for (const [k, v] of Object.entries(m)) {
        const field = `metadata.${k}`;
        if (!ASCII_RE.test(k)) errors.push([field, 'invalid_format', 'metadata keys must be ASCII']);
        else if (k.length > LIMITS.metadataKeyMax) errors.push([field, 'too_long', `metadata keys may be at most ${LIMITS.metadataKeyMax} characters`]);
        if (v === null && metadataNullValues) continue;
        if (typeof v !== 'string') errors.push([field, 'invalid_type', 'metadata values must be strings']);
        else if (!ASCII_RE.test(v)) errors.push([field, 'invalid_format', 'metadata values must be ASCII']);
        else if (v.length > LIMITS.metadataValueMax) errors.push([field, 'too_long', `metadata values may be at most ${LIMITS.metadataValueMax} characters`]);
      }
    }
  }
  return errors;
}

// The metadata map a PUT leaves behind. `replace`: exactly what was sent.
// `merge`: the stored map with the sent keys overwritten and null-valued keys
// removed. `metadata: null` clears the map in both modes. Built with
// Object.fromEntries so a key such as "__proto__" stays an ordinary key.
function nextMetadata(current, sent, mode) {
  if (sent === null) return {};
  if (mode === 'replace') return Object.fromEntries(Object.entries(sent));
  const merged = new Map(Object.entries(isPlainObject(current) ? current : {}));
  for (const [k, v] of Object.entries(sent)) {
    if (v === null) merged.delete(k);
    else merged.set(k, v);
  }
  return Object.fromEntries(merged);
}
function tooManyMetadataKeys(map) {
  const n = Object.keys(map).length;
  return n > LIMITS.metadataMaxKeys
    ? ['metadata', 'too_many_properties', `metadata may have at most ${LIMITS.metadataMaxKeys} keys (the update would leave ${n})`]
    : null;
}
// Same keys with the same values, in any order.
function metadataEqual(a, b) {
  const ka = Object.keys(a ?? {});
  const kb = Object.keys(b ?? {});
  return isPlainObject(a) === isPlainObject(b) && ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

// ---------------------------------------------------------------------------
// The fake

const DEFAULT_ERROR_CODES = {
  400: 'bad_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 408: 'request_timeout',
  409: 'conflict', 422: 'invalid_request_parameters', 429: 'rate_limit_exceeded', 500: 'server_error',
  502: 'bad_gateway', 503: 'service_unavailable', 504: 'gateway_timeout',
};

export async function startServer(options = {}) {
  const opts = {
    port: 0,
    host: '127.0.0.1',
    clientId: 'client_123',
    apiKey: 'sk_test_123',
    keyFile: null,
    stateFile: null,
    portFile: null,
    maxEvents: 500_000,
    maxLog: 100_000,
    verbose: false,
    // How WorkOS behaves where usersd must not assume (see README "Behaviour").
    eventsDefaultOrder: 'desc',
    eventsIgnoreOrder: false,
    eventsIgnoreFilters: false,
    eventsIgnoreRangeStart: false,
    eventsRetentionMs: null,
    expiredCursor: 'reject',
    putIgnoresFields: [],
    tokenIssuer: 'workos',
    metadataUpdate: 'merge',
    externalIdConflictStatus: 400,
    eventsTimeFormat: 'iso',
    usersUnknownAfter: 'position',
    rateLimit: null,
    metadataOnlyEvents: 'emit',
    ...options,
  };
  const BEHAVIOUR_KEYS = ['eventsDefaultOrder', 'eventsIgnoreOrder', 'eventsIgnoreFilters', 'eventsIgnoreRangeStart', 'eventsRetentionMs',
    'expiredCursor', 'putIgnoresFields', 'tokenIssuer', 'metadataUpdate', 'externalIdConflictStatus', 'eventsTimeFormat',
    'usersUnknownAfter', 'rateLimit', 'metadataOnlyEvents'];
  const initialBehaviour = Object.fromEntries(BEHAVIOUR_KEYS.map((k) => [k, opts[k]]));
  let behaviour = { ...initialBehaviour };
  let selfUrl = ''; // this server's base URL, once listening (tokenIssuer 'self')
  function setBehaviour(patch) {
    if (!isPlainObject(patch)) throw new HttpError(400, 'behaviour must be an object');
    const next = { ...behaviour };
    for (const [k, v] of Object.entries(patch)) {
      if (!BEHAVIOUR_KEYS.includes(k)) throw new HttpError(400, `unknown behaviour ${k}`);
      next[k] = v;
    }
    if (!['asc', 'desc'].includes(next.eventsDefaultOrder)) throw new HttpError(400, 'eventsDefaultOrder must be asc or desc');
    if (!['reject', 'ignore'].includes(next.expiredCursor)) throw new HttpError(400, 'expiredCursor must be reject or ignore');
    if (!['workos', 'self'].includes(next.tokenIssuer)) throw new HttpError(400, 'tokenIssuer must be workos or self');
    if (!Array.isArray(next.putIgnoresFields)) throw new HttpError(400, 'putIgnoresFields must be an array');
    if (!['replace', 'merge'].includes(next.metadataUpdate)) throw new HttpError(400, 'metadataUpdate must be replace or merge');
    if (![400, 409, 422].includes(next.externalIdConflictStatus)) throw new HttpError(400, 'externalIdConflictStatus must be 400, 409 or 422');
    if (!['iso', 'naive'].includes(next.eventsTimeFormat)) throw new HttpError(400, 'eventsTimeFormat must be iso or naive');
    if (!['position', 'end', 'restart'].includes(next.usersUnknownAfter)) throw new HttpError(400, 'usersUnknownAfter must be position, end or restart');
    if (!['emit', 'none'].includes(next.metadataOnlyEvents)) throw new HttpError(400, 'metadataOnlyEvents must be emit or none');
    if (next.rateLimit !== null) {
      const rl = next.rateLimit;
      const okCount = (v) => v === undefined || v === null || (Number.isInteger(v) && v >= 0);
      if (!isPlainObject(rl) || !(Number.isInteger(rl.windowMs) && rl.windowMs > 0) || !okCount(rl.reads) || !okCount(rl.writes) || !okCount(rl.other)) {
        throw new HttpError(400, 'rateLimit must be null or {windowMs, reads?, writes?, other?} with non-negative integers');
      }
      next.rateLimit = { windowMs: rl.windowMs, reads: rl.reads ?? null, writes: rl.writes ?? null, other: rl.other ?? null };
    }
    if (JSON.stringify(next.rateLimit) !== JSON.stringify(behaviour.rateLimit)) rateWindows = {};
    if (next.eventsRetentionMs !== null && !(Number.isInteger(next.eventsRetentionMs) && next.eventsRetentionMs > 0)) {
      throw new HttpError(400, 'eventsRetentionMs must be null or a positive integer');
    }
    behaviour = next;
    return behaviour;
  }
  const debug = opts.verbose ? (...a) => console.error('[workos-fake]', ...a) : () => {};
  const expectedAuth = `Bearer ${opts.apiKey}`;

  // --- keys -----------------------------------------------------------------
  // keys[0] signs; the rest are still published (after rotate-key {keep:true}).
  let keys = [];
  if (opts.keyFile && fs.existsSync(opts.keyFile)) {
    const saved = JSON.parse(fs.readFileSync(opts.keyFile, 'utf8'));
    const list = Array.isArray(saved.keys) ? saved.keys : [saved];
    keys = list.map((k) => makeKeyEntry(k.kid, k.privateKeyPem));
  } else {
    keys = [await generateKeyEntry()];
    saveKeys();
  }
  let jwksBody = '';
  rebuildJwks();

  function saveKeys() {
    if (!opts.keyFile) return;
    fs.mkdirSync(path.dirname(path.resolve(opts.keyFile)), { recursive: true });
    writeFileAtomic(opts.keyFile, JSON.stringify({ keys: keys.map(({ kid, privateKeyPem }) => ({ kid, privateKeyPem })) }, null, 2) + '\n');
  }
  function rebuildJwks() {
    jwksBody = JSON.stringify({ keys: keys.map((k) => k.jwk) });
  }

  // --- state ----------------------------------------------------------------
  const users = new Map(); // id -> WorkOS user object (as served)
  const emailIndex = new Map(); // lower-cased email -> Set of user ids
  // external_id -> Set of user ids. The API keeps it unique; only the control
  // API (no validation) can give two users the same one.
  const externalIdIndex = new Map();
  // Events are kept as {id, type, ts, json}: the JSON text is built once at
  // creation so serving a page is string concatenation, not re-serialisation.
  let events = [];
  // Id of the newest event dropped (by --max-events or retention): a cursor at
  // or before it points into history the server no longer has.
  let droppedThrough = null;
  let requestLog = [];
  let faults = [];
  // POST /__test/hold {method, path}: requests that match wait in `held`
  // until POST /__test/release {order: "arrival" | "reverse"}.
  let hold = null;
  let held = [];
  // Rate limiting (behaviour.rateLimit): a fixed window per bucket.
  let rateWindows = {}; // bucket -> {start, count}
  // WorkOS: AuthKit's /user_management/* allows so many reads (GET) and so
  // many writes per window per environment; everything else shares another
  // budget. Over it: 429 with Retry-After (seconds to the window's end).
  function rateLimited(method, pathname) {
    const rl = behaviour.rateLimit;
    if (!rl || pathname.startsWith('/sso/jwks/')) return null;
    const bucket = pathname.startsWith('/user_management/') ? (method === 'GET' ? 'reads' : 'writes') : 'other';
    const limit = rl[bucket];
    if (limit === null || limit === undefined) return null;
    const now = Date.now();
    let w = rateWindows[bucket];
    if (!w || now - w.start >= rl.windowMs) w = rateWindows[bucket] = { start: now, count: 0 };
    if (w.count < limit) {
      w.count++;
      return null;
    }
    const retryAfter = Math.max(1, Math.ceil((w.start + rl.windowMs - now) / 1000));
    return {
      status: 429,
      body: { code: 'rate_limit_exceeded', message: 'Rate limit exceeded.' },
      headers: { 'retry-after': String(retryAfter) },
    };
  }
  let down = false;
  let saveTimer = null; // pending debounced --state-file write

  function indexEmail(user, add) {
    if (!user.email) return;
    const key = user.email.toLowerCase();
    let set = emailIndex.get(key);
    if (add) {
      if (!set) emailIndex.set(key, (set = new Set()));
      set.add(user.id);
    } else if (set) {
      set.delete(user.id);
      if (set.size === 0) emailIndex.delete(key);
    }
  }
  function indexExternalId(user, add) {
    const key = user.external_id;
    if (typeof key !== 'string' || key === '') return;
    let set = externalIdIndex.get(key);
    if (add) {
      if (!set) externalIdIndex.set(key, (set = new Set()));
      set.add(user.id);
    } else if (set) {
      set.delete(user.id);
      if (set.size === 0) externalIdIndex.delete(key);
    }
  }
  // Compared exactly (case-sensitive), as ids are.
  function externalIdTaken(externalId, exceptId) {
    const set = externalIdIndex.get(externalId);
    if (!set) return false;
    for (const id of set) if (id !== exceptId) return true;
    return false;
  }
  function userByExternalId(externalId) {
    const set = externalIdIndex.get(externalId);
    if (!set) return undefined;
    for (const id of set) return users.get(id);
    return undefined;
  }
  function emailTaken(email, exceptId) {
    const set = emailIndex.get(email.toLowerCase());
    if (!set) return false;
    for (const id of set) if (id !== exceptId) return true;
    return false;
  }
  function putUser(user) {
    const old = users.get(user.id);
    if (old) {
      indexEmail(old, false);
      indexExternalId(old, false);
    }
    users.set(user.id, user);
    indexEmail(user, true);
    indexExternalId(user, true);
    scheduleSave();
  }
  function removeUser(id) {
    const old = users.get(id);
    if (!old) return null;
    indexEmail(old, false);
    indexExternalId(old, false);
    users.delete(id);
    scheduleSave();
    return old;
  }

  // Field order follows the WorkOS user object; unknown extra keys seeded via
  // the control API are kept so tests can check tolerance of new fields.
  function normalizeUser(input, existing) {
    const now = new Date().toISOString();
    const base = existing ?? {
      object: 'user',
      id: input.id ?? newUserId(),
      email: '',
      email_verified: false,
      first_name: null,
      last_name: null,
      profile_picture_url: null,
      last_sign_in_at: null,
      external_id: null,
      metadata: {},
      locale: null,
      created_at: now,
      updated_at: now,
    };
    const user = { ...base };
    for (const [k, v] of Object.entries(input)) {
      if (k === 'emitEvent' || k === 'object' || k === 'id') continue;
      user[k] = v;
    }
    if (existing && !('updated_at' in input)) user.updated_at = now;
    return user;
  }

  function appendEvent({ event, data, created_at, id, context }) {
    const ts = created_at ? Date.parse(created_at) : Date.now();
    // WorkOS's reference calls created_at ISO 8601; the samples of its
    // data-syncing guide read "2023-04-28 20:05:31.093" (no zone, UTC).
    const iso = new Date(ts).toISOString();
    const stamp = behaviour.eventsTimeFormat === 'naive' ? iso.replace('T', ' ').replace(/Z$/, '') : iso;
    const ev = { object: 'event', id: id ?? newEventId(), event, data, created_at: stamp };
    if (context !== undefined) ev.context = context;
    const rec = { id: ev.id, type: event, ts, json: JSON.stringify(ev) };
    if (events.length === 0 || events[events.length - 1].id < rec.id) events.push(rec);
    else events.splice(upperBound(rec.id), 0, rec); // caller-chosen id: keep sorted
    if (events.length > opts.maxEvents) dropOldest(events.length - opts.maxEvents);
    scheduleSave();
    return ev;
  }
  function dropOldest(n) {
    if (n <= 0) return;
    droppedThrough = events[n - 1].id;
    events.splice(0, n);
  }
  // Drops events older than the retention window, as WorkOS keeps events for
  // a limited time.
  function expireEvents() {
    if (!behaviour.eventsRetentionMs) return;
    const cutoff = Date.now() - behaviour.eventsRetentionMs;
    let n = 0;
    while (n < events.length && events[n].ts < cutoff) n++;
    dropOldest(n);
  }
  // Index of the first event whose id sorts after `id`.
  function upperBound(id) {
    let lo = 0;
    let hi = events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (events[mid].id <= id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  const snapshot = (user) => structuredClone(user);

  // --- persistence ------------------------------------------------------------
  if (opts.stateFile && fs.existsSync(opts.stateFile)) {
    const saved = JSON.parse(fs.readFileSync(opts.stateFile, 'utf8'));
    for (const u of saved.users ?? []) putUser(u);
    // A naive stamp (eventsTimeFormat 'naive') is UTC, not local time.
    const stampMs = (s) => Date.parse(/(Z|[+-]\d\d:\d\d)$/.test(s) ? s : `${s.replace(' ', 'T')}Z`);
    events = (saved.events ?? []).map((ev) => ({ id: ev.id, type: ev.event, ts: stampMs(ev.created_at), json: JSON.stringify(ev) }));
    events.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
  // Debounced: under an outbox benchmark thousands of mutations arrive per
  // second, and re-serialising the whole state for each would dominate.
  function scheduleSave() {
    if (!opts.stateFile || saveTimer) return;
    saveTimer = setTimeout(saveState, 1000);
    saveTimer.unref();
  }
  function saveState() {
    if (saveTimer) clearTimeout(saveTimer);
    saveTimer = null;
    if (!opts.stateFile) return;
    const text = `{"users":${JSON.stringify([...users.values()])},"events":[${events.map((e) => e.json).join(',')}]}\n`;
    fs.mkdirSync(path.dirname(path.resolve(opts.stateFile)), { recursive: true });
    writeFileAtomic(opts.stateFile, text);
  }

  // --- tokens ------------------------------------------------------------------
  function mintToken(body) {
    const now = Math.floor(Date.now() / 1000);
    const signer = body.signWithKid ? keys.find((k) => k.kid === body.signWithKid) : keys[0];
    if (!signer) throw new HttpError(400, `no key with kid ${body.signWithKid}`);
    const alg = body.alg ?? 'RS256';
    const header = { alg, typ: 'JWT', kid: body.kid === undefined ? signer.kid : body.kid, ...(body.header ?? {}) };
    if (header.kid === null) delete header.kid;
    const claims = {
      iss: body.iss === undefined ? `${behaviour.tokenIssuer === 'self' ? selfUrl : 'https://api.workos.com'}/user_management/${opts.clientId}` : body.iss,
      sub: body.sub,
      sid: body.sid === undefined ? `session_${ulid()}` : body.sid,
      jti: ulid(),
      iat: now,
      exp: now + (body.expiresIn ?? 3600),
    };
    if (body.notBefore !== undefined) claims.nbf = now + body.notBefore;
    if (body.aud !== undefined) claims.aud = body.aud;
    if (body.org_id !== undefined) claims.org_id = body.org_id;
    if (body.role !== undefined) claims.role = body.role;
    if (body.permissions !== undefined) claims.permissions = body.permissions;
    Object.assign(claims, body.extraClaims ?? {});
    for (const k of Object.keys(claims)) if (claims[k] === null || claims[k] === undefined) delete claims[k];

    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    let sig;
    const bits = alg.slice(2);
    if (alg === 'none') sig = Buffer.alloc(0);
    else if (/^RS(256|384|512)$/.test(alg)) sig = crypto.sign(`sha${bits}`, Buffer.from(input), signer.privateKey);
    else if (/^PS(256|384|512)$/.test(alg)) {
      sig = crypto.sign(`sha${bits}`, Buffer.from(input), {
        key: signer.privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(bits) / 8,
      });
    } else if (/^HS(256|384|512)$/.test(alg)) {
      // Default secret is the published public key: the classic RS/HS
      // algorithm-confusion attack a verifier must refuse.
      sig = crypto.createHmac(`sha${bits}`, body.hmacSecret ?? signer.publicKeyPem).update(input).digest();
    } else if (alg === 'ES256') {
      // A throwaway EC key: the token is well-formed but no JWKS key matches it.
      const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
      sig = crypto.sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
    } else {
      throw new HttpError(400, `unsupported alg ${alg}`);
    }
    if (body.corruptSignature && sig.length) sig[sig.length - 1] ^= 0x01;
    return { token: `${input}.${b64url(sig)}`, kid: header.kid ?? null, header, claims };
  }

  // --- faults ------------------------------------------------------------------
  function compileFaults(rules) {
    if (!Array.isArray(rules)) throw new HttpError(400, 'rules must be an array');
    return rules.map((r, i) => {
      if (!isPlainObject(r)) throw new HttpError(400, `rule ${i} must be an object`);
      let re = null;
      if (r.path !== undefined) {
        try {
          re = new RegExp(r.path);
        } catch (e) {
          throw new HttpError(400, `rule ${i}: bad path regex: ${e.message}`);
        }
      }
      if (r.status !== undefined && !(Number.isInteger(r.status) && r.status >= 100 && r.status <= 599)) {
        throw new HttpError(400, `rule ${i}: status must be an integer 100-599`);
      }
      return { ...r, method: r.method?.toUpperCase(), re, remaining: r.times ?? Infinity, hits: 0 };
    });
  }
  // First rule that matches and wins its probability roll; it is consumed here.
  function takeFault(method, pathname) {
    for (const rule of faults) {
      if (rule.remaining <= 0) continue;
      if (rule.method && rule.method !== method) continue;
      if (rule.re && !rule.re.test(pathname)) continue;
      if (rule.probability !== undefined && Math.random() >= rule.probability) continue;
      rule.remaining--;
      rule.hits++;
      return rule;
    }
    return null;
  }
  function faultResult(rule) {
    const headers = { ...(rule.headers ?? {}) };
    if (rule.retryAfter !== undefined) headers['retry-after'] = String(rule.retryAfter);
    let body = rule.body;
    if (body === undefined) {
      body = { code: DEFAULT_ERROR_CODES[rule.status] ?? 'error', message: http.STATUS_CODES[rule.status] ?? 'Error' };
    }
    return { status: rule.status, body, headers };
  }

  // --- WorkOS API -------------------------------------------------------------------
  const notFoundUser = (id) => ({ status: 404, body: { code: 'entity_not_found', message: `Could not find user with id '${id}'.` } });
  const notFoundExternalId = (xid) => ({
    status: 404, body: { code: 'entity_not_found', message: `Could not find user with external_id '${xid}'.` },
  });
  const externalIdUsedMessage = (xid) => `The external_id '${xid}' is already used by another user.`;

  function api(method, pathname, query, body, rawBody, headers) {
    // JWKS is public, as on api.workos.com.
    let m = /^\/sso\/jwks\/([^/]+)$/.exec(pathname);
    if (m) {
      if (method !== 'GET') return routeNotFound(method, pathname);
      if (decodeURIComponent(m[1]) !== opts.clientId) return { status: 404, body: { message: `Client not found: '${decodeURIComponent(m[1])}'.` } };
      return { status: 200, raw: jwksBody };
    }
    if (headers.authorization !== expectedAuth) {
      return { status: 401, body: { code: 'unauthorized', message: 'Could not authorize the request. Maybe your API key is invalid?' } };
    }
    const needsBody = method === 'POST' || method === 'PUT';
    if (needsBody && rawBody.length && body === undefined) {
      return { status: 400, body: { code: 'invalid_json', message: 'The request body is not valid JSON.' } };
    }
    if (pathname === '/events') return method === 'GET' ? listEvents(query) : routeNotFound(method, pathname);
    if (pathname === '/user_management/users') {
      if (method === 'POST') return createUser(body === undefined ? {} : body);
      if (method === 'GET') return listUsers(query);
      return routeNotFound(method, pathname);
    }
    m = /^\/user_management\/users\/external_id\/([^/]+)$/.exec(pathname);
    if (m) {
      if (method !== 'GET') return routeNotFound(method, pathname);
      const xid = decodeURIComponent(m[1]);
      const user = userByExternalId(xid);
      return user ? { status: 200, body: user } : notFoundExternalId(xid);
    }
    m = /^\/user_management\/users\/([^/]+)$/.exec(pathname);
    if (m) {
      const id = decodeURIComponent(m[1]);
      if (method === 'GET') return users.has(id) ? { status: 200, body: users.get(id) } : notFoundUser(id);
      if (method === 'PUT') return updateUser(id, body === undefined ? {} : body);
      if (method === 'DELETE') return deleteUser(id);
    }
    return routeNotFound(method, pathname);
  }
  const routeNotFound = (method, pathname) => ({
    status: 404, body: { code: 'not_found', message: `Cannot ${method} ${pathname}` },
  });

  function createUser(body) {
    if (!isPlainObject(body)) return validationError([['body', 'invalid_type', 'body must be a JSON object']]);
    const errors = checkUserFields(body, { nullableNames: true });
    if (!('email' in body)) errors.push(['email', 'required', 'email is required']);
    if (isPlainObject(body.metadata) && !errors.some(([f]) => f === 'metadata')) {
      const tooMany = tooManyMetadataKeys(body.metadata);
      if (tooMany) errors.push(tooMany);
    }
    if (errors.length) return validationError(errors);
    if ('password' in body && 'password_hash' in body) {
      return { status: 400, body: { code: 'password_and_password_hash_provided', message: 'Provide either password or password_hash, not both.' } };
    }
    // Clashes with another user: WorkOS answers a taken email with 400
    // user_creation_error / email_not_available; a taken external_id is
    // reported the same way with external_id_already_used (status: a switch).
    const clashes = [];
    if (emailTaken(body.email)) clashes.push({ code: 'email_not_available', message: 'This email is not available.' });
    if (typeof body.external_id === 'string' && externalIdTaken(body.external_id)) {
      clashes.push({ code: 'external_id_already_used', message: externalIdUsedMessage(body.external_id) });
    }
    if (clashes.length) {
      return {
        status: clashes[0].code === 'email_not_available' ? 400 : behaviour.externalIdConflictStatus,
        body: { code: 'user_creation_error', message: 'Could not create user.', errors: clashes },
      };
    }
    const fields = { ...body };
    delete fields.password; delete fields.password_hash; delete fields.password_hash_type;
    if (fields.email_verified === null) fields.email_verified = false;
    if (fields.metadata === null) fields.metadata = {};
    const user = normalizeUser(fields);
    putUser(user);
    appendEvent({ event: 'user.created', data: snapshot(user) });
    return { status: 201, body: user };
  }

  // Timestamps of successive changes must differ, even within a millisecond.
  function laterThan(previousIso) {
    const prev = Date.parse(previousIso);
    const now = Date.now();
    return new Date(Number.isNaN(prev) || now > prev ? now : prev + 1).toISOString();
  }

  function updateUser(id, body) {
    if (!isPlainObject(body)) return validationError([['body', 'invalid_type', 'body must be a JSON object']]);
    const merge = behaviour.metadataUpdate === 'merge';
    const errors = checkUserFields(body, { nullableNames: false, metadataNullValues: merge });
    const existing = users.get(id);
    // A server that answers 200 without taking some fields (behaviour
    // putIgnoresFields): the answer shows the old values.
    const ignored = new Set(behaviour.putIgnoresFields);
    const applies = (k) => k in body && !ignored.has(k);
    // The key limit is on the map as it would be stored after this PUT.
    let metadata;
    if (existing && applies('metadata') && !errors.some(([f]) => f === 'metadata' || f.startsWith('metadata.'))) {
      metadata = nextMetadata(existing.metadata, body.metadata, behaviour.metadataUpdate);
      const tooMany = tooManyMetadataKeys(metadata);
      if (tooMany) errors.push(tooMany);
    }
    if (errors.length) return validationError(errors);
    if (!existing) return notFoundUser(id);
    if ('password' in body && 'password_hash' in body) {
      return { status: 400, body: { code: 'password_and_password_hash_provided', message: 'Provide either password or password_hash, not both.' } };
    }
    if ('email' in body && emailTaken(body.email, id)) {
      return { status: 400, body: { code: 'email_not_available', message: 'This email is not available.' } };
    }
    if (applies('external_id') && typeof body.external_id === 'string' && externalIdTaken(body.external_id, id)) {
      return { status: behaviour.externalIdConflictStatus, body: { code: 'external_id_already_used', message: externalIdUsedMessage(body.external_id) } };
    }
    const next = { ...existing };
    let changed = false;
    const set = (k, v) => {
      if (JSON.stringify(next[k]) !== JSON.stringify(v)) {
        next[k] = v;
        changed = true;
      }
    };
    // external_id: null clears it (the update DTO declares it string | null).
    for (const k of ['first_name', 'last_name', 'external_id', 'locale']) if (applies(k)) set(k, body[k]);
    let metadataChanged = false; // apart from `changed`, which counts everything else
    if (metadata !== undefined && !metadataEqual(existing.metadata, metadata)) {
      next.metadata = metadata;
      metadataChanged = true;
    }
    if ('email' in body && body.email !== existing.email && !ignored.has('email')) {
      set('email', body.email);
      // A changed address is no longer verified unless the caller says so.
      if (!('email_verified' in body)) set('email_verified', false);
    }
    if ('email_verified' in body) set('email_verified', body.email_verified);
    if ('password' in body || 'password_hash' in body) changed = true; // not stored, but an update
    if (!changed && !metadataChanged) return { status: 200, body: existing };
    next.updated_at = laterThan(existing.updated_at);
    putUser(next);
    // Every change, whatever it touched, is announced with the full user;
    // behaviour metadataOnlyEvents 'none': a change of the metadata alone is
    // not (WorkOS does not document whether it emits user.updated for it).
    if (changed || behaviour.metadataOnlyEvents === 'emit') appendEvent({ event: 'user.updated', data: snapshot(next) });
    return { status: 200, body: next };
  }

  function deleteUser(id) {
    const old = removeUser(id);
    if (!old) return notFoundUser(id);
    appendEvent({ event: 'user.deleted', data: snapshot(old) });
    return { status: 200, raw: '' };
  }

  const intParam = (v) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : NaN);

  function listUsers(query) {
    const errors = [];
    const limit = query.limit === undefined ? 10 : intParam(query.limit);
    if (!(limit >= 1 && limit <= 100)) errors.push(['limit', 'invalid', 'limit must be between 1 and 100']);
    if (errors.length) return validationError(errors);
    let list = [...users.values()];
    if (query.email) list = list.filter((u) => u.email.toLowerCase() === String(query.email).toLowerCase());
    const asc = query.order === 'asc';
    list.sort((a, b) => (a.id < b.id ? -1 : 1) * (asc ? 1 : -1));
    // `after` naming a user that no longer exists (deleted between two
    // pages) is not documented: by position (default), as the end of the
    // list, or from the start again (WorkOS's own emulator).
    const known = !query.after || users.has(query.after);
    if (query.after && (known || behaviour.usersUnknownAfter === 'position')) {
      list = list.filter((u) => (asc ? u.id > query.after : u.id < query.after));
    } else if (query.after && behaviour.usersUnknownAfter === 'end') {
      list = [];
    }
    const data = list.slice(0, limit);
    const more = list.length > limit;
    return {
      status: 200,
      body: { object: 'list', data, list_metadata: { before: query.after && data.length ? data[0].id : null, after: more ? data[data.length - 1].id : null } },
    };
  }

  // Newest first unless `order=asc` is sent, as WorkOS's list endpoints are
  // documented to be. `after` continues the list in the order asked for: with
  // `desc` it moves to older events. Switches (behaviour) make the server
  // ignore `order` or the filters, or keep events only for a while.
  function listEvents(query) {
    const errors = [];
    const limit = query.limit === undefined ? 10 : intParam(query.limit);
    if (!(limit >= 1 && limit <= 100)) errors.push({ field: 'limit', code: 'invalid' });
    const parseRange = (field) => {
      if (query[field] === undefined) return undefined;
      const t = Date.parse(query[field]);
      if (Number.isNaN(t)) errors.push({ field, code: 'invalid_date' });
      return t;
    };
    let rangeStart = parseRange('range_start');
    let rangeEnd = parseRange('range_end');
    if (query.order !== undefined && !['asc', 'desc', 'normal'].includes(query.order)) errors.push({ field: 'order', code: 'invalid_enum_value' });
    if (errors.length) return { status: 422, body: { message: 'Validation failed.', errors } };
    expireEvents();
    const after = typeof query.after === 'string' && query.after !== '' ? query.after : undefined;
    if (after && behaviour.expiredCursor === 'reject' && droppedThrough !== null && after <= droppedThrough) {
      return { status: 400, body: { code: 'invalid_cursor', message: `The cursor '${after}' refers to an event that is no longer retained.` } };
    }
    const asc = behaviour.eventsIgnoreOrder || query.order === undefined ? behaviour.eventsDefaultOrder === 'asc' : query.order === 'asc';

    // `events` arrives as a comma list (the documented form), repeated, or as events[].
    let types = null;
    const rawTypes = [query.events, query['events[]']].flat().filter((v) => v !== undefined);
    if (rawTypes.length) types = new Set(rawTypes.flatMap((v) => String(v).split(',')).map((s) => s.trim()).filter(Boolean));
    if (behaviour.eventsIgnoreFilters) {
      types = null;
      rangeStart = undefined;
      rangeEnd = undefined;
    }
    // range_start alone ignored (type filter, range_end, order and after
    // honoured): a server that lists the whole history to a client without
    // a position.
    if (behaviour.eventsIgnoreRangeStart) rangeStart = undefined;

    const out = [];
    let lastId = null;
    const take = (e) => {
      if (types && !types.has(e.type)) return;
      if (rangeStart !== undefined && e.ts < rangeStart) return;
      if (rangeEnd !== undefined && e.ts > rangeEnd) return;
      out.push(e.json);
      lastId = e.id;
    };
    if (asc) {
      for (let i = after ? upperBound(after) : 0; i < events.length && out.length < limit; i++) take(events[i]);
    } else {
      // Index of the last event whose id sorts before `after`.
      let i = after ? upperBound(after) - 1 : events.length - 1;
      if (after && i >= 0 && events[i].id === after) i--;
      for (; i >= 0 && out.length < limit; i--) take(events[i]);
    }
    return {
      status: 200,
      raw: `{"object":"list","data":[${out.join(',')}],"list_metadata":{"after":${JSON.stringify(lastId)}}}`,
    };
  }

  // --- control API -----------------------------------------------------------------
  function control(method, pathname, query, body) {
    const route = `${method} ${pathname}`;
    let m;
    switch (route) {
      case 'GET /__test/info':
        return {
          status: 200,
          body: {
            clientId: opts.clientId, kids: keys.map((k) => k.kid), users: users.size, events: events.length,
            requests: requestLog.length, down, faults: faults.length,
          },
        };
      case 'POST /__test/users': {
        const list = Array.isArray(body) ? body : [body];
        const result = list.map((u) => {
          if (!isPlainObject(u)) throw new HttpError(400, 'user must be an object');
          const existing = u.id !== undefined ? users.get(u.id) : undefined;
          const user = normalizeUser(u, existing);
          putUser(user);
          if (u.emitEvent) appendEvent({ event: existing ? 'user.updated' : 'user.created', data: snapshot(user) });
          return user;
        });
        return { status: 200, body: Array.isArray(body) ? result : result[0] };
      }
      case 'GET /__test/users':
        return { status: 200, body: [...users.values()] };
      case 'POST /__test/token':
        // sub may be null to mint a token without one (a verifier must refuse it).
        if (!isPlainObject(body) || !(typeof body.sub === 'string' || body.sub === null)) throw new HttpError(400, 'sub (string or null) is required');
        return { status: 200, body: mintToken(body) };
      case 'POST /__test/events': {
        if (!isPlainObject(body) || typeof body.event !== 'string') throw new HttpError(400, 'event (string) is required');
        if (body.created_at !== undefined && Number.isNaN(Date.parse(body.created_at))) throw new HttpError(400, 'created_at must be an ISO date');
        return { status: 200, body: appendEvent({ event: body.event, data: body.data ?? {}, created_at: body.created_at, id: body.id, context: body.context }) };
      }
      case 'GET /__test/events':
        return { status: 200, raw: `[${events.map((e) => e.json).join(',')}]` };
      case 'GET /__test/requests': {
        let list = requestLog;
        if (query.method) list = list.filter((r) => r.method === String(query.method).toUpperCase());
        if (query.path) {
          let re;
          try {
            re = new RegExp(query.path);
          } catch (e) {
            throw new HttpError(400, `bad path regex: ${e.message}`);
          }
          list = list.filter((r) => re.test(r.path));
        }
        if (query.since) list = list.filter((r) => r.ts >= Number(query.since));
        return { status: 200, body: list };
      }
      case 'DELETE /__test/requests':
        requestLog = [];
        return { status: 200, body: { ok: true } };
      case 'POST /__test/faults':
        faults = compileFaults(Array.isArray(body) ? body : body?.rules);
        return { status: 200, body: { ok: true, rules: faults.length } };
      case 'GET /__test/faults':
        return {
          status: 200,
          body: faults.map(({ re, remaining, ...r }) => ({ ...r, remaining: remaining === Infinity ? null : remaining })),
        };
      case 'DELETE /__test/faults':
        faults = [];
        return { status: 200, body: { ok: true } };
      case 'POST /__test/hold': {
        if (typeof body?.method !== 'string') throw new HttpError(400, 'method (string) is required');
        let re;
        try {
          re = new RegExp(body.path ?? '.*');
        } catch (e) {
          throw new HttpError(400, `bad path regex: ${e.message}`);
        }
        hold = { method: body.method.toUpperCase(), re };
        return { status: 200, body: { ok: true } };
      }
      case 'GET /__test/held':
        return { status: 200, body: { held: held.length } };
      case 'POST /__test/release': {
        const order = body?.order ?? 'arrival';
        if (!['arrival', 'reverse'].includes(order)) throw new HttpError(400, 'order must be arrival or reverse');
        const list = order === 'reverse' ? held.slice().reverse() : held.slice();
        held = [];
        if (body?.keepHolding !== true) hold = null;
        for (const answer of list) answer();
        return { status: 200, body: { released: list.length } };
      }
      case 'POST /__test/down':
        if (typeof body?.down !== 'boolean') throw new HttpError(400, 'down (boolean) is required');
        down = body.down;
        return { status: 200, body: { down } };
      case 'GET /__test/behaviour':
        return { status: 200, body: behaviour };
      case 'POST /__test/behaviour':
        return { status: 200, body: setBehaviour(body) };
      case 'POST /__test/reset':
        behaviour = { ...initialBehaviour };
        rateWindows = {};
        droppedThrough = null;
        users.clear();
        emailIndex.clear();
        externalIdIndex.clear();
        events = [];
        faults = [];
        requestLog = [];
        down = false;
        hold = null;
        for (const answer of held.splice(0)) answer();
        scheduleSave();
        return { status: 200, body: { ok: true } };
      case 'POST /__test/save':
        saveState();
        return { status: 200, body: { ok: true } };
    }
    if ((m = /^\/__test\/users\/([^/]+)$/.exec(pathname))) {
      const id = decodeURIComponent(m[1]);
      if (method === 'GET') return users.has(id) ? { status: 200, body: users.get(id) } : { status: 404, body: { error: `no user ${id}` } };
      if (method === 'DELETE') {
        const old = removeUser(id);
        if (!old) return { status: 404, body: { error: `no user ${id}` } };
        if (body?.emitEvent || query.emitEvent === 'true') appendEvent({ event: 'user.deleted', data: snapshot(old) });
        return { status: 200, body: old };
      }
    }
    return { status: 404, body: { error: `unknown control route ${route}` } };
  }

  async function rotateKey(body) {
    const entry = await generateKeyEntry();
    keys = body?.keep ? [entry, ...keys] : [entry];
    rebuildJwks();
    saveKeys();
    return { status: 200, body: { kid: entry.kid, kids: keys.map((k) => k.kid) } };
  }

  // --- HTTP plumbing ------------------------------------------------------------------
  function parseQuery(search) {
    const query = {};
    if (!search) return query;
    for (const [k, v] of new URLSearchParams(search)) {
      if (k in query) query[k] = [].concat(query[k], v);
      else query[k] = v;
    }
    return query;
  }

  function readBody(req, limit) {
    return new Promise((resolve, reject) => {
      const chunks = [];
      let size = 0;
      req.on('data', (c) => {
        size += c.length;
        if (size > limit) {
          reject(new HttpError(413, 'request body too large'));
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
      req.on('error', reject);
    });
  }
  function parseJson(buf) {
    if (!buf.length) return undefined;
    try {
      return JSON.parse(buf.toString('utf8'));
    } catch {
      return undefined;
    }
  }

  function send(res, result, logEntry) {
    if (res.destroyed || res.writableEnded) return;
    const headers = { 'x-request-id': crypto.randomUUID(), ...(result.headers ?? {}) };
    let payload;
    if (result.raw !== undefined) {
      payload = result.raw;
      if (payload.length) headers['content-type'] ??= 'application/json; charset=utf-8';
    } else if (result.body === null) {
      payload = '';
    } else if (typeof result.body === 'string') {
      payload = result.body;
      headers['content-type'] ??= 'text/plain; charset=utf-8';
    } else {
      payload = JSON.stringify(result.body);
      headers['content-type'] ??= 'application/json; charset=utf-8';
    }
    headers['content-length'] = Buffer.byteLength(payload);
    res.writeHead(result.status, headers);
    res.end(payload);
    if (logEntry) logEntry.status = result.status;
  }

  function logRequest(entry) {
    requestLog.push(entry);
    // Trim in batches so the cap costs O(1) amortised per request.
    if (requestLog.length > opts.maxLog * 1.1) requestLog = requestLog.slice(requestLog.length - opts.maxLog);
  }

  function redact(body) {
    if (!isPlainObject(body)) return body;
    let copy = null;
    for (const k of ['password', 'password_hash']) {
      if (k in body) (copy ??= { ...body })[k] = '[redacted]';
    }
    return copy ?? body;
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function handle(req, res) {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const pathname = q < 0 ? url : url.slice(0, q);
    const query = parseQuery(q < 0 ? '' : url.slice(q + 1));
    const method = req.method ?? 'GET';

    if (pathname.startsWith('/__test/')) {
      try {
        const raw = await readBody(req, 256 * 1024 * 1024);
        const body = parseJson(raw);
        if (raw.length && body === undefined) throw new HttpError(400, 'body is not valid JSON');
        const result = pathname === '/__test/rotate-key' && method === 'POST' ? await rotateKey(body) : control(method, pathname, query, body);
        send(res, result);
      } catch (err) {
        send(res, { status: err.status ?? 500, body: { error: err.message } });
      }
      return;
    }

    const entry = {
      ts: Date.now(), method, path: pathname, query, body: null,
      hasAuth: req.headers.authorization !== undefined,
      authOk: req.headers.authorization === expectedAuth,
      status: null,
    };
    if (down) {
      // Simulated outage: the client sees a connection reset, not an HTTP reply.
      entry.fault = 'down';
      logRequest(entry);
      req.socket.destroy();
      return;
    }
    let raw;
    try {
      raw = await readBody(req, 16 * 1024 * 1024);
    } catch (err) {
      logRequest(entry);
      send(res, { status: err.status ?? 400, body: { message: err.message } }, entry);
      return;
    }
    const body = parseJson(raw);
    entry.body = body !== undefined ? redact(body) : raw.length ? raw.toString('utf8') : null;
    logRequest(entry);

    const rule = faults.length ? takeFault(method, pathname) : null;
    if (rule) {
      entry.fault = rule.drop ? 'drop' : rule.status !== undefined ? 'status' : 'delay';
      if (rule.delayMs) await sleep(rule.delayMs);
      // `apply: true` performs the real operation first, then loses the reply:
      // the "WorkOS applied it but we never heard back" case.
      if (rule.apply) api(method, pathname, query, body, raw, req.headers);
      if (rule.drop) {
        req.socket.destroy();
        return;
      }
      if (rule.status !== undefined) {
        send(res, faultResult(rule), entry);
        return;
      }
    }
    const limited = rateLimited(method, pathname);
    if (limited) {
      entry.fault = 'rate_limit';
      send(res, limited, entry);
      return;
    }
    // Held requests (POST /__test/hold): received, not yet applied. They are
    // applied, and answered, when released, in the order asked for, so the
    // writes of several clients really race (SPEC 4b: no conditional PUT).
    if (hold && hold.method === method && hold.re.test(pathname)) {
      entry.fault = 'held';
      held.push(() => send(res, api(method, pathname, query, body, raw, req.headers), entry));
      return;
    }
    send(res, api(method, pathname, query, body, raw, req.headers), entry);
  }

  const server = http.createServer({ noDelay: true, keepAlive: true }, (req, res) => {
    handle(req, res).catch((err) => {
      debug('handler error', err);
      send(res, { status: 500, body: { message: 'fake internal error' } });
    });
  });
  // Longer than typical client idle timeouts, so a reused keep-alive
  // connection is not closed by us at the moment the client sends on it.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  server.requestTimeout = 0;
  server.on('clientError', (_err, socket) => socket.destroy());

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, resolve);
  });
  const port = server.address().port;
  const urlHost = ['0.0.0.0', '::', ''].includes(opts.host) ? '127.0.0.1' : opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const baseUrl = `http://${urlHost}:${port}`;
  selfUrl = baseUrl;
  if (opts.portFile) writeFileAtomic(opts.portFile, `${port}\n`);
  debug(`listening on ${baseUrl} (client ${opts.clientId}, kid ${keys[0].kid})`);

  async function close() {
    saveState();
    await new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
  return { server, port, baseUrl, close };
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---------------------------------------------------------------------------
// CLI

function parseArgs(argv) {
  const names = {
    '--port': 'port', '--host': 'host', '--client-id': 'clientId', '--api-key': 'apiKey',
    '--key-file': 'keyFile', '--state-file': 'stateFile', '--port-file': 'portFile',
    '--max-events': 'maxEvents', '--max-log': 'maxLog',
    '--events-default-order': 'eventsDefaultOrder', '--events-retention-ms': 'eventsRetentionMs',
    '--expired-cursor': 'expiredCursor', '--token-issuer': 'tokenIssuer',
    '--metadata-update': 'metadataUpdate', '--external-id-conflict-status': 'externalIdConflictStatus',
    '--events-time-format': 'eventsTimeFormat',
  };
  const choices = {
    eventsDefaultOrder: ['desc', 'asc'], expiredCursor: ['reject', 'ignore'], tokenIssuer: ['workos', 'self'],
    metadataUpdate: ['replace', 'merge'], externalIdConflictStatus: ['400', '409', '422'],
    eventsTimeFormat: ['iso', 'naive'],
  };
  const flags = {
    '--events-ignore-order': 'eventsIgnoreOrder', '--events-ignore-filters': 'eventsIgnoreFilters',
    '--events-ignore-range-start': 'eventsIgnoreRangeStart',
  };
  const numeric = new Set(['port', 'maxEvents', 'maxLog', 'eventsRetentionMs', 'externalIdConflictStatus']);
  const out = {};
  // A whole test run can switch how PUT applies metadata without touching
  // every place that starts a server; an explicit option wins.
  if (process.env.WORKOS_FAKE_METADATA_UPDATE) {
    const v = process.env.WORKOS_FAKE_METADATA_UPDATE;
    if (!choices.metadataUpdate.includes(v)) throw new Error(`WORKOS_FAKE_METADATA_UPDATE must be one of ${choices.metadataUpdate.join(', ')}`);
    out.metadataUpdate = v;
  }
  if (process.env.WORKOS_FAKE_EVENTS_TIME_FORMAT) {
    const v = process.env.WORKOS_FAKE_EVENTS_TIME_FORMAT;
    if (!choices.eventsTimeFormat.includes(v)) throw new Error(`WORKOS_FAKE_EVENTS_TIME_FORMAT must be one of ${choices.eventsTimeFormat.join(', ')}`);
    out.eventsTimeFormat = v;
  }
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf('=');
    if (eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (arg === '--verbose') {
      out.verbose = true;
      continue;
    }
    if (flags[arg]) {
      out[flags[arg]] = true;
      continue;
    }
    if (arg === '--help' || arg === '-h') {
      process.stderr.write('usage: node server.mjs [--port 0] [--host 127.0.0.1] [--client-id client_123] [--api-key sk_test_123]\n' +
        '         [--key-file path.json] [--state-file path.json] [--port-file path] [--max-events N] [--max-log N] [--verbose]\n' +
        '         [--events-default-order desc|asc] [--events-ignore-order] [--events-ignore-filters]\n' +
        '         [--events-ignore-range-start]\n' +
        '         [--events-retention-ms N] [--expired-cursor reject|ignore] [--token-issuer workos|self]\n' +
        '         [--metadata-update replace|merge] [--external-id-conflict-status 400|409|422]\n' +
        '         [--events-time-format iso|naive]\n');
      process.exit(0);
    }
    const key = names[arg];
    if (!key) throw new Error(`unknown option ${arg}`);
    if (value === undefined) value = argv[++i];
    if (value === undefined) throw new Error(`${arg} needs a value`);
    if (choices[key] && !choices[key].includes(value)) throw new Error(`${arg} must be one of ${choices[key].join(', ')}`);
    if (numeric.has(key)) {
      if (!/^\d+$/.test(value)) throw new Error(`${arg} must be a non-negative integer`);
      value = Number(value);
    }
    out[key] = value;
  }
  return out;
}

async function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`workos-fake: ${err.message}\n`);
    process.exit(2);
  }
  const fake = await startServer(options);
  process.stdout.write(`${JSON.stringify({ port: fake.port, baseUrl: fake.baseUrl })}\n`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    try {
      await fake.close();
    } finally {
      process.exit(0);
    }
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((err) => {
    process.stderr.write(`workos-fake: ${err.stack ?? err}\n`);
    process.exit(1);
  });
}
