// WorkOS sync, end to end: the real daemon (USERSD_BIN) against the
// WorkOS-compatible test server (tests/workos-fake), which logs every request
// it sees and injects faults. Each test gets its own fake, store and sockets.
//
//   outbox   exactly the PUTs expected (changed fields only, none for
//            local-only fields), retries of 503 and 429 (Retry-After kept,
//            timed from the fake's request log), dead letters that do not
//            hold back a user's later jobs, merging under rapid updates, a
//            WorkOS outage (bounded requests, all delivered after), kill -9
//            with jobs pending.
//   events   users created, updated and deleted in WorkOS show up locally.
//   profile  resetAvatar live / none / offline fallback; a user provisioned
//            while WorkOS is down gets its profile from the queued fetch.
//
// Small backoffs (50 ms .. 500 ms) and a 1 s events poll keep it fast.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, newUser as harnessNewUser, ok, seedUser, sleep, startDaemon, tokenFor, waitFor, withFake } from './harness.mjs';

// Small backoffs and a 1 s events poll keep the tests fast.
const SYNC_CONFIG = {
  workos: { timeout_ms: 2000, events_poll_seconds: 1 },
  outbox: { initial_backoff_ms: 50, max_backoff_ms: 500 },
  log: { level: 'info' },
};

// A fake, a daemon and a connection, all cleaned up by `t.after`.
async function setup(t, extra = {}) {
  const fake = await withFake({ t });
  const daemon = await startDaemon({ fake, t, configExtra: { ...SYNC_CONFIG, ...extra } });
  const env = { fake, daemon, conn: await connect(daemon.socketPath, { t }) };
  env.call = async (tag, payload, token) => {
    const exit = await env.conn.request(tag, payload, { token });
    return exit.exit._tag === 'Success' ? { ok: true, value: exit.exit.value } : { ok: false, error: exit.exit.cause?.error, exit };
  };
  // kill -9 (or SIGTERM) and start again on the same store.
  env.restart = async ({ kill = false } = {}) => {
    if (kill) await daemon.kill();
    await daemon.restart();
    env.conn = await connect(daemon.socketPath, { t });
  };
  return env;
}

// A user in the fake WorkOS, provisioned in usersd (user.me), with a token.
async function newUser(env, { picture = null, ...seed } = {}) {
  const r = await harnessNewUser(env.fake, env.conn, { picture, ...seed });
  return { workosId: r.workos.id, id: r.me.id, token: r.token, me: r.me };
}

async function update(env, user, patch) {
  return ok(await env.conn.request('user.update', { id: user.id, ...patch }, { token: user.token }));
}

const userPath = (workosId) => `^/user_management/users/${workosId}$`;
const puts = (env, workosId) => env.fake.requests({ method: 'PUT', path: userPath(workosId) });

// The admin socket's dead letters, or null when the admin API does not
// serve them.
async function deadLetters(env) {
  const c = await connect(env.daemon.adminPath, { t: { after: () => {} } });
  try {
    const exit = await c.request('admin.deadLetters.list', { limit: 100 });
    return exit.exit._tag === 'Success' ? exit.exit.value.deadLetters : null;
  } finally {
    await c.close();
  }
}

