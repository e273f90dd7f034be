// The five Users API operations over the application socket (SPEC section 1),
// checked on the wire in both serializations.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  withFake,
  startDaemon,
  connect,
  seedUser,
  tokenFor,
  newUser,
  ok,
  failure,
  defect,
  rpcFailure,
  suiteScope,
  UUID_RE,
  ISO_MS_RE,
  sleep,
  USERSD_BIN,
} from './harness.mjs';

const CURRENT_USER_KEYS = [
  'avatarUrl',
  'email',
  'firstName',
  'id',
  'isOnboarded',
  'lastName',
  'organizationId',
  'role',
  'settings',
  'timezone',
].sort();
const USER_KEYS = [
  'avatarUrl',
  'createdAt',
  'deletedAt',
  'email',
  'firstName',
  'id',
  'isOnboarded',
  'lastName',
  'settings',
  'timezone',
  'updatedAt',
  'userType',
].sort();

function assertUserShape(u) {
  assert.deepEqual(Object.keys(u).sort(), USER_KEYS);
  assert.match(u.id, UUID_RE);
  assert.match(u.createdAt, ISO_MS_RE);
  if (u.updatedAt !== null) assert.match(u.updatedAt, ISO_MS_RE);
  if (u.deletedAt !== null) assert.match(u.deletedAt, ISO_MS_RE);
  assert.ok(u.userType === 'user' || u.userType === 'machine');
  assert.equal(typeof u.isOnboarded, 'boolean');
}

function assertMutation(value) {
  assert.deepEqual(Object.keys(value).sort(), ['data', 'transactionId']);
  assert.ok(Number.isSafeInteger(value.transactionId) && value.transactionId > 0, `transactionId ${value.transactionId}`);
  assertUserShape(value.data);
  return value;
}

const fake = await withFake();
const d = await startDaemon({ fake });
const c = await connect(d.socketPath);

describe('user.me', () => {
  test('returns the CurrentUser shape (NDJSON)', async () => {
    const wu = await seedUser(fake, { firstName: 'Ada', lastName: 'Lovelace', picture: 'https://img.example.com/ada.png' });
    const token = await tokenFor(fake, wu, { org_id: 'org_me', role: 'admin' });
    const exit = await c.request('user.me', undefined, { token, id: 'me-1' });
    assert.equal(exit.requestId, 'me-1');
    const me = ok(exit);
    assert.deepEqual(Object.keys(me).sort(), CURRENT_USER_KEYS);
    assert.match(me.id, UUID_RE);
    assert.deepEqual(
      { ...me, id: undefined },
      {
        id: undefined,
        organizationId: 'org_me',
        role: 'admin',
        email: wu.email,
        firstName: 'Ada',
        lastName: 'Lovelace',
        avatarUrl: 'https://img.example.com/ada.png',
        isOnboarded: false,
        timezone: null,
        settings: null,
      },
    );
    const raw = JSON.stringify(exit);
    assert.ok(!raw.includes(wu.id), 'the WorkOS id must not appear in the response');
    assert.ok(!raw.includes('user_'), 'nothing WorkOS-id-like in the response');

    // Stable across calls.
    assert.deepEqual(ok(await c.request('user.me', undefined, { token })), me);
  });

  test('returns the same CurrentUser over JSON-RPC', async () => {
    const wu = await seedUser(fake);
    const token = await tokenFor(fake, wu, { org_id: 'org_me2', role: 'owner' });
    const ndjson = ok(await c.request('user.me', undefined, { token }));
    const resp = await c.jsonrpc('user.me', undefined, { token, id: 41 });
    assert.equal(resp.jsonrpc, '2.0');
    assert.equal(resp.id, 41);
    assert.ok(!('error' in resp), JSON.stringify(resp));
    assert.deepEqual(resp.result, ndjson);
    assert.equal(resp.result.role, 'owner');
    assert.ok(!JSON.stringify(resp).includes(wu.id));
    // params: {} is as good as no params.
    assert.deepEqual((await c.jsonrpc('user.me', {}, { token })).result, ndjson);
  });
});

