// Self-test of the WorkOS fake. Run: node --test tests/workos-fake/
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startFake } from './client.mjs';

const SERVER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'server.mjs');
const ID_RE = (prefix) => new RegExp(`^${prefix}_01[0-9A-HJKMNP-TV-Z]{24}$`);
const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'workos-fake-'));

// Minimal RS256 verifier against a JWKS, independent of the server code.
function verifyJwt(token, jwks) {
  const [h, p, s] = token.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk || header.alg !== 'RS256') return { ok: false, header, claims };
  const key = crypto.createPublicKey({ key: { kty: jwk.kty, n: jwk.n, e: jwk.e }, format: 'jwk' });
  const ok = crypto.verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'));
  return { ok, header, claims };
}

describe('workos fake', () => {
  let fake;
  before(async () => {
    fake = await startFake();
  });
  after(async () => {
    await fake?.stop();
  });
  beforeEach(async () => {
    await fake.reset();
  });

  describe('auth and JWKS', () => {
    test('API requires the bearer API key', async () => {
      const none = await fake.api('GET', '/user_management/users/user_x', undefined, { auth: false });
      assert.equal(none.status, 401);
      assert.equal(none.body.code, 'unauthorized');
      assert.equal(typeof none.body.message, 'string');
      const wrong = await fetch(`${fake.baseUrl}/events`, { headers: { authorization: 'Bearer sk_wrong' } });
      assert.equal(wrong.status, 401);
    });

    test('JWKS is public, RS256, only for the configured client', async () => {
      const res = await fetch(fake.jwksUrl);
      assert.equal(res.status, 200);
      const jwks = await res.json();
      assert.equal(jwks.keys.length, 1);
      const k = jwks.keys[0];
      assert.equal(k.alg, 'RS256');
      assert.equal(k.kty, 'RSA');
      assert.equal(k.use, 'sig');
      assert.equal(k.e, 'AQAB');
      assert.match(k.kid, /^sso_oidc_key_pair_/);
      assert.equal(Buffer.from(k.n, 'base64url').length, 256);
      // x5c holds a self-signed cert over the same key; x5t#S256 is its hash.
      const der = Buffer.from(k.x5c[0], 'base64');
      const cert = new crypto.X509Certificate(der);
      assert.ok(cert.verify(cert.publicKey));
      assert.equal(cert.publicKey.export({ format: 'jwk' }).n, k.n);
      assert.equal(k['x5t#S256'], crypto.createHash('sha256').update(der).digest('base64url'));

      const other = await fetch(`${fake.baseUrl}/sso/jwks/client_other`);
      assert.equal(other.status, 404);
    });
  });

  describe('tokens', () => {
    test('minted token verifies against the JWKS with default claims', async () => {
      const jwks = await fake.jwks();
      const token = await fake.mintToken({ sub: 'user_01ABC', org_id: 'org_1', role: 'admin', permissions: ['a'] });
      const { ok, header, claims } = verifyJwt(token, jwks);
      assert.ok(ok);
      assert.equal(header.alg, 'RS256');
      assert.equal(header.typ, 'JWT');
      assert.equal(header.kid, jwks.keys[0].kid);
      assert.equal(claims.sub, 'user_01ABC');
      assert.equal(claims.iss, 'https://api.workos.com/user_management/client_123');
      assert.equal(claims.org_id, 'org_1');
      assert.equal(claims.role, 'admin');
      assert.deepEqual(claims.permissions, ['a']);
      assert.match(claims.sid, /^session_/);
      assert.equal(claims.exp - claims.iat, 3600);
      assert.ok(Math.abs(claims.iat - Date.now() / 1000) < 5);
      assert.equal(claims.aud, undefined);
      assert.equal(claims.nbf, undefined);
    });

    test('expiry, nbf, iss, aud, kid override, extra claims, omitted claims', async () => {
      const jwks = await fake.jwks();
      const t = await fake.mintTokenDetailed({
        sub: 'u', expiresIn: -60, notBefore: 120, iss: 'https://evil', aud: 'app', kid: 'unknown-kid',
        extraClaims: { custom: 1 }, sid: null,
      });
      const { ok, header, claims } = verifyJwt(t.token, jwks);
      assert.equal(ok, false); // unknown kid
      assert.equal(header.kid, 'unknown-kid');
      assert.ok(claims.exp < claims.iat);
      assert.equal(claims.nbf, claims.iat + 120);
      assert.equal(claims.iss, 'https://evil');
      assert.equal(claims.aud, 'app');
      assert.equal(claims.custom, 1);
      assert.equal('sid' in claims, false);
      const noSub = verifyJwt(await fake.mintToken({ sub: null }), jwks);
      assert.ok(noSub.ok);
      assert.equal('sub' in noSub.claims, false);
    });

    test('hostile algorithms: none, HS256 with the public key, ES256, corrupted signature', async () => {
      const jwks = await fake.jwks();
      const none = await fake.mintToken({ sub: 'u', alg: 'none' });
      assert.ok(none.endsWith('.'));
      assert.equal(JSON.parse(Buffer.from(none.split('.')[0], 'base64url')).alg, 'none');

      const hs = await fake.mintToken({ sub: 'u', alg: 'HS256' });
      const [h, p, s] = hs.split('.');
      const pem = crypto.createPublicKey({ key: { kty: 'RSA', n: jwks.keys[0].n, e: jwks.keys[0].e }, format: 'jwk' })
        .export({ type: 'spki', format: 'pem' });
      assert.equal(crypto.createHmac('sha256', pem).update(`${h}.${p}`).digest('base64url'), s);

      const es = await fake.mintToken({ sub: 'u', alg: 'ES256' });
      assert.equal(Buffer.from(es.split('.')[2], 'base64url').length, 64);

      const ps = await fake.mintToken({ sub: 'u', alg: 'PS256' });
      const [ph, pp, psig] = ps.split('.');
      const key = crypto.createPublicKey({ key: { kty: 'RSA', n: jwks.keys[0].n, e: jwks.keys[0].e }, format: 'jwk' });
      assert.ok(crypto.verify('sha256', Buffer.from(`${ph}.${pp}`), { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, Buffer.from(psig, 'base64url')));

      const bad = await fake.mintToken({ sub: 'u', corruptSignature: true });
      assert.equal(verifyJwt(bad, jwks).ok, false);

      const r = await fetch(`${fake.baseUrl}/__test/token`, { method: 'POST', body: JSON.stringify({ sub: 'u', alg: 'XX1' }) });
      assert.equal(r.status, 400);
    });

    test('rotate-key replaces the key, keep:true publishes both', async () => {
      const before1 = await fake.jwks();
      const oldToken = await fake.mintToken({ sub: 'u' });
      const r1 = await fake.rotateKey();
      assert.notEqual(r1.kid, before1.keys[0].kid);
      const after1 = await fake.jwks();
      assert.deepEqual(after1.keys.map((k) => k.kid), [r1.kid]);
      assert.equal(verifyJwt(oldToken, after1).ok, false);
      const newToken = await fake.mintToken({ sub: 'u' });
      assert.ok(verifyJwt(newToken, after1).ok);

      const r2 = await fake.rotateKey({ keep: true });
      const after2 = await fake.jwks();
      assert.deepEqual(after2.keys.map((k) => k.kid), [r2.kid, r1.kid]);
      assert.ok(verifyJwt(newToken, after2).ok);
      const byOld = await fake.mintToken({ sub: 'u', signWithKid: r1.kid });
      assert.ok(verifyJwt(byOld, after2).ok);
    });
  });

  describe('users API', () => {
    test('usersUnknownAfter: an after naming a deleted user by position, as the end, or from the start', async () => {
      const made = [];
      for (let i = 0; i < 3; i++) made.push((await fake.api('POST', '/user_management/users', { email: `ua-${i}@example.com` })).body.id);
      const all = (await fake.api('GET', '/user_management/users?order=asc&limit=100')).body.data.map((u) => u.id);
      const [gone, next] = [made[0], all[all.indexOf(made[0]) + 1]];
      await fake.deleteUser(gone);
      const page = async () => (await fake.api('GET', `/user_management/users?order=asc&limit=100&after=${gone}`)).body;
      try {
        assert.equal((await page()).data[0].id, next);
        await fake.setBehaviour({ usersUnknownAfter: 'end' });
        const end = await page();
        assert.deepEqual(end.data, []);
        assert.equal(end.list_metadata.after, null);
        await fake.setBehaviour({ usersUnknownAfter: 'restart' });
        assert.equal((await page()).data[0].id, all.filter((id) => id !== gone)[0]);
      } finally {
        await fake.setBehaviour({ usersUnknownAfter: 'position' });
      }
    });

    test('create, get, update, delete with events', async () => {
      const created = await fake.api('POST', '/user_management/users', { email: 'Ann@Example.com', first_name: 'Ann', last_name: null });
      assert.equal(created.status, 201);
      const u = created.body;
      assert.match(u.id, ID_RE('user'));
      assert.deepEqual(Object.keys(u), [
        'object', 'id', 'email', 'email_verified', 'first_name', 'last_name', 'profile_picture_url',
        'last_sign_in_at', 'external_id', 'metadata', 'locale', 'created_at', 'updated_at',
      ]);
      assert.equal(u.object, 'user');
      assert.equal(u.email_verified, false);
      assert.equal(u.profile_picture_url, null);
      assert.deepEqual(u.metadata, {});
      assert.match(u.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

      const got = await fake.api('GET', `/user_management/users/${u.id}`);
      assert.equal(got.status, 200);
      assert.deepEqual(got.body, u);

      await new Promise((r) => setTimeout(r, 5));
      const upd = await fake.api('PUT', `/user_management/users/${u.id}`, { first_name: 'Anna', email: 'anna@example.com', metadata: { tz: 'UTC' } });
      assert.equal(upd.status, 200);
      assert.equal(upd.body.first_name, 'Anna');
      assert.equal(upd.body.email, 'anna@example.com');
      assert.equal(upd.body.last_name, null);
      assert.deepEqual(upd.body.metadata, { tz: 'UTC' });
      assert.ok(upd.body.updated_at > u.updated_at);
      assert.equal((await fake.getUser(u.id)).first_name, 'Anna');

      // No-op update: 200 with the same user and no event.
      const same = await fake.api('PUT', `/user_management/users/${u.id}`, { first_name: 'Anna' });
      assert.equal(same.status, 200);
      assert.equal(same.body.updated_at, upd.body.updated_at);

      const del = await fake.api('DELETE', `/user_management/users/${u.id}`);
      assert.equal(del.status, 200);
      assert.equal(del.body, null);
      assert.equal(del.headers.get('content-length'), '0');
      assert.equal((await fake.api('GET', `/user_management/users/${u.id}`)).status, 404);
      assert.equal(await fake.getUser(u.id), null);

      const evs = await fake.listEvents();
      assert.deepEqual(evs.map((e) => e.event), ['user.created', 'user.updated', 'user.deleted']);
      for (const e of evs) {
        assert.deepEqual(Object.keys(e), ['object', 'id', 'event', 'data', 'created_at']);
        assert.equal(e.object, 'event');
        assert.match(e.id, ID_RE('event'));
        assert.equal(e.data.object, 'user');
        assert.equal(e.data.id, u.id);
      }
      assert.equal(evs[1].data.first_name, 'Anna');
      assert.equal(evs[2].data.email, 'anna@example.com');
    });

    test('404s use entity_not_found', async () => {
      for (const [m, body] of [['GET'], ['PUT', { first_name: 'x' }], ['DELETE']]) {
        const r = await fake.api(m, '/user_management/users/user_missing', body);
        assert.equal(r.status, 404, m);
        assert.equal(r.body.code, 'entity_not_found');
        assert.match(r.body.message, /user_missing/);
      }
      const route = await fake.api('GET', '/nope');
      assert.equal(route.status, 404);
    });

    test('validation: 422 invalid_request_parameters with errors[]', async () => {
      const { id } = await fake.createUser({ email: 'v@example.com' });
      const cases = [
        [{ first_name: 5 }, 'first_name'],
        [{ first_name: null }, 'first_name'],
        [{ email: 'not-an-email' }, 'email'],
        [{ email_verified: 'yes' }, 'email_verified'],
        [{ metadata: { k: 1 } }, 'metadata.k'],
        [{ external_id: 'x'.repeat(65) }, 'external_id'],
        [{ firstName: 'camel' }, 'firstName'],
      ];
      for (const [body, field] of cases) {
        const r = await fake.api('PUT', `/user_management/users/${id}`, body);
        assert.equal(r.status, 422, JSON.stringify(body));
        assert.equal(r.body.code, 'invalid_request_parameters');
        assert.equal(typeof r.body.message, 'string');
        assert.ok(r.body.errors.some((e) => e.field === field && typeof e.code === 'string'), JSON.stringify(r.body));
      }
      const arr = await fake.api('PUT', `/user_management/users/${id}`, [1]);
      assert.equal(arr.status, 422);
      const badJson = await fetch(`${fake.baseUrl}/user_management/users/${id}`, {
        method: 'PUT', headers: { authorization: `Bearer ${fake.apiKey}`, 'content-type': 'application/json' }, body: '{oops',
      });
      assert.equal(badJson.status, 400);
      const missingEmail = await fake.api('POST', '/user_management/users', { first_name: 'x' });
      assert.equal(missingEmail.status, 422);
      assert.equal((await fake.listEvents()).length, 0);
    });

    test('email uniqueness (case-insensitive) on update and create', async () => {
      await fake.createUser({ email: 'taken@example.com' });
      const { id } = await fake.createUser({ email: 'me@example.com' });
      const r = await fake.api('PUT', `/user_management/users/${id}`, { email: 'TAKEN@example.com' });
      assert.equal(r.status, 400);
      assert.equal(r.body.code, 'email_not_available');
      const own = await fake.api('PUT', `/user_management/users/${id}`, { email: 'ME@example.com' });
      assert.equal(own.status, 200);
      const c = await fake.api('POST', '/user_management/users', { email: 'taken@example.com' });
      assert.equal(c.status, 400);
      assert.equal(c.body.code, 'user_creation_error');
    });

    test('list users with email filter', async () => {
      await fake.createUser({ email: 'a@example.com' });
      await fake.createUser({ email: 'b@example.com' });
      const r = await fake.api('GET', '/user_management/users?email=B@example.com');
      assert.equal(r.status, 200);
      assert.equal(r.body.object, 'list');
      assert.equal(r.body.data.length, 1);
      assert.equal(r.body.data[0].email, 'b@example.com');
      assert.deepEqual(Object.keys(r.body.list_metadata), ['before', 'after']);
    });
  });

  // SPEC 4b: usersd keeps its ids in external_id and shared fields in
  // metadata, so the fake holds both to WorkOS's documented limits.
  describe('external_id and metadata', () => {
    const put = (id, body) => fake.api('PUT', `/user_management/users/${id}`, body);
    const post = (body) => fake.api('POST', '/user_management/users', body);
    const assert422 = (r, field, code) => {
      assert.equal(r.status, 422, JSON.stringify(r.body));
      assert.equal(r.body.code, 'invalid_request_parameters');
      assert.equal(r.body.message, 'Validation failed.');
      const e = r.body.errors.find((x) => x.field === field);
      assert.ok(e, `no error for ${field}: ${JSON.stringify(r.body)}`);
      if (code) assert.equal(e.code, code);
      assert.equal(typeof e.message, 'string');
      return e;
    };
    const keys = (n, prefix = 'k') => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, `v${i}`]));
    const eventsOf = async (id) => (await fake.listEvents()).filter((e) => e.data.id === id);

    test('external_id: at most 64 ASCII characters, on create and update', async () => {
      const at = 'a'.repeat(64);
      const c = await post({ email: 'x64@example.com', external_id: at });
      assert.equal(c.status, 201);
      assert.equal(c.body.external_id, at);
      assert422(await post({ email: 'x65@example.com', external_id: 'b'.repeat(65) }), 'external_id', 'too_long');
      const { id } = await fake.createUser({ email: 'xu@example.com' });
      assert.equal((await put(id, { external_id: 'c'.repeat(64) })).status, 200);
      const e = assert422(await put(id, { external_id: 'd'.repeat(65) }), 'external_id', 'too_long');
      assert.match(e.message, /64/);
      assert422(await put(id, { external_id: '' }), 'external_id');
      assert422(await put(id, { external_id: 'caf\u00e9' }), 'external_id');
      assert422(await put(id, { external_id: 42 }), 'external_id', 'invalid_type');
      assert.equal((await fake.getUser(id)).external_id, 'c'.repeat(64));
      assert.equal((await fake.listUsers()).length, 2); // the refused POST stored nothing
    });

    test('external_id is unique: POST and PUT refused with external_id_already_used, null frees it', async () => {
      const a = (await post({ email: 'a@example.com', external_id: 'ext-1' })).body;
      const dup = await post({ email: 'b@example.com', external_id: 'ext-1' });
      assert.equal(dup.status, 400);
      assert.equal(dup.body.code, 'user_creation_error');
      assert.deepEqual(dup.body.errors.map((e) => e.code), ['external_id_already_used']);
      const b = (await post({ email: 'b@example.com' })).body;
      const before = (await fake.listEvents()).length;
      const clash = await put(b.id, { external_id: 'ext-1', first_name: 'B' });
      assert.equal(clash.status, 400);
      assert.equal(clash.body.code, 'external_id_already_used');
      assert.match(clash.body.message, /ext-1/);
      assert.equal((await fake.getUser(b.id)).first_name, null); // nothing of the PUT applied
      assert.equal((await fake.listEvents()).length, before);
      // The owner may send its own id again; ids compare exactly (case-sensitive).
      assert.equal((await put(a.id, { external_id: 'ext-1' })).status, 200);
      assert.equal((await put(b.id, { external_id: 'EXT-1' })).status, 200);
      // The conflict status is a switch (WorkOS does not document it).
      await fake.setBehaviour({ externalIdConflictStatus: 409 });
      assert.equal((await put(b.id, { external_id: 'ext-1' })).status, 409);
      assert.equal((await post({ email: 'c@example.com', external_id: 'ext-1' })).status, 409);
      await assert.rejects(fake.setBehaviour({ externalIdConflictStatus: 500 }), /400/);
      // null clears a's id, and then b may take it.
      const cleared = await put(a.id, { external_id: null });
      assert.equal(cleared.status, 200);
      assert.equal(cleared.body.external_id, null);
      assert.equal((await put(b.id, { external_id: 'ext-1' })).status, 200);
      // A deleted user's id is free again.
      await fake.api('DELETE', `/user_management/users/${b.id}`);
      assert.equal((await put(a.id, { external_id: 'ext-1' })).status, 200);
    });

    test('GET /user_management/users/external_id/:external_id', async () => {
      const u = (await post({ email: 'g@example.com', external_id: 'id/with space' })).body;
      const path = (x) => `/user_management/users/external_id/${encodeURIComponent(x)}`;
      const got = await fake.api('GET', path('id/with space'));
      assert.equal(got.status, 200);
      assert.deepEqual(got.body, u);
      const missing = await fake.api('GET', path('nobody'));
      assert.equal(missing.status, 404);
      assert.equal(missing.body.code, 'entity_not_found');
      assert.match(missing.body.message, /nobody/);
      assert.equal((await fake.api('GET', path('id/with space'), undefined, { auth: false })).status, 401);
      assert.equal((await fake.api('PUT', path('id/with space'), { first_name: 'x' })).status, 404);
      assert.deepEqual(await fake.getUserByExternalId('id/with space'), u);
      assert.equal(await fake.getUserByExternalId('ID/WITH SPACE'), null);
      // It follows changes: the new id finds the user, the old one no longer does.
      const moved = (await put(u.id, { external_id: 'moved' })).body;
      assert.equal(await fake.getUserByExternalId('id/with space'), null);
      assert.deepEqual(await fake.getUserByExternalId('moved'), moved);
      await put(u.id, { external_id: null });
      assert.equal(await fake.getUserByExternalId('moved'), null);
      // Seeded through the control API it is found too; reset forgets it.
      await fake.createUser({ email: 's@example.com', external_id: 'seeded' });
      assert.equal((await fake.getUserByExternalId('seeded')).email, 's@example.com');
      await fake.reset();
      assert.equal(await fake.getUserByExternalId('seeded'), null);
      assert.equal((await post({ email: 's@example.com', external_id: 'seeded' })).status, 201);
    });

    test('metadata limits: 10 keys, key 40 and value 600 ASCII characters, string values only', async () => {
      await fake.setBehaviour({ metadataUpdate: 'replace' }); // each PUT's map is the whole map
      assert.equal((await post({ email: 'm10@example.com', metadata: keys(10) })).status, 201);
      assert422(await post({ email: 'm11@example.com', metadata: keys(11) }), 'metadata', 'too_many_properties');
      const { id } = await fake.createUser({ email: 'm@example.com' });
      const ok = await put(id, { metadata: keys(10) });
      assert.equal(ok.status, 200);
      assert.equal(Object.keys(ok.body.metadata).length, 10);
      const e = assert422(await put(id, { metadata: keys(11) }), 'metadata', 'too_many_properties');
      assert.match(e.message, /10/);
      const k40 = 'k'.repeat(40);
      assert.equal((await put(id, { metadata: { [k40]: 'x' } })).status, 200);
      assert422(await put(id, { metadata: { ['k'.repeat(41)]: 'x' } }), `metadata.${'k'.repeat(41)}`, 'too_long');
      assert.equal((await put(id, { metadata: { v: 'x'.repeat(600) } })).status, 200);
      assert422(await put(id, { metadata: { v: 'x'.repeat(601) } }), 'metadata.v', 'too_long');
      assert422(await put(id, { metadata: { n: 1 } }), 'metadata.n', 'invalid_type');
      assert422(await put(id, { metadata: { o: { a: 'b' } } }), 'metadata.o', 'invalid_type');
      assert422(await put(id, { metadata: { z: null } }), 'metadata.z', 'invalid_type'); // replace mode: strings only
      assert422(await put(id, { metadata: { 'cl\u00e9': 'x' } }), 'metadata.cl\u00e9', 'invalid_format');
      assert422(await put(id, { metadata: { v: '\u00fcber' } }), 'metadata.v', 'invalid_format');
      assert422(await put(id, { metadata: ['a'] }), 'metadata', 'invalid_type');
      assert.deepEqual((await fake.getUser(id)).metadata, { v: 'x'.repeat(600) });
      await fake.setBehaviour({ metadataUpdate: 'merge' });
    });

    test('metadataUpdate replace: the map becomes what was sent', async () => {
      await fake.setBehaviour({ metadataUpdate: 'replace' });
      const { id } = await fake.createUser({ email: 'r@example.com', metadata: { a: '1', b: '2' } });
      assert.deepEqual((await put(id, { metadata: { b: '3', c: '' } })).body.metadata, { b: '3', c: '' });
      assert.deepEqual((await put(id, { first_name: 'R' })).body.metadata, { b: '3', c: '' }); // omitted: unchanged
      assert.deepEqual((await put(id, { metadata: {} })).body.metadata, {});
      await put(id, { metadata: { a: '1' } });
      assert.deepEqual((await put(id, { metadata: null })).body.metadata, {});
      await fake.setBehaviour({ metadataUpdate: 'merge' });
    });

    test('metadataUpdate merge (default): sent keys overwrite, others stay, null removes, "" is stored', async () => {
      assert.equal((await fake.getBehaviour()).metadataUpdate, 'merge');
      const { id } = await fake.createUser({ email: 'mg@example.com', metadata: { a: '1', b: '2' } });
      assert.deepEqual((await put(id, { metadata: { b: '3', c: '' } })).body.metadata, { a: '1', b: '3', c: '' });
      assert.deepEqual((await put(id, { metadata: { a: null, zz: null } })).body.metadata, { b: '3', c: '' });
      // The 10-key limit is on the map after the merge.
      await put(id, { metadata: keys(8) }); // b, c + k0..k7 = 10
      assert.equal(Object.keys((await fake.getUser(id)).metadata).length, 10);
      const before = await fake.getUser(id);
      assert422(await put(id, { metadata: { extra: 'x' } }), 'metadata', 'too_many_properties');
      assert.deepEqual(await fake.getUser(id), before);
      const swapped = await put(id, { metadata: { extra: 'x', b: null } });
      assert.equal(swapped.status, 200);
      assert.equal(Object.keys(swapped.body.metadata).length, 10);
      assert.equal(swapped.body.metadata.extra, 'x');
      assert.equal('b' in swapped.body.metadata, false);
      // A body of more than 10 keys is fine when the result fits.
      const many = Object.fromEntries(Object.keys(swapped.body.metadata).map((k) => [k, null]));
      assert.deepEqual((await put(id, { metadata: { ...many, last: 'y' } })).body.metadata, { last: 'y' });
      assert.deepEqual((await put(id, { metadata: null })).body.metadata, {});
      await assert.rejects(fake.setBehaviour({ metadataUpdate: 'patch' }), /400/);
      await fake.setBehaviour({ metadataUpdate: 'replace' });
      await fake.reset();
      assert.equal((await fake.getBehaviour()).metadataUpdate, 'merge');
    });

    test('every PUT change emits user.updated with the full user and a later updated_at; no-ops emit nothing', async () => {
      const u = (await post({ email: 'ev@example.com', metadata: { a: '1', b: '2' }, external_id: 'ev-1' })).body;
      let last = u;
      const expectChange = async (body) => {
        const n = (await eventsOf(u.id)).length;
        const r = await put(u.id, body);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        const evs = await eventsOf(u.id);
        assert.equal(evs.length, n + 1, `one event for ${JSON.stringify(body)}`);
        assert.equal(evs.at(-1).event, 'user.updated');
        assert.deepEqual(evs.at(-1).data, r.body); // the full user after the change
        assert.deepEqual((await fake.api('GET', `/user_management/users/${u.id}`)).body, r.body);
        assert.ok(r.body.updated_at > last.updated_at, `${r.body.updated_at} > ${last.updated_at}`);
        assert.equal(r.body.created_at, u.created_at);
        last = r.body;
      };
      const expectNoop = async (body) => {
        const n = (await eventsOf(u.id)).length;
        const r = await put(u.id, body);
        assert.equal(r.status, 200);
        assert.deepEqual(r.body, last);
        assert.equal((await eventsOf(u.id)).length, n, `no event for ${JSON.stringify(body)}`);
      };
      // Changes in quick succession: updated_at still moves every time.
      await expectChange({ metadata: { a: '1', b: '3' } });
      await expectChange({ metadata: { a: '1', b: '4' } });
      await expectChange({ external_id: 'ev-2' });
      await expectChange({ external_id: null });
      await expectChange({ external_id: 'ev-3', metadata: { a: '' } });
      await expectNoop({ metadata: { a: '' } });
      await expectNoop({ external_id: 'ev-3' });
      await expectNoop({});
      await fake.setBehaviour({ metadataUpdate: 'merge' });
      await expectChange({ metadata: { b: 'x' } });
      await expectNoop({ metadata: { b: 'x' } });
      await expectNoop({ metadata: { gone: null } });
      await expectChange({ metadata: { b: null } });
      // Same keys in another order are the same map.
      await fake.setBehaviour({ metadataUpdate: 'replace' });
      await expectChange({ metadata: { p: '1', q: '2' } });
      await expectNoop({ metadata: { q: '2', p: '1' } });
      for (let i = 0; i < 5; i++) await expectChange({ metadata: { p: String(i) } });
      // Sent all at once, many PUTs land in the same millisecond: each event
      // still carries a later updated_at than the one before.
      const n = (await eventsOf(u.id)).length;
      await Promise.all(Array.from({ length: 50 }, (_, i) => put(u.id, { metadata: { burst: String(i) } })));
      const burst = (await eventsOf(u.id)).slice(n);
      assert.equal(burst.length, 50);
      for (let i = 1; i < burst.length; i++) {
        assert.ok(burst[i].data.updated_at > burst[i - 1].data.updated_at, `${burst[i].data.updated_at} > ${burst[i - 1].data.updated_at}`);
      }
    });

    test('putIgnoresFields covers metadata and external_id', async () => {
      const { id } = await fake.createUser({ email: 'ig@example.com', metadata: { a: '1' }, external_id: 'ig' });
      await fake.setBehaviour({ putIgnoresFields: ['metadata', 'external_id'] });
      const r = await put(id, { metadata: { a: '2' }, external_id: 'other' });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.metadata, { a: '1' });
      assert.equal(r.body.external_id, 'ig');
      assert.equal((await fake.listEvents()).length, 0);
    });

    test('metadataOnlyEvents none: a PUT changing only metadata is stored without an event; any other change still emits', async () => {
      const { id } = await fake.createUser({ email: 'mo@example.com', metadata: { a: '1' } });
      await assert.rejects(fake.setBehaviour({ metadataOnlyEvents: 'sometimes' }), /400/);
      await fake.setBehaviour({ metadataOnlyEvents: 'none' });
      const r = await put(id, { metadata: { a: '2' } });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.metadata, { a: '2' });
      assert.deepEqual((await fake.api('GET', `/user_management/users/${id}`)).body.metadata, { a: '2' });
      assert.equal((await fake.listEvents()).length, 0);
      const both = await put(id, { first_name: 'Mo', metadata: { a: '3' } });
      const evs = await fake.listEvents();
      assert.deepEqual(evs.map((e) => e.event), ['user.updated']);
      assert.deepEqual(evs[0].data, both.body); // the full user, metadata included
      await fake.reset();
      assert.equal((await fake.getBehaviour()).metadataOnlyEvents, 'emit');
    });
  });

  describe('events API', () => {
    test('eventsTimeFormat naive stamps created_at as WorkOS\'s guide shows it, still filtered as UTC', async () => {
      await fake.setBehaviour({ eventsTimeFormat: 'naive' });
      try {
        const before = Date.now() - 1;
        await fake.api('POST', '/user_management/users', { email: 'naive-time@example.com' });
        const r = await fake.api('GET', `/events?events[]=user.created&order=asc&limit=100&range_start=${new Date(before).toISOString()}`);
        assert.equal(r.status, 200);
        const ev = r.body.data.find((e) => e.data.email === 'naive-time@example.com');
        assert.ok(ev, 'the event is inside range_start');
        assert.match(ev.created_at, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/);
        assert.ok(Math.abs(Date.parse(`${ev.created_at.replace(' ', 'T')}Z`) - Date.now()) < 60_000);
      } finally {
        await fake.setBehaviour({ eventsTimeFormat: 'iso' });
      }
    });

    test('pagination with after and list_metadata.after', async () => {
      for (let i = 0; i < 25; i++) await fake.api('POST', '/user_management/users', { email: `e${i}@example.com` });
      const seen = [];
      let cursor;
      for (;;) {
        const r = await fake.api('GET', `/events?events[]=user.created&events[]=user.updated&events[]=user.deleted&order=asc&limit=10${cursor ? `&after=${cursor}` : ''}`);
        assert.equal(r.status, 200);
        assert.equal(r.body.object, 'list');
        if (r.body.data.length === 0) {
          assert.equal(r.body.list_metadata.after, null);
          break;
        }
        assert.equal(r.body.list_metadata.after, r.body.data.at(-1).id);
        seen.push(...r.body.data);
        cursor = r.body.list_metadata.after;
      }
      assert.equal(seen.length, 25);
      const ids = seen.map((e) => e.id);
      assert.deepEqual(ids, [...ids].sort());
      assert.equal(new Set(ids).size, 25);
      assert.deepEqual(seen.map((e) => e.data.email), Array.from({ length: 25 }, (_, i) => `e${i}@example.com`));

      // Without order (and with desc/normal): newest first, as WorkOS's lists.
      const def = await fake.api('GET', '/events');
      assert.equal(def.body.data.length, 10); // default limit
      assert.deepEqual(def.body.data.map((e) => e.id), ids.slice(-10).reverse());
      const desc = await fake.api('GET', '/events?order=desc&limit=3');
      assert.deepEqual(desc.body.data.map((e) => e.id), ids.slice(-3).reverse());
      // after continues in the order asked for: older events for desc.
      const older = await fake.api('GET', `/events?order=desc&limit=3&after=${desc.body.list_metadata.after}`);
      assert.deepEqual(older.body.data.map((e) => e.id), ids.slice(-6, -3).reverse());
    });

    test('behaviour switches: default order, ignored order and filters, PUT without applying, retention', async (t) => {
      t.after(() => fake.setBehaviour({ eventsDefaultOrder: 'desc', eventsIgnoreOrder: false, eventsIgnoreFilters: false, eventsIgnoreRangeStart: false, putIgnoresFields: [], eventsRetentionMs: null, expiredCursor: 'reject' }));
      for (let i = 0; i < 4; i++) await fake.api('POST', '/user_management/users', { email: `b${i}@example.com` });
      await fake.addEvent({ event: 'session.created', data: {} });
      const all = (await fake.listEvents()).map((e) => e.id);
      await fake.setBehaviour({ eventsDefaultOrder: 'asc' });
      assert.deepEqual((await fake.api('GET', '/events?limit=100')).body.data.map((e) => e.id), all);
      await fake.setBehaviour({ eventsDefaultOrder: 'desc', eventsIgnoreOrder: true });
      assert.deepEqual((await fake.api('GET', '/events?order=asc&limit=100')).body.data.map((e) => e.id), [...all].reverse());
      await fake.setBehaviour({ eventsIgnoreOrder: false, eventsIgnoreFilters: true });
      const r = await fake.api('GET', `/events?order=asc&events[]=user.created&range_start=${encodeURIComponent(new Date(Date.now() + 60000).toISOString())}`);
      assert.equal(r.body.data.length, 5);
      // range_start alone ignored: the type filter still applies.
      await fake.setBehaviour({ eventsIgnoreFilters: false, eventsIgnoreRangeStart: true });
      const future = encodeURIComponent(new Date(Date.now() + 60000).toISOString());
      const rs = await fake.api('GET', `/events?order=asc&limit=100&events[]=user.created&range_start=${future}`);
      assert.equal(rs.body.data.length, 4);
      assert.ok(rs.body.data.every((e) => e.event === 'user.created'));
      await fake.setBehaviour({ eventsIgnoreRangeStart: false });
      assert.equal((await fake.api('GET', `/events?order=asc&limit=100&range_start=${future}`)).body.data.length, 0);
      await fake.setBehaviour({ eventsIgnoreFilters: false, putIgnoresFields: ['email'] });
      const u = (await fake.listUsers())[0];
      const put = await fake.api('PUT', `/user_management/users/${u.id}`, { email: 'moved@example.com', first_name: 'Moved' });
      assert.equal(put.status, 200);
      assert.equal(put.body.email, u.email);
      assert.equal(put.body.first_name, 'Moved');
      // Retention: old events go, and a cursor into what went is refused.
      await fake.addEvent({ event: 'user.updated', data: { id: 'user_x' }, created_at: '2020-01-01T00:00:00.000Z', id: 'event_00000000000000000000000001' });
      await fake.setBehaviour({ eventsRetentionMs: 86400000 });
      const kept = await fake.api('GET', '/events?order=asc&limit=100');
      assert.ok(!kept.body.data.some((e) => e.id === 'event_00000000000000000000000001'));
      const gone = await fake.api('GET', '/events?order=asc&after=event_00000000000000000000000001');
      assert.equal(gone.status, 400);
      assert.equal(gone.body.code, 'invalid_cursor');
      await fake.setBehaviour({ expiredCursor: 'ignore' });
      assert.equal((await fake.api('GET', '/events?order=asc&after=event_00000000000000000000000001')).status, 200);
      await assert.rejects(fake.setBehaviour({ nonsense: 1 }));
    });

    test('type filter ignores other events; repeated and [] forms', async () => {
      await fake.addEvent({ event: 'organization.created', data: { id: 'org_1' } });
      await fake.createUser({ email: 'x@example.com', emitEvent: true });
      await fake.addEvent({ event: 'session.created', data: {} });
      const r = await fake.api('GET', '/events?events=user.created,user.updated,user.deleted');
      assert.deepEqual(r.body.data.map((e) => e.event), ['user.created']);
      const both = await fake.api('GET', '/events?events[]=user.created&events[]=session.created&order=asc');
      assert.deepEqual(both.body.data.map((e) => e.event), ['user.created', 'session.created']);
      const all = await fake.api('GET', '/events');
      assert.equal(all.body.data.length, 3);
      const rep = await fake.api('GET', '/events?events=session.created&events=organization.created');
      assert.equal(rep.body.data.length, 2);
      const br = await fake.api('GET', '/events?events[]=session.created');
      assert.equal(br.body.data.length, 1);
    });

    test('range_start / range_end and validation', async () => {
      await fake.addEvent({ event: 'user.created', data: { id: 'user_old' }, created_at: '2020-01-01T00:00:00.000Z' });
      await fake.addEvent({ event: 'user.created', data: { id: 'user_new' } });
      const r = await fake.api('GET', `/events?range_start=${encodeURIComponent(new Date(Date.now() - 60000).toISOString())}`);
      assert.deepEqual(r.body.data.map((e) => e.data.id), ['user_new']);
      const e = await fake.api('GET', '/events?range_end=2021-01-01T00:00:00Z');
      assert.deepEqual(e.body.data.map((x) => x.data.id), ['user_old']);
      const both = await fake.api('GET', '/events?order=asc');
      assert.deepEqual(both.body.data.map((x) => x.data.id), ['user_old', 'user_new']);
      assert.equal(e.body.data[0].created_at, '2020-01-01T00:00:00.000Z');
      for (const q of ['limit=0', 'limit=101', 'limit=abc', 'range_start=garbage']) {
        const bad = await fake.api('GET', `/events?${q}`);
        assert.equal(bad.status, 422, q);
        assert.ok(Array.isArray(bad.body.errors));
      }
      assert.equal((await fake.api('GET', '/events?limit=100')).status, 200);
    });

    test('profile pictures and arbitrary payloads via control events', async () => {
      const ev = await fake.addEvent({ event: 'user.updated', data: { object: 'user', id: 'user_p', profile_picture_url: 'https://img/x.png' } });
      assert.match(ev.id, ID_RE('event'));
      const r = await fake.api('GET', '/events?events=user.updated');
      assert.equal(r.body.data[0].data.profile_picture_url, 'https://img/x.png');
    });
  });

  describe('control API', () => {
    test('upsert users directly, list, get, delete', async () => {
      const u = await fake.createUser({ email: 'c@example.com', profile_picture_url: 'https://p/1', extra_field: 'kept' });
      assert.match(u.id, ID_RE('user'));
      assert.equal(u.profile_picture_url, 'https://p/1');
      assert.equal(u.extra_field, 'kept');
      assert.equal((await fake.listEvents()).length, 0); // no emitEvent
      const again = await fake.createUser({ id: u.id, first_name: 'C', emitEvent: true });
      assert.equal(again.email, 'c@example.com');
      assert.equal(again.first_name, 'C');
      assert.deepEqual((await fake.listEvents()).map((e) => e.event), ['user.updated']);
      const fixed = await fake.createUser({ id: 'user_01FIXEDID0000000000000000', email: 'f@example.com', emitEvent: true });
      assert.equal(fixed.id, 'user_01FIXEDID0000000000000000');
      assert.equal((await fake.listUsers()).length, 2);
      const bulk = await fake.createUsers([{ email: 'b1@example.com' }, { email: 'b2@example.com' }]);
      assert.equal(bulk.length, 2);
      assert.equal((await fake.listUsers()).length, 4);
      await fake.deleteUser(fixed.id, { emitEvent: true });
      assert.equal(await fake.getUser(fixed.id), null);
      assert.equal((await fake.listEvents()).at(-1).event, 'user.deleted');
      const info = await fake.info();
      assert.equal(info.users, 3);
    });

    test('request log records API requests only, never the key or passwords', async () => {
      const { id } = await fake.createUser({ email: 'l@example.com' });
      await fake.api('PUT', `/user_management/users/${id}?x=1&x=2`, { first_name: 'L', password: 'hunter22' });
      await fake.api('GET', '/events', undefined, { auth: false });
      await fetch(`${fake.baseUrl}/user_management/users/${id}`, {
        method: 'PUT', headers: { authorization: `Bearer ${fake.apiKey}` }, body: 'plain text',
      });
      const log = await fake.requests();
      assert.equal(log.length, 3);
      const [put, ev, raw] = log;
      assert.equal(put.method, 'PUT');
      assert.equal(put.path, `/user_management/users/${id}`);
      assert.deepEqual(put.query, { x: ['1', '2'] });
      assert.deepEqual(put.body, { first_name: 'L', password: '[redacted]' });
      assert.equal(put.hasAuth, true);
      assert.equal(put.status, 200);
      assert.equal(typeof put.ts, 'number');
      assert.equal(ev.hasAuth, false);
      assert.equal(ev.status, 401);
      assert.equal(raw.body, 'plain text');
      assert.equal(raw.status, 400);
      const text = JSON.stringify(log);
      assert.ok(!text.includes(fake.apiKey));
      assert.ok(!text.includes('hunter22'));
      assert.equal((await fake.requests({ method: 'put' })).length, 2);
      assert.equal((await fake.requests({ path: '^/events$' })).length, 1);
      await fake.clearRequests();
      assert.deepEqual(await fake.requests(), []);
    });

    test('reset clears users, events, faults, log and down', async () => {
      await fake.createUser({ email: 'r@example.com', emitEvent: true });
      await fake.setFaults([{ status: 500 }]);
      await fake.api('GET', '/events');
      await fake.setDown(true);
      await fake.reset();
      const info = await fake.info();
      assert.deepEqual([info.users, info.events, info.faults, info.requests, info.down], [0, 0, 0, 0, false]);
      assert.equal((await fake.api('GET', '/events')).status, 200);
    });

    test('control errors are 400/404 with a message', async () => {
      const r = await fetch(`${fake.baseUrl}/__test/faults`, { method: 'POST', body: JSON.stringify({ rules: [{ path: '(' }] }) });
      assert.equal(r.status, 400);
      assert.match((await r.json()).error, /regex/);
      assert.equal((await fetch(`${fake.baseUrl}/__test/nope`)).status, 404);
      await assert.rejects(fake.setFaults({ rules: 'x' }), /400/);
    });
  });

  describe('rate limit', () => {
    test('rateLimit: reads, writes and the rest each have a window; over it, 429 with Retry-After', async () => {
      const { id } = await fake.createUser({ email: 'rl@example.com' });
      await fake.setBehaviour({ rateLimit: { windowMs: 60_000, reads: 2, writes: 1 } });
      try {
        assert.equal((await fake.api('GET', `/user_management/users/${id}`)).status, 200);
        assert.equal((await fake.api('GET', `/user_management/users/${id}`)).status, 200);
        const over = await fake.api('GET', `/user_management/users/${id}`);
        assert.equal(over.status, 429);
        assert.equal(over.body.code, 'rate_limit_exceeded');
        assert.ok(Number(over.headers.get('retry-after')) >= 1 && Number(over.headers.get('retry-after')) <= 60);
        assert.equal((await fake.api('PUT', `/user_management/users/${id}`, { first_name: 'A' })).status, 200);
        assert.equal((await fake.api('PUT', `/user_management/users/${id}`, { first_name: 'B' })).status, 429);
        assert.equal((await fake.getUser(id)).first_name, 'A'); // nothing of a refused request applies
        assert.equal((await fake.api('GET', '/events?order=asc&limit=1')).status, 200); // other: unlimited here
        assert.equal((await fake.api('GET', `/sso/jwks/${fake.clientId ?? 'client_123'}`, undefined, { auth: false })).status, 200);
        await assert.rejects(fake.setBehaviour({ rateLimit: { windowMs: 0 } }), /400/);
      } finally {
        await fake.setBehaviour({ rateLimit: null });
      }
      assert.equal((await fake.api('GET', `/user_management/users/${id}`)).status, 200);
    });
  });

  describe('faults', () => {
    test('status, body, Retry-After and times', async () => {
      await fake.setFaults([{ method: 'GET', path: '^/events$', status: 429, retryAfter: '7', times: 2 }]);
      for (let i = 0; i < 2; i++) {
        const r = await fake.api('GET', '/events');
        assert.equal(r.status, 429);
        assert.equal(r.headers.get('retry-after'), '7');
        assert.equal(r.body.code, 'rate_limit_exceeded');
      }
      assert.equal((await fake.api('GET', '/events')).status, 200);
      const log = await fake.requests();
      assert.deepEqual(log.map((e) => [e.status, e.fault ?? null]), [[429, 'status'], [429, 'status'], [200, null]]);
    });

    test('method/path matching and first match wins', async () => {
      const { id } = await fake.createUser({ email: 'f@example.com' });
      await fake.setFaults([
        { method: 'PUT', path: '^/user_management/users/', status: 503, body: 'upstream sad' },
        { path: '/user_management/', status: 500, body: { custom: true } },
      ]);
      const put = await fake.api('PUT', `/user_management/users/${id}`, { first_name: 'x' });
      assert.equal(put.status, 503);
      assert.equal(put.body, 'upstream sad');
      const get = await fake.api('GET', `/user_management/users/${id}`);
      assert.equal(get.status, 500);
      assert.deepEqual(get.body, { custom: true });
      assert.equal((await fake.api('GET', '/events')).status, 200);
      assert.equal((await fake.getUser(id)).first_name, null); // fault replaced the operation
      await fake.clearFaults();
      assert.equal((await fake.api('GET', `/user_management/users/${id}`)).status, 200);
    });

    test('delay then serve normally; delay with status', async () => {
      await fake.setFaults([{ path: '^/events$', delayMs: 300, times: 1 }, { path: '^/sso/', delayMs: 100, status: 502 }]);
      let t = Date.now();
      assert.equal((await fake.api('GET', '/events')).status, 200);
      assert.ok(Date.now() - t >= 280);
      t = Date.now();
      assert.equal((await fetch(fake.jwksUrl)).status, 502);
      assert.ok(Date.now() - t >= 90);
      t = Date.now();
      assert.equal((await fake.api('GET', '/events')).status, 200);
      assert.ok(Date.now() - t < 250);
    });

    test('drop destroys the socket; apply:true performs the operation first', async () => {
      const { id } = await fake.createUser({ email: 'd@example.com' });
      await fake.setFaults([{ method: 'PUT', drop: true, times: 1 }, { method: 'PUT', drop: true, apply: true, times: 1 }]);
      await assert.rejects(fake.api('PUT', `/user_management/users/${id}`, { first_name: 'A' }));
      assert.equal((await fake.getUser(id)).first_name, null);
      await assert.rejects(fake.api('PUT', `/user_management/users/${id}`, { first_name: 'B' }));
      assert.equal((await fake.getUser(id)).first_name, 'B');
      const log = await fake.requests();
      assert.deepEqual(log.map((e) => [e.fault, e.status]), [['drop', null], ['drop', null]]);
      assert.deepEqual(log[0].body, { first_name: 'A' });
      assert.equal((await fake.api('PUT', `/user_management/users/${id}`, { first_name: 'C' })).status, 200);
    });

    test('probability 0 never applies, 1 always applies', async () => {
      await fake.setFaults([{ status: 500, probability: 0 }]);
      for (let i = 0; i < 5; i++) assert.equal((await fake.api('GET', '/events')).status, 200);
      await fake.setFaults([{ status: 500, probability: 1 }]);
      for (let i = 0; i < 5; i++) assert.equal((await fake.api('GET', '/events')).status, 500);
      const [rule] = await fake.getFaults();
      assert.equal(rule.hits, 5);
      assert.equal(rule.remaining, null);
    });

    test('down: API connections reset, control API still works', async () => {
      await fake.setDown(true);
      await assert.rejects(fake.api('GET', '/events'));
      await assert.rejects(fetch(fake.jwksUrl));
      assert.equal((await fake.info()).down, true);
      const log = await fake.requests();
      assert.deepEqual(log.map((e) => e.fault), ['down', 'down']);
      await fake.setDown(false);
      assert.equal((await fake.api('GET', '/events')).status, 200);
    });
  });

  test('keep-alive under concurrency', async () => {
    const { id } = await fake.createUser({ email: 'k@example.com' });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    const url = new URL(`${fake.baseUrl}/user_management/users/${id}`);
    const sockets = new Set();
    const put = (i) => new Promise((resolve, reject) => {
      const body = JSON.stringify({ first_name: `n${i}` });
      const req = http.request({
        agent, hostname: url.hostname, port: url.port, path: url.pathname, method: 'PUT',
        headers: { authorization: `Bearer ${fake.apiKey}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      }, (res) => {
        sockets.add(res.socket);
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      req.on('error', reject);
      req.end(body);
    });
    const N = 2000;
    let next = 0;
    const statuses = [];
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < N) statuses.push(await put(next++));
    }));
    agent.destroy();
    assert.equal(statuses.length, N);
    assert.ok(statuses.every((s) => s === 200));
    assert.ok(sockets.size <= 32, `used ${sockets.size} sockets`);
    assert.equal((await fake.requests()).length, N);
    assert.equal((await fake.info()).events, N);
  });
});

describe('process lifecycle and persistence', () => {
  test('CLI prints one JSON line, writes --port-file, exits 0 on SIGTERM', async () => {
    const dir = tmpDir();
    const portFile = path.join(dir, 'port');
    const proc = spawn(process.execPath, [SERVER, '--port', '0', '--port-file', portFile, '--client-id', 'client_x', '--api-key', 'sk_x']);
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    await new Promise((resolve) => proc.stdout.once('data', resolve));
    await new Promise((r) => setTimeout(r, 50));
    const line = JSON.parse(out.trim());
    assert.deepEqual(Object.keys(line), ['port', 'baseUrl']);
    assert.equal(line.baseUrl, `http://127.0.0.1:${line.port}`);
    assert.equal(fs.readFileSync(portFile, 'utf8').trim(), String(line.port));
    assert.equal((await fetch(`${line.baseUrl}/sso/jwks/client_x`)).status, 200);
    assert.equal((await fetch(`${line.baseUrl}/events`, { headers: { authorization: 'Bearer sk_x' } })).status, 200);
    const code = await new Promise((resolve) => {
      proc.once('exit', (c) => resolve(c));
      proc.kill('SIGTERM');
    });
    assert.equal(code, 0);
    assert.equal(out.trim().split('\n').length, 1);
  });

  test('bad CLI option exits 2', async () => {
    const proc = spawn(process.execPath, [SERVER, '--bogus']);
    const code = await new Promise((resolve) => proc.once('exit', resolve));
    assert.equal(code, 2);
  });

  test('metadata switch from --metadata-update and WORKOS_FAKE_METADATA_UPDATE; bad values exit 2', async () => {
    const viaEnv = await startFake({ env: { WORKOS_FAKE_METADATA_UPDATE: 'replace' } });
    try {
      assert.equal((await viaEnv.getBehaviour()).metadataUpdate, 'replace'); // not the default (merge)
    } finally {
      await viaEnv.stop();
    }
    const explicit = await startFake({ env: { WORKOS_FAKE_METADATA_UPDATE: 'replace' }, metadataUpdate: 'merge', externalIdConflictStatus: 422 });
    try {
      const b = await explicit.getBehaviour();
      assert.equal(b.metadataUpdate, 'merge'); // the option wins over the environment
      assert.equal(b.externalIdConflictStatus, 422);
    } finally {
      await explicit.stop();
    }
    for (const [args, env] of [[['--metadata-update', 'patch']], [['--external-id-conflict-status', '500']], [[], { WORKOS_FAKE_METADATA_UPDATE: 'x' }]]) {
      const proc = spawn(process.execPath, [SERVER, '--port', '0', ...args], { env: { ...process.env, ...(env ?? {}) } });
      const code = await new Promise((resolve) => proc.once('exit', resolve));
      assert.equal(code, 2, JSON.stringify(args));
    }
  });

  test('--key-file keeps tokens valid and --state-file keeps data across restarts', async () => {
    const dir = tmpDir();
    const keyFile = path.join(dir, 'key.json');
    const stateFile = path.join(dir, 'state.json');
    const fake = await startFake({ keyFile, stateFile });
    try {
      assert.ok(fs.existsSync(keyFile));
      const kid = (await fake.jwks()).keys[0].kid;
      const token = await fake.mintToken({ sub: 'user_keep' });
      const created = await fake.api('POST', '/user_management/users', { email: 'p@example.com', external_id: 'p-ext' });
      const port = fake.port;
      await fake.restart();
      assert.equal(fake.port, port);
      const jwks = await fake.jwks();
      assert.equal(jwks.keys[0].kid, kid);
      assert.ok(verifyJwt(token, jwks).ok);
      assert.equal((await fake.getUser(created.body.id)).email, 'p@example.com');
      // The external_id index is rebuilt from the state file.
      assert.equal((await fake.getUserByExternalId('p-ext')).id, created.body.id);
      assert.equal((await fake.api('POST', '/user_management/users', { email: 'q@example.com', external_id: 'p-ext' })).status, 400);
      const evs = await fake.api('GET', '/events');
      assert.equal(evs.body.data.length, 1);
      // New events still sort after the restored ones.
      await fake.api('PUT', `/user_management/users/${created.body.id}`, { first_name: 'P' });
      const page = await fake.api('GET', `/events?order=asc&after=${evs.body.data[0].id}`);
      assert.deepEqual(page.body.data.map((e) => e.event), ['user.updated']);
      // A rotated key is persisted too.
      const { kid: newKid } = await fake.rotateKey();
      await fake.restart();
      assert.equal((await fake.jwks()).keys[0].kid, newKid);
    } finally {
      await fake.stop();
    }
  });
});
