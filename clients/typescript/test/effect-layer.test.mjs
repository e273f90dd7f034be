// UsersdClient.layer: an Effect application's RpcClient.make(UsersRpcs),
// unchanged, over the daemon's socket with both serializations: every
// operation, every error, and a daemon restart under a long-lived client.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { withFake, startDaemon, connect, newUser, seedUser, tokenFor } from '../../../tests/integration/harness.mjs';
import { loadPackage } from './env.mjs';

const { client: pkg, effect, rpc } = await loadPackage();
const { Effect, Exit, Cause, DateTime, Schedule } = effect;
const { RpcClient } = rpc;
const { UsersRpcs, UsersdClient, CurrentUser, User, UnauthorizedError, UserNotFoundError, InternalServerError } = pkg;

const bearer = (token) => ({ headers: { authorization: `Bearer ${token}` } });

/** The application's code: it only knows RpcClient.make(UsersRpcs) and a protocol layer. */
const run = (layer, fn) =>
  Effect.runPromiseExit(
    Effect.gen(function* () {
      const client = yield* RpcClient.make(UsersRpcs);
      return yield* fn(client);
    }).pipe(Effect.scoped, Effect.provide(layer), Effect.timeout('20 seconds')),
  );

function success(exit) {
  if (!Exit.isSuccess(exit)) assert.fail(`expected success, got ${Cause.pretty(exit.cause)}`);
  return exit.value;
}

const fake = await withFake();
const d = await startDaemon({ fake, configExtra: { policy: { org_admins_manage_members: true } } });
const raw = await connect(d.socketPath);
// WorkOS down, for InternalServerError: one daemon for both serializations.
const downFake = await withFake();
const downDaemon = await startDaemon({ fake: downFake, configExtra: { workos: { timeout_ms: 2000 } } });
const downUser = await seedUser(downFake);
const downToken = await tokenFor(downFake, downUser);
await downFake.setDown(true);

test('layer() rejects an unknown serialization', () => {
  assert.throws(() => UsersdClient.layer({ socketPath: d.socketPath, serialization: 'msgpack' }), /unknown serialization/);
});