describe('user.update', () => {
  test('is a partial patch; null clears avatarUrl, timezone and settings', async () => {
    const u = await newUser(fake, c);
    const id = u.me.id;
    const first = assertMutation(ok(await c.request('user.update', { id, firstName: 'Grace' }, { token: u.token })));
    assert.equal(first.data.id, id);
    assert.equal(first.data.firstName, 'Grace');
    assert.equal(first.data.lastName, u.me.lastName);
    assert.equal(first.data.email, u.me.email);
    assert.equal(first.data.avatarUrl, u.me.avatarUrl);
    assert.equal(first.data.deletedAt, null);
    assert.match(first.data.updatedAt, ISO_MS_RE);
    assert.ok(Date.parse(first.data.updatedAt) >= Date.parse(first.data.createdAt));
    assert.ok(Math.abs(Date.parse(first.data.updatedAt) - Date.now()) < 60000);
    assert.ok(!JSON.stringify(first).includes(u.workos.id));

    const settings = { doNotDisturb: true, quietHoursStart: '22:00', quietHoursEnd: '07:30', showQuietHoursInStatus: false, theme: { mode: 'dark' }, custom: { a: [1, 2] } };
    const second = assertMutation(
      ok(
        await c.request(
          'user.update',
          { id, timezone: 'Europe/Paris', avatarUrl: 'https://cdn.example.com/a.png', settings, lastName: 'Hopper' },
          { token: u.token },
        ),
      ),
    );
    assert.ok(second.transactionId > first.transactionId);
    assert.equal(second.data.firstName, 'Grace', 'absent field unchanged');
    assert.equal(second.data.lastName, 'Hopper');
    assert.equal(second.data.timezone, 'Europe/Paris');
    assert.equal(second.data.avatarUrl, 'https://cdn.example.com/a.png');
    assert.deepEqual(second.data.settings, settings, 'unknown settings keys are kept');
    assert.equal(second.data.createdAt, first.data.createdAt);

    // Only the id: nothing changes but it still commits (or at least answers) with a valid User.
    const third = assertMutation(ok(await c.request('user.update', { id, unknownField: 1 }, { token: u.token })));
    assert.equal(third.data.timezone, 'Europe/Paris');
    assert.deepEqual(third.data.settings, settings);

    const cleared = assertMutation(
      ok(await c.request('user.update', { id, avatarUrl: null, timezone: null, settings: null }, { token: u.token })),
    );
    assert.equal(cleared.data.avatarUrl, null);
    assert.equal(cleared.data.timezone, null);
    assert.equal(cleared.data.settings, null);
    assert.equal(cleared.data.firstName, 'Grace');
    assert.equal(cleared.data.lastName, 'Hopper');
    assert.ok(cleared.transactionId > second.transactionId);

    const me = ok(await c.request('user.me', undefined, { token: u.token }));
    assert.deepEqual(me, { ...u.me, firstName: 'Grace', lastName: 'Hopper', avatarUrl: null, timezone: null, settings: null });
  });

  test('upper-case UUIDs name the same user; UTF-8 names count code points', async () => {
    const u = await newUser(fake, c);
    const r = ok(await c.request('user.update', { id: u.me.id.toUpperCase(), firstName: '😀'.repeat(100), lastName: 'Ñandú' }, { token: u.token }));
    assert.equal(r.data.id, u.me.id);
    assert.equal(r.data.firstName, '😀'.repeat(100));
    assert.equal(r.data.lastName, 'Ñandú');
  });

  test('values at the limits are accepted (255-byte email, 2048-byte URL, 16 KiB settings)', async (t) => {
    // 16 KiB of settings fit only while they stay on this host.
    const local = await startDaemon({ fake, t, configExtra: { sync: { metadata: { enabled: false } } } });
    const c = await connect(local.socketPath, { t });
    const u = await newUser(fake, c);
    const email = `${'a'.repeat(60)}@${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.example.com`;
    assert.equal(Buffer.byteLength(email), 255);
    const avatarUrl = `https://cdn.example.com/${'a'.repeat(2048 - 24)}`;
    assert.equal(avatarUrl.length, 2048);
    const settings = { blob: 'x'.repeat(16384 - 11) };
    assert.equal(JSON.stringify(settings).length, 16384);
    const r = ok(await c.request('user.update', { id: u.me.id, email, avatarUrl, settings }, { token: u.token }));
    assert.equal(r.data.email, email);
    assert.equal(r.data.avatarUrl, avatarUrl);
    assert.deepEqual(r.data.settings, settings);
    const over = defect(await c.request('user.update', { id: u.me.id, settings: { blob: `${settings.blob}x` } }, { token: u.token }));
    assert.match(over.message, /settings/);
  });

  test('shared fields must fit in WorkOS metadata: over the budget is a ValidationError naming field and limit', async () => {
    const u = await newUser(fake, c);
    const before = ok(await c.request('user.me', undefined, { token: u.token }));
    // The document {"timezone":null,"settings":{"blob":"…"},...} must stay
    // within 6 x 600 characters.
    const fits = ok(await c.request('user.update', { id: u.me.id, settings: { blob: 'x'.repeat(3400) } }, { token: u.token }));
    assert.equal(fits.data.settings.blob.length, 3400);
    const over = defect(await c.request('user.update', { id: u.me.id, settings: { blob: 'x'.repeat(3700) }, firstName: 'Nope' }, { token: u.token }));
    assert.match(over.message, /^settings: .*3600/);
    const after = ok(await c.request('user.me', undefined, { token: u.token }));
    assert.equal(after.firstName, before.firstName);
    assert.equal(after.settings.blob.length, 3400);
  });

  test('JSON-RPC update returns {data, transactionId}', async () => {
    const u = await newUser(fake, c);
    const resp = await c.jsonrpc('user.update', { id: u.me.id, timezone: 'UTC' }, { token: u.token, id: 'upd' });
    assert.equal(resp.id, 'upd');
    assertMutation(resp.result);
    assert.equal(resp.result.data.timezone, 'UTC');
  });

  test('each invalid payload is a ValidationError naming the field and changes nothing', async () => {
    const u = await newUser(fake, c);
    const id = u.me.id;
    const before = ok(await c.request('user.me', undefined, { token: u.token }));
    const cases = [
      [undefined, 'id'],
      [{}, 'id'],
      [{ id: 42 }, 'id'],
      [{ id: null }, 'id'],
      [{ id: 'not-a-uuid' }, 'id'],
      ['a string', 'payload'],
      [{ id, firstName: '' }, 'firstName'],
      [{ id, firstName: 'x'.repeat(101) }, 'firstName'],
      [{ id, firstName: '😀'.repeat(101) }, 'firstName'],
      [{ id, firstName: 7 }, 'firstName'],
      [{ id, firstName: null }, 'firstName'],
      [{ id, lastName: '   ' }, 'lastName'],
      [{ id, lastName: 'a\u0000b' }, 'lastName'],
      [{ id, email: 'not-an-email' }, 'email'],
      [{ id, email: '' }, 'email'],
      [{ id, email: `${'a'.repeat(60)}@${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.${'e'.repeat(60)}.example.com` }, 'email'],
      [{ id, email: null }, 'email'],
      [{ id, avatarUrl: '' }, 'avatarUrl'],
      [{ id, avatarUrl: 'ftp://files.example.com/a.png' }, 'avatarUrl'],
      [{ id, avatarUrl: 'javascript:alert(1)' }, 'avatarUrl'],
      [{ id, avatarUrl: `https://cdn.example.com/${'a'.repeat(2048)}` }, 'avatarUrl'],
      [{ id, avatarUrl: 5 }, 'avatarUrl'],
      [{ id, timezone: 'Mars/Olympus_Mons' }, 'timezone'],
      [{ id, timezone: '' }, 'timezone'],
      [{ id, timezone: 'europe/paris' }, 'timezone'],
      [{ id, settings: [] }, 'settings'],
      [{ id, settings: 'dark' }, 'settings'],
      [{ id, settings: { doNotDisturb: 'yes' } }, 'doNotDisturb'],
      [{ id, settings: { quietHoursStart: '25:00' } }, 'quietHoursStart'],
      [{ id, settings: { quietHoursEnd: '7:30' } }, 'quietHoursEnd'],
      [{ id, settings: { showQuietHoursInStatus: 1 } }, 'showQuietHoursInStatus'],
      [{ id, settings: { theme: 'dark' } }, 'theme'],
      [{ id, settings: { blob: 'x'.repeat(17 * 1024) } }, 'settings'],
      // A valid field before an invalid one must not be applied either.
      [{ id, firstName: 'Valid', timezone: 'Nowhere/Land' }, 'timezone'],
    ];
    for (const [payload, field] of cases) {
      const what = `payload ${JSON.stringify(payload)?.slice(0, 120)}`;
      const dft = defect(await c.request('user.update', payload, { token: u.token }));
      assert.ok(dft.message.includes(field), `${what}: message "${dft.message}" should name ${field}`);
      assert.ok(dft.message.length < 500, `${what}: message is short`);
      const resp = await c.jsonrpc('user.update', payload, { token: u.token });
      assert.equal(resp.error?.code, -32602, `${what}: ${JSON.stringify(resp)}`);
      assert.ok(resp.error.message.includes(field), `${what}: JSON-RPC message names ${field}`);
      assert.equal(resp.error.data?._tag, 'Die');
      assert.equal(resp.error.data.defect.name, 'ValidationError');
    }
    const after = ok(await c.request('user.me', undefined, { token: u.token }));
    assert.deepEqual(after, before, 'nothing changed');
  });

  test('an email held by another live user is refused ("email already in use"), case-insensitively', async () => {
    const a = await newUser(fake, c);
    const b = await newUser(fake, c);
    const dft = defect(await c.request('user.update', { id: a.me.id, email: b.me.email.toUpperCase() }, { token: a.token }));
    assert.equal(dft.message, 'email already in use');
    const resp = await c.jsonrpc('user.update', { id: a.me.id, email: b.me.email }, { token: a.token });
    assert.equal(resp.error.code, -32602);
    assert.equal(resp.error.data.defect.message, 'email already in use');
    assert.equal(ok(await c.request('user.me', undefined, { token: a.token })).email, a.me.email);

    // Own address (different case) is fine; a fresh address too.
    const fresh = `fresh-${Date.now()}@example.com`;
    assert.equal(ok(await c.request('user.update', { id: a.me.id, email: fresh }, { token: a.token })).data.email, fresh);

    // Once b is deleted its address is free.
    ok(await c.request('user.delete', { id: b.me.id }, { token: b.token }));
    assert.equal(ok(await c.request('user.update', { id: a.me.id, email: b.me.email }, { token: a.token })).data.email, b.me.email);
  });

  test('updating another user is UnauthorizedError, checked before existence', async () => {
    const a = await newUser(fake, c);
    const b = await newUser(fake, c);
    for (const id of [b.me.id, '00000000-0000-4000-8000-000000000000']) {
      const err = failure(await c.request('user.update', { id, firstName: 'Mallory' }, { token: a.token }), 'UnauthorizedError');
      assert.deepEqual(Object.keys(err).sort(), ['_tag', 'detail', 'message']);
      rpcFailure(await c.jsonrpc('user.update', { id, firstName: 'Mallory' }, { token: a.token }), 401, 'UnauthorizedError');
    }
    assert.equal(ok(await c.request('user.me', undefined, { token: b.token })).firstName, b.me.firstName);
  });
});

