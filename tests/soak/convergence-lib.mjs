// Several hosts, one WorkOS (SPEC 4b, issue 13 item 6): the shared part of
// tests/integration/convergence.test.mjs (short, run by `make test`) and
// tests/soak/convergence.mjs (long, run by hand).
//
// N daemons, one WorkOS test server; each daemon reaches WorkOS through its
// own TCP proxy (tests/integration/netproxy.mjs) so one host can be cut off
// while the others are not. A seeded random workload (user.me, user.update,
// user.delete, user.finalizeOnboarding, user.resetAvatar, concurrent writes of
// one field from every host, admin.users.import) runs over a small set of
// WorkOS users from several workers at once, while one host is partitioned
// from WorkOS for a while and another is killed with SIGKILL and restarted on
// the same store. Then writes stop, the partition heals, and the run checks
// what SPEC 4b promises, written from the SPEC, not from the daemon:
//
//   ids        the same user has the same id on every host, also when one
//              host provisioned it offline; with identity.namespace set it is
//              the version-5 UUID of the WorkOS id (no external_id was set).
//   converge   within 2 poll intervals + the outbox drain (+ slack for a
//              loaded machine), admin.users.get {workosId} agrees on every
//              host on id, email, firstName, lastName, avatarUrl, timezone,
//              settings, isOnboarded, createdAt and deleted state; WorkOS
//              holds the same email/names and external_id = id (4b).
//              A failure prints a per-user, per-field diff with the
//              operation that wrote each value.
//   answers    every answer is a success or a legitimate refusal (a deleted
//              user's token, a deliberate invalid payload, an email in use,
//              resetAvatar on a host cut off from WorkOS with no picture
//              known, a request cut by the SIGKILL); anything else (defects,
//              InternalServerError, an update whose answer does not show the
//              patch) is a failure.
//   dead       admin.deadLetters.list is empty on every host, except PUTs of
//              a user deleted meanwhile by another host (404, SPEC 4: other
//              4xx are dead letters).
//   deleted    a deleted user's token is refused on every host.
//   propagate  a field written on one host (a WorkOS column and a metadata
//              field) is read on every other host within 2 poll intervals
//              (+ slack); p50/max reported.
//
// Knobs (env): CONVERGENCE_SPEC4B_CONFIG=0 leaves out the SPEC 6a keys
// `identity.namespace` and `sync.metadata` (a binary without SPEC 4b refuses
// them); the version-5 id check is skipped then.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { call, seedUser, sleep, startDaemon, tokenFor, withFake } from '../integration/harness.mjs';
import { startProxy } from '../integration/netproxy.mjs';
import { admin, median, percentile, readChanges, rng } from './lib.mjs';

/** identity.namespace used on every host (any fixed UUID). */
export const NAMESPACE = '3b241101-e2bb-4255-8caf-4136c566a962';

export const FIELDS = ['id', 'email', 'firstName', 'lastName', 'avatarUrl', 'timezone', 'settings', 'isOnboarded', 'createdAt', 'deleted'];

/** RFC 9562 version-5 UUID of `name` (UTF-8) in namespace `ns`. */
export function uuidv5(ns, name) {
  const nsBytes = Buffer.from(ns.replace(/-/g, ''), 'hex');
  const h = crypto.createHash('sha1').update(nsBytes).update(Buffer.from(name, 'utf8')).digest();
  const b = Buffer.from(h.subarray(0, 16));
  b[6] = (b[6] & 0x0f) | 0x50;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = b.toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

export const spec4bConfigEnabled = () => process.env.CONVERGENCE_SPEC4B_CONFIG !== '0';

/**
 * CONVERGENCE_FIELDS=columns is a self-check of this harness against a
 * daemon without SPEC 4b: writes and compares only what SPEC 4 already syncs
 * (email, firstName, lastName, deleted state), no ids, no metadata fields,
 * no import/resetAvatar/finalizeOnboarding. It is not a test of SPEC 4b and
 * no ctest entry uses it.
 */
export const fieldsMode = () => (process.env.CONVERGENCE_FIELDS === 'columns' ? 'columns' : 'all');
const COLUMN_FIELDS = ['email', 'firstName', 'lastName', 'deleted'];

/**
 * A user deleted while other hosts were writing to it keeps, on those hosts,
 * the values their refused PUTs (404) carried unless applying `user.deleted`
 * also applies its fields. SPEC 4b compares "every user", so the fields of
 * deleted users are compared by default; CONVERGENCE_DELETED_FIELDS=skip
 * compares a user deleted on every host on id and deleted state only.
 */
export const deletedFieldsMode = () => (process.env.CONVERGENCE_DELETED_FIELDS === 'skip' ? 'skip' : 'compare');

export function convergenceConfig({ pollSeconds = 1, spec4b = spec4bConfigEnabled() } = {}) {
  const c = {
    workos: { timeout_ms: 2000, events_poll_seconds: pollSeconds },
    outbox: { initial_backoff_ms: 100, max_backoff_ms: 1000 },
    log: { level: 'info' },
  };
  if (spec4b) {
    c.identity = { namespace: NAMESPACE };
    c.sync = { metadata: { enabled: true } };
  }
  return c;
}

// Canonical JSON (sorted keys) so settings compare by value.
export function canon(v) {
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canon(v[k])}`).join(',')}}`;
  return JSON.stringify(v ?? null);
}

const TIMEZONES = ['UTC', 'Europe/Paris', 'America/New_York', 'Asia/Tokyo', 'Australia/Sydney', 'America/Sao_Paulo', null];
const FIRST = ['Ada', 'Zoë', 'Łukasz', '李雷', 'Grace', 'Ümit'];
const LAST = ['Lovelace', 'Hopper', 'Müller', '王', 'Nguyễn', "O'Neil"];

// ------------------------------------------------------------- cluster

/**
 * One fake and `hosts` daemons, each behind its own proxy. Resolves to
 * {fake, hosts: [{name, index, d, proxy, down, epoch, partitionedSince,
 * partitionEpoch}], pollMs, spec4b, metadataUpdate}.
 */