test('a name change yields exactly one PUT with only first_name; shared fields go in one versioned document, no read first', async (t) => {
  const env = await setup(t);
  const u = await newUser(env);
  await update(env, u, { firstName: 'Grace' });
  const first = await waitFor(async () => {
    const l = await puts(env, u.workosId);
    return l.length >= 1 && l;
  }, { what: 'the PUT' });
  assert.deepEqual(first[0].body, { first_name: 'Grace' });
  assert.equal(first[0].status, 200);
  assert.equal((await env.fake.getUser(u.workosId)).first_name, 'Grace');

  // Fields WorkOS has no column for travel as the metadata document
  // (SPEC 4b): one PUT of every chunk key with no read first; WorkOS merges
  // the map, so the application's own key (set behind this host's back,
  // without an event) stays.
  await env.fake.createUser({ ...(await env.fake.getUser(u.workosId)), metadata: { app_key: 'keep me' } });
  const getsBefore = (await env.fake.requests({ method: 'GET', path: userPath(u.workosId) })).length;
  await update(env, u, { timezone: 'Europe/Paris', settings: { doNotDisturb: true }, avatarUrl: 'https://example.com/a.png' });
  await update(env, u, { lastName: 'Hopper' });
  const all = await waitFor(async () => {
    const l = await puts(env, u.workosId);
    return l.length >= 2 && l;
  }, { what: 'the second PUT' });
  await sleep(300);
  const final = await puts(env, u.workosId);
  // Writes of one user between two sends go out as one PUT.
  assert.ok(final.length === 2 || final.length === 3, JSON.stringify(final.map((p) => p.body)));
  const md = final[1].body.metadata;
  assert.deepEqual(Object.keys(md).sort(), ['usersd_0', 'usersd_1', 'usersd_2', 'usersd_3', 'usersd_4', 'usersd_5']);
  assert.equal((await env.fake.getUser(u.workosId)).metadata.app_key, 'keep me');
  const doc = JSON.parse([0, 1, 2, 3, 4, 5].map((i) => md[`usersd_${i}`]).join(''));
  const versions = doc._v;
  delete doc._v;
  assert.deepEqual(doc, { timezone: 'Europe/Paris', settings: { doNotDisturb: true }, avatarUrl: 'https://example.com/a.png', isOnboarded: false });
  for (const f of ['timezone', 'settings', 'avatarUrl']) assert.match(versions[f], /^\d+\.\d+\.[0-9a-f]{16}$/, f);
  assert.equal(versions.isOnboarded, undefined, 'a field never written has no version');
  assert.equal(final.at(-1).body.last_name, 'Hopper');
  const gets = await env.fake.requests({ method: 'GET', path: userPath(u.workosId) });
  // No read before the first write (SPEC 4b: state is published, not
  // read-modify-written). Its answer shows the application's key, so a
  // second publish of this user (the last name, if it missed the first) is
  // read first (sync.metadata.read_first app_keys): at most one GET.
  assert.ok(gets.length - getsBefore <= 1, `${gets.length - getsBefore} reads of the user`);
  if (gets.length > getsBefore) assert.equal(final.at(-1).body.metadata?.app_key ?? 'keep me', 'keep me');
  // Names set to the values they have send nothing; a shared field written
  // with its value is still a write (its new version must win over an older
  // concurrent one), so the document goes again, in the same PUT as the
  // email when the two writes meet in the outbox.
  const before = (await puts(env, u.workosId)).length;
  await update(env, u, { firstName: 'Grace', lastName: 'Hopper', timezone: 'Europe/Paris' });
  await update(env, u, { email: `grace-${process.pid}@example.com` });
  await waitFor(async () => (await env.fake.getUser(u.workosId)).email === `grace-${process.pid}@example.com`, { what: 'the email PUT' });
  await sleep(300);
  const l3 = (await puts(env, u.workosId)).slice(before);
  assert.ok(l3.length === 1 || l3.length === 2, JSON.stringify(l3.map((p) => p.body)));
  for (const p of l3) assert.deepEqual(Object.keys(p.body).filter((k) => k !== 'metadata' && k !== 'email'), []);
  assert.ok(l3.some((p) => p.body.metadata), 'the document, with timezone\'s new version');
});

test('503s are retried with backoff until WorkOS accepts', async (t) => {
  const env = await setup(t);
  const u = await newUser(env);
  await env.fake.setFaults([{ method: 'PUT', path: '^/user_management/users/', status: 503, times: 3 }]);
  await update(env, u, { firstName: 'Retried' });
  await waitFor(async () => (await env.fake.getUser(u.workosId)).first_name === 'Retried', { what: 'delivery' });
  const l = await puts(env, u.workosId);
  assert.deepEqual(l.map((r) => r.status), [503, 503, 503, 200]);
  for (const r of l) assert.deepEqual(r.body, { first_name: 'Retried' });
});

