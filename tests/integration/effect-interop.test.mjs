// Interop: a stock Effect RpcClient (RpcClient.layerProtocolSocket over
// NodeSocket.layerNet) talks to usersd with both serializations, using the
// Schemas of SPEC section 1 as the @usersd/client package (clients/typescript)
// exports them. The Effect modules are the ones that package is built against
// (its node_modules; `make test` runs `npm ci` and `tsc` there, and
// loadPackage() does what is missing), so there is one copy of `effect`.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { withFake, startDaemon, connect, newUser, seedUser, tokenFor, ok } from './harness.mjs';
import { loadPackage } from '../../clients/typescript/test/env.mjs';

// ------------------------------------------------------------ the contract

async function loadEffect() {
  const { client, effect, rpc, platformNode } = await loadPackage();
  const { Effect, Layer, Exit, Cause, DateTime, Either } = effect;
  const { RpcClient, RpcSerialization } = rpc;
  const { NodeSocket } = platformNode;
  const { UsersRpcs, UnauthorizedError, UserNotFoundError, InternalServerError, CurrentUser, User } = client;

  const serializations = {
    ndjson: RpcSerialization.layerNdjson,
    jsonrpc: RpcSerialization.layerNdJsonRpc(),
  };

  /** Runs fn(client) with a fresh stock client over the socket; resolves to its Exit. */
  const withClient = (socketPath, serialization, fn) => {
    const protocol = RpcClient.layerProtocolSocket().pipe(
      Layer.provide(NodeSocket.layerNet({ path: socketPath })),
      Layer.provide(serializations[serialization]),
    );
    const program = Effect.gen(function* () {
      const client = yield* RpcClient.make(UsersRpcs);
      return yield* fn(client);
    }).pipe(Effect.scoped, Effect.provide(protocol), Effect.timeout('20 seconds'));
    return Effect.runPromiseExit(program);
  };

  return {
    Effect, Exit, Cause, DateTime, Either, RpcClient, RpcSerialization,
    UnauthorizedError, UserNotFoundError, InternalServerError, CurrentUser, User,
    withClient,
  };
}

const E = await loadEffect();
const bearer = (token) => ({ headers: { authorization: `Bearer ${token}` } });

function success(exit) {
  if (!E.Exit.isSuccess(exit)) assert.fail(`expected success, got ${E.Cause.pretty(exit.cause)}`);
  return exit.value;
}

// Shared daemon with org admins allowed, so UserNotFoundError is reachable.
const scopeSetup = await (async () => {
  const fake = await withFake();
  const d = await startDaemon({ fake, configExtra: { policy: { org_admins_manage_members: true } } });
  const raw = await connect(d.socketPath);
  return { fake, d, raw };
})();

