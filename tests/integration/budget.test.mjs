// WorkOS's read budget is the fleet's (issue 21, item 3; SPEC 1): 1,000 reads
// per 10 s per environment, so one caller on one host must not spend it. A
// storm of 50 user.resetAvatar by one user, or of 50 requests with a token
// whose subject WorkOS does not know, costs at most 5 reads, counted in the
// WorkOS-compatible server's request log; and when too many reads wait for
// a connection, a request fails at once with InternalServerError instead of
// queueing without bound.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { withFake, startDaemon, connect, newUser, seedUser, tokenFor, ok, failure, suiteScope } from './harness.mjs';

const STORM = 50;
const MAX_READS = 5;

// GETs of one user in the fake's log (the API only; /__test is not logged).
async function userReads(fake, workosId) {
  const log = await fake.requests({ method: 'GET', path: `^/user_management/users/${workosId}$` });
  return log.length;
}

describe('WorkOS read budget', () => {
  const scope = suiteScope();
  let fake, d, c;

  before(async () => {
    fake = await withFake({ t: scope });
    d = await startDaemon({ fake, t: scope, configExtra: { workos: { events_poll_seconds: 0 }, log: { level: 'info' } } });
    c = await connect(d.socketPath, { t: scope });
  });

  test(`${STORM} concurrent user.resetAvatar by one user cost at most ${MAX_READS} WorkOS reads`, async () => {
    const u = await newUser(fake, c);
    // WorkOS answers slowly, so the calls really overlap.
    await fake.setFaults([{ method: 'GET', path: `^/user_management/users/${u.workos.id}$`, delayMs: 300 }]);
    await fake.clearRequests();
    try {
      const replies = await Promise.all(
        Array.from({ length: STORM }, () => c.request('user.resetAvatar', undefined, { token: u.token })),
      );
      for (const r of replies) assert.equal(ok(r).data.avatarUrl, u.workos.profile_picture_url);
      // And the same storm again right after: the picture just read is reused.
      for (let i = 0; i < STORM; i++) ok(await c.request('user.resetAvatar', undefined, { token: u.token }));
    } finally {
      await fake.clearFaults();
    }
    const reads = await userReads(fake, u.workos.id);
    assert.ok(reads >= 1 && reads <= MAX_READS, `${2 * STORM} resetAvatar made ${reads} WorkOS reads`);
  });

  test(`${STORM} requests with a token whose subject WorkOS does not know cost at most ${MAX_READS} reads`, async () => {
    const ghost = await seedUser(fake);
    const token = await tokenFor(fake, ghost);
    await fake.deleteUser(ghost.id); // WorkOS no longer knows the subject; the token still verifies
    await fake.setFaults([{ method: 'GET', path: `^/user_management/users/${ghost.id}$`, delayMs: 300 }]);
    await fake.clearRequests();
    try {
      const replies = await Promise.all(Array.from({ length: STORM }, () => c.request('user.me', undefined, { token })));
      for (const r of replies) assert.match(failure(r, 'UnauthorizedError').detail, /not a WorkOS user/);
      for (let i = 0; i < STORM; i++) failure(await c.request('user.me', undefined, { token }), 'UnauthorizedError');
    } finally {
      await fake.clearFaults();
    }
    const reads = await userReads(fake, ghost.id);
    assert.ok(reads >= 1 && reads <= MAX_READS, `${2 * STORM} requests made ${reads} WorkOS reads`);
    const admin = await connect(d.adminPath);
    try {
      failure(await admin.request('admin.users.get', { workosId: ghost.id }), 'UserNotFoundError');
    } finally {
      await admin.close();
    }
  });
});

test('a request whose WorkOS read finds the queue full fails at once with InternalServerError', async (t) => {
  const fake = await withFake({ t });
  const d = await startDaemon({
    fake,
    t,
    configExtra: { workos: { events_poll_seconds: 0, max_concurrency: 1, max_queued_requests: 2 } },
  });
  const c = await connect(d.socketPath, { t });
  const users = [];
  for (let i = 0; i < 8; i++) users.push(await newUser(fake, c));
  // Every read now takes 2 s: one runs, two wait, the rest are refused.
  await fake.setFaults([{ method: 'GET', path: '^/user_management/users/user_', delayMs: 2000 }]);
  const t0 = Date.now();
  const pending = users.map((u) =>
    c.request('user.resetAvatar', undefined, { token: u.token }).then((r) => ({ r, ms: Date.now() - t0 })),
  );
  const results = await Promise.all(pending);
  await fake.clearFaults();
  const refused = results.filter(({ r }) => r.exit._tag === 'Failure');
  const served = results.filter(({ r }) => r.exit._tag === 'Success');
  assert.equal(served.length, 3, JSON.stringify(results.map(({ r }) => r.exit)));
  assert.equal(refused.length, 5);
  for (const { r, ms } of refused) {
    const e = failure(r, 'InternalServerError');
    assert.match(e.detail, /too many WorkOS requests waiting \(workos\.max_queued_requests 2\)/);
    assert.ok(ms < 1500, `refused after ${ms} ms, not at once`);
  }
  // Nothing about it says WorkOS is down.
  const admin = await connect(d.adminPath, { t });
  assert.equal(ok(await admin.request('admin.status')).upstream.state, 'online');
});
