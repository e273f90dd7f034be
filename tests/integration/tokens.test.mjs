// Bearer token verification (SPEC section 3): every refusal is an
// UnauthorizedError whose detail says why and never echoes the token.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { withFake, startDaemon, connect, seedUser, tokenFor, ok, failure, rpcFailure, waitFor } from './harness.mjs';

const fake = await withFake();
const d = await startDaemon({ fake, configExtra: { auth: { jwks_min_refresh_seconds: 1 } } });
const c = await connect(d.socketPath);
const wu = await seedUser(fake);
const good = await tokenFor(fake, wu, { org_id: 'org_t', role: 'member' });
const me = ok(await c.request('user.me', undefined, { token: good }));

const b64url = (s) => Buffer.from(s).toString('base64url');

// Asserts an UnauthorizedError in both serializations and returns its detail.
async function refused(headerValue, { detail, label } = {}) {
  const headers = headerValue === undefined ? [] : [['authorization', headerValue]];
  const exit = await c.request('user.me', undefined, { headers });
  const err = failure(exit, 'UnauthorizedError');
  assert.deepEqual(Object.keys(err).sort(), ['_tag', 'detail', 'message'], label);
  assert.equal(typeof err.message, 'string');
  assert.equal(typeof err.detail, 'string');
  assert.ok(err.detail.length > 0, `${label}: detail is empty`);
  if (detail) assert.match(err.detail, detail, label);
  const token = headerValue?.replace(/^Bearer /, '');
  if (token && token.length > 8) {
    assert.ok(!JSON.stringify(exit).includes(token), `${label}: the reply echoes the token`);
    // Not even a segment of it.
    for (const seg of token.split('.').filter((s) => s.length > 16)) {
      assert.ok(!JSON.stringify(exit).includes(seg), `${label}: the reply echoes a token segment`);
    }
  }
  const resp = await c.jsonrpc('user.me', undefined, { headers });
  rpcFailure(resp, 401, 'UnauthorizedError');
  // The same refusal applies to the mutating operations.
  failure(await c.request('user.update', { id: me.id, firstName: 'Mallory' }, { headers }), 'UnauthorizedError');
  return err.detail;
}

describe('malformed requests', () => {
  test('missing authorization header', async () => {
    await refused(undefined, { detail: /missing|no token|header/i, label: 'missing' });
  });

  test('not a Bearer header', async () => {
    await refused(`Basic ${b64url('user:pass')}`, { label: 'basic' });
    await refused(good, { label: 'no scheme' });
    await refused('Bearer', { label: 'scheme only' });
    await refused('Bearer ', { label: 'empty token' });
  });

  test('malformed tokens', async () => {
    const [h, p, s] = good.split('.');
    const cases = {
      'one segment': 'abc',
      'two segments': `${h}.${p}`,
      'four segments': `${good}.${s}`,
      'bad base64 payload': `${h}.!!!${p.slice(3)}.${s}`,
      'padded base64': `${h}.${p}==.${s}`,
      'header not JSON': `${b64url('not json')}.${p}.${s}`,
      'payload not JSON': `${h}.${b64url('{"sub":')}.${s}`,
      'payload an array': `${h}.${b64url('[1,2]')}.${s}`,
      'empty signature': `${h}.${p}.`,
    };
    for (const [label, token] of Object.entries(cases)) await refused(`Bearer ${token}`, { label });
  });

  test('a token over 8 KiB', async () => {
    const big = await fake.mintToken({ sub: wu.id, extraClaims: { pad: 'x'.repeat(9000) } });
    assert.ok(big.length > 8192);
    await refused(`Bearer ${big}`, { label: 'too large', detail: /large|size|bytes|8/i });
  });
});

describe('claims', () => {
  test('expired (beyond the 30 s leeway) is refused; inside the leeway is accepted', async () => {
    const expired = await tokenFor(fake, wu, { expiresIn: -120 });
    const detail = await refused(`Bearer ${expired}`, { label: 'expired', detail: /expir/i });
    assert.ok(!detail.includes(expired));
    const leeway = await tokenFor(fake, wu, { expiresIn: -5 });
    assert.equal(ok(await c.request('user.me', undefined, { token: leeway })).id, me.id);
  });

  test('not yet valid (nbf in the future) is refused', async () => {
    const future = await tokenFor(fake, wu, { notBefore: 600 });
    await refused(`Bearer ${future}`, { label: 'nbf', detail: /before|nbf|not yet/i });
  });

  test('wrong issuer is refused; both WorkOS issuers are accepted', async () => {
    for (const iss of ['https://evil.example.com', 'https://api.workos.com/user_management/client_other', 'https://api.workos.com/']) {
      const tok = await tokenFor(fake, wu, { iss });
      await refused(`Bearer ${tok}`, { label: `iss ${iss}`, detail: /issuer/i });
    }
    const noIss = await tokenFor(fake, wu, { extraClaims: { iss: null } });
    await refused(`Bearer ${noIss}`, { label: 'no iss', detail: /issuer/i });
    for (const iss of ['https://api.workos.com', `https://api.workos.com/user_management/${fake.clientId}`]) {
      const tok = await tokenFor(fake, wu, { iss });
      assert.equal(ok(await c.request('user.me', undefined, { token: tok })).id, me.id, iss);
    }
  });

  test('audience is not checked unless configured', async () => {
    const tok = await tokenFor(fake, wu, { aud: 'some-audience' });
    assert.equal(ok(await c.request('user.me', undefined, { token: tok })).id, me.id);
  });

  test('no subject is refused; no exp is refused (SPEC 3: auth.require_exp), every time; an exp in the past is refused', async () => {
    const noSub = await fake.mintToken({ sub: null });
    await refused(`Bearer ${noSub}`, { label: 'no sub', detail: /sub/i });
    const noExp = await tokenFor(fake, wu, { extraClaims: { exp: null } });
    assert.ok(!('exp' in JSON.parse(Buffer.from(noExp.split('.')[1], 'base64url'))));
    // Never cached, so each use is verified again; the answer stays the same.
    // (auth.require_exp: false accepts it: security.test.mjs.)
    for (let i = 0; i < 3; i++) await refused(`Bearer ${noExp}`, { label: 'no exp', detail: /no exp claim/ });
    const past = await tokenFor(fake, wu, { extraClaims: { exp: 1 } });
    await refused(`Bearer ${past}`, { label: 'exp 1970', detail: /expired/i });
  });
});