export async function startCluster({ t, hosts = 3, pollSeconds = 1, metadataUpdate, spec4b = spec4bConfigEnabled(), log = () => {} }) {
  // metadataUpdate (replace | merge) or WORKOS_FAKE_METADATA_UPDATE: how the
  // fake applies a PUT's metadata.
  const fake = await withFake({ t, ...(metadataUpdate ? { metadataUpdate } : {}) });
  let behaviour = null;
  try {
    behaviour = await fake.getBehaviour();
  } catch {
    // older fake without the endpoint
  }
  const cluster = {
    fake,
    hosts: [],
    pollMs: pollSeconds * 1000,
    spec4b,
    columnsOnly: fieldsMode() === 'columns',
    metadataUpdate: behaviour?.metadataUpdate ?? metadataUpdate ?? 'unknown (fake does not report it)',
  };
  const configExtra = convergenceConfig({ pollSeconds, spec4b });
  for (let i = 0; i < hosts; i++) {
    const proxy = await startProxy({ port: fake.port });
    t.after(() => proxy.close());
    const viaProxy = { ...fake, baseUrl: proxy.url };
    const d = await startDaemon({ fake: viaProxy, t, configExtra, startTimeoutMs: 60000 });
    cluster.hosts.push({ name: `h${i}`, index: i, d, proxy, down: false, epoch: 0, partitionEpoch: 0, partitions: 0, kills: 0 });
  }
  // Every host holds a signing key before any partition (JWKS comes from
  // {workos.base_url}, i.e. through the proxy).
  for (const h of cluster.hosts) {
    const deadline = Date.now() + 30000;
    for (;;) {
      const s = await adminValue(h, 'admin.status');
      if (s.ok && s.value.jwks?.keys > 0) break;
      if (Date.now() > deadline) throw new Error(`${h.name}: no JWKS key after 30 s: ${JSON.stringify(s)}`);
      await sleep(100);
    }
  }
  log(`cluster: ${hosts} hosts, poll ${pollSeconds}s, spec4b config ${spec4b ? 'on' : 'OFF (CONVERGENCE_SPEC4B_CONFIG=0)'}, metadata update ${cluster.metadataUpdate}${cluster.columnsOnly ? ', HARNESS SELF-CHECK: WorkOS columns only (CONVERGENCE_FIELDS=columns)' : ''}`);
  return cluster;
}

export function partition(h) {
  h.proxy.partition();
  h.partitioned = true;
  h.partitionEpoch++;
  h.partitions++;
}

export function heal(h) {
  h.proxy.heal();
  h.partitioned = false;
  h.partitionEpoch++;
}

/** SIGKILL, wait `downMs`, start again on the same store. */
export async function killAndRestart(h, downMs = 1000) {
  h.down = true;
  h.epoch++;
  h.kills++;
  await h.d.kill();
  await sleep(downMs);
  await h.d.restart();
  h.epoch++;
  h.down = false;
}

// ------------------------------------------------------------- calls

// {ok: true, value} | {ok: false, kind: 'fail'|'die'|'other', error, exit}
function outcome(exit) {
  if (exit?._tag !== 'Exit') return { ok: false, kind: 'other', error: exit, exit };
  if (exit.exit._tag === 'Success') return { ok: true, value: exit.exit.value };
  const cause = exit.exit.cause;
  if (cause?._tag === 'Fail') return { ok: false, kind: 'fail', error: cause.error, exit };
  if (cause?._tag === 'Die') return { ok: false, kind: 'die', error: cause.defect, exit };
  return { ok: false, kind: 'other', error: cause, exit };
}

export async function appCall(h, tag, payload, token) {
  return outcome(await call(h.d.socketPath, tag, payload, { token }));
}

export async function adminValue(h, tag, payload) {
  return outcome(await admin(h.d, tag, payload));
}

// ------------------------------------------------------------- users

/**
 * Creates `count` WorkOS users (and an anchor user whose email the workload
 * uses as "taken"), mints tokens, provisions: the anchor online everywhere,
 * the first half of the users on host 0 while it is cut off from WorkOS (then
 * on the others), the rest everywhere online. Records id mismatches in
 * `failures`.
 */
export async function setupUsers(cluster, { count = 6, failures, log = () => {}, legacyId = false }) {
  const { fake, hosts } = cluster;
  const tag = `${process.pid}-${Date.now().toString(36)}`;
  const anchorW = await seedUser(fake, { email: `anchor-${tag}@conv.example.com`, firstName: 'Anchor', lastName: 'User' });
  const anchor = { workosId: anchorW.id, email: anchorW.email, token: await tokenFor(fake, anchorW, { expiresIn: 86400 }) };
  for (const h of hosts) {
    const r = await appCall(h, 'user.me', undefined, anchor.token);
    if (!r.ok) throw new Error(`${h.name}: anchor user.me failed: ${JSON.stringify(r.exit)}`);
  }
  const users = [];
  for (let k = 0; k < count; k++) {
    const w = await seedUser(fake, { email: `u${k}-${tag}@conv.example.com`, firstName: 'Init', lastName: `User${k}` });
    users.push({
      k,
      workosId: w.id,
      token: await tokenFor(fake, w, { expiresIn: 86400 }),
      ids: {}, // host name -> id from provisioning
      offlineOn: null,
      deleting: false, // a delete was sent (tokens may be refused from then on)
      deletedAt: null, // a delete succeeded
    });
  }
  const provision = async (h, u) => {
    const r = await appCall(h, 'user.me', undefined, u.token);
    if (!r.ok) throw new Error(`${h.name}: provisioning user.me of user ${u.k} (${u.workosId}) failed: ${JSON.stringify(r.exit)}`);
    u.ids[h.name] = r.value.id;
  };
  const half = Math.ceil(count / 2);
  const h0 = hosts[0];
  partition(h0);
  for (const u of users.slice(0, half)) {
    await provision(h0, u);
    u.offlineOn = h0.name;
  }
  for (const h of hosts.slice(1)) for (const u of users.slice(0, half)) await provision(h, u);
  let legacy = null;
  if (legacyId && hosts.length >= 2) legacy = await setupLegacyUser(cluster, { tag, users, provision, failures, log });
  heal(h0);
  // The legacy user is provisioned where setupLegacyUser wants it; asking
  // host 0 again here would record the id it re-keys to (fast since the
  // outbox applies WorkOS's answers), not the one it provisioned offline.
  for (const h of hosts) for (const u of users.slice(half)) if (!u.legacy) await provision(h, u);
  for (const u of cluster.columnsOnly ? [] : users.filter((x) => x !== legacy)) {
    const ids = Object.values(u.ids);
    const tagOffline = u.offlineOn ? ` (provisioned offline on ${u.offlineOn})` : '';
    if (new Set(ids).size !== 1) failures.push(`ids: user ${u.k} (${u.workosId}) has different ids per host${tagOffline}: ${JSON.stringify(u.ids)}`);
    if (cluster.spec4b) {
      const want = uuidv5(NAMESPACE, u.workosId);
      for (const [hn, id] of Object.entries(u.ids)) {
        if (id !== want) failures.push(`ids: user ${u.k} on ${hn}${u.offlineOn === hn ? ' (offline)' : ''}: id ${id}, want the v5 UUID ${want} of ${u.workosId} in ${NAMESPACE}`);
      }
    }
  }
  // The offline-provisioned users get their profile from a queued fetch once
  // WorkOS answers (SPEC 1); after that every host has seen every user's
  // picture (all have one), which resetAvatar relies on when offline.
  const drained = await waitDrained(cluster, 30000);
  if (!drained.at) failures.push(`setup: outboxes not empty 30 s after provisioning: ${JSON.stringify(drained.depths)}`);
  for (const h of hosts) {
    for (const u of users) {
      const g = await adminValue(h, 'admin.users.get', { workosId: u.workosId });
      const w = await fake.getUser(u.workosId);
      if (!g.ok) failures.push(`setup: ${h.name} admin.users.get of user ${u.k}: ${JSON.stringify(g.error)}`);
      else if (g.value.email !== w.email) failures.push(`setup: ${h.name} has email ${JSON.stringify(g.value.email)} for user ${u.k}${u.offlineOn === h.name ? ' (provisioned offline)' : ''}, WorkOS ${JSON.stringify(w.email)} (SPEC 1: the queued fetch fills it in)`);
      else (u.pictureSeen ??= {})[h.name] = true;
    }
  }
  if (legacy) await checkRekeyed(cluster, legacy, { failures, log });
  log(`users: ${count} (+ anchor${legacy ? ', + one imported with a legacy id' : ''}), ${half} provisioned offline on ${h0.name} first`);
  return { users, anchor };
}

