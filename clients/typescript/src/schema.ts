/**
 * The Users API contract (usersd SPEC section 1): the schemas and the RPC group
 * of the TypeScript service that usersd replaces. Tags, field names and shapes
 * are the wire contract; do not change them without changing the daemon.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"

// ------------------------------------------------------------------ errors

/** A missing, malformed, expired or wrongly signed token, or a policy denial. `detail` says which. */
export class UnauthorizedError extends Schema.TaggedError<UnauthorizedError>()("UnauthorizedError", {
  message: Schema.String,
  detail: Schema.String
}) {}

/** The user to update or delete does not exist (or is deleted). */
export class UserNotFoundError extends Schema.TaggedError<UserNotFoundError>()("UserNotFoundError", {
  userId: Schema.String
}) {}

/** The daemon could not do what was asked (e.g. resetAvatar while WorkOS is down and no picture is known). */
export class InternalServerError extends Schema.TaggedError<InternalServerError>()("InternalServerError", {
  message: Schema.String,
  detail: Schema.optional(Schema.String)
}) {}

// ------------------------------------------------------------------ values

/** `settings`: a JSON object (known keys are checked by the daemon, unknown keys kept) or null. */
export const Settings = Schema.NullOr(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
export type Settings = typeof Settings.Type

/** ISO 8601 UTC with milliseconds on the wire, `DateTime.Utc` once decoded. */
export const Timestamp = Schema.DateTimeUtc

/** Positive, strictly increasing across the store's life; returned once the change is durable. */
export const TransactionId = Schema.Int.pipe(Schema.positive())
export type TransactionId = typeof TransactionId.Type

export const Role = Schema.Literal("owner", "admin", "member")
export type Role = typeof Role.Type

export const UserType = Schema.Literal("user", "machine")
export type UserType = typeof UserType.Type

/** The caller, as `user.me` returns it. */
export class CurrentUser extends Schema.Class<CurrentUser>("CurrentUser")({
  id: Schema.UUID,
  organizationId: Schema.NullOr(Schema.String),
  role: Role,
  email: Schema.String,
  firstName: Schema.String,
  lastName: Schema.String,
  avatarUrl: Schema.NullOr(Schema.String),
  isOnboarded: Schema.Boolean,
  timezone: Schema.NullOr(Schema.String),
  settings: Settings
}) {}

/** A user record, as the mutations return it. */
export class User extends Schema.Class<User>("User")({
  id: Schema.UUID,
  email: Schema.String,
  firstName: Schema.String,
  lastName: Schema.String,
  avatarUrl: Schema.NullOr(Schema.String),
  userType: UserType,
  settings: Settings,
  isOnboarded: Schema.Boolean,
  timezone: Schema.NullOr(Schema.String),
  createdAt: Timestamp,
  updatedAt: Schema.NullOr(Timestamp),
  deletedAt: Schema.NullOr(Timestamp)
}) {}

/** The success value of user.update, user.finalizeOnboarding and user.resetAvatar. */
export const UserResponse = Schema.Struct({ data: User, transactionId: TransactionId })
export type UserResponse = typeof UserResponse.Type

/** The success value of user.delete. */
export const DeleteUserResponse = Schema.Struct({ transactionId: TransactionId })
export type DeleteUserResponse = typeof DeleteUserResponse.Type

/**
 * The user.update payload: a partial patch. An absent field is unchanged;
 * `null` clears avatarUrl, timezone and settings.
 */
export const UpdateUserPayload = Schema.Struct({
  id: Schema.UUID,
  firstName: Schema.optional(Schema.String),
  lastName: Schema.optional(Schema.String),
  avatarUrl: Schema.optional(Schema.NullOr(Schema.String)),
  email: Schema.optional(Schema.String),
  timezone: Schema.optional(Schema.NullOr(Schema.String)),
  settings: Schema.optional(Settings)
})
export type UpdateUserPayload = typeof UpdateUserPayload.Type

export const DeleteUserPayload = Schema.Struct({ id: Schema.UUID })
export type DeleteUserPayload = typeof DeleteUserPayload.Type

const Errors = Schema.Union(UnauthorizedError, InternalServerError)
const ErrorsWithNotFound = Schema.Union(UserNotFoundError, UnauthorizedError, InternalServerError)

// ------------------------------------------------------------------ the group

/** The five operations. `RpcClient.make(UsersRpcs)` gives `client.user.me(...)` etc. */
export class UsersRpcs extends RpcGroup.make(
  Rpc.make("user.me", { success: CurrentUser, error: Errors }),
  Rpc.make("user.update", { payload: UpdateUserPayload, success: UserResponse, error: ErrorsWithNotFound }),
  Rpc.make("user.delete", { payload: DeleteUserPayload, success: DeleteUserResponse, error: ErrorsWithNotFound }),
  Rpc.make("user.finalizeOnboarding", { success: UserResponse, error: Errors }),
  Rpc.make("user.resetAvatar", { success: UserResponse, error: Errors })
) {}

/** The typed errors any of the five operations may fail with. */
export type UsersApiError = UnauthorizedError | UserNotFoundError | InternalServerError
