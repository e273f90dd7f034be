/**
 * The Effect side: a protocol layer that replaces the HTTP `/rpc` protocol
 * layer of an application written against the original Users service.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import type { RpcGroup } from "@effect/rpc"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import type { Socket } from "@effect/platform"
import { Layer } from "effect"
import type { Effect, Schedule, Scope } from "effect"
import { UsersRpcs } from "./schema.js"

/** Both @effect/rpc socket serializations that usersd speaks (SPEC section 2). */
export type Serialization = "ndjson" | "jsonrpc"

export interface LayerOptions {
  /** The daemon's application socket, e.g. `/run/usersd/app.sock`. */
  readonly socketPath: string
  /** Defaults to "ndjson" (RpcSerialization.layerNdjson); "jsonrpc" is RpcSerialization.layerNdJsonRpc(). */
  readonly serialization?: Serialization | undefined
  /**
   * Passed to RpcClient.layerProtocolSocket: when true, failures to (re)open
   * the socket do not fail the calls waiting for it; they wait for the
   * reconnect instead. Default false, as in @effect/rpc.
   */
  readonly retryTransientErrors?: boolean | undefined
  /** Passed to RpcClient.layerProtocolSocket: the reconnect schedule (default: @effect/rpc's, 500 ms x1.5, at most 5 s). */
  readonly retrySchedule?: Schedule.Schedule<any, Socket.SocketError> | undefined
}

/** The RpcSerialization layer for a serialization name. */
export const serializationLayer = (serialization: Serialization = "ndjson"): Layer.Layer<RpcSerialization.RpcSerialization> => {
  switch (serialization) {
    case "ndjson":
      return RpcSerialization.layerNdjson
    case "jsonrpc":
      return RpcSerialization.layerNdJsonRpc()
    default:
      throw new TypeError(`@usersd/client: unknown serialization ${JSON.stringify(serialization)} (expected "ndjson" or "jsonrpc")`)
  }
}

/**
 * `RpcClient.Protocol` over the daemon's Unix socket: RpcClient.layerProtocolSocket
 * over NodeSocket.layerNet({ path: socketPath }) with the chosen serialization.
 * The connection is opened when the layer is built and reopened (with
 * `retrySchedule`) after the daemon restarts; calls in flight when the
 * connection drops fail with RpcClientError.
 */
export const layer = (options: LayerOptions): Layer.Layer<RpcClient.Protocol> =>
  RpcClient.layerProtocolSocket({
    retryTransientErrors: options.retryTransientErrors,
    retrySchedule: options.retrySchedule
  }).pipe(
    Layer.provide(NodeSocket.layerNet({ path: options.socketPath })),
    Layer.provide(serializationLayer(options.serialization)),
    // NodeSocket.makeNet's type says SocketError, but the socket opens lazily
    // (in the protocol's run loop, which reconnects), so building never fails.
    Layer.orDie
  )

/** The client the application already builds: `RpcClient.make(UsersRpcs)`. Needs `RpcClient.Protocol` (e.g. `layer`) and a Scope. */
export const make: Effect.Effect<Client, never, RpcClient.Protocol | Scope.Scope> = RpcClient.make(UsersRpcs)

/** The type of the client `make` (or `RpcClient.make(UsersRpcs)`) returns. */
export type Client = RpcClient.RpcClient<RpcGroup.Rpcs<typeof UsersRpcs>, RpcClientError>

/**
 * `UsersdClient.layer(...)` is the protocol layer; `UsersdClient.make` the
 * client; `UsersdClient.Rpcs` the group.
 */
export const UsersdClient: {
  readonly layer: typeof layer
  readonly make: typeof make
  readonly serializationLayer: typeof serializationLayer
  readonly Rpcs: typeof UsersRpcs
} = {
  layer,
  make,
  serializationLayer,
  Rpcs: UsersRpcs
}