/**
 * SPEC 4b's re-keying case, with host 0 cut off from WorkOS: a WorkOS user
 * provisioned offline on host 0 (version-5 id), then imported on host 1 with
 * the id of an earlier system; host 1's outbox sets external_id to it, host 2
 * (when there is one) provisions the user online and adopts it, and host 0,
 * once healed, must re-key. Adds the user to `users` (expected id:
 * u.expectId).
 */
async function setupLegacyUser(cluster, { tag, users, provision, failures, log }) {
  const { fake, hosts } = cluster;
  const [h0, h1, h2] = hosts;
  const w = await seedUser(fake, { email: `legacy-${tag}@conv.example.com`, firstName: 'Legacy', lastName: 'User' });
  const u = {
    k: users.length,
    workosId: w.id,
    token: await tokenFor(fake, w, { expiresIn: 86400 }),
    ids: {},
    offlineOn: h0.name,
    legacy: true,
    expectId: crypto.randomUUID(),
    deleting: false,
    deletedAt: null,
  };
  users.push(u);
  await provision(h0, u);
  const imp = await adminValue(h1, 'admin.users.import', { users: [{ workosId: w.id, id: u.expectId, email: w.email, firstName: w.first_name, lastName: w.last_name }] });
  if (!imp.ok) {
    failures.push(`legacy id: admin.users.import on ${h1.name} failed: ${JSON.stringify(imp.error)}`);
    return u;
  }
  u.ids[h1.name] = u.expectId;
  const deadline = Date.now() + 2 * cluster.pollMs + 10000;
  let xid;
  while ((xid = (await fake.getUser(w.id))?.external_id) !== u.expectId && Date.now() < deadline) await sleep(100);
  if (xid !== u.expectId) failures.push(`legacy id: WorkOS external_id of user ${u.k} is ${JSON.stringify(xid)} after the import on ${h1.name}, want ${u.expectId} (SPEC 4b: the imported id becomes the external_id)`);
  if (h2) {
    await provision(h2, u);
    if (u.ids[h2.name] !== u.expectId) failures.push(`legacy id: ${h2.name} provisioned user ${u.k} as ${u.ids[h2.name]}, not the external_id ${u.expectId}`);
  }
  log(`legacy id: user ${u.k} offline on ${h0.name} as ${u.ids[h0.name]}, imported on ${h1.name} as ${u.expectId}`);
  return u;
}

/** Host 0 re-keys the legacy user within 2 polls (+ slack); its change feed shows the delete of the old id and the upsert of the new. */
async function checkRekeyed(cluster, u, { failures, log }) {
  const h0 = cluster.hosts[0];
  const t0 = Date.now();
  const deadline = t0 + 2 * cluster.pollMs + 10000;
  let id;
  for (;;) {
    const g = await adminValue(h0, 'admin.users.get', { workosId: u.workosId });
    id = g.ok ? g.value.id : `(${JSON.stringify(g.error)})`;
    if (id === u.expectId || Date.now() > deadline) break;
    await sleep(100);
  }
  if (id !== u.expectId) {
    failures.push(`legacy id: ${h0.name} still holds user ${u.k} as ${id} ${Date.now() - t0} ms after the setup drain, want the external_id ${u.expectId} (SPEC 4b re-keying)`);
    return;
  }
  log(`legacy id: ${h0.name} re-keyed user ${u.k} to ${u.expectId} (${Date.now() - t0} ms after the setup drain)`);
  const feed = await readChanges(h0.d, 0);
  const old = u.ids[h0.name];
  const del = feed.findIndex((c) => c.op === 'delete' && c.user?.id === old);
  const ups = feed.findIndex((c, i) => i > del && c.op === 'upsert' && c.user?.id === u.expectId);
  if (del < 0 || ups < 0) failures.push(`legacy id: ${h0.name}'s change feed lacks the delete of ${old} followed by the upsert of ${u.expectId} (SPEC 4b)`);
}

// ------------------------------------------------------------- workload

function newStats() {
  return {
    ops: 0,
    byOp: {},
    ok: 0,
    refused: { deletedUser: 0, validationDeliberate: 0, emailInUse: 0, resetAvatarOffline: 0, interruptedByKill: 0 },
    skippedHostDown: 0,
    acceptedAfterDelete: {},
    failures: [],
  };
}

/**
 * Runs the random workload for `durationMs` with `workers` concurrent
 * workers. `partitions`: [{host, at, ms}] cut host `host` off from WorkOS
 * over [at, at + ms); `kills`: [{host, at, downMs}] SIGKILL and restart it
 * (times in ms from the start). `deletes`: how many users get deleted (at
 * random times, with writes to them from the other hosts at that moment).
 */