describe('transactionId', () => {
  test('strictly increases across operations and users', async () => {
    const a = await newUser(fake, c);
    const b = await newUser(fake, c);
    const ids = [];
    ids.push(ok(await c.request('user.update', { id: a.me.id, firstName: 'One' }, { token: a.token })).transactionId);
    ids.push(ok(await c.request('user.finalizeOnboarding', undefined, { token: a.token })).transactionId);
    ids.push(ok(await c.request('user.update', { id: b.me.id, timezone: 'Asia/Tokyo' }, { token: b.token })).transactionId);
    ids.push(ok(await c.request('user.resetAvatar', undefined, { token: a.token })).transactionId);
    ids.push((await c.jsonrpc('user.update', { id: a.me.id, lastName: 'Two' }, { token: a.token })).result.transactionId);
    ids.push(ok(await c.request('user.delete', { id: b.me.id }, { token: b.token })).transactionId);
    ids.push(ok(await c.request('user.finalizeOnboarding', undefined, { token: a.token })).transactionId);
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], `transactionIds ${ids.join(', ')}`);

    // Concurrent mutations on one connection all get distinct ids.
    const many = await Promise.all(
      Array.from({ length: 20 }, (_, i) => c.request('user.update', { id: a.me.id, firstName: `N${i}` }, { token: a.token })),
    );
    const txids = many.map((e) => ok(e).transactionId);
    assert.equal(new Set(txids).size, txids.length);
    assert.ok(Math.min(...txids) > ids.at(-1));
  });
});

