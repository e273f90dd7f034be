// Issue 21 ("Let no one in where they don't belong"), shown on the running
// daemon against the WorkOS-compatible server: the org-admin policy follows
// each user's latest token; tokens without exp, or too old, are refused;
// admin.backup stays below admin_socket.backup_dir; http:// to a remote
// WorkOS is refused; and the API key does not leak through the environment,
// a core file or a readable config. docs/RELIABILITY.md "Threats" maps each
// to the attacker it stops.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  withFake, startDaemon, connect, newUser, tokenFor, ok, failure, defect, makeTempDir, runUsersd, suiteScope, buildConfig,
} from './harness.mjs';

describe('org-admin policy follows the latest token', () => {
  const scope = suiteScope();
  let fake, d, c;

  before(async () => {
    fake = await withFake({ t: scope });
    d = await startDaemon({ fake, t: scope, configExtra: { policy: { org_admins_manage_members: true }, workos: { events_poll_seconds: 0 } } });
    c = await connect(d.socketPath, { t: scope });
  });

  test("an admin of org_A loses Bob when Bob signs in as a member of org_B: no email change, no delete", async () => {
    const admin = await newUser(fake, c, { claims: { org_id: 'org_A', role: 'admin' } });
    const bob = await newUser(fake, c, { claims: { org_id: 'org_A', role: 'member' } });
    ok(await c.request('user.update', { id: bob.me.id, firstName: 'Managed' }, { token: admin.token }));
    // Bob signs in again, now a member of org_B.
    const bobB = await tokenFor(fake, bob.workos, { org_id: 'org_B', role: 'member' });
    assert.equal(ok(await c.request('user.me', undefined, { token: bobB })).organizationId, 'org_B');
    const a = await connect(d.adminPath);
    try {
      assert.equal(ok(await a.request('admin.users.get', { id: bob.me.id })).organizationId, 'org_B');
    } finally {
      await a.close();
    }
    await fake.clearRequests();
    failure(await c.request('user.update', { id: bob.me.id, email: 'eve@example.com' }, { token: admin.token }), 'UnauthorizedError');
    failure(await c.request('user.delete', { id: bob.me.id }, { token: admin.token }), 'UnauthorizedError');
    // Nothing of it reached WorkOS.
    const writes = await fake.requests({ path: `^/user_management/users/${bob.workos.id}$` });
    assert.deepEqual(writes.filter((r) => r.method !== 'GET'), []);
    assert.equal(ok(await c.request('user.me', undefined, { token: bobB })).email, bob.workos.email);
  });

  test('an admin manages members only, and no one changes another user\'s email', async () => {
    const owner = await newUser(fake, c, { claims: { org_id: 'org_C', role: 'owner' } });
    const admin = await newUser(fake, c, { claims: { org_id: 'org_C', role: 'admin' } });
    const admin2 = await newUser(fake, c, { claims: { org_id: 'org_C', role: 'admin' } });
    const member = await newUser(fake, c, { claims: { org_id: 'org_C', role: 'member' } });
    failure(await c.request('user.delete', { id: owner.me.id }, { token: admin.token }), 'UnauthorizedError');
    failure(await c.request('user.update', { id: admin2.me.id, lastName: 'X' }, { token: admin.token }), 'UnauthorizedError');
    ok(await c.request('user.update', { id: admin2.me.id, lastName: 'ByOwner' }, { token: owner.token }));
    ok(await c.request('user.update', { id: member.me.id, lastName: 'ByAdmin' }, { token: admin.token }));
    const e = failure(await c.request('user.update', { id: member.me.id, email: 'new@example.com' }, { token: owner.token }), 'UnauthorizedError');
    assert.equal(e.detail, 'only the user itself may change its email');
  });
});

describe('tokens', () => {
  const scope = suiteScope();
  let fake, d, c, wu;

  before(async () => {
    fake = await withFake({ t: scope });
    d = await startDaemon({ fake, t: scope, configExtra: { workos: { events_poll_seconds: 0 } } });
    c = await connect(d.socketPath, { t: scope });
    wu = (await newUser(fake, c)).workos;
  });

  test('a token without exp is refused by default (auth.require_exp)', async () => {
    const noExp = await tokenFor(fake, wu, { extraClaims: { exp: null } });
    const e = failure(await c.request('user.me', undefined, { token: noExp }), 'UnauthorizedError');
    assert.match(e.detail, /no exp claim/);
  });

  test('auth.require_exp: false accepts it; auth.max_token_age_seconds refuses an old iat', async (t) => {
    const d2 = await startDaemon({
      fake,
      t,
      configExtra: { auth: { require_exp: false, max_token_age_seconds: 600 }, workos: { events_poll_seconds: 0 } },
    });
    const c2 = await connect(d2.socketPath, { t });
    const noExp = await tokenFor(fake, wu, { extraClaims: { exp: null } });
    ok(await c2.request('user.me', undefined, { token: noExp }));
    const old = await tokenFor(fake, wu, { extraClaims: { iat: Math.floor(Date.now() / 1000) - 3600 } });
    assert.match(failure(await c2.request('user.me', undefined, { token: old }), 'UnauthorizedError').detail, /older than 600 seconds/);
    const noIat = await tokenFor(fake, wu, { extraClaims: { iat: null } });
    assert.match(failure(await c2.request('user.me', undefined, { token: noIat }), 'UnauthorizedError').detail, /no iat/);
  });
});

