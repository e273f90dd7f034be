// Writes that really race (SPEC 4b "Writes and conflicts"; issue 20 item 6):
// the test server holds PUTs until the test releases them, in the order it
// chooses, so two hosts' publishes of one user are both in flight at once
// and the one sent first may land last. Each case runs under both metadata
// semantics a WorkOS-compatible server may have (merge, as WorkOS documents;
// replace).
//
// The algorithm is shown by the simulation (tests/sim); this shows the wiring
// of the real daemons: versions in the document, republishing what a
// concurrent PUT erased, one value everywhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, ok, seedUser, sharedId, startDaemon, tokenFor, waitFor, withFake } from './harness.mjs';

const CONFIG = {
  workos: { timeout_ms: 5000, events_poll_seconds: 1 },
  outbox: { initial_backoff_ms: 50, max_backoff_ms: 500 },
  log: { level: 'info' },
};

async function cluster(t, { hosts, metadataUpdate }) {
  const fake = await withFake({ t, metadataUpdate });
  const daemons = [];
  for (let i = 0; i < hosts; i++) {
    const d = await startDaemon({ fake, t, configExtra: CONFIG });
    daemons.push({ d, app: await connect(d.socketPath, { t }), admin: await connect(d.adminPath, { t }) });
  }
  return { fake, daemons };
}

// One WorkOS user every host has provisioned; resolves to {workos, token, id}.
async function sharedUser({ fake, daemons }) {
  let workos = await seedUser(fake, {});
  workos = await fake.createUser({ ...workos, external_id: sharedId(workos.id) });
  const token = await tokenFor(fake, workos);
  let id;
  for (const h of daemons) id = ok(await h.app.request('user.me', undefined, { token })).id;
  return { workos, token, id };
}

const get = async (h, id) => ok(await h.admin.request('admin.users.get', { id }));

function documentOf(workosUser) {
  const md = workosUser.metadata ?? {};
  let text = '';
  for (let i = 0; i < 10 && md[`usersd_${i}`]; i++) text += md[`usersd_${i}`];
  return text ? JSON.parse(text) : null;
}

for (const metadataUpdate of ['merge', 'replace']) {
  test(`two hosts write different shared fields of one user at once: both on both hosts and in WorkOS (metadata ${metadataUpdate})`, { timeout: 120000 }, async (t) => {
    const c = await cluster(t, { hosts: 2, metadataUpdate });
    const [a, b] = c.daemons;
    const u = await sharedUser(c);
    await c.fake.hold({ method: 'PUT', path: `^/user_management/users/${u.workos.id}$` });
    ok(await a.app.request('user.update', { id: u.id, timezone: 'Asia/Tokyo' }, { token: u.token }));
    ok(await b.app.request('user.update', { id: u.id, settings: { doNotDisturb: true } }, { token: u.token }));
    await waitFor(async () => (await c.fake.held()) === 2, { what: 'both PUTs held by WorkOS' });
    // The first one sent lands last: its document (without the other
    // host's field) replaces the other's in WorkOS.
    assert.equal((await c.fake.release({ order: 'reverse' })).released, 2);
    await waitFor(async () => {
      const doc = documentOf(await c.fake.getUser(u.workos.id));
      const [x, y] = [await get(a, u.id), await get(b, u.id)];
      return doc?.timezone === 'Asia/Tokyo' && doc?.settings?.doNotDisturb === true &&
        x.timezone === 'Asia/Tokyo' && y.timezone === 'Asia/Tokyo' &&
        x.settings?.doNotDisturb === true && y.settings?.doNotDisturb === true;
    }, { timeoutMs: 20000, what: 'both changes on both hosts and in WorkOS' });
    const puts = await c.fake.requests({ method: 'PUT', path: `^/user_management/users/${u.workos.id}$` });
    t.diagnostic(`${puts.length} PUTs (2 held, then the repair)`);
    const doc = documentOf(await c.fake.getUser(u.workos.id));
    assert.match(doc._v.timezone, /^\d+\.\d+\.[0-9a-f]{16}$/);
    assert.match(doc._v.settings, /^\d+\.\d+\.[0-9a-f]{16}$/);
    for (const h of c.daemons) {
      assert.deepEqual(ok(await h.admin.request('admin.deadLetters.list')).deadLetters, []);
    }
  });

  test(`three hosts write one field at once: one value everywhere, the last written (metadata ${metadataUpdate})`, { timeout: 120000 }, async (t) => {
    const c = await cluster(t, { hosts: 3, metadataUpdate });
    const u = await sharedUser(c);
    await c.fake.hold({ method: 'PUT', path: `^/user_management/users/${u.workos.id}$` });
    const zones = ['Europe/Paris', 'America/New_York', 'Australia/Sydney'];
    // One after another on the wall clock, so the versions (hybrid logical
    // clocks of hosts on one machine) order them: the last written wins.
    for (const [i, h] of c.daemons.entries()) {
      ok(await h.app.request('user.update', { id: u.id, timezone: zones[i] }, { token: u.token }));
      await new Promise((r) => setTimeout(r, 5));
    }
    await waitFor(async () => (await c.fake.held()) === 3, { what: 'three PUTs held by WorkOS' });
    await c.fake.release({ order: 'reverse' });
    try {
      await waitFor(async () => {
        const doc = documentOf(await c.fake.getUser(u.workos.id));
        if (doc?.timezone !== zones[2]) return false;
        for (const h of c.daemons) if ((await get(h, u.id)).timezone !== zones[2]) return false;
        return true;
      }, { timeoutMs: 20000, what: `${zones[2]} on every host and in WorkOS` });
    } catch (e) {
      const states = [];
      for (const h of c.daemons) {
        const st = ok(await h.admin.request('admin.status'));
        states.push([(await get(h, u.id)).timezone, ok(await h.admin.request('admin.outbox.list')).jobs, st.events, st.upstream]);
        console.log(h.d.logs().slice(-3000));
      }
      throw new Error(`${e.message}: WorkOS ${JSON.stringify(documentOf(await c.fake.getUser(u.workos.id)))}, hosts ${JSON.stringify(states)}`);
    }
  });
}
