/**
 * @usersd/client: the usersd Users API (SPEC section 1) for Effect
 * applications (the RPC group and a socket protocol layer) and for plain
 * Node code (a Promise client).
 */
export * from "./schema.js"
export * from "./errors.js"
export { UsersdClient, layer, make, serializationLayer } from "./layer.js"
export type { Client, LayerOptions, Serialization } from "./layer.js"
export { createUsersdClient } from "./promise.js"
export type {
  CallOptions,
  CurrentUserData,
  UserData,
  UserMutationResult,
  UserPatch,
  UsersdClient as UsersdPromiseClient,
  UsersdClientOptions
} from "./promise.js"
