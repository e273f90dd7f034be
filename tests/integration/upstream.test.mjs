// What an operator sees of WorkOS (issue 22), against the real daemon:
//   * unconfigured (auth.client_id or the API key never set): nothing is
//     sent to WorkOS, every application request is answered with an error
//     naming the file and key to set, and status, health and the log say so;
//   * a refused API key (401/403): upstream "unauthorized" in status, health,
//     metrics and usersctl, one log line naming the key's source (at most one
//     a minute), the events poll backs off, and after a reload with a working
//     key everything resumes without anything else;
//   * admin.config.reload: what it reports reloaded is in force at once, what
//     it reports as needing a restart keeps its running value (auth.audience,
//     auth.issuers, auth.algorithms, workos.api_key, auth.client_id);
//   * the ready line says upstream=unknown until WorkOS answered.
//
// Environment: USERSD_BIN (the daemon), USERSD_BUILD_DIR (usersctl).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  withFake, startDaemon, connect, newUser, seedUser, sharedId, tokenFor, ok, failure, sleep, waitFor, suiteScope,
  runProgram,
} from './harness.mjs';

const USERSCTL = path.join(process.env.USERSD_BUILD_DIR ?? 'build', 'usersctl/usersctl');

async function status(d) {
  const c = await connect(d.adminPath);
  try {
    return ok(await c.request('admin.status'));
  } finally {
    await c.close();
  }
}
async function adminCall(d, tag, payload) {
  const c = await connect(d.adminPath);
  try {
    return await c.request(tag, payload);
  } finally {
    await c.close();
  }
}

describe('unconfigured', () => {
  const scope = suiteScope();

  test('without auth.client_id and a key it contacts nothing and refuses every request, saying what to set', async () => {
    const fake = await withFake({ t: scope });
    // The fake's URL, so that anything sent would show in its request log.
    const d = await startDaemon({
      fake, t: scope,
      configExtra: `auth:\n  client_id: null\nworkos:\n  base_url: ${fake.baseUrl}\n  events_poll_seconds: 1\n`,
    });
    const s = await status(d);
    assert.equal(s.upstream.state, 'unconfigured');
    assert.match(s.upstream.detail, /auth\.client_id/);
    assert.ok(s.upstream.detail.includes(d.configPath), s.upstream.detail);
    const c = await connect(d.socketPath, { t: scope });
    const wu = await seedUser(fake, {});
    const token = await tokenFor(fake, wu);
    for (const [tag, payload] of [['user.me'], ['user.update', { id: sharedId(wu.id), firstName: 'X' }], ['user.delete', { id: sharedId(wu.id) }],
      ['user.finalizeOnboarding'], ['user.resetAvatar']]) {
      const e = failure(await c.request(tag, payload, { token }), 'InternalServerError');
      assert.equal(e.message, 'usersd is not configured', tag);
      assert.ok(e.detail.includes(d.configPath), e.detail);
      assert.match(e.detail, /set auth\.client_id in .* and a WorkOS API key/);
    }
    // Unknown methods stay what the protocol says they are.
    const unknown = await c.request('user.nope', undefined, { token });
    assert.equal(unknown.exit.cause._tag, 'Die');
    const h = await adminCall(d, 'admin.health');
    assert.equal(ok(h).ok, false);
    assert.equal(ok(h).checks.configured.ok, false);
    await sleep(2500);
    assert.deepEqual(await fake.requests(), [], 'an unconfigured usersd sent requests to WorkOS');
    assert.match(d.logs(), /usersd is not configured: it contacts nothing and refuses every request/);
    assert.match(d.logs(), /usersd ready .*upstream=unconfigured/);
  });

  test('with a client id but no key, the key is what it names', async () => {
    const fake = await withFake({ t: scope });
    const d = await startDaemon({
      fake, t: scope,
      configExtra: `auth:\n  client_id: ${fake.clientId}\nworkos:\n  base_url: ${fake.baseUrl}\n`,
      env: { WORKOS_API_KEY: '' },
    });
    const s = await status(d);
    assert.equal(s.upstream.state, 'unconfigured');
    assert.doesNotMatch(s.upstream.detail, /auth\.client_id/);
    assert.match(s.upstream.detail, /WorkOS API key/);
    await sleep(1500);
    assert.deepEqual(await fake.requests(), []);
  });
});