export async function runWorkload(cluster, { users, anchor }, opts) {
  const { hosts } = cluster;
  const { seed, durationMs, workers = 6, partitions = [], kills = [], deletes = 1, log = () => {}, maxOps = Infinity, origins = new Map(), thinkMs = 10, opBase = 0 } = opts;
  const r = rng(seed);
  const stats = newStats();
  // origins: `${field}=${canon(value)}` -> description of the write
  // Only values unique to one write name it (not time zones, nulls, booleans).
  const noteWrite = (desc, fields) => {
    for (const [f, v] of Object.entries(fields)) {
      if (f !== 'timezone' && f !== 'isOnboarded' && v !== null) origins.set(`${f}=${canon(v)}`, desc);
    }
  };
  // Operation numbers go on across rounds (opBase), so written values stay unique.
  let opNo = opBase;
  const start = Date.now();
  const elapsed = () => Date.now() - start;
  const upHosts = () => hosts.filter((h) => !h.down);

  const fail = (desc, why) => {
    stats.failures.push(`${desc}: ${why}`);
  };

  // One operation on host h for user u; `gen` is the op kind.
  const runOp = async (kind, h, u, extra = {}) => {
    const n = ++opNo;
    stats.ops++;
    stats.lastOpNo = n;
    stats.byOp[kind] = (stats.byOp[kind] ?? 0) + 1;
    const desc = `op#${n} ${h.name} ${kind} user ${u.k}`;
    const epoch0 = h.epoch;
    const part0 = h.partitionEpoch;
    const wasPartitioned = h.partitioned;
    const deleting0 = u.deleting;
    let res;
    let payload;
    try {
      if (kind === 'import') {
        payload = { users: [{ workosId: u.workosId, ...extra.fields }] };
        res = await adminValue(h, 'admin.users.import', payload);
      } else if (kind === 'user.me' || kind === 'user.finalizeOnboarding' || kind === 'user.resetAvatar') {
        res = await appCall(h, kind, undefined, u.token);
      } else {
        // update / delete act on the caller's own id as this host knows it.
        const me = await appCall(h, 'user.me', undefined, u.token);
        if (!me.ok) {
          res = me;
        } else {
          payload = kind === 'user.delete' ? { id: me.value.id } : { id: me.value.id, ...extra.fields };
          if (kind === 'user.delete') u.deleting = true;
          res = await appCall(h, kind, payload, u.token);
        }
      }
    } catch (e) {
      if (h.down || h.epoch !== epoch0) {
        stats.refused.interruptedByKill++;
        return { interrupted: true };
      }
      fail(desc, `no answer: ${e.message}`);
      return { error: e };
    }
    const partitionedDuring = wasPartitioned || h.partitioned || h.partitionEpoch !== part0;
    if (res.ok) {
      stats.ok++;
      if (u.deletedAt && kind !== 'import') {
        // A deleted user's token still accepted here (the host has not
        // applied the delete yet): how often, and for how long after it.
        const a = (stats.acceptedAfterDelete[h.name] ??= { count: 0, maxMsAfterDelete: 0 });
        a.count++;
        a.maxMsAfterDelete = Math.max(a.maxMsAfterDelete, Date.now() - u.deletedAt);
      }
      const v = res.value;
      if (kind === 'user.update' && extra.expect === 'ok') {
        for (const [f, want] of Object.entries(extra.fields)) {
          if (canon(v.data?.[f]) !== canon(want)) fail(desc, `answer shows ${f}=${canon(v.data?.[f])}, the patch set ${canon(want)}`);
        }
        noteWrite(desc, extra.fields);
      } else if (kind === 'user.update') {
        fail(desc, `a patch that must be refused (${extra.expect}) was accepted: ${JSON.stringify(payload)}`);
      } else if (kind === 'user.finalizeOnboarding') {
        if (v.data?.isOnboarded !== true) fail(desc, `isOnboarded is ${v.data?.isOnboarded} after finalizeOnboarding`);
      } else if (kind === 'user.resetAvatar') {
        // Its value (WorkOS's picture) is not unique to one write: not noted.
      } else if (kind === 'user.delete') {
        u.deletedAt ??= Date.now();
        log(`  ${desc}: deleted at +${elapsed()} ms`);
      } else if (kind === 'import') {
        if (v.count !== 1) fail(desc, `import answered count ${v.count}`);
        noteWrite(desc, extra.fields);
      }
      return { ok: true };
    }
    const e = res.error ?? {};
    const tag = e._tag ?? e.name;
    // A deleted user's token may be refused (and its id not found) from the
    // moment a delete was sent.
    if (res.kind === 'fail' && (tag === 'UnauthorizedError' || tag === 'UserNotFoundError') && (deleting0 || u.deleting)) {
      stats.refused.deletedUser++;
      return { refused: true };
    }
    if (res.kind === 'die' && e.name === 'ValidationError') {
      if (extra.expect === 'invalid' && typeof e.message === 'string' && e.message.includes(extra.field)) {
        stats.refused.validationDeliberate++;
        return { refused: true };
      }
      if (extra.expect === 'emailInUse' && /email already in use/.test(e.message ?? '')) {
        stats.refused.emailInUse++;
        return { refused: true };
      }
    }
    // SPEC 1: offline, resetAvatar uses the last picture URL seen from WorkOS
    // and fails only when it knows none. Every user here has a picture that
    // every host saw before the workload (setupUsers waits for it), so this
    // stays a failure unless that changes.
    if (kind === 'user.resetAvatar' && res.kind === 'fail' && tag === 'InternalServerError' && partitionedDuring && !u.pictureSeen?.[h.name]) {
      stats.refused.resetAvatarOffline++;
      return { refused: true };
    }
    fail(desc, `${res.kind} ${JSON.stringify(e)}${payload ? ` for ${JSON.stringify(payload)}` : ''}${partitionedDuring ? ' (host partitioned)' : ''}`);
    return { failed: true };
  };

  // Random field values, unique where they can be so a diff names the write.
  const gen = {
    firstName: (n) => `${r.pick(FIRST)}-${n}`,
    lastName: (n) => `${r.pick(LAST)}-${n}`,
    email: (n) => `e${n}-${seed}@conv.example.com`,
    avatarUrl: (n) => (r() < 0.15 ? null : `https://img.example.com/${seed}/${n}.png`),
    timezone: () => r.pick(TIMEZONES),
    settings: (n) => {
      if (r() < 0.1) return null;
      const s = { doNotDisturb: r() < 0.5, note: `op${n}` };
      if (r() < 0.5) Object.assign(s, { quietHoursStart: '22:00', quietHoursEnd: '07:30', showQuietHoursInStatus: r() < 0.5 });
      if (r() < 0.5) s.theme = { mode: r.pick(['dark', 'light']), accent: r.int(7) };
      return s;
    },
  };
  const genNames = cluster.columnsOnly ? ['firstName', 'lastName', 'email'] : Object.keys(gen);
  const genFields = (n, maxCount = 3) => {
    const out = {};
    const k = 1 + r.int(maxCount);
    for (let i = 0; i < k; i++) {
      const f = r.pick(genNames);
      out[f] = gen[f](n);
    }
    return out;
  };

  const liveUsers = () => users.filter((u) => !u.deleting);

  const oneRandomOp = async () => {
    const hs = upHosts();
    if (!hs.length) {
      stats.skippedHostDown++;
      await sleep(50);
      return;
    }
    const h = r.pick(hs);
    // Deleted users are still picked now and then (their tokens must be refused).
    const lu = liveUsers();
    const u = lu.length && r() < 0.95 ? r.pick(lu) : r.pick(users);
    const x = r();
    if (x < 0.12) return runOp('user.me', h, u);
    if (x < 0.50) return runOp('user.update', h, u, { fields: genFields(opNo + 1), expect: 'ok' });
    if (x < 0.53) {
      const bad = r.pick(cluster.columnsOnly ? [['firstName', { firstName: '' }]] : [
        ['timezone', { timezone: 'Mars/Olympus_Mons' }],
        ['firstName', { firstName: '' }],
        ['avatarUrl', { avatarUrl: 'ftp://img.example.com/a.png' }],
        ['settings', { settings: { doNotDisturb: 'yes' } }],
      ]);
      return runOp('user.update', h, u, { fields: bad[1], expect: 'invalid', field: bad[0] });
    }
    if (x < 0.55) {
      const email = r() < 0.5 ? anchor.email : anchor.email.toUpperCase();
      return runOp('user.update', h, u, { fields: { email }, expect: 'emailInUse' });
    }
    // admin.users.import is a write like user.update here (SPEC 4b: "every
    // field" agrees, and import gets the same metadata checks);
    // CONVERGENCE_IMPORT=0 leaves it out to tell its effect apart.
    if ((cluster.columnsOnly && (x < 0.73 || x >= 0.85)) || (x >= 0.85 && process.env.CONVERGENCE_IMPORT === '0')) return runOp('user.update', h, u, { fields: genFields(opNo + 1), expect: 'ok' });
    if (x < 0.63) return runOp('user.finalizeOnboarding', h, u);
    if (x < 0.73) return runOp('user.resetAvatar', h, u);
    if (x < 0.85) {
      // The same field of one user written from every host at once.
      const f = r.pick(cluster.columnsOnly ? ['firstName', 'lastName'] : ['firstName', 'lastName', 'timezone', 'settings', 'avatarUrl']);
      const w = users.filter((v) => !v.deleting);
      if (!w.length) return;
      const v = r.pick(w);
      const base = opNo + 1;
      await Promise.all(upHosts().map((hh, i) => runOp('user.update', hh, v, { fields: { [f]: gen[f](`${base}c${i}`) }, expect: 'ok' })));
      return;
    }
    if (x < 1.0) {
      const lu2 = liveUsers();
      if (!lu2.length) return;
      const fields = genFields(opNo + 1, 4);
      if (r() < 0.3) fields.isOnboarded = true;
      return runOp('import', h, r.pick(lu2), { fields });
    }
  };

  let stop = false;
  // A short random pause between a worker's operations keeps the load
  // bounded (a few hundred operations a second) on a small machine.
  const worker = async () => {
    while (!stop && elapsed() < durationMs && stats.ops < maxOps) {
      await oneRandomOp();
      if (thinkMs > 0) await sleep(r.int(2 * thinkMs + 1));
    }
  };

  // Scheduled events: deletes, the partition, the kill.
  const events = [];
  const deleteTimes = Array.from({ length: Math.min(deletes, Math.max(0, liveUsers().length - 2)) }, () => Math.floor(durationMs * (0.25 + 0.5 * r())));
  for (const at of deleteTimes) {
    events.push((async () => {
      await sleep(at);
      const lu = liveUsers();
      const hs = upHosts();
      if (!lu.length || !hs.length || stop) return;
      const u = r.pick(lu);
      const h = r.pick(hs);
      // Writes to the same user from the other hosts at the same moment.
      await Promise.all([runOp('user.delete', h, u), ...hs.filter((o) => o !== h).map((o) => runOp('user.update', o, u, { fields: genFields(opNo + 1, 2), expect: 'ok' }))]);
    })());
  }
  const timeline = [];
  stats.upstreamDuringPartition = [];
  for (const p of partitions) {
    events.push((async () => {
      await sleep(p.at);
      const h = hosts[p.host];
      partition(h);
      timeline.push(`+${elapsed()} ms partition ${h.name}`);
      log(`  +${elapsed()} ms: ${h.name} partitioned from WorkOS for ${p.ms} ms`);
      const refused0 = h.proxy.stats.refused;
      await sleep(p.ms);
      const st = await adminValue(h, 'admin.status');
      stats.upstreamDuringPartition.push({
        host: h.name,
        state: st.ok ? st.value.upstream?.state : `admin.status failed: ${JSON.stringify(st.error)}`,
        proxyRefused: h.proxy.stats.refused - refused0,
      });
      heal(h);
      timeline.push(`+${elapsed()} ms heal ${h.name}`);
      log(`  +${elapsed()} ms: ${h.name} healed`);
    })());
  }
  for (const k of kills) {
    events.push((async () => {
      await sleep(k.at);
      const h = hosts[k.host];
      timeline.push(`+${elapsed()} ms SIGKILL ${h.name}`);
      log(`  +${elapsed()} ms: SIGKILL ${h.name}`);
      await killAndRestart(h, k.downMs ?? 1000);
      timeline.push(`+${elapsed()} ms ${h.name} restarted`);
      log(`  +${elapsed()} ms: ${h.name} restarted`);
    })());
  }

  await Promise.all(Array.from({ length: workers }, worker));
  stop = true;
  await Promise.allSettled(events).then((rs) => {
    for (const x of rs) if (x.status === 'rejected') stats.failures.push(`schedule: ${x.reason?.stack ?? x.reason}`);
  });
  stats.durationMs = elapsed();
  stats.timeline = timeline;
  stats.origins = origins;
  return stats;
}