describe('user.delete', () => {
  test('soft-deletes the caller; its token is refused afterwards', async () => {
    const u = await newUser(fake, c);
    const before = ok(await c.request('user.update', { id: u.me.id, firstName: 'Bye' }, { token: u.token })).transactionId;
    const exit = await c.request('user.delete', { id: u.me.id }, { token: u.token });
    const value = ok(exit);
    assert.deepEqual(Object.keys(value), ['transactionId']);
    assert.ok(value.transactionId > before);

    const err = failure(await c.request('user.me', undefined, { token: u.token }), 'UnauthorizedError');
    assert.equal(typeof err.message, 'string');
    assert.equal(typeof err.detail, 'string');
    assert.ok(err.detail.length > 0);
    assert.ok(!JSON.stringify(err).includes(u.token));
    for (const tag of ['user.finalizeOnboarding', 'user.resetAvatar']) {
      failure(await c.request(tag, undefined, { token: u.token }), 'UnauthorizedError');
    }
    failure(await c.request('user.update', { id: u.me.id, firstName: 'Back' }, { token: u.token }), 'UnauthorizedError');
    failure(await c.request('user.delete', { id: u.me.id }, { token: u.token }), 'UnauthorizedError');
    rpcFailure(await c.jsonrpc('user.me', undefined, { token: u.token }), 401, 'UnauthorizedError');

    // A fresh token for the same WorkOS user does not resurrect it either.
    const again = await tokenFor(fake, u.workos);
    failure(await c.request('user.me', undefined, { token: again }), 'UnauthorizedError');

    // Soft delete: the record is kept, with deletedAt set (seen from the admin socket).
    const admin = await connect(d.adminPath);
    const rec = ok(await admin.request('admin.users.get', { id: u.me.id }));
    assert.equal(rec.id, u.me.id);
    assert.match(rec.deletedAt, ISO_MS_RE);
    assert.ok(Math.abs(Date.parse(rec.deletedAt) - Date.now()) < 60000);
    await admin.close();
  });

  test("deleting another user's id, or an unknown id, is UnauthorizedError", async () => {
    const a = await newUser(fake, c);
    const b = await newUser(fake, c);
    failure(await c.request('user.delete', { id: b.me.id }, { token: a.token }), 'UnauthorizedError');
    failure(await c.request('user.delete', { id: crypto.randomUUID() }, { token: a.token }), 'UnauthorizedError');
    rpcFailure(await c.jsonrpc('user.delete', { id: crypto.randomUUID() }, { token: a.token }), 401, 'UnauthorizedError');
    // b is untouched, a too.
    assert.deepEqual(ok(await c.request('user.me', undefined, { token: b.token })), b.me);
    assert.deepEqual(ok(await c.request('user.me', undefined, { token: a.token })), a.me);
  });

  test('invalid delete payloads are ValidationErrors naming id', async () => {
    const u = await newUser(fake, c);
    for (const payload of [undefined, {}, { id: 1 }, { id: 'nope' }, [u.me.id]]) {
      const dft = defect(await c.request('user.delete', payload, { token: u.token }));
      assert.match(dft.message, /id|payload/);
      assert.equal((await c.jsonrpc('user.delete', payload, { token: u.token })).error.code, -32602);
    }
    ok(await c.request('user.me', undefined, { token: u.token }));
  });

  test('without the org-admin policy an admin cannot manage members of its organization', async () => {
    const admin = await newUser(fake, c, { claims: { org_id: 'org_default', role: 'admin' } });
    const member = await newUser(fake, c, { claims: { org_id: 'org_default', role: 'member' } });
    failure(await c.request('user.update', { id: member.me.id, firstName: 'X' }, { token: admin.token }), 'UnauthorizedError');
    failure(await c.request('user.delete', { id: member.me.id }, { token: admin.token }), 'UnauthorizedError');
  });
});

