// Just-in-time provisioning (SPEC section 1, "Provisioning").
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  withFake,
  startDaemon,
  connect,
  seedUser,
  tokenFor,
  ok,
  failure,
  suiteScope,
  waitFor,
  UUID_RE,
} from './harness.mjs';
import { sharedId } from './harness.mjs';

const fake = await withFake();
const d = await startDaemon({ fake });
const c = await connect(d.socketPath);

describe('with WorkOS reachable', () => {
  test('the first token use creates the user from the WorkOS profile and the token claims', async () => {
    const wu = await seedUser(fake, { firstName: 'Katherine', lastName: 'Johnson', picture: 'https://img.example.com/kj.png' });
    const since = Date.now();
    const token = await tokenFor(fake, wu, { org_id: 'org_nasa', role: 'owner' });
    const me = ok(await c.request('user.me', undefined, { token }));
    assert.match(me.id, UUID_RE);
    assert.deepEqual(me, {
      id: me.id,
      organizationId: 'org_nasa',
      role: 'owner',
      email: wu.email,
      firstName: 'Katherine',
      lastName: 'Johnson',
      avatarUrl: 'https://img.example.com/kj.png',
      isOnboarded: false,
      timezone: null,
      settings: null,
    });
    // SPEC 4b: the id is the version-5 id of the WorkOS id, which every host
    // computes, and the outbox publishes it as external_id.
    assert.equal(me.id, sharedId(wu.id));
    const gets = await fake.requests({ method: 'GET', path: `^/user_management/users/${wu.id}$`, since });
    assert.ok(gets.length >= 1, 'the WorkOS user was fetched');
    assert.equal(gets[0].authOk, true, 'with the API key');
    await waitFor(async () => (await fake.getUser(wu.id)).external_id === me.id, { what: 'external_id published' });

    // Known now: same answer, and createdAt is WorkOS's.
    const again = ok(await c.request('user.me', undefined, { token }));
    assert.deepEqual(again, me);
    const upd = ok(await c.request('user.finalizeOnboarding', undefined, { token }));
    assert.equal(upd.data.createdAt, wu.created_at);
  });

  test('role defaults to member; organizationId to null', async () => {
    const wu = await seedUser(fake);
    const me = ok(await c.request('user.me', undefined, { token: await tokenFor(fake, wu) }));
    assert.equal(me.role, 'member');
    assert.equal(me.organizationId, null);
    const wu2 = await seedUser(fake);
    const me2 = ok(await c.request('user.me', undefined, { token: await tokenFor(fake, wu2, { org_id: 'org_x' }) }));
    assert.equal(me2.role, 'member');
    assert.equal(me2.organizationId, 'org_x');
    const wu3 = await seedUser(fake);
    const me3 = ok(await c.request('user.me', undefined, { token: await tokenFor(fake, wu3, { org_id: 'org_x', role: 'admin' }) }));
    assert.equal(me3.role, 'admin');
  });

  test('each WorkOS user gets one local user, even under concurrent first use', async () => {
    const wu = await seedUser(fake);
    const token = await tokenFor(fake, wu);
    const conns = await Promise.all(Array.from({ length: 4 }, () => connect(d.socketPath)));
    const exits = await Promise.all(
      Array.from({ length: 24 }, (_, i) => conns[i % conns.length].request('user.me', undefined, { token })),
    );
    const ids = new Set(exits.map((e) => ok(e).id));
    assert.equal(ids.size, 1, `ids: ${[...ids].join(', ')}`);
    // A different token of the same WorkOS user maps to the same local user.
    const other = await tokenFor(fake, wu, { org_id: 'org_other', role: 'admin' });
    const me = ok(await c.request('user.me', undefined, { token: other }));
    assert.equal(me.id, [...ids][0]);
    assert.equal(me.organizationId, 'org_other', 'organizationId describes the session');
    assert.equal(me.role, 'admin');
    await Promise.all(conns.map((k) => k.close()));
  });

  test('distinct WorkOS users get distinct ids', async () => {
    const users = await Promise.all(Array.from({ length: 5 }, () => seedUser(fake)));
    const mes = await Promise.all(users.map(async (wu) => ok(await c.request('user.me', undefined, { token: await tokenFor(fake, wu) }))));
    assert.equal(new Set(mes.map((m) => m.id)).size, 5);
    mes.forEach((m, i) => assert.equal(m.email, users[i].email));
  });

  test('a token whose subject WorkOS does not know is refused', async () => {
    const token = await fake.mintToken({ sub: 'user_01NOSUCHUSER000000000000000' });
    const err = failure(await c.request('user.me', undefined, { token }), 'UnauthorizedError');
    assert.ok(err.detail.length > 0);
  });
});

describe('with JIT provisioning off', () => {
  const scope = suiteScope();
  let pc;
  before(async () => {
    const pd = await startDaemon({ fake, t: scope, configExtra: { provisioning: { jit: false } } });
    pc = await connect(pd.socketPath, { t: scope });
  });

  test('an unknown user is refused', async () => {
    const wu = await seedUser(fake);
    const err = failure(await pc.request('user.me', undefined, { token: await tokenFor(fake, wu) }), 'UnauthorizedError');
    assert.ok(err.detail.length > 0);
  });
});

describe('with WorkOS down at first use', () => {
  const scope = suiteScope();
  let f2;
  let pc;
  before(async () => {
    f2 = await withFake({ t: scope });
    const pd = await startDaemon({
      fake: f2,
      t: scope,
      configExtra: {
        workos: { timeout_ms: 2000, events_poll_seconds: 1 },
        outbox: { initial_backoff_ms: 50, max_backoff_ms: 300 },
      },
    });
    pc = await connect(pd.socketPath, { t: scope });
  });

  test('the user starts with empty email and names and the claims, and is filled in once WorkOS answers', async () => {
    const wu = await seedUser(f2, { firstName: 'Dorothy', lastName: 'Vaughan', picture: 'https://img.example.com/dv.png' });
    const token = await tokenFor(f2, wu, { org_id: 'org_down', role: 'admin' });
    await f2.setDown(true);
    let me;
    try {
      me = ok(await pc.request('user.me', undefined, { token }));
      assert.match(me.id, UUID_RE);
      assert.equal(me.email, '');
      assert.equal(me.firstName, '');
      assert.equal(me.lastName, '');
      assert.equal(me.avatarUrl, null);
      assert.equal(me.organizationId, 'org_down');
      assert.equal(me.role, 'admin');
      // Several users provisioned offline: empty emails do not collide.
      const wu2 = await seedUser(f2);
      const me2 = ok(await pc.request('user.me', undefined, { token: await tokenFor(f2, wu2) }));
      assert.equal(me2.email, '');
      assert.notEqual(me2.id, me.id);
    } finally {
      await f2.setDown(false);
    }
    const filled = await waitFor(
      async () => {
        const v = ok(await pc.request('user.me', undefined, { token }));
        return v.email ? v : null;
      },
      { timeoutMs: 15000, intervalMs: 100, what: 'the queued profile fetch' },
    );
    assert.equal(filled.id, me.id);
    assert.equal(filled.email, wu.email);
    assert.equal(filled.firstName, 'Dorothy');
    assert.equal(filled.lastName, 'Vaughan');
    assert.equal(filled.avatarUrl, 'https://img.example.com/dv.png');
    assert.equal(filled.organizationId, 'org_down');
  });
});