// ------------------------------------------------------------- checks

/** admin.users.get {workosId} of every user on every host: {hostName: {workosId: view}}. */
export async function snapshot(cluster, users) {
  const out = {};
  await Promise.all(cluster.hosts.map(async (h) => {
    out[h.name] = {};
    for (const u of users) {
      const r = await adminValue(h, 'admin.users.get', { workosId: u.workosId });
      if (r.ok) {
        const v = r.value;
        out[h.name][u.workosId] = {
          id: v.id, email: v.email, firstName: v.firstName, lastName: v.lastName, avatarUrl: v.avatarUrl ?? null,
          timezone: v.timezone ?? null, settings: v.settings ?? null, isOnboarded: v.isOnboarded, createdAt: v.createdAt,
          deleted: v.deletedAt !== null && v.deletedAt !== undefined,
        };
      } else if (r.kind === 'fail' && r.error?._tag === 'UserNotFoundError') {
        out[h.name][u.workosId] = { missing: true };
      } else {
        out[h.name][u.workosId] = { error: JSON.stringify(r.error ?? r.exit) };
      }
    }
  }));
  return out;
}

/**
 * Per-user, per-field differences between hosts: [{user, workosId, field,
 * values: {host: value}, deletedUser}]. A user's fields are compared on
 * every host, deleted or not (SPEC 4b: "for every user"); a deleted user is
 * also compared on its deleted state.
 */