describe('org admins with policy.org_admins_manage_members', () => {
  const scope = suiteScope();
  let pc;
  before(async () => {
    const pd = await startDaemon({ fake, t: scope, configExtra: { policy: { org_admins_manage_members: true } } });
    pc = await connect(pd.socketPath, { t: scope });
  });

  test('an admin or owner manages members of its own organization only', async () => {
    const admin = await newUser(fake, pc, { claims: { org_id: 'org_1', role: 'admin' } });
    const owner = await newUser(fake, pc, { claims: { org_id: 'org_1', role: 'owner' } });
    const member = await newUser(fake, pc, { claims: { org_id: 'org_1', role: 'member' } });
    const member2 = await newUser(fake, pc, { claims: { org_id: 'org_1' } });
    const outsider = await newUser(fake, pc, { claims: { org_id: 'org_2', role: 'member' } });
    const noOrg = await newUser(fake, pc, { claims: { role: 'admin' } });
    assert.equal(member2.me.role, 'member');

    // Same org: update and delete.
    const upd = ok(await pc.request('user.update', { id: member.me.id, firstName: 'Managed' }, { token: admin.token }));
    assert.equal(upd.data.id, member.me.id);
    assert.equal(upd.data.firstName, 'Managed');
    assert.equal(ok(await pc.request('user.me', undefined, { token: member.token })).firstName, 'Managed');
    const upd2 = await pc.jsonrpc('user.update', { id: member2.me.id, timezone: 'UTC' }, { token: owner.token });
    assert.equal(upd2.result.data.timezone, 'UTC');

    // Other org, no org, unknown id: UnauthorizedError (policy before existence).
    for (const id of [outsider.me.id, crypto.randomUUID()]) {
      failure(await pc.request('user.update', { id, firstName: 'X' }, { token: admin.token }), 'UnauthorizedError');
      failure(await pc.request('user.delete', { id }, { token: admin.token }), 'UnauthorizedError');
    }
    failure(await pc.request('user.delete', { id: member.me.id }, { token: noOrg.token }), 'UnauthorizedError');
    // Members cannot manage anyone else, not even in their org.
    failure(await pc.request('user.update', { id: member2.me.id, firstName: 'X' }, { token: member.token }), 'UnauthorizedError');
    failure(await pc.request('user.delete', { id: admin.me.id }, { token: member.token }), 'UnauthorizedError');

    const del = ok(await pc.request('user.delete', { id: member.me.id }, { token: admin.token }));
    assert.ok(del.transactionId > upd.transactionId);
    failure(await pc.request('user.me', undefined, { token: member.token }), 'UnauthorizedError');

    // Already deleted member: UserNotFoundError with its id.
    const nf = failure(await pc.request('user.delete', { id: member.me.id }, { token: admin.token }), 'UserNotFoundError');
    assert.deepEqual(nf, { _tag: 'UserNotFoundError', userId: member.me.id });
    const nf2 = rpcFailure(await pc.jsonrpc('user.delete', { id: member.me.id }, { token: owner.token }), 404, 'UserNotFoundError');
    assert.deepEqual(nf2, { _tag: 'UserNotFoundError', userId: member.me.id });
    failure(await pc.request('user.update', { id: member.me.id, firstName: 'Ghost' }, { token: admin.token }), 'UserNotFoundError');

    // The outsider is untouched; the admin still works.
    assert.deepEqual(ok(await pc.request('user.me', undefined, { token: outsider.token })), outsider.me);
    ok(await pc.request('user.me', undefined, { token: admin.token }));
  });
});