test('429 with Retry-After is respected', async (t) => {
  const env = await setup(t);
  const u = await newUser(env);
  await env.fake.setFaults([{ method: 'PUT', path: '^/user_management/users/', status: 429, retryAfter: 1, times: 1 }]);
  await update(env, u, { firstName: 'Patient' });
  await waitFor(async () => (await env.fake.getUser(u.workosId)).first_name === 'Patient', { what: 'delivery' });
  const l = await puts(env, u.workosId);
  assert.deepEqual(l.map((r) => r.status), [429, 200]);
  const gap = l[1].ts - l[0].ts;
  assert.ok(gap >= 950, `retried after ${gap} ms, Retry-After was 1 s`);
  assert.ok(gap < 3000, `retried only after ${gap} ms`);
});

test('a refused change (400) becomes a dead letter and the user\'s later changes still go out', async (t) => {
  const env = await setup(t);
  const u = await newUser(env);
  // The address belongs to a WorkOS user this host has never seen, so only
  // WorkOS refuses it.
  const other = await env.fake.createUser({ email: `taken-${process.pid}@example.com`, first_name: 'O', last_name: 'T' });
  await update(env, u, { email: other.email });
  await waitFor(async () => (await puts(env, u.workosId)).some((r) => r.status === 400), { what: 'the refused PUT' });
  await update(env, u, { firstName: 'StillSynced' });
  await waitFor(async () => (await env.fake.getUser(u.workosId)).first_name === 'StillSynced', { what: 'the next change' });
  const l = await puts(env, u.workosId);
  assert.deepEqual(l.map((r) => r.status), [400, 200]);
  assert.deepEqual(l[1].body, { first_name: 'StillSynced' });
  assert.equal((await env.fake.getUser(u.workosId)).email, u.me.email);
  // The refused address goes back to WorkOS's here too (a re-read after the
  // refusal), so the claim on it is released (SPEC 1, 4).
  await waitFor(async () => (await env.call('user.me', {}, u.token)).value.email === u.me.email,
    { what: 'the local email back to WorkOS\'s' });
  const dead = await deadLetters(env);
  if (dead === null) {
    t.diagnostic('admin.deadLetters.list is not served yet; dead letter checked indirectly');
  } else {
    assert.equal(dead.length, 1);
    assert.equal(dead[0].status, 400);
    assert.match(dead[0].body, /email_not_available/);
    assert.equal(dead[0].fields?.email ?? other.email, other.email, 'the dead letter keeps the address asked for');
  }
});

test('email squatting: an address WorkOS refused is released, and its WorkOS owner gets it here (issue 21 item 2)', async (t) => {
  const env = await setup(t);
  const eve = await newUser(env);
  const frank = await seedUser(env.fake, { email: `frank-${process.pid}@example.com` });
  // Eve takes Frank's address while Frank has not signed in on this host.
  await update(env, eve, { email: frank.email });
  await waitFor(async () => (await puts(env, eve.workosId)).some((r) => r.status === 400), { what: 'the refused PUT' });
  await waitFor(async () => (await env.call('user.me', {}, eve.token)).value.email === eve.me.email,
    { what: 'Eve back on her own address' });
  // Frank signs in: the address is his, here as in WorkOS.
  const token = await tokenFor(env.fake, frank);
  const me = await env.call('user.me', {}, token);
  assert.ok(me.ok, JSON.stringify(me));
  assert.equal(me.value.email, frank.email);
  const admin = await connect(env.daemon.adminPath, { t });
  const byEmail = ok(await admin.request('admin.users.get', { email: frank.email }));
  assert.equal(byEmail.workosId, frank.id);
});