for (const serialization of ['ndjson', 'jsonrpc']) {
  describe(`UsersdClient.layer, ${serialization}`, () => {
    const layer = () => UsersdClient.layer({ socketPath: d.socketPath, serialization });

    test('the five operations decode as the contract classes', async () => {
      const org = `org_l_${serialization}`;
      const admin = await newUser(fake, raw, { claims: { org_id: org, role: 'owner' }, picture: 'https://img.example.com/l.png' });
      const member = await newUser(fake, raw, { claims: { org_id: org, role: 'member' } });
      const out = success(
        await run(layer(), (client) =>
          Effect.gen(function* () {
            const me = yield* client.user.me(undefined, bearer(admin.token));
            const upd = yield* client.user.update({ id: admin.me.id, firstName: 'Layered', settings: { theme: { mode: 'dark' } } }, bearer(admin.token));
            const fin = yield* client.user.finalizeOnboarding(undefined, bearer(admin.token));
            const reset = yield* client.user.resetAvatar(undefined, bearer(admin.token));
            const del = yield* client.user.delete({ id: member.me.id }, bearer(admin.token));
            return { me, upd, fin, reset, del };
          }),
        ),
      );
      assert.ok(out.me instanceof CurrentUser);
      assert.equal(out.me.id, admin.me.id);
      assert.equal(out.me.role, 'owner');
      assert.equal(out.me.organizationId, org);
      assert.ok(out.upd.data instanceof User);
      assert.equal(out.upd.data.firstName, 'Layered');
      assert.deepEqual(out.upd.data.settings, { theme: { mode: 'dark' } });
      assert.ok(DateTime.isDateTime(out.upd.data.createdAt));
      assert.ok(out.fin.data.isOnboarded);
      assert.equal(out.reset.data.avatarUrl, 'https://img.example.com/l.png');
      const txs = [out.upd, out.fin, out.reset, out.del].map((r) => r.transactionId);
      assert.deepEqual([...txs].sort((a, b) => a - b), txs, 'transactionIds increase');
    });

    test('every typed error and the ValidationError defect', async () => {
      const org = `org_e_${serialization}`;
      const admin = await newUser(fake, raw, { claims: { org_id: org, role: 'admin' } });
      const member = await newUser(fake, raw, { claims: { org_id: org, role: 'member' } });
      const stranger = await newUser(fake, raw);
      await raw.request('user.delete', { id: member.me.id }, { token: admin.token });
      const errs = success(
        await run(layer(), (client) =>
          Effect.gen(function* () {
            const bad = yield* Effect.flip(client.user.me(undefined, bearer('not-a-token')));
            const missing = yield* Effect.flip(client.user.resetAvatar());
            const foreign = yield* Effect.flip(client.user.update({ id: stranger.me.id, firstName: 'X' }, bearer(admin.token)));
            const notFound = yield* Effect.flip(client.user.delete({ id: member.me.id }, bearer(admin.token)));
            const invalid = yield* Effect.exit(client.user.update({ id: admin.me.id, timezone: 'Not/AZone' }, bearer(admin.token)));
            return { bad, missing, foreign, notFound, invalid };
          }),
        ),
      );
      for (const e of [errs.bad, errs.missing, errs.foreign]) {
        assert.ok(e instanceof UnauthorizedError, `got ${e?._tag}: ${e}`);
        assert.ok(e.detail.length > 0);
      }
      assert.ok(errs.notFound instanceof UserNotFoundError, `got ${errs.notFound?._tag}`);
      assert.equal(errs.notFound.userId, member.me.id);
      assert.ok(Exit.isFailure(errs.invalid) && Cause.isDie(errs.invalid.cause), String(errs.invalid));
      assert.match(String(Cause.squash(errs.invalid.cause)?.message), /timezone/);

      const ise = success(
        await run(UsersdClient.layer({ socketPath: downDaemon.socketPath, serialization }), (client) =>
          Effect.gen(function* () {
            yield* client.user.me(undefined, bearer(downToken)); // provisioned offline: no picture known
            return yield* Effect.flip(client.user.resetAvatar(undefined, bearer(downToken)));
          }),
        ),
      );
      assert.ok(ise instanceof InternalServerError, `got ${ise?._tag}`);
      assert.equal(typeof ise.message, 'string');
    });

    test('a daemon restart under a long-lived client: it reconnects by itself', async (t) => {
      const f = await withFake({ t });
      const dr = await startDaemon({ fake: f, t });
      const wu = await seedUser(f);
      const token = await tokenFor(f, wu);
      const seen = [];
      const out = success(
        await run(UsersdClient.layer({ socketPath: dr.socketPath, serialization }), (client) =>
          Effect.gen(function* () {
            const before = yield* client.user.me(undefined, bearer(token));
            yield* Effect.promise(() => dr.restart());
            // Calls fail with RpcClientError until the socket is reopened
            // (@effect/rpc's schedule: 500 ms, then x1.5); the application's
            // usual retry policy covers the gap.
            const after = yield* client.user.me(undefined, bearer(token)).pipe(
              Effect.tapError((e) => Effect.sync(() => seen.push(e._tag))),
              Effect.retry({ while: (e) => e._tag === 'RpcClientError', schedule: Schedule.spaced('100 millis'), times: 100 }),
            );
            const upd = yield* client.user.update({ id: before.id, lastName: 'Restarted' }, bearer(token));
            return { before, after, upd };
          }),
        ),
      );
      assert.equal(out.after.id, out.before.id);
      assert.equal(out.upd.data.lastName, 'Restarted');
      assert.ok(seen.every((tag) => tag === 'RpcClientError'), `only transport errors while reconnecting: ${seen}`);
    });
  });
}