describe('user.finalizeOnboarding', () => {
  test('sets isOnboarded, idempotently, with a new transactionId each time', async () => {
    const u = await newUser(fake, c);
    assert.equal(u.me.isOnboarded, false);
    const a = assertMutation(ok(await c.request('user.finalizeOnboarding', undefined, { token: u.token })));
    assert.equal(a.data.isOnboarded, true);
    assert.equal(a.data.id, u.me.id);
    const b = assertMutation(ok(await c.request('user.finalizeOnboarding', {}, { token: u.token })));
    assert.equal(b.data.isOnboarded, true);
    assert.ok(b.transactionId > a.transactionId);
    const r = await c.jsonrpc('user.finalizeOnboarding', undefined, { token: u.token });
    assert.ok(r.result.transactionId > b.transactionId);
    assert.equal(ok(await c.request('user.me', undefined, { token: u.token })).isOnboarded, true);
  });
});

describe('user.resetAvatar', () => {
  test('takes the profile picture from WorkOS', async () => {
    const u = await newUser(fake, c, { picture: 'https://img.example.com/one.png' });
    assert.equal(u.me.avatarUrl, 'https://img.example.com/one.png');
    ok(await c.request('user.update', { id: u.me.id, avatarUrl: 'https://mine.example.com/custom.png' }, { token: u.token }));
    const r = assertMutation(ok(await c.request('user.resetAvatar', undefined, { token: u.token })));
    assert.equal(r.data.avatarUrl, 'https://img.example.com/one.png');

    // WorkOS changes the picture: a picture read less than 5 s ago is
    // reused (SPEC 1: a storm of calls must not spend WorkOS's budget), then
    // reset follows.
    await fake.createUser({ ...u.workos, profile_picture_url: 'https://img.example.com/two.png' });
    const again = assertMutation(ok(await c.request('user.resetAvatar', undefined, { token: u.token })));
    assert.equal(again.data.avatarUrl, 'https://img.example.com/one.png');
    await sleep(5100);
    const r2 = assertMutation(ok(await c.request('user.resetAvatar', undefined, { token: u.token })));
    assert.equal(r2.data.avatarUrl, 'https://img.example.com/two.png');
    assert.ok(r2.transactionId > r.transactionId);
    const reqs = await fake.requests({ method: 'GET', path: `/user_management/users/${u.workos.id}$` });
    assert.ok(reqs.length >= 2, 'resetAvatar asked WorkOS');
  });

  test('null or whitespace picture in WorkOS gives null', async () => {
    for (const pic of [null, '', '   ', ' \t ']) {
      const u = await newUser(fake, c, { picture: 'https://img.example.com/x.png' });
      ok(await c.request('user.update', { id: u.me.id, avatarUrl: 'https://mine.example.com/y.png' }, { token: u.token }));
      await fake.createUser({ ...u.workos, profile_picture_url: pic });
      const r = assertMutation(ok(await c.request('user.resetAvatar', undefined, { token: u.token })));
      assert.equal(r.data.avatarUrl, null, `picture ${JSON.stringify(pic)}`);
      assert.equal(ok(await c.request('user.me', undefined, { token: u.token })).avatarUrl, null);
    }
  });

  test('a user with no WorkOS picture at provisioning starts with avatarUrl null', async () => {
    const u = await newUser(fake, c, { picture: '  ' });
    assert.equal(u.me.avatarUrl, null);
  });
});