test('50 rapid updates of one user end with WorkOS holding the final values', async (t) => {
  const env = await setup(t);
  const u = await newUser(env);
  const replies = [];
  for (let i = 0; i < 50; i++) replies.push(env.call('user.update', { id: u.id, firstName: `n${i}`, lastName: `m${i}` }, u.token));
  const results = await Promise.all(replies);
  for (const r of results) assert.ok(r.ok);
  const me = await env.call('user.me', {}, u.token);
  const want = { first: me.value.firstName, last: me.value.lastName };
  await waitFor(async () => {
    const w = await env.fake.getUser(u.workosId);
    return w.first_name === want.first && w.last_name === want.last;
  }, { what: 'final values in WorkOS' });
  await sleep(300);
  const l = await puts(env, u.workosId);
  const w = await env.fake.getUser(u.workosId);
  assert.equal(w.first_name, want.first);
  assert.ok(l.length >= 1 && l.length <= 50, `${l.length} PUTs`);
  t.diagnostic(`${l.length} PUTs for 50 updates`);
});

test('WorkOS down for a while, then back: a bounded number of requests meanwhile, then everything delivered', async (t) => {
  const env = await setup(t);
  const users = [];
  for (let i = 0; i < 20; i++) users.push(await newUser(env));
  await env.fake.setDown(true);
  const since = Date.now();
  for (const [i, u] of users.entries()) {
    await update(env, u, { firstName: `Down${i}` });
    await update(env, u, { lastName: `Out${i}` });
  }
  await sleep(3000);
  // The whole outbox backs off: probes, not a retry storm per job. (20 users
  // retrying on their own with these backoffs would send several hundred.)
  const during = (await env.fake.requests({ since })).filter((r) => r.path.startsWith('/user_management/users/'));
  assert.ok(during.length <= 40, `${during.length} requests during the outage`);
  t.diagnostic(`${during.length} requests to WorkOS users in a 3 s outage`);
  await env.fake.setDown(false);
  await waitFor(async () => {
    for (const [i, u] of users.entries()) {
      const w = await env.fake.getUser(u.workosId);
      if (w.first_name !== `Down${i}` || w.last_name !== `Out${i}`) return false;
    }
    return true;
  }, { what: 'every change delivered' });
});

test('kill -9 with jobs pending, restart: all delivered', async (t) => {
  const env = await setup(t);
  const users = [];
  for (let i = 0; i < 10; i++) users.push(await newUser(env));
  await env.fake.setDown(true);
  for (const [i, u] of users.entries()) await update(env, u, { firstName: `Crash${i}` });
  await env.restart({ kill: true });
  await env.fake.setDown(false);
  await waitFor(async () => {
    for (const [i, u] of users.entries()) if ((await env.fake.getUser(u.workosId)).first_name !== `Crash${i}`) return false;
    return true;
  }, { what: 'every change delivered after the restart' });
});

test('WorkOS events create, update and soft-delete local users', async (t) => {
  // Without JIT provisioning, a token works only for users the events brought in.
  const env = await setup(t, { provisioning: { jit: false } });
  const wu = await env.fake.createUser({
    email: `evented-${process.pid}@example.com`,
    first_name: 'Eve',
    last_name: 'Nts',
    profile_picture_url: 'https://img.example.com/eve.png',
    emitEvent: true,
  });
  const token = await env.fake.mintToken({ sub: wu.id });
  const me = await waitFor(async () => {
    const r = await env.call('user.me', {}, token);
    return r.ok && r.value;
  }, { what: 'the user from user.created' });
  assert.equal(me.email, wu.email);
  assert.equal(me.firstName, 'Eve');
  assert.equal(me.avatarUrl, 'https://img.example.com/eve.png');
  assert.equal(me.role, 'member');

  await env.fake.createUser({ id: wu.id, email: wu.email, first_name: 'Evelyn', last_name: 'Nts', emitEvent: true });
  await waitFor(async () => (await env.call('user.me', {}, token)).value?.firstName === 'Evelyn', { what: 'the user.updated change' });

  // An ignored event type in the feed changes nothing and does not stop it.
  await env.fake.addEvent({ event: 'organization.created', data: { id: 'org_1', name: 'Org' } });
  await env.fake.deleteUser(wu.id, { emitEvent: true });
  await waitFor(async () => {
    const r = await env.call('user.me', {}, token);
    return !r.ok && r.error?._tag === 'UnauthorizedError';
  }, { what: 'the soft delete' });
  // The poller never asked WorkOS for anything but events (no provisioning).
  const gets = await env.fake.requests({ method: 'GET', path: '^/user_management/users/' });
  assert.equal(gets.length, 0);
});

