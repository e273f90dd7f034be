/**
 * Errors of the Promise API that are not the Users API's own typed errors
 * (those are the Schema.TaggedError classes in schema.ts, thrown as they are).
 */

/** Base class of every failure the Promise client itself reports. */
export class UsersdClientError extends Error {
  override readonly name: string = "UsersdClientError"
}

/**
 * The payload was refused, by this client's schema check before sending or by
 * the daemon (its `ValidationError` defect, SPEC section 2). Nothing changed.
 * `message` names the field.
 */
export class UsersdValidationError extends UsersdClientError {
  override readonly name = "UsersdValidationError"
  constructor(
    message: string,
    /** "daemon" when usersd refused it, "client" when it was never sent. */
    readonly source: "daemon" | "client"
  ) {
    super(message)
  }
}

/**
 * No reply within the call's timeout. When `sent` is true the request reached
 * the daemon and may have been applied; the client sent it an Interrupt.
 */
export class UsersdTimeoutError extends UsersdClientError {
  override readonly name = "UsersdTimeoutError"
  constructor(
    readonly timeoutMs: number,
    readonly sent: boolean
  ) {
    super(`usersd did not answer within ${timeoutMs} ms${sent ? " (the request was sent and may have been applied)" : " (could not connect in time)"}`)
  }
}

/**
 * The daemon could not be reached, or the connection dropped while the
 * request was in flight (`sent` true: it may have been applied), or the
 * client was closed.
 */
export class UsersdConnectionError extends UsersdClientError {
  override readonly name = "UsersdConnectionError"
  constructor(
    message: string,
    readonly sent: boolean,
    options?: { cause?: unknown }
  ) {
    super(message, options)
  }
}

/**
 * A reply that does not match the contract, or a defect other than a
 * ValidationError (e.g. an unknown method: a daemon older than this client).
 */
export class UsersdProtocolError extends UsersdClientError {
  override readonly name = "UsersdProtocolError"
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}