// JSON-RPC first: the client's first request id is then 0, an edge case worth covering.
for (const serialization of ['jsonrpc', 'ndjson']) {
  describe(`stock Effect RpcClient, ${serialization}`, () => {
    let fake;
    let d;
    let raw;
    before(() => ({ fake, d, raw } = scopeSetup));

    test('user.me decodes as CurrentUser', async () => {
      const u = await newUser(fake, raw, { claims: { org_id: 'org_fx', role: 'admin' }, firstName: 'Effie', picture: 'https://img.example.com/e.png' });
      const me = success(await E.withClient(d.socketPath, serialization, (client) => client.user.me(undefined, bearer(u.token))));
      assert.ok(me instanceof E.CurrentUser);
      assert.equal(me.id, u.me.id);
      assert.equal(me.organizationId, 'org_fx');
      assert.equal(me.role, 'admin');
      assert.equal(me.firstName, 'Effie');
      assert.equal(me.email, u.workos.email);
      assert.equal(me.avatarUrl, 'https://img.example.com/e.png');
      assert.equal(me.isOnboarded, false);
      assert.equal(me.timezone, null);
      assert.equal(me.settings, null);
    });

    test('user.update, user.finalizeOnboarding, user.resetAvatar decode as {data: User, transactionId}', async () => {
      const u = await newUser(fake, raw, { picture: 'https://img.example.com/r.png' });
      const out = success(
        await E.withClient(d.socketPath, serialization, (client) =>
          E.Effect.gen(function* () {
            const upd = yield* client.user.update(
              { id: u.me.id, firstName: 'Patched', timezone: 'Europe/Paris', avatarUrl: 'https://mine.example.com/p.png', settings: { doNotDisturb: true, extra: [1] } },
              bearer(u.token),
            );
            // Partial patch: absent fields stay; null clears.
            const upd2 = yield* client.user.update({ id: u.me.id, timezone: null }, bearer(u.token));
            // The token may also come from the fiber's headers.
            const fin = yield* E.RpcClient.withHeaders(client.user.finalizeOnboarding(), { authorization: `Bearer ${u.token}` });
            const reset = yield* client.user.resetAvatar(undefined, bearer(u.token));
            const me = yield* client.user.me(undefined, bearer(u.token));
            return { upd, upd2, fin, reset, me };
          }),
        ),
      );
      const { upd, upd2, fin, reset, me } = out;
      assert.ok(upd.data instanceof E.User);
      assert.equal(upd.data.id, u.me.id);
      assert.equal(upd.data.firstName, 'Patched');
      assert.equal(upd.data.lastName, u.me.lastName);
      assert.equal(upd.data.timezone, 'Europe/Paris');
      assert.equal(upd.data.avatarUrl, 'https://mine.example.com/p.png');
      assert.deepEqual(upd.data.settings, { doNotDisturb: true, extra: [1] });
      assert.equal(upd.data.userType, 'user');
      assert.ok(E.DateTime.isDateTime(upd.data.createdAt));
      assert.ok(E.DateTime.isDateTime(upd.data.updatedAt));
      assert.equal(upd.data.deletedAt, null);
      assert.ok(Math.abs(E.DateTime.toEpochMillis(upd.data.createdAt) - Date.now()) < 60000);
      assert.equal(upd2.data.timezone, null);
      assert.equal(upd2.data.firstName, 'Patched');
      assert.ok(upd2.transactionId > upd.transactionId);
      assert.equal(fin.data.isOnboarded, true);
      assert.ok(fin.transactionId > upd2.transactionId);
      assert.equal(reset.data.avatarUrl, 'https://img.example.com/r.png');
      assert.ok(reset.transactionId > fin.transactionId);
      assert.ok(me instanceof E.CurrentUser);
      assert.equal(me.avatarUrl, 'https://img.example.com/r.png');
      assert.equal(me.isOnboarded, true);
    });

    test('user.delete, then UserNotFoundError for the deleted member (org admin)', async () => {
      const org = `org_del_${serialization}`;
      const admin = await newUser(fake, raw, { claims: { org_id: org, role: 'owner' } });
      const member = await newUser(fake, raw, { claims: { org_id: org, role: 'member' } });
      const exit = await E.withClient(d.socketPath, serialization, (client) =>
        E.Effect.gen(function* () {
          const del = yield* client.user.delete({ id: member.me.id }, bearer(admin.token));
          const again = yield* E.Effect.either(client.user.delete({ id: member.me.id }, bearer(admin.token)));
          const upd = yield* E.Effect.either(client.user.update({ id: member.me.id, firstName: 'Ghost' }, bearer(admin.token)));
          return { del, again, upd };
        }),
      );
      const { del, again, upd } = success(exit);
      assert.ok(Number.isInteger(del.transactionId) && del.transactionId > 0);
      for (const r of [again, upd]) {
        assert.ok(E.Either.isLeft(r), 'expected a typed failure');
        assert.ok(r.left instanceof E.UserNotFoundError, `got ${r.left?._tag}`);
        assert.equal(r.left._tag, 'UserNotFoundError');
        assert.equal(r.left.userId, member.me.id);
      }
      // The self-delete path too.
      const self = await newUser(fake, raw);
      const selfDel = success(await E.withClient(d.socketPath, serialization, (client) => client.user.delete({ id: self.me.id }, bearer(self.token))));
      assert.ok(selfDel.transactionId > del.transactionId);
    });

    test('UnauthorizedError decodes as the Schema class (bad, missing and foreign tokens)', async () => {
      const u = await newUser(fake, raw);
      const expired = await tokenFor(fake, u.workos, { expiresIn: -3600 });
      const other = await newUser(fake, raw);
      const exit = await E.withClient(d.socketPath, serialization, (client) =>
        E.Effect.gen(function* () {
          const bad = yield* E.Effect.flip(client.user.me(undefined, bearer('not-a-token')));
          const missing = yield* E.Effect.flip(client.user.me());
          const exp = yield* E.Effect.flip(client.user.finalizeOnboarding(undefined, bearer(expired)));
          const foreign = yield* E.Effect.flip(client.user.delete({ id: other.me.id }, bearer(u.token)));
          return [bad, missing, exp, foreign];
        }),
      );
      for (const err of success(exit)) {
        assert.ok(err instanceof E.UnauthorizedError, `got ${err?._tag}: ${err}`);
        assert.equal(err._tag, 'UnauthorizedError');
        assert.equal(typeof err.message, 'string');
        assert.equal(typeof err.detail, 'string');
        assert.ok(err.detail.length > 0);
        assert.ok(!err.detail.includes(expired));
      }
    });

    test('InternalServerError decodes as the Schema class (resetAvatar with nothing known while WorkOS is down)', async (t) => {
      // A fake and daemon of their own: the outage must not leak into other tests.
      const f2 = await withFake({ t });
      const d2 = await startDaemon({ fake: f2, t, configExtra: { workos: { timeout_ms: 2000 } } });
      const raw2 = await connect(d2.socketPath, { t });
      const wu = await seedUser(f2);
      const token = await tokenFor(f2, wu);
      await f2.setDown(true);
      ok(await raw2.request('user.me', undefined, { token })); // provisioned offline: no picture known
      const exit = await E.withClient(d2.socketPath, serialization, (client) => E.Effect.flip(client.user.resetAvatar(undefined, bearer(token))));
      const err = success(exit);
      assert.ok(err instanceof E.InternalServerError, `got ${err?._tag}`);
      assert.equal(err._tag, 'InternalServerError');
      assert.equal(typeof err.message, 'string');
    });

    test('an invalid payload is a defect naming the field', async () => {
      const u = await newUser(fake, raw);
      const exit = await E.withClient(d.socketPath, serialization, (client) =>
        client.user.update({ id: u.me.id, timezone: 'Not/AZone' }, bearer(u.token)),
      );
      assert.ok(E.Exit.isFailure(exit));
      assert.ok(E.Cause.isDie(exit.cause), E.Cause.pretty(exit.cause));
      const defect = E.Cause.squash(exit.cause);
      assert.match(String(defect?.message ?? defect), /timezone/);
    });

    test("the client's keep-alive Ping is answered with a Pong the client recognises", async (t) => {
      // RpcClient pings every 10 s and drops the connection when no Pong
      // came back; check the exchange with the client's own parser, without waiting.
      const layer = serialization === 'ndjson' ? E.RpcSerialization.ndjson : E.RpcSerialization.ndJsonRpc();
      const parser = layer.unsafeMake();
      const conn = await connect(d.socketPath, { t });
      conn.sendRaw(parser.encode({ _tag: 'Ping' }));
      const reply = await conn.nextLine();
      assert.deepEqual(parser.decode(`${JSON.stringify(reply)}\n`), [{ _tag: 'Pong' }]);
    });

    test('many concurrent calls on one client connection', async () => {
      const u = await newUser(fake, raw);
      const out = success(
        await E.withClient(d.socketPath, serialization, (client) =>
          E.Effect.all(
            Array.from({ length: 40 }, (_, i) =>
              i % 2 ? client.user.me(undefined, bearer(u.token)) : client.user.update({ id: u.me.id, lastName: `C${i}` }, bearer(u.token)),
            ),
            { concurrency: 'unbounded' },
          ),
        ),
      );
      out.forEach((v, i) => {
        if (i % 2) assert.equal(v.id, u.me.id);
        else assert.equal(v.data.lastName, `C${i}`);
      });
    });
  });
}