describe('admin.backup', () => {
  const scope = suiteScope();
  let fake, d, admin, backups;

  before(async () => {
    fake = await withFake({ t: scope });
    backups = await makeTempDir('usd-bkroot-');
    scope.after(() => fs.rmSync(backups, { recursive: true, force: true }));
    d = await startDaemon({ fake, t: scope, configExtra: { admin_socket: { backup_dir: path.join(backups, 'root') } } });
    admin = await connect(d.adminPath, { t: scope });
  });

  test('writes only below admin_socket.backup_dir, 0700 directories and a 0600 copy, whatever the umask', async () => {
    const dest = path.join(backups, 'root', 'nightly', '1');
    const r = ok(await admin.request('admin.backup', { path: dest }));
    assert.equal(r.path, dest);
    assert.equal(fs.statSync(path.join(dest, 'data.mdb')).mode & 0o777, 0o600);
    for (const p of [path.join(backups, 'root'), path.join(backups, 'root', 'nightly'), dest]) {
      assert.equal(fs.statSync(p).mode & 0o777, 0o700, p);
    }
    for (const outside of [path.join(backups, 'elsewhere'), path.join(backups, 'root', '..', 'elsewhere'), '/etc/usersd-backup', d.dir]) {
      const e = defect(await admin.request('admin.backup', { path: outside }));
      assert.match(e.message, /must be below admin_socket.backup_dir/, outside);
    }
    assert.equal(fs.existsSync(path.join(backups, 'elsewhere')), false);
  });

  test('a symlink below backup_dir is refused, not followed', async () => {
    const target = path.join(backups, 'target');
    fs.mkdirSync(target);
    fs.symlinkSync(target, path.join(backups, 'root', 'link'));
    const e = defect(await admin.request('admin.backup', { path: path.join(backups, 'root', 'link', 'x') }));
    assert.match(e.message, /symlink or not a directory/);
    assert.deepEqual(fs.readdirSync(target), []);
  });
});

describe('configuration and secrets', () => {
  test('http:// to a host that is not loopback is refused unless workos.allow_insecure_http', async () => {
    const dir = await makeTempDir();
    try {
      const cfg = path.join(dir, 'usersd.yaml');
      fs.writeFileSync(cfg, 'workos:\n  base_url: http://workos.example.internal\n', { mode: 0o600 });
      const r = await runUsersd(['--check-config', '--config', cfg]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /workos\.base_url \(line 2\).*allow_insecure_http/);
      fs.writeFileSync(cfg, 'auth:\n  jwks_url: http://10.1.2.3/jwks\n');
      assert.match((await runUsersd(['--check-config', '--config', cfg])).stderr, /auth\.jwks_url/);
      fs.writeFileSync(cfg, 'workos:\n  base_url: http://workos.example.internal\n  allow_insecure_http: true\n');
      assert.equal((await runUsersd(['--check-config', '--config', cfg])).code, 0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an API key in a config every user may read stops the start; the key is named nowhere', async (t) => {
    const fake = await withFake({ t });
    const dir = await makeTempDir();
    try {
      const cfg = path.join(dir, 'usersd.yaml');
      fs.writeFileSync(cfg, buildConfig({ dir, fake }));
      fs.chmodSync(cfg, 0o644);
      const r = await runUsersd(['--config', cfg]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /readable by every user/);
      assert.ok(!r.stderr.includes(fake.apiKey));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('WORKOS_API_KEY is gone from /proc/PID/environ once read, and no core file is written', async (t) => {
    const fake = await withFake({ t });
    const d = await startDaemon({
      fake,
      t,
      env: { WORKOS_API_KEY: fake.apiKey },
      configExtra: { workos: { base_url: fake.baseUrl, api_key: null } },
    });
    const pid = d.proc.pid;
    const environ = fs.readFileSync(`/proc/${pid}/environ`, 'latin1');
    assert.ok(!environ.includes(fake.apiKey), 'the key is still in the environment');
    assert.match(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'), /Max core file size\s+0\s/);
    // The daemon still has the key: WorkOS answers it.
    const c = await connect(d.socketPath, { t });
    const u = await newUser(fake, c);
    assert.ok(u.me.id);
    const a = await connect(d.adminPath, { t });
    assert.equal(ok(await a.request('admin.status')).upstream.state, 'online');
    // And a reload keeps it although the environment no longer has it.
    const r = ok(await a.request('admin.config.reload'));
    assert.ok(!r.needsRestart.includes('workos.api_key'), JSON.stringify(r));
    ok(await c.request('user.resetAvatar', undefined, { token: u.token }));
    assert.equal(ok(await a.request('admin.status')).upstream.state, 'online');
  });
});