export function diffSnapshots(snap, users, fields = FIELDS) {
  const hostNames = Object.keys(snap);
  const out = [];
  for (const u of users) {
    const views = hostNames.map((hn) => snap[hn][u.workosId]);
    const bad = views.find((v) => v.missing || v.error);
    if (bad) {
      out.push({ user: u.k, workosId: u.workosId, field: '(lookup)', values: Object.fromEntries(hostNames.map((hn, i) => [hn, views[i].missing ? 'UserNotFoundError' : views[i].error ?? 'found'])) });
      continue;
    }
    const deletedUser = views.some((v) => v.deleted);
    const deletedEverywhere = views.every((v) => v.deleted);
    for (const f of deletedEverywhere && deletedFieldsMode() === 'skip' ? fields.filter((x) => x === 'id' || x === 'deleted') : fields) {
      const vals = views.map((v) => canon(v[f]));
      if (new Set(vals).size > 1) out.push({ user: u.k, workosId: u.workosId, field: f, deletedUser, values: Object.fromEntries(hostNames.map((hn, i) => [hn, views[i][f]])) });
    }
  }
  return out;
}

const WORKOS_COLUMN = { email: 'email', firstName: 'first_name', lastName: 'last_name', createdAt: 'created_at', id: 'external_id' };

/**
 * The diff as text: each differing field of each user, every host's value
 * with the write that produced it (when the value is unique to one write),
 * and WorkOS's value for the fields WorkOS has a column for.
 */
export function formatDiff(diff, origins = new Map(), workosUsers = new Map()) {
  return diff
    .map((d) => {
      const vals = Object.entries(d.values)
        .map(([hn, v]) => {
          const o = origins.get(`${d.field}=${canon(v)}`);
          return `      ${hn}: ${canon(v)}${o ? `   <- ${o}` : ''}`;
        })
        .join('\n');
      const w = workosUsers.get(d.workosId);
      let wl = '';
      if (workosUsers.has(d.workosId) && w === null) wl = '\n      WorkOS: (no such user)';
      else if (w && WORKOS_COLUMN[d.field]) wl = `\n      WorkOS ${WORKOS_COLUMN[d.field]}: ${JSON.stringify(w[WORKOS_COLUMN[d.field]] ?? null)}`;
      else if (w && ['timezone', 'settings', 'isOnboarded', 'avatarUrl'].includes(d.field)) {
        // The shared document as WorkOS holds it (SPEC 4b: usersd_0 … usersd_{n-1}, concatenated).
        const m = w.metadata ?? {};
        const keys = Object.keys(m).filter((k) => /^usersd_\d+$/.test(k)).sort((a, b) => Number(a.slice(7)) - Number(b.slice(7)));
        const doc = keys.map((k) => m[k]).join('');
        wl = `\n      WorkOS metadata document: ${doc ? doc.slice(0, 400) : '(none)'}${w.profile_picture_url && d.field === 'avatarUrl' ? `; profile_picture_url ${JSON.stringify(w.profile_picture_url)}` : ''}`;
      }
      return `  user ${d.user} (${d.workosId})${d.deletedUser ? ' [deleted on some host]' : ''} ${d.field}:\n${vals}${wl}`;
    })
    .join('\n');
}

/** WorkOS's view agrees with the hosts' agreed view (4b: WorkOS is the shared store). */
export async function diffWorkos(cluster, users, snap) {
  const out = [];
  const h0 = cluster.hosts[0].name;
  for (const u of users) {
    const v = snap[h0][u.workosId];
    const w = await cluster.fake.getUser(u.workosId);
    if (v.deleted || v.missing) {
      if (w) out.push(`user ${u.k} (${u.workosId}): deleted on the hosts, present in WorkOS`);
      continue;
    }
    if (!w) {
      out.push(`user ${u.k} (${u.workosId}): live on the hosts, absent from WorkOS`);
      continue;
    }
    for (const [f, wf] of [['email', 'email'], ['firstName', 'first_name'], ['lastName', 'last_name']]) {
      if ((w[wf] ?? '') !== (v[f] ?? '')) out.push(`user ${u.k} (${u.workosId}) ${f}: hosts ${JSON.stringify(v[f])}, WorkOS ${wf} ${JSON.stringify(w[wf])}`);
    }
    if (cluster.spec4b && !cluster.columnsOnly && w.external_id !== v.id) out.push(`user ${u.k} (${u.workosId}): WorkOS external_id ${JSON.stringify(w.external_id)}, hosts' id ${v.id}`);
  }
  return out;
}

/** Polls until every host's outbox is empty; resolves to the time it happened (ms epoch) or null. */
export async function waitDrained(cluster, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const depths = await Promise.all(cluster.hosts.map(async (h) => {
      const s = await adminValue(h, 'admin.status');
      return s.ok ? s.value.outbox.depth : NaN;
    }));
    if (depths.every((d) => d === 0)) return { at: Date.now(), depths };
    if (Date.now() > deadline) return { at: null, depths };
    await sleep(100);
  }
}

/** Polls until every host's events cursor is WorkOS's newest event. */
export async function waitFeedCaughtUp(cluster, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const events = await cluster.fake.listEvents();
    const list = Array.isArray(events) ? events : events.data ?? [];
    const newest = list.length ? list.reduce((a, b) => (a.id > b.id ? a : b)).id : null;
    const cursors = await Promise.all(cluster.hosts.map(async (h) => {
      const s = await adminValue(h, 'admin.status');
      return s.ok ? s.value.eventsCursor : null;
    }));
    if (cursors.every((c) => c === newest)) return { at: Date.now(), newest, cursors };
    if (Date.now() > deadline) return { at: null, newest, cursors };
    await sleep(100);
  }
}

/**
 * Polls snapshots until the hosts agree or `timeoutMs` passes. Resolves to
 * {at (ms epoch) | null, diff (last), snap (last), polls}.
 */
export async function waitConverged(cluster, users, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let polls = 0;
  for (;;) {
    const snap = await snapshot(cluster, users);
    polls++;
    const diff = diffSnapshots(snap, users, cluster.columnsOnly ? COLUMN_FIELDS : FIELDS);
    if (!diff.length) return { at: Date.now(), diff, snap, polls };
    if (Date.now() > deadline) return { at: null, diff, snap, polls };
    await sleep(200);
  }
}

/** Dead letters on every host, split into expected (PUT of a user deleted meanwhile) and not. */
export async function checkDeadLetters(cluster, users) {
  const deletedIds = new Set();
  for (const u of users) if (u.deleting) for (const id of Object.values(u.ids)) deletedIds.add(id);
  const unexpected = [];
  let expected = 0;
  const expectedBy = {};
  for (const h of cluster.hosts) {
    const r = await adminValue(h, 'admin.deadLetters.list', { limit: 1000 });
    if (!r.ok) {
      unexpected.push(`${h.name}: admin.deadLetters.list failed: ${JSON.stringify(r.error)}`);
      continue;
    }
    for (const dl of r.value.deadLetters) {
      if (deletedIds.has(dl.userId) && dl.status === 404 && dl.op !== 'delete') {
        expected++;
        const k = `${h.name}/${dl.op}`;
        expectedBy[k] = (expectedBy[k] ?? 0) + 1;
      }
      else unexpected.push(`${h.name}: ${JSON.stringify(dl).slice(0, 600)}`);
    }
  }
  return { expected, expectedBy, unexpected };
}

