// The inbound half of sync against a WorkOS-compatible server that behaves as
// WorkOS does where it is inconvenient (tests/workos-fake "Behaviour"): lists
// newest first unless asked, servers that ignore `order` or the filters, PUTs
// answered 200 without taking a field, changes and deletes without events,
// expired cursors, tokens signed with the server's own URL as issuer.
//
//   feed       remote changes arrive (fresh store and after a restart) from a
//              newest-first server; a server ignoring order cannot bring a
//              deleted user back, and the stuck feed shows in status/metrics.
//   put        a PUT that did not take a field becomes a dead letter naming it.
//   resync     admin.users.resync {id} and {all} repair silent renames and
//              deletes, with progress in admin.status; a rejected cursor
//              starts a reconciliation by itself; a run killed midway resumes.
//   metadata   a server that emits no event for a metadata-only PUT: a second
//              host gets the shared fields from a reconciliation.
//   issuer     a token whose iss is the local server's URL verifies with only
//              workos.base_url and auth.client_id configured; another is
//              refused with the issuer named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, connect, newUser, ok, sleep, startDaemon, waitFor, withFake } from './harness.mjs';

const CONFIG = {
  workos: { timeout_ms: 2000, events_poll_seconds: 1 },
  outbox: { initial_backoff_ms: 50, max_backoff_ms: 500 },
  sync: { reconcile: { requests_per_second: 50 } },
  log: { level: 'debug' },
};

async function setup(t, { fake: fakeOpts = {}, config = {} } = {}) {
  const fake = await withFake({ t, ...fakeOpts });
  const daemon = await startDaemon({ fake, t, configExtra: { ...CONFIG, ...config } });
  const env = { fake, daemon, conn: await connect(daemon.socketPath, { t }) };
  env.admin = async (tag, payload) => ok(await call(daemon.adminPath, tag, payload));
  env.me = async (token) => {
    const exit = await env.conn.request('user.me', undefined, { token });
    return exit.exit._tag === 'Success' ? exit.exit.value : null;
  };
  env.restart = async ({ kill = false } = {}) => {
    if (kill) await daemon.kill();
    await daemon.restart();
    env.conn = await connect(daemon.socketPath, { t });
  };
  return env;
}