describe('user.resetAvatar while WorkOS is down', () => {
  // A fake and daemon of its own, so the outage does not leak into other tests.
  const scope = suiteScope();
  let f2;
  let c2;
  before(async () => {
    f2 = await withFake({ t: scope });
    const d2 = await startDaemon({ fake: f2, t: scope, configExtra: { workos: { timeout_ms: 2000 } } });
    c2 = await connect(d2.socketPath, { t: scope });
  });

  test('uses the picture cached at provisioning; with none known fails with InternalServerError and changes nothing', async () => {
    const known = await newUser(f2, c2, { picture: 'https://img.example.com/cached.png' });
    ok(await c2.request('user.update', { id: known.me.id, avatarUrl: 'https://mine.example.com/z.png' }, { token: known.token }));

    await f2.setDown(true);
    try {
      const r = assertMutation(ok(await c2.request('user.resetAvatar', undefined, { token: known.token })));
      assert.equal(r.data.avatarUrl, 'https://img.example.com/cached.png');

      // Provisioned while WorkOS is down: nothing known about its picture.
      const wu = await seedUser(f2, { picture: 'https://img.example.com/unseen.png' });
      const token = await tokenFor(f2, wu);
      const me = ok(await c2.request('user.me', undefined, { token }));
      assert.equal(me.avatarUrl, null);
      ok(await c2.request('user.update', { id: me.id, avatarUrl: 'https://mine.example.com/keep.png' }, { token }));
      const before = ok(await c2.request('user.me', undefined, { token }));
      const err = failure(await c2.request('user.resetAvatar', undefined, { token }), 'InternalServerError');
      assert.equal(typeof err.message, 'string');
      rpcFailure(await c2.jsonrpc('user.resetAvatar', undefined, { token }), 500, 'InternalServerError');
      assert.deepEqual(ok(await c2.request('user.me', undefined, { token })), before, 'nothing changed');
    } finally {
      await f2.setDown(false);
    }
  });
});

describe('the daemon process', () => {
  test('is named after its file, also after it executed itself again (GnuTLS, daemon/main.cc)', () => {
    const environ = fs.readFileSync(`/proc/${d.proc.pid}/environ`, 'utf8').split('\0');
    assert.ok(environ.includes('GNUTLS_NO_IMPLICIT_INIT=1'), 'it executed itself again');
    // What ps, pgrep and systemd show; the kernel keeps 15 bytes of it. It
    // was "exe" while the daemon re-executed /proc/self/exe.
    const comm = fs.readFileSync(`/proc/${d.proc.pid}/comm`, 'utf8').trim();
    assert.equal(comm, path.basename(USERSD_BIN).slice(0, 15));
  });
});