describe('signatures and algorithms', () => {
  test('a corrupted signature is refused', async () => {
    const tok = (await fake.mintTokenDetailed({ sub: wu.id, corruptSignature: true })).token;
    await refused(`Bearer ${tok}`, { label: 'corrupt', detail: /signature/i });
    // Someone else's claims under our header and signature.
    const [h, , s] = good.split('.');
    const forged = `${h}.${b64url(JSON.stringify({ sub: 'user_forged', iss: 'https://api.workos.com', exp: Math.floor(Date.now() / 1000) + 600 }))}.${s}`;
    await refused(`Bearer ${forged}`, { label: 'forged', detail: /signature/i });
  });

  test('alg none, HS256 with the public key (confusion), ES256, PS256 and RS384 are refused', async () => {
    for (const alg of ['none', 'HS256', 'HS512', 'ES256', 'PS256', 'RS384']) {
      const tok = await tokenFor(fake, wu, { alg });
      const detail = await refused(`Bearer ${tok}`, { label: `alg ${alg}` });
      assert.ok(!/^$/.test(detail));
    }
    // "none" without any signature segment content, and with a kid that exists.
    const { kid } = await fake.mintTokenDetailed({ sub: wu.id });
    const hdr = b64url(JSON.stringify({ alg: 'none', typ: 'JWT', kid }));
    const body = b64url(JSON.stringify({ sub: wu.id, iss: 'https://api.workos.com', exp: Math.floor(Date.now() / 1000) + 600 }));
    await refused(`Bearer ${hdr}.${body}.`, { label: 'handmade none' });
  });

  test('an unknown kid is refused (after at most one JWKS refetch)', async () => {
    const tok = await tokenFor(fake, wu, { kid: 'sso_oidc_key_pair_unknown' });
    await refused(`Bearer ${tok}`, { label: 'unknown kid', detail: /key|kid/i });
  });

  test('after a key rotation the daemon refetches the JWKS and accepts the new key; the retired key is refused', async () => {
    // Minted with the old key, never presented before (so not in the token cache).
    const oldKeyToken = await tokenFor(fake, wu, {});
    const since = Date.now();
    const rotated = await fake.rotateKey({ keep: false });
    const fresh = await fake.mintTokenDetailed({ sub: wu.id });
    assert.equal(fresh.kid, rotated.kid);
    // At most one refetch per jwks_min_refresh_seconds (1 s here): an
    // earlier test may just have used it, so allow a short wait.
    const value = await waitFor(
      async () => {
        const exit = await c.request('user.me', undefined, { token: fresh.token });
        return exit.exit._tag === 'Success' ? exit.exit.value : null;
      },
      { timeoutMs: 5000, intervalMs: 200, what: 'the new key to be accepted' },
    );
    assert.equal(value.id, me.id);
    const jwksFetches = await fake.requests({ path: '^/sso/jwks/', since });
    assert.ok(jwksFetches.length >= 1, 'the JWKS was refetched');
    await refused(`Bearer ${oldKeyToken}`, { label: 'retired key', detail: /key|kid/i });
  });

  test('invented kids do not make the daemon hammer the JWKS endpoint', async () => {
    const since = Date.now();
    const tokens = await Promise.all(Array.from({ length: 10 }, (_, i) => tokenFor(fake, wu, { kid: `invented_${i}` })));
    const exits = await Promise.all(tokens.map((token) => c.request('user.me', undefined, { token })));
    for (const e of exits) failure(e, 'UnauthorizedError');
    const fetches = await fake.requests({ path: '^/sso/jwks/', since });
    assert.ok(fetches.length <= 2, `${fetches.length} JWKS fetches for 10 unknown kids`);
  });
});

test('the token never shows up in the logs', async () => {
  const secret = await tokenFor(fake, wu, { expiresIn: -120 });
  failure(await c.request('user.me', undefined, { token: secret }), 'UnauthorizedError');
  const current = await tokenFor(fake, wu); // the key may have rotated above
  ok(await c.request('user.me', undefined, { token: current }));
  const logs = d.logs();
  assert.ok(logs.length > 0, 'debug logs were captured');
  for (const tok of [secret, good, current]) {
    assert.ok(!logs.includes(tok.split('.')[2]), 'a token signature is in the logs');
  }
});
