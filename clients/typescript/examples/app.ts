// An application using @usersd/client both ways, as a user writes it.
// Compiled and run by test/package.test.mjs against an installed tarball:
//   USERSD_SOCKET=/run/usersd/app.sock USERSD_TOKEN=... node app.js
import { RpcClient } from "@effect/rpc"
import { Effect } from "effect"
import {
  CurrentUser,
  UnauthorizedError,
  UsersRpcs,
  UsersdClient,
  createUsersdClient
} from "@usersd/client"

const socketPath = process.env.USERSD_SOCKET ?? "/run/usersd/app.sock"
const token = process.env.USERSD_TOKEN ?? ""

// ---- Effect: the application code is unchanged; only the protocol layer is new.
// Before: RpcClient.layerProtocolHttp({ url: "https://users.internal/rpc" })
//           .pipe(Layer.provide([FetchHttpClient.layer, RpcSerialization.layerNdjson]))
const ProtocolLive = UsersdClient.layer({ socketPath, serialization: "ndjson" })

const program = Effect.gen(function* () {
  const client = yield* RpcClient.make(UsersRpcs)
  const me = yield* client.user.me(undefined, { headers: { authorization: `Bearer ${token}` } })
  const updated = yield* client.user.update(
    { id: me.id, timezone: "Europe/Paris" },
    { headers: { authorization: `Bearer ${token}` } }
  )
  const denied = yield* Effect.flip(client.user.me(undefined, { headers: { authorization: "Bearer nope" } }))
  return { me, updated, denied }
}).pipe(Effect.scoped, Effect.provide(ProtocolLive))

const { me, updated, denied } = await Effect.runPromise(program)
console.log(JSON.stringify({
  api: "effect",
  isCurrentUser: me instanceof CurrentUser,
  id: me.id,
  timezone: updated.data.timezone,
  transactionId: updated.transactionId,
  denied: denied._tag
}))

// ---- Promise API, for code that does not use Effect.
const users = createUsersdClient({ socketPath, timeoutMs: 5000 })
try {
  const me2 = await users.me(token)
  const { data, transactionId } = await users.finalizeOnboarding(token)
  let deniedClass = false
  try {
    await users.me("nope")
  } catch (e) {
    deniedClass = e instanceof UnauthorizedError
  }
  console.log(JSON.stringify({
    api: "promise",
    id: me2.id,
    timezone: me2.timezone,
    isOnboarded: data.isOnboarded,
    createdAtIsDate: data.createdAt instanceof Date,
    transactionId,
    deniedClass
  }))
} finally {
  await users.close()
}