async function metric(env, name) {
  const { text } = await env.admin('admin.metrics');
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

test('remote changes arrive from a server that lists newest first, on a fresh store and after a restart', async (t) => {
  const env = await setup(t);
  assert.equal((await env.fake.getBehaviour()).eventsDefaultOrder, process.env.WORKOS_FAKE_EVENTS_ORDER ?? 'desc');
  const u = await newUser(env.fake, env.conn);
  for (const name of ['Ann', 'Anna', 'Annabel']) {
    await env.fake.createUser({ id: u.workos.id, first_name: name, emitEvent: true });
  }
  await waitFor(async () => (await env.me(u.token))?.firstName === 'Annabel', { what: 'the last rename' });
  // Every poll asked for oldest first with the documented filter form.
  const polls = await env.fake.requests({ method: 'GET', path: '^/events$' });
  assert.ok(polls.length > 0);
  for (const p of polls) {
    assert.equal(p.query.order, 'asc');
    assert.deepEqual(p.query['events[]'], ['user.created', 'user.updated', 'user.deleted']);
  }
  await env.restart();
  await env.fake.createUser({ id: u.workos.id, last_name: 'Later', emitEvent: true });
  await waitFor(async () => (await env.me(u.token))?.lastName === 'Later', { what: 'a change after the restart' });
  const status = await env.admin('admin.status');
  assert.equal(status.events.stuck, false);
  assert.ok(status.events.lastSuccessAt);
  assert.ok(status.events.cursorAgeSeconds <= 5);
  assert.equal(status.eventsCursor, status.events.cursor);
  assert.ok((await metric(env, 'usersd_events_applied_total{type="user.updated"}')) >= 1);
});

test('a fresh store reads on past 120 older events from a server that ignores range_start; the feed is not stuck', async (t) => {
  // Issue 22: the first page held only events from before the store
  // (range_start); they were skipped, the position never moved and the same
  // page came back forever, so no remote change ever arrived.
  const fake = await withFake({ t, eventsIgnoreRangeStart: true });
  const old = [];
  for (let i = 0; i < 120; i++) old.push({ email: `old-${i}-${process.pid}@example.com`, first_name: 'Old', last_name: 'L', emitEvent: true });
  const seeded = await fake.createUsers(old);
  await sleep(20);  // the store is created after these events
  const daemon = await startDaemon({ fake, t, configExtra: CONFIG });
  const admin = async (tag, payload) => call(daemon.adminPath, tag, payload);
  const fresh = await fake.createUser({ email: `fresh-${process.pid}@example.com`, first_name: 'Fresh', last_name: 'L', emitEvent: true });
  await waitFor(async () => (await admin('admin.users.get', { workosId: fresh.id })).exit._tag === 'Success', {
    timeoutMs: 15000, what: 'the new user from the feed',
  });
  const status = ok(await admin('admin.status'));
  assert.equal(status.events.stuck, false);
  assert.ok(status.events.behindCursor >= 120);
  // The older history was skipped, not applied.
  assert.equal((await admin('admin.users.get', { workosId: seeded[0].id })).exit._tag, 'Failure');
  // And the feed keeps moving.
  await fake.createUser({ id: fresh.id, first_name: 'Fresher', emitEvent: true });
  await waitFor(async () => ok(await admin('admin.users.get', { workosId: fresh.id })).firstName === 'Fresher', {
    timeoutMs: 15000, what: 'a later change',
  });
  assert.equal(ok(await admin('admin.status')).events.stuck, false);
  assert.match(daemon.logs(), /it ignores range_start/);
});

test('a server that ignores order cannot bring a deleted user back; the stuck feed is visible', async (t) => {
  // A server that always lists newest first, whatever `order` says.
  const env = await setup(t, { fake: { eventsIgnoreOrder: true, eventsDefaultOrder: 'desc' } });
  const u = await newUser(env.fake, env.conn);
  await env.fake.createUser({ id: u.workos.id, first_name: 'Before', emitEvent: true });
  await env.fake.deleteUser(u.workos.id, { emitEvent: true });
  await waitFor(async () => (await env.me(u.token)) === null, { what: 'the delete applied' });
  // Later polls keep getting the same newest-first page: all of it at or
  // before the cursor, nothing applied, the feed reported stuck.
  await waitFor(async () => (await env.admin('admin.status')).events.stuck, { what: 'stuck in admin.status' });
  assert.equal(await metric(env, 'usersd_events_stuck'), 1);
  assert.ok((await metric(env, 'usersd_events_newest_first_pages_total')) >= 1);
  assert.equal(await env.me(u.token), null);
  assert.match(env.daemon.logs(), /newest first although order=asc was sent/);
});

test('a PUT that WorkOS answered without taking the email becomes a dead letter naming the field', async (t) => {
  const env = await setup(t);
  await env.fake.setBehaviour({ putIgnoresFields: ['email'] });
  const u = await newUser(env.fake, env.conn);
  ok(await env.conn.request('user.update', { id: u.me.id, email: `moved-${process.pid}@example.com`, firstName: 'Moved' }, { token: u.token }));
  const dead = await waitFor(async () => {
    const r = await env.admin('admin.deadLetters.list', { limit: 10 });
    return r.deadLetters.length > 0 && r.deadLetters;
  }, { what: 'the dead letter' });
  assert.equal(dead.length, 1);
  assert.equal(dead[0].status, 200);
  assert.match(dead[0].body, /email/);
  assert.doesNotMatch(dead[0].body, /first_name/);
  assert.equal((await env.fake.getUser(u.workos.id)).first_name, 'Moved');
  assert.equal(await metric(env, 'usersd_outbox_not_taken_total'), 1);
});

test('users resync repairs a silent rename (one user) and a silent delete (all), with progress in status', async (t) => {
  const env = await setup(t);
  const a = await newUser(env.fake, env.conn);
  const b = await newUser(env.fake, env.conn);
  // Changed in WorkOS without any event.
  await env.fake.createUser({ id: a.workos.id, first_name: 'Silently' });
  await env.fake.deleteUser(b.workos.id);
  await sleep(1500); // two polls: nothing arrives through the feed
  assert.equal((await env.me(a.token)).firstName, a.me.firstName);

  const one = await env.admin('admin.users.resync', { id: a.me.id });
  assert.equal(one.outcome, 'updated');
  assert.equal(one.user.firstName, 'Silently');
  assert.equal((await env.me(a.token)).firstName, 'Silently');

  const all = await env.admin('admin.users.resync', { all: true });
  assert.equal(all.started, true);
  const done = await waitFor(async () => {
    const s = (await env.admin('admin.status')).reconcile;
    return s.state === 'idle' && s.runId === all.runId && s.finishedAt && s;
  }, { what: 'the reconciliation' });
  assert.equal(done.usersDeleted, 1);
  assert.ok(done.usersSeen >= 1);
  assert.equal(await env.me(b.token), null);
  const got = await env.admin('admin.users.get', { id: b.me.id });
  assert.ok(got.deletedAt);
  // Listed oldest first.
  const lists = await env.fake.requests({ method: 'GET', path: '^/user_management/users$' });
  assert.ok(lists.length >= 1);
  for (const l of lists) assert.equal(l.query.order, 'asc');
});

// WorkOS's events reference does not say whether a PUT that changes only a
// user's metadata emits user.updated. If it does not, another host learns a
// shared field (SPEC 4b: timezone, settings, ...) from a reconciliation, not
// from the feed; a change that also touches a WorkOS column still arrives by
// event with the whole document.
test('with no event for metadata-only PUTs, another host gets shared fields from a reconciliation', async (t) => {
  const env = await setup(t);
  await env.fake.setBehaviour({ metadataOnlyEvents: 'none' });
  const hostB = await startDaemon({ fake: env.fake, t, configExtra: CONFIG });
  const connB = await connect(hostB.socketPath, { t });
  const adminB = async (tag, payload) => ok(await call(hostB.adminPath, tag, payload));
  const meB = async (token) => ok(await connB.request('user.me', undefined, { token }));
  const u = await newUser(env.fake, env.conn);
  assert.equal((await meB(u.token)).id, u.me.id);

  ok(await env.conn.request('user.update', { id: u.me.id, timezone: 'Asia/Tokyo' }, { token: u.token }));
  const documentIn = (md = {}) => [0, 1, 2, 3, 4, 5].map((i) => md[`usersd_${i}`] ?? '').join('');
  await waitFor(async () => documentIn((await env.fake.getUser(u.workos.id)).metadata).includes('Asia/Tokyo'), { what: 'the metadata PUT' });
  await sleep(2500); // two and a half polls of host B
  assert.equal((await env.fake.listEvents()).filter((e) => e.event === 'user.updated').length, 0);
  assert.equal((await meB(u.token)).timezone, u.me.timezone);

  const run = await adminB('admin.users.resync', { all: true });
  await waitFor(async () => {
    const s = (await adminB('admin.status')).reconcile;
    return s.state === 'idle' && s.runId === run.runId && s.finishedAt;
  }, { what: 'host B\'s reconciliation' });
  assert.equal((await meB(u.token)).timezone, 'Asia/Tokyo');

  // A change that also touches a column comes by event, document included.
  ok(await env.conn.request('user.update', { id: u.me.id, firstName: 'Kiyoshi', timezone: 'Europe/Oslo' }, { token: u.token }));
  await waitFor(async () => {
    const b = await meB(u.token);
    return b.firstName === 'Kiyoshi' && b.timezone === 'Europe/Oslo';
  }, { what: 'the combined change on host B' });
});

// A user whose first name the feed brought ("Seen"), then the daemon stopped
// past the events' retention: the cursor's event is dropped, and a change
// made meanwhile ("WhileAway") has no event left either. The daemon is not
// restarted yet.
async function offlinePastRetention(t) {
  const env = await setup(t);
  const u = await newUser(env.fake, env.conn);
  await env.fake.createUser({ id: u.workos.id, first_name: 'Seen', emitEvent: true });
  await waitFor(async () => (await env.me(u.token))?.firstName === 'Seen', { what: 'the event' });
  await env.daemon.stop();
  await env.fake.createUser({ id: u.workos.id, first_name: 'WhileAway' });
  await env.fake.setBehaviour({ eventsRetentionMs: 500 });
  await sleep(1000);
  await env.fake.addEvent({ event: 'session.created', data: {} });
  return { env, u };
}

test('a cursor the server no longer has starts a reconciliation by itself', async (t) => {
  const { env, u } = await offlinePastRetention(t);
  await env.restart();
  await waitFor(async () => (await env.me(u.token))?.firstName === 'WhileAway', { what: 'the reconciliation', timeoutMs: 15000 });
  const status = await env.admin('admin.status');
  assert.equal(status.reconcile.reason, 'cursor_rejected');
  assert.match(env.daemon.logs(), /rejected the cursor/);
  // The feed goes on afterwards (with WorkOS's usual retention again).
  await env.fake.setBehaviour({ eventsRetentionMs: null });
  await env.fake.createUser({ id: u.workos.id, first_name: 'After', emitEvent: true });
  await waitFor(async () => (await env.me(u.token))?.firstName === 'After', { what: 'events after the reconciliation' });
});

test('a reconciliation WorkOS refuses is not restarted by every poll; an operator can start one at once', async (t) => {
  const { env, u } = await offlinePastRetention(t);
  // A key without the permission to list users.
  await env.fake.setFaults([{ method: 'GET', path: '^/user_management/users$', status: 403, body: { code: 'forbidden' } }]);
  await env.fake.clearRequests();
  await env.restart();
  await waitFor(async () => (await env.admin('admin.status')).reconcile.lastError !== null, { what: 'the failed run' });
  await sleep(3500);  // three polls and more
  const lists = await env.fake.requests({ method: 'GET', path: '^/user_management/users$' });
  const rejected = (await env.fake.requests({ method: 'GET', path: '^/events$' })).filter((r) => r.query?.after);
  assert.equal(lists.length, 1, 'one list request, not one per poll');
  assert.equal(rejected.length, 1, 'the rejected cursor is not sent again');
  const status = await env.admin('admin.status');
  assert.match(status.reconcile.lastError, /403/);
  assert.equal(status.reconcile.state, 'idle');
  assert.ok(Date.parse(status.reconcile.nextAutomaticStartAt) > Date.now() + 30_000, status.reconcile.nextAutomaticStartAt);
  assert.equal((await env.me(u.token)).firstName, 'Seen');

  // The key is fixed; the operator does not wait for the next automatic run.
  await env.fake.clearFaults();
  await env.fake.setBehaviour({ eventsRetentionMs: null });
  await env.admin('admin.users.resync', { all: true });
  await waitFor(async () => (await env.me(u.token))?.firstName === 'WhileAway', { what: 'the reconciliation', timeoutMs: 15000 });
  await waitFor(async () => (await env.admin('admin.status')).reconcile.nextAutomaticStartAt === null, { what: 'the wait ended' });
  await env.fake.createUser({ id: u.workos.id, first_name: 'After', emitEvent: true });
  await waitFor(async () => (await env.me(u.token))?.firstName === 'After', { what: 'events after the reconciliation' });
});

test('a listing that ends early (the user named by after was deleted meanwhile) deletes nobody WorkOS still has', async (t) => {
  const env = await setup(t);
  const users = [];
  for (let i = 0; i < 250; i++) users.push({ email: `early-${i}-${process.pid}@example.com`, first_name: `E${i}`, last_name: 'K' });
  await env.fake.createUsers(users);
  const first = await env.admin('admin.users.resync', { all: true });
  await waitFor(async () => {
    const s = (await env.admin('admin.status')).reconcile;
    return s.state === 'idle' && s.runId === first.runId && s.finishedAt;
  }, { what: 'the first run', timeoutMs: 20000 });
  // WorkOS does not document an `after` naming a user that is gone; this
  // server then answers an empty last page.
  await env.fake.setBehaviour({ usersUnknownAfter: 'end' });
  await env.fake.setFaults([{ method: 'GET', path: '^/user_management/users$', delayMs: 1500, times: 2 }]);
  await env.fake.clearRequests();
  const run = await env.admin('admin.users.resync', { all: true });
  const second = await waitFor(async () => (await env.fake.requests({ method: 'GET', path: '^/user_management/users$' }))
    .find((r) => r.query.after), { what: 'the second page request', timeoutMs: 15000 });
  // While that request waits, the user it names is deleted, and so is one
  // further on, both without an event.
  const ids = (await env.fake.api('GET', '/user_management/users?order=asc&limit=100&after=' + second.query.after)).body.data.map((u) => u.id);
  const later = ids[50];
  await env.fake.deleteUser(second.query.after);
  await env.fake.deleteUser(later);
  const done = await waitFor(async () => {
    const s = (await env.admin('admin.status')).reconcile;
    return s.state === 'idle' && s.runId === run.runId && s;
  }, { what: 'the second run', timeoutMs: 30000 });
  assert.equal(done.lastError, null);
  assert.equal(done.usersSeen, 100);
  // The 150 users after the deleted one were missing from the listing: each
  // was asked for; the one WorkOS lost is deleted, the others are kept. The
  // user the cursor named was listed before it went; the next run sees it.
  assert.equal(done.usersNotListed, 149);
  assert.equal(done.usersDeleted, 1);
  const listed = (await env.admin('admin.users.list', { limit: 1000 })).users;
  assert.equal(listed.filter((u) => u.deletedAt === null).length, 249);
  assert.deepEqual(listed.filter((u) => u.deletedAt !== null).map((u) => u.workosId), [later]);
  const confirmations = await env.fake.requests({ method: 'GET', path: '^/user_management/users/user_' });
  assert.equal(confirmations.length, 150);
});

test('a reconciliation killed midway resumes after the restart instead of starting over', async (t) => {
  const env = await setup(t, { config: { sync: { reconcile: { requests_per_second: 2 } } } });
  const users = [];
  for (let i = 0; i < 450; i++) users.push({ email: `bulk-${i}-${process.pid}@example.com`, first_name: `B${i}`, last_name: 'K' });
  await env.fake.createUsers(users);
  const all = await env.admin('admin.users.resync', { all: true });
  await waitFor(async () => (await env.admin('admin.status')).reconcile.pages >= 2, { what: 'two pages', timeoutMs: 15000 });
  await env.fake.clearRequests();
  await env.restart({ kill: true });
  const done = await waitFor(async () => {
    const s = (await env.admin('admin.status')).reconcile;
    return s.state === 'idle' && s.finishedAt && s;
  }, { what: 'the resumed run', timeoutMs: 20000 });
  assert.equal(done.runId, all.runId);
  assert.equal(done.usersSeen, 450);
  const lists = await env.fake.requests({ method: 'GET', path: '^/user_management/users$' });
  assert.ok(lists.length >= 1);
  assert.ok(lists[0].query.after, 'the first request after the restart continues after a user id');
  // Paced: no two list requests closer than the rate allows (with slack).
  for (let i = 1; i < lists.length; i++) assert.ok(lists[i].ts - lists[i - 1].ts >= 400, `requests ${i - 1} and ${i} too close`);
  assert.equal((await env.admin('admin.users.list', { limit: 1000 })).users.length, 450);
});

test('tokens signed by a local WorkOS-compatible server verify with only base_url and client_id', async (t) => {
  const env = await setup(t, { fake: { tokenIssuer: 'self' } });
  const u = await newUser(env.fake, env.conn); // iss = {base_url}/user_management/{client_id}
  assert.ok(u.me.id);
  const bare = await env.fake.mintToken({ sub: u.workos.id, iss: env.fake.baseUrl });
  assert.ok(await env.me(bare));
  const other = await env.fake.mintToken({ sub: u.workos.id, iss: 'https://issuer.example.com' });
  const exit = await env.conn.request('user.me', undefined, { token: other });
  assert.equal(exit.exit.cause.error._tag, 'UnauthorizedError');
  assert.match(exit.exit.cause.error.detail, /issuer "https:\/\/issuer\.example\.com" is not accepted \(not in auth\.issuers\)/);
  await waitFor(() => /issuer not in auth.issuers/.test(env.daemon.logs()), { what: 'the log line' });
});