test('resetAvatar: live picture, none, and the cached one while WorkOS is down', async (t) => {
  const env = await setup(t);
  const u = await newUser(env, { picture: 'https://img.example.com/p1.png' });
  assert.equal(u.me.avatarUrl, 'https://img.example.com/p1.png');
  await update(env, u, { avatarUrl: 'https://mine.example.com/custom.png' });

  await env.fake.createUser({ id: u.workosId, profile_picture_url: 'https://img.example.com/p2.png' });
  let r = await env.call('user.resetAvatar', {}, u.token);
  assert.ok(r.ok, JSON.stringify(r.error));
  assert.equal(r.value.data.avatarUrl, 'https://img.example.com/p2.png');
  // The reset's publish first: WorkOS's answer to it would show the picture
  // changed below, and a picture WorkOS has shown since is never reused.
  // (Under load the PUT could land after that change; the second reset then
  // read WorkOS again and the check below failed.)
  const admin = await connect(env.daemon.adminPath, { t });
  await waitFor(async () => ok(await admin.request('admin.outbox.list')).jobs.length === 0, { what: 'the reset published' });

  // A picture read less than 5 s ago is reused (SPEC 1: a storm of calls
  // costs one WorkOS read), so the next change shows after that.
  await env.fake.createUser({ id: u.workosId, profile_picture_url: '   ' });
  r = await env.call('user.resetAvatar', {}, u.token);
  assert.equal(r.value.data.avatarUrl, 'https://img.example.com/p2.png');
  await sleep(5100);
  r = await env.call('user.resetAvatar', {}, u.token);
  assert.ok(r.ok);
  assert.equal(r.value.data.avatarUrl, null);

  // A picture seen through the events feed is what the offline path uses.
  await env.fake.createUser({ id: u.workosId, profile_picture_url: 'https://img.example.com/p3.png', emitEvent: true });
  await waitFor(async () => (await env.call('user.me', {}, u.token)).value?.avatarUrl === 'https://img.example.com/p3.png', { what: 'the event applied' });
  await update(env, u, { avatarUrl: 'https://mine.example.com/again.png' });
  await env.fake.setDown(true);
  r = await env.call('user.resetAvatar', {}, u.token);
  assert.ok(r.ok, JSON.stringify(r.error));
  assert.equal(r.value.data.avatarUrl, 'https://img.example.com/p3.png');
});

test('a user provisioned while WorkOS is down gets its profile from the queued fetch', async (t) => {
  const env = await setup(t);
  const wu = await env.fake.createUser({
    email: `late-${process.pid}@example.com`,
    first_name: 'Late',
    last_name: 'Comer',
    profile_picture_url: 'https://img.example.com/late.png',
  });
  await env.fake.setDown(true);
  const token = await env.fake.mintToken({ sub: wu.id });
  const me = await env.call('user.me', {}, token);
  assert.ok(me.ok, JSON.stringify(me.error));
  assert.equal(me.value.email, '');
  assert.equal(me.value.firstName, '');
  // A name chosen locally meanwhile is kept; the rest is filled in.
  await env.call('user.update', { id: me.value.id, lastName: 'Mine' }, token);
  await env.fake.setDown(false);
  const filled = await waitFor(async () => {
    const r = await env.call('user.me', {}, token);
    return r.ok && r.value.email !== '' && r.value;
  }, { what: 'the profile filled in' });
  assert.equal(filled.email, wu.email);
  assert.equal(filled.firstName, 'Late');
  assert.equal(filled.lastName, 'Mine');
  assert.equal(filled.avatarUrl, 'https://img.example.com/late.png');
  await waitFor(async () => (await env.fake.getUser(wu.id)).last_name === 'Mine', { what: 'the local last name delivered' });
});