describe('a refused API key', () => {
  const scope = suiteScope();

  test('shows as unauthorized everywhere, backs off, and resumes after a reload with a working key', async () => {
    const fake = await withFake({ t: scope });
    const dir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'usd-key-'));
    scope.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const keyFile = path.join(dir, 'workos_api_key');
    fs.writeFileSync(keyFile, 'sk_test_revoked\n', { mode: 0o600 });
    const d = await startDaemon({
      fake, t: scope, dir,
      configExtra: { workos: { api_key_file: keyFile, events_poll_seconds: 1 } },
    });
    // The ready line cannot know yet (it follows the listen: wait for it).
    await waitFor(() => /usersd ready /.test(d.logs()), { what: 'the ready line' });
    assert.match(d.logs(), /usersd ready .*upstream=unknown/);
    await waitFor(async () => (await status(d)).upstream.state === 'unauthorized', { timeoutMs: 15000, what: 'unauthorized' });
    const s = await status(d);
    assert.equal(s.upstream.keySource, `workos.api_key_file (${keyFile})`);
    assert.match(s.upstream.detail, /HTTP 401/);
    assert.match(s.upstream.detail, /reload/);
    assert.ok(s.upstream.since);

    // The events poll backs off: 1 s polls would be ~8 in 8 s.
    const t0 = Date.now();
    await sleep(8000);
    const polls = (await fake.requests({ path: '^/events$' })).filter((r) => r.ts >= t0);
    assert.ok(polls.length <= 4, `${polls.length} event polls in 8 s while the key is refused`);
    // One warning (at most one a minute), naming the source; no per-poll noise.
    const warnings = d.logs().split('\n').filter((l) => /^<4>WorkOS refuses the API key/.test(l));
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.ok(warnings[0].includes(keyFile), warnings[0]);
    assert.doesNotMatch(d.logs(), /sk_test_revoked/);
    // The poller's own failures go to debug: no warning per poll.
    assert.doesNotMatch(d.logs(), /^<4>events poll failed/m);

    const h = ok(await adminCall(d, 'admin.health'));
    assert.equal(h.checks.upstream.ok, false);
    assert.equal(h.checks.upstream.state, 'unauthorized');
    const m = ok(await adminCall(d, 'admin.metrics')).text;
    assert.match(m, /^usersd_upstream_state\{state="unauthorized"\} 1$/m);
    assert.match(m, /^usersd_upstream_state\{state="online"\} 0$/m);
    const ctl = await runProgram(USERSCTL, ['--socket', d.adminPath, 'status']);
    assert.equal(ctl.code, 0, ctl.stderr);
    assert.match(ctl.stdout, /^upstream +unauthorized since /m);
    assert.ok(ctl.stdout.includes(`key from workos.api_key_file (${keyFile})`), ctl.stdout);

    // A change made in WorkOS meanwhile waits...
    const wu = await seedUser(fake, { email: `later-${process.pid}@example.com` });
    await fake.createUser({ id: wu.id, first_name: 'Waited', emitEvent: true });
    // ... until the key is fixed and reloaded: no other step.
    fs.writeFileSync(keyFile, `${fake.apiKey}\n`);
    const r = ok(await adminCall(d, 'admin.config.reload'));
    assert.ok(r.reloaded.includes('workos.api_key'), JSON.stringify(r));
    assert.deepEqual(r.needsRestart, []);
    await waitFor(async () => (await status(d)).upstream.state === 'online', { timeoutMs: 10000, what: 'online again' });
    const admin = await connect(d.adminPath, { t: scope });
    await waitFor(async () => {
      const u = await admin.request('admin.users.get', { workosId: wu.id });
      return u.exit._tag === 'Success' && u.exit.value.firstName === 'Waited';
    }, { timeoutMs: 10000, what: 'the event that waited' });
    assert.match(d.logs(), /WorkOS accepts the API key again/);
  });
});

describe('admin.config.reload: reported as it is applied', () => {
  const scope = suiteScope();

  test('auth.audience, auth.issuers and auth.algorithms are in force at once; auth.client_id waits for a restart', async () => {
    const fake = await withFake({ t: scope });
    const d = await startDaemon({ fake, t: scope, configExtra: { workos: { events_poll_seconds: 0 } } });
    const c = await connect(d.socketPath, { t: scope });
    const u = await newUser(fake, c);
    const tokA = await tokenFor(fake, u.workos, { aud: 'app-a' });
    const tokB = await tokenFor(fake, u.workos, { aud: 'app-b' });
    ok(await c.request('user.me', undefined, { token: tokA }));
    const reload = async (auth) => {
      d.writeConfig({ auth: { client_id: fake.clientId, ...auth }, workos: { events_poll_seconds: 0 } });
      return ok(await adminCall(d, 'admin.config.reload'));
    };

    let r = await reload({ audience: 'app-b' });
    assert.deepEqual(r, { reloaded: ['auth.audience'], needsRestart: [] });
    const refused = failure(await c.request('user.me', undefined, { token: tokA }), 'UnauthorizedError');
    assert.equal(refused.detail, 'token aud "app-a" does not match auth.audience');
    ok(await c.request('user.me', undefined, { token: tokB }));

    r = await reload({ audience: 'app-b', issuers: ['https://issuer.example.com'] });
    assert.deepEqual(r, { reloaded: ['auth.issuers'], needsRestart: [] });
    const iss = failure(await c.request('user.me', undefined, { token: tokB }), 'UnauthorizedError');
    assert.match(iss.detail, /is not accepted \(not in auth\.issuers\)/);

    r = await reload({ audience: 'app-b', algorithms: ['RS512'] });
    assert.deepEqual(r.reloaded.sort(), ['auth.algorithms', 'auth.issuers']);
    failure(await c.request('user.me', undefined, { token: tokB }), 'UnauthorizedError');
    r = await reload({ audience: 'app-b' });
    ok(await c.request('user.me', undefined, { token: tokB }));

    // A restart-only key is reported so and keeps its running value: the
    // issuers derived from the running client id still accept the token.
    d.writeConfig({ auth: { client_id: 'client_other', audience: 'app-b' }, workos: { events_poll_seconds: 0 } });
    r = ok(await adminCall(d, 'admin.config.reload'));
    assert.deepEqual(r, { reloaded: [], needsRestart: ['auth.client_id'] });
    ok(await c.request('user.me', undefined, { token: tokB }));
    assert.match(d.logs(), /configuration reloaded reloaded="" needs_restart=auth\.client_id/);
  });
});