/** A deleted user's token is refused on every host. */
export async function checkDeletedRefused(cluster, users) {
  const out = [];
  for (const u of users.filter((x) => x.deletedAt)) {
    for (const h of cluster.hosts) {
      const r = await appCall(h, 'user.me', undefined, u.token);
      if (r.ok || r.error?._tag !== 'UnauthorizedError') out.push(`user ${u.k} deleted, but user.me on ${h.name} answered ${JSON.stringify(r.ok ? r.value : r.error)}`);
    }
  }
  return out;
}

/**
 * For every live user, writes a fresh firstName (a WorkOS column) and a
 * timezone or settings (metadata) on one host (round robin) and measures,
 * from the write's answer, until each other host's admin.users.get shows
 * each of them. Resolves to {column: [ms], metadata: [ms], late: [strings]}.
 */
export async function probePropagation(cluster, users, { boundMs, giveUpMs, seed }) {
  const r = rng(seed ^ 0x5eed);
  const live = users.filter((u) => !u.deleting);
  const column = [];
  const metadata = [];
  const late = [];
  await Promise.all(live.map(async (u, i) => {
    const src = cluster.hosts[i % cluster.hosts.length];
    const me = await appCall(src, 'user.me', undefined, u.token);
    if (!me.ok) {
      late.push(`probe user ${u.k}: user.me on ${src.name} failed: ${JSON.stringify(me.error)}`);
      return;
    }
    const firstName = `Probe-${seed}-${i}`;
    const meta = i % 2 ? { timezone: me.value.timezone === 'Asia/Kolkata' ? 'Africa/Nairobi' : 'Asia/Kolkata' } : { settings: { probe: `${seed}-${i}-${r.int(1e6)}` } };
    const w = await appCall(src, 'user.update', { id: me.value.id, firstName, ...(cluster.columnsOnly ? {} : meta) }, u.token);
    if (!w.ok) {
      late.push(`probe user ${u.k}: user.update on ${src.name} failed: ${JSON.stringify(w.error)}`);
      return;
    }
    const t0 = Date.now();
    await Promise.all(cluster.hosts.filter((h) => h !== src).map(async (h) => {
      let colMs = null;
      let metaMs = null;
      for (;;) {
        const g = await adminValue(h, 'admin.users.get', { workosId: u.workosId });
        const v = g.ok ? g.value : {};
        const ms = Date.now() - t0;
        if (colMs === null && v.firstName === firstName) colMs = ms;
        if (cluster.columnsOnly) metaMs = -1;
        else if (metaMs === null && ('timezone' in meta ? v.timezone === meta.timezone : canon(v.settings) === canon(meta.settings))) metaMs = ms;
        if (colMs !== null && metaMs !== null) break;
        if (ms > giveUpMs) {
          late.push(`probe user ${u.k}: written on ${src.name} (firstName ${firstName}, ${canon(meta)}); after ${giveUpMs} ms ${h.name} shows firstName ${JSON.stringify(v.firstName)}${colMs !== null ? ` (since ${colMs} ms)` : ''}, timezone ${JSON.stringify(v.timezone)}, settings ${canon(v.settings)}${metaMs !== null ? ` (since ${metaMs} ms)` : ''}`);
          break;
        }
        await sleep(50);
      }
      if (colMs !== null) column.push(colMs);
      if (metaMs !== null && metaMs >= 0) metadata.push(metaMs);
      for (const [what, ms] of [['firstName', colMs], [Object.keys(meta)[0], metaMs]]) {
        if (ms !== null && ms > boundMs) late.push(`probe user ${u.k}: ${what} written on ${src.name}, read on ${h.name} after ${ms} ms (bound ${boundMs} ms)`);
      }
    }));
  }));
  return { column, metadata, late };
}

// ------------------------------------------------------------- one run

/**
 * The whole scenario: a cluster, users, then `rounds` times: the workload
 * (with `cycles` partition/kill cycles: in each, one random host is cut off
 * from 15 % to 60 % of the cycle and another is killed at 50 %), stop writes,
 * heal, drain, converge, check, probe. Resolves to figures plus `failures`
 * (strings; empty on success). opts: {t, seed, hosts, users, rounds,
 * durationMs (per round), cycles (per round), workers, pollSeconds,
 * metadataUpdate, slackMs, probeSlackMs, deletes (per round), maxOps (per
 * round), log}.
 */
export async function convergenceRun(opts) {
  const {
    t, seed, hosts: nHosts = 3, users: nUsers = 6, rounds = 1, durationMs = 30000, cycles = 1, workers = 6, pollSeconds = 1, metadataUpdate,
    slackMs = 10000, probeSlackMs = 3000, deletes = 1, drainTimeoutMs = 60000, log = () => {}, maxOps, legacyId = false,
  } = opts;
  const failures = [];
  const cluster = await startCluster({ t, hosts: nHosts, pollSeconds, metadataUpdate, log });
  const pollMs = cluster.pollMs;
  const setup = await setupUsers(cluster, { count: nUsers, failures, log, legacyId });
  const { users } = setup;
  const boundMs = 2 * pollMs + slackMs;
  const probeBound = 2 * pollMs + probeSlackMs;
  const r = rng(seed);
  const origins = new Map();
  const totals = { operations: 0, ok: 0, byOp: {}, refused: {}, workloadMs: 0 };
  const perRound = [];
  const convergeAfterDrain = [];
  const convergeAfterHeal = [];
  const latencies = { column: [], metadata: [] };

  for (let round = 0; round < rounds; round++) {
    const roundSeed = (seed + round * 7919) >>> 0;
    const partitions = [];
    const kills = [];
    const cycleMs = durationMs / cycles;
    for (let c = 0; c < cycles && nHosts > 1; c++) {
      const ph = r.int(nHosts);
      let kh = r.int(nHosts - 1);
      if (kh >= ph) kh++;
      partitions.push({ host: ph, at: Math.floor(c * cycleMs + cycleMs * 0.15), ms: Math.floor(cycleMs * 0.45) });
      kills.push({ host: kh, at: Math.floor(c * cycleMs + cycleMs * 0.5), downMs: 1000 });
    }
    log(`round ${round + 1}/${rounds}: seed ${roundSeed}, ${durationMs} ms, ${workers} workers, partitions ${partitions.map((p) => cluster.hosts[p.host].name).join(',') || '-'}, kills ${kills.map((k) => cluster.hosts[k.host].name).join(',') || '-'}`);
    const stats = await runWorkload(cluster, setup, { seed: roundSeed, durationMs, workers, deletes, log, maxOps, partitions, kills, origins, opBase: round * 10000000 });
    failures.push(...stats.failures);
    for (const p of stats.upstreamDuringPartition) {
      if (p.state !== 'offline') failures.push(`partition: ${p.host} reported upstream ${JSON.stringify(p.state)} at the end of its partition, not "offline" (SPEC 4); the proxy refused ${p.proxyRefused} connections meanwhile`);
    }
    totals.operations += stats.ops;
    totals.ok += stats.ok;
    totals.workloadMs += stats.durationMs;
    for (const [k, v] of Object.entries(stats.byOp)) totals.byOp[k] = (totals.byOp[k] ?? 0) + v;
    for (const [k, v] of Object.entries(stats.refused)) totals.refused[k] = (totals.refused[k] ?? 0) + v;

    // Writes stopped. Heal whatever is still cut off.
    for (const h of cluster.hosts) if (h.partitioned) heal(h);
    const tHeal = Date.now();
    const drained = await waitDrained(cluster, drainTimeoutMs);
    if (!drained.at) failures.push(`drain (round ${round + 1}): outboxes not empty ${drainTimeoutMs} ms after healing: depths ${JSON.stringify(drained.depths)}`);
    const tDrained = drained.at ?? Date.now();
    const feed = await waitFeedCaughtUp(cluster, boundMs);
    if (!feed.at) log(`feed: not caught up within ${boundMs} ms of the drain: newest event ${feed.newest}, cursors ${JSON.stringify(feed.cursors)}`);
    // Keep polling past the bound (to tell "late" from "never"), up to 30 s more.
    const conv = await waitConverged(cluster, users, Math.max(0, tDrained + boundMs + 30000 - Date.now()));
    const rf = {
      round: round + 1,
      operations: stats.ops,
      timeline: stats.timeline,
      upstreamDuringPartition: stats.upstreamDuringPartition,
      acceptedAfterDelete: stats.acceptedAfterDelete,
      drainMs: drained.at ? drained.at - tHeal : null,
      feedCaughtUpMsAfterDrain: feed.at ? feed.at - tDrained : null,
      convergedMsAfterHeal: conv.at ? conv.at - tHeal : null,
      convergedMsAfterDrain: conv.at ? conv.at - tDrained : null,
      mismatches: conv.diff.length,
      mismatchesOfDeletedUsers: conv.diff.filter((d) => d.deletedUser).length,
    };
    perRound.push(rf);
    log(`round ${round + 1}: ${JSON.stringify(rf)}`);
    if (conv.at) {
      convergeAfterDrain.push(conv.at - tDrained);
      convergeAfterHeal.push(conv.at - tHeal);
    }
    if (!conv.at) {
      const workosUsers = new Map();
      for (const u of users) workosUsers.set(u.workosId, await cluster.fake.getUser(u.workosId));
      failures.push(`converge (round ${round + 1}): hosts still disagree ${Date.now() - tDrained} ms after the drain (bound ${boundMs} ms), ${conv.diff.length} mismatches:\n${formatDiff(conv.diff, origins, workosUsers)}`);
    } else if (conv.at - tDrained > boundMs) {
      failures.push(`converge (round ${round + 1}): hosts agreed only ${conv.at - tDrained} ms after the drain (bound ${boundMs} ms = 2 polls + ${slackMs} ms slack)`);
    }
    if (conv.at) {
      failures.push(...(await diffWorkos(cluster, users, conv.snap)).map((s) => `workos (round ${round + 1}): ${s}`));
      // The agreed id is still the provisioned one (nothing here re-keys).
      for (const u of cluster.columnsOnly ? [] : users) {
        const id = conv.snap[cluster.hosts[0].name][u.workosId].id;
        const first = u.expectId ?? Object.values(u.ids)[0];
        if (id !== first) failures.push(`ids (round ${round + 1}): user ${u.k} now has id ${id}, provisioned as ${first}`);
      }
    }
    const dead = await checkDeadLetters(cluster, users);
    rf.deadLettersExpected = dead.expected;
    rf.deadLettersExpectedBy = dead.expectedBy;
    failures.push(...dead.unexpected.map((s) => `dead letter (round ${round + 1}): ${s}`));
    failures.push(...(await checkDeletedRefused(cluster, users)).map((s) => `deleted (round ${round + 1}): ${s}`));
    // Run even when the hosts disagree: it is a promise of its own.
    const p = await probePropagation(cluster, users, { boundMs: probeBound, giveUpMs: probeBound + 20000, seed: roundSeed });
    latencies.column.push(...p.column);
    latencies.metadata.push(...p.metadata);
    failures.push(...p.late.map((s) => `propagate (round ${round + 1}): ${s}`));
    // The probe's writes must be delivered before the next round's partitions.
    await waitDrained(cluster, drainTimeoutMs);
  }

  const figures = {
    seed,
    hosts: nHosts,
    users: nUsers,
    legacyIdUser: legacyId,
    rounds,
    metadataUpdate: cluster.metadataUpdate,
    spec4bConfig: cluster.spec4b,
    fields: cluster.columnsOnly ? 'columns only (harness self-check)' : 'all',
    deletedUsersFields: deletedFieldsMode(),
    ...totals,
    partitions: cluster.hosts.reduce((a, h) => a + h.partitions, 0),
    kills: cluster.hosts.reduce((a, h) => a + h.kills, 0),
    deleted: users.filter((u) => u.deletedAt).length,
    convergeMsAfterDrain: { n: convergeAfterDrain.length, p50: median(convergeAfterDrain), max: convergeAfterDrain.length ? Math.max(...convergeAfterDrain) : null, bound: boundMs },
    convergeMsAfterHeal: { n: convergeAfterHeal.length, p50: median(convergeAfterHeal), max: convergeAfterHeal.length ? Math.max(...convergeAfterHeal) : null },
    mismatches: perRound.reduce((a, x) => a + x.mismatches, 0),
    mismatchesOfDeletedUsers: perRound.reduce((a, x) => a + x.mismatchesOfDeletedUsers, 0),
    deadLettersExpected: perRound.reduce((a, x) => a + x.deadLettersExpected, 0),
    propagateMs: Object.fromEntries(['column', 'metadata'].map((k) => {
      const l = latencies[k];
      return [k, { n: l.length, p50: median(l), p90: percentile(l, 90), max: l.length ? Math.max(...l) : null }];
    })),
    propagateBoundMs: probeBound,
    perRound,
  };
  figures.failures = failures.length;
  // On failure, keep every host's log (the temp dirs go with the cleanup).
  if (failures.length) {
    const dir = process.env.CONVERGENCE_LOG_DIR ?? path.join(os.tmpdir(), `usersd-convergence-${seed}-${process.pid}`);
    fs.mkdirSync(dir, { recursive: true });
    for (const h of cluster.hosts) fs.writeFileSync(path.join(dir, `${h.name}.log`), h.d.logs());
    fs.writeFileSync(path.join(dir, 'users.json'), JSON.stringify(users.map((u) => ({ k: u.k, workosId: u.workosId, ids: u.ids, expectId: u.expectId, deletedAt: u.deletedAt })), null, 2));
    figures.logs = dir;
  }
  return { figures, failures, cluster, users };
}
