/**
 * The Promise API, for Node code that does not use Effect:
 *
 *   const users = createUsersdClient({ socketPath: "/run/usersd/app.sock" })
 *   const me = await users.me(token)
 *   await users.close()
 *
 * It speaks the @effect/rpc NDJSON socket form (SPEC section 2) with plain
 * node:net on one multiplexed connection, and checks every payload and reply
 * with the same Schemas as the Effect API (schema.ts). Why not on top of the
 * Effect RpcClient: see README.md ("Why the Promise API does not wrap RpcClient").
 */
import net from "node:net"
import { DateTime, Either, ParseResult, Schema } from "effect"
import {
  CurrentUser,
  DeleteUserPayload,
  DeleteUserResponse,
  InternalServerError,
  UnauthorizedError,
  UpdateUserPayload,
  User,
  UserNotFoundError,
  UserResponse
} from "./schema.js"
import type { Role, Settings, UserType } from "./schema.js"
import {
  UsersdConnectionError,
  UsersdProtocolError,
  UsersdTimeoutError,
  UsersdValidationError
} from "./errors.js"

// ------------------------------------------------------------------ results

/** `user.me`'s result as plain data. */
export interface CurrentUserData {
  readonly id: string
  readonly organizationId: string | null
  readonly role: Role
  readonly email: string
  readonly firstName: string
  readonly lastName: string
  readonly avatarUrl: string | null
  readonly isOnboarded: boolean
  readonly timezone: string | null
  readonly settings: Settings
}

/** A user record as plain data; timestamps are `Date`s. */
export interface UserData {
  readonly id: string
  readonly email: string
  readonly firstName: string
  readonly lastName: string
  readonly avatarUrl: string | null
  readonly userType: UserType
  readonly settings: Settings
  readonly isOnboarded: boolean
  readonly timezone: string | null
  readonly createdAt: Date
  readonly updatedAt: Date | null
  readonly deletedAt: Date | null
}

/** The result of update, finalizeOnboarding and resetAvatar. */
export interface UserMutationResult {
  readonly data: UserData
  readonly transactionId: number
}

/** The user.update patch (everything but `id` optional; `null` clears avatarUrl, timezone, settings). */
export interface UserPatch {
  readonly firstName?: string
  readonly lastName?: string
  readonly avatarUrl?: string | null
  readonly email?: string
  readonly timezone?: string | null
  readonly settings?: Settings
}

/** The typed errors of the Users API; they are thrown as instances of these classes. */
export type UsersApiErrorClass = typeof UnauthorizedError | typeof UserNotFoundError | typeof InternalServerError

// ------------------------------------------------------------------ options

export interface UsersdClientOptions {
  /** The daemon's application socket, e.g. `/run/usersd/app.sock`. */
  readonly socketPath: string
  /**
   * Per-call deadline in ms, covering (re)connecting, sending and the reply.
   * Default 10000. A daemon restart within it is invisible to calls made
   * while the daemon is away.
   */
  readonly timeoutMs?: number | undefined
  /** Longest wait between connection attempts while the daemon is away (ms, default 500; starts at 25 and doubles). */
  readonly maxReconnectDelayMs?: number | undefined
}

export interface CallOptions {
  /** Overrides the client's timeoutMs for this call. */
  readonly timeoutMs?: number | undefined
  /** Aborts the call (rejects with the signal's reason; an Interrupt is sent if the request was sent). */
  readonly signal?: AbortSignal | undefined
}

export interface UsersdClient {
  /** `user.me`: the caller. */
  me(token: string, options?: CallOptions): Promise<CurrentUserData>
  /** `user.update`: partial patch of user `id`. */
  update(token: string, id: string, patch: UserPatch, options?: CallOptions): Promise<UserMutationResult>
  /** `user.delete`: soft delete of user `id`. */
  delete(token: string, id: string, options?: CallOptions): Promise<{ readonly transactionId: number }>
  /** `user.finalizeOnboarding`: sets isOnboarded. */
  finalizeOnboarding(token: string, options?: CallOptions): Promise<UserMutationResult>
  /** `user.resetAvatar`: avatarUrl back to the WorkOS profile picture. */
  resetAvatar(token: string, options?: CallOptions): Promise<UserMutationResult>
  /** Fails the calls still pending with UsersdConnectionError and closes the connection. Idempotent. */
  close(): Promise<void>
}

// ------------------------------------------------------------------ decoding

const decodeApiError = Schema.decodeUnknownEither(Schema.Union(UnauthorizedError, UserNotFoundError, InternalServerError))

const toDate = (d: DateTime.Utc): Date => DateTime.toDate(d)

const plainCurrentUser = (u: CurrentUser): CurrentUserData => ({
  id: u.id,
  organizationId: u.organizationId,
  role: u.role,
  email: u.email,
  firstName: u.firstName,
  lastName: u.lastName,
  avatarUrl: u.avatarUrl,
  isOnboarded: u.isOnboarded,
  timezone: u.timezone,
  settings: u.settings
})

const plainUser = (u: User): UserData => ({
  id: u.id,
  email: u.email,
  firstName: u.firstName,
  lastName: u.lastName,
  avatarUrl: u.avatarUrl,
  userType: u.userType,
  settings: u.settings,
  isOnboarded: u.isOnboarded,
  timezone: u.timezone,
  createdAt: toDate(u.createdAt),
  updatedAt: u.updatedAt === null ? null : toDate(u.updatedAt),
  deletedAt: u.deletedAt === null ? null : toDate(u.deletedAt)
})

const plainMutation = (r: UserResponse): UserMutationResult => ({ data: plainUser(r.data), transactionId: r.transactionId })

/** Decodes a success value with `schema` and maps it to plain data. */
const decoder =
  <A, I, B>(schema: Schema.Schema<A, I, never>, plain: (a: A) => B) =>
  (value: unknown): B => {
    const r = Schema.decodeUnknownEither(schema)(value)
    if (Either.isLeft(r)) {
      throw new UsersdProtocolError(`usersd's reply does not match the contract: ${ParseResult.TreeFormatter.formatErrorSync(r.left)}`)
    }
    return plain(r.right)
  }

const decodeMe = decoder(CurrentUser, plainCurrentUser)
const decodeMutation = decoder(UserResponse, plainMutation)
const decodeDelete = decoder(DeleteUserResponse, (r) => ({ transactionId: r.transactionId }))

/** Checks and encodes a payload as the Effect client would; a failure is a client-side UsersdValidationError. */
const encoder =
  <A, I>(schema: Schema.Schema<A, I, never>) =>
  (payload: unknown): I => {
    const r = Schema.encodeUnknownEither(schema)(payload)
    if (Either.isLeft(r)) {
      const issues = ParseResult.ArrayFormatter.formatErrorSync(r.left)
      const text = issues.map((i) => `${i.path.length ? `${i.path.join(".")}: ` : ""}${i.message}`).join("; ")
      throw new UsersdValidationError(`invalid payload: ${text}`, "client")
    }
    return r.right
  }

const encodeUpdate = encoder(UpdateUserPayload)
const encodeDelete = encoder(DeleteUserPayload)

interface CauseJson {
  readonly _tag?: unknown
  readonly error?: unknown
  readonly defect?: unknown
  readonly left?: unknown
  readonly right?: unknown
}

/** Depth-first search of an encoded Cause for its first Fail, Die or Interrupt. */
function firstFailure(cause: unknown): CauseJson | undefined {
  if (cause === null || typeof cause !== "object") return undefined
  const c = cause as CauseJson
  if (c._tag === "Fail" || c._tag === "Die" || c._tag === "Interrupt") return c
  if (c._tag === "Sequential" || c._tag === "Parallel") return firstFailure(c.left) ?? firstFailure(c.right)
  return undefined
}

/** The error a Failure exit is thrown as. */
function failureError(cause: unknown): Error {
  const f = firstFailure(cause)
  if (f?._tag === "Fail") {
    const r = decodeApiError(f.error)
    if (Either.isRight(r)) return r.right
    return new UsersdProtocolError(`usersd failed with an error outside the contract: ${JSON.stringify(f.error)}`)
  }
  if (f?._tag === "Die") {
    const d = f.defect as { name?: unknown; message?: unknown } | null
    if (d && typeof d === "object" && d.name === "ValidationError" && typeof d.message === "string") {
      return new UsersdValidationError(d.message, "daemon")
    }
    return new UsersdProtocolError(`usersd reported a defect: ${JSON.stringify(f.defect)}`, { cause: f.defect })
  }
  if (f?._tag === "Interrupt") return new UsersdConnectionError("usersd interrupted the request (it is shutting down?)", true)
  return new UsersdProtocolError(`usersd sent a Failure without a cause this client understands: ${JSON.stringify(cause)}`)
}

// ------------------------------------------------------------------ the client

interface Call {
  readonly id: string
  readonly line: string
  readonly timeoutMs: number
  readonly deadline: number
  readonly decode: (value: unknown) => unknown
  readonly resolve: (value: any) => void
  readonly reject: (error: unknown) => void
  conn: Connection | undefined
  timer: ReturnType<typeof setTimeout> | undefined
  cleanup: (() => void) | undefined
}

interface Connection {
  readonly socket: net.Socket
  /** Calls written to this connection and not answered yet. */
  readonly inFlight: Map<string, Call>
  /** Why the daemon is about to close it (an id-null error frame), for the calls it fails. */
  closeReason: string | undefined
}

const DEFAULT_TIMEOUT_MS = 10_000
const FIRST_RECONNECT_DELAY_MS = 25

/** Creates a client. Nothing is connected until the first call. */
export function createUsersdClient(options: UsersdClientOptions): UsersdClient {
  if (!options || typeof options.socketPath !== "string" || options.socketPath === "") {
    throw new TypeError("createUsersdClient: socketPath (the daemon's application socket) is required")
  }
  const socketPath = options.socketPath
  const defaultTimeoutMs = checkTimeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS)
  const maxReconnectDelayMs = Math.max(FIRST_RECONNECT_DELAY_MS, options.maxReconnectDelayMs ?? 500)

  let closed = false
  let nextId = 1
  let conn: Connection | undefined
  /** Calls waiting for a connection, in order. */
  const waiting: Array<Call> = []
  let connecting = false
  let retryTimer: ReturnType<typeof setTimeout> | undefined
  let reconnectDelay = FIRST_RECONNECT_DELAY_MS
  let lastConnectError: unknown
  const all = new Set<Call>()

  const settle = (call: Call): boolean => {
    if (!all.delete(call)) return false
    if (call.timer) clearTimeout(call.timer)
    call.cleanup?.()
    if (call.conn?.inFlight.get(call.id) === call) call.conn.inFlight.delete(call.id)
    const i = waiting.indexOf(call)
    if (i >= 0) waiting.splice(i, 1)
    updateRef()
    return true
  }
  const fail = (call: Call, error: unknown) => {
    if (settle(call)) call.reject(error)
  }

  /** Keeps the process alive only while calls are pending, so a forgotten close() does not hang a script. */
  const updateRef = () => {
    if (!conn) return
    if (all.size > 0) conn.socket.ref()
    else conn.socket.unref()
  }

  const sendInterrupt = (call: Call) => {
    const c = call.conn
    if (c && c === conn && c.socket.writable) {
      c.socket.write(`${JSON.stringify({ _tag: "Interrupt", requestId: call.id, interruptors: [] })}\n`)
    }
  }

  const write = (c: Connection, call: Call) => {
    call.conn = c
    c.inFlight.set(call.id, call)
    c.socket.write(call.line)
  }

  const flushWaiting = () => {
    if (!conn) return
    for (const call of waiting.splice(0)) write(conn, call)
    updateRef()
  }

  const onLine = (c: Connection, line: string) => {
    if (line.trim() === "") return
    let msg: any
    try {
      msg = JSON.parse(line)
    } catch {
      return protocolFailure(c, `usersd sent a line that is not JSON: ${line.slice(0, 200)}`)
    }
    if (msg === null || typeof msg !== "object") return protocolFailure(c, `usersd sent an unexpected frame: ${line.slice(0, 200)}`)
    switch (msg._tag) {
      case "Exit": {
        const call = c.inFlight.get(String(msg.requestId))
        if (!call) return // answered after its timeout or abort: dropped
        const exit = msg.exit
        if (exit?._tag === "Success") {
          let value: unknown
          try {
            value = call.decode(exit.value)
          } catch (e) {
            return fail(call, e)
          }
          if (settle(call)) call.resolve(value)
          return
        }
        if (exit?._tag === "Failure") return fail(call, failureError(exit.cause))
        return fail(call, new UsersdProtocolError(`usersd sent an Exit this client does not understand: ${line.slice(0, 200)}`))
      }
      case "Pong":
      case "Chunk":
        return
      case "Defect":
        return protocolFailure(c, `usersd reported a connection defect: ${JSON.stringify(msg.defect)}`)
    }
    // An id-null JSON-RPC error (e.g. a request line over the daemon's limit): the daemon closes next.
    if (msg.jsonrpc === "2.0" && msg.error) {
      c.closeReason = `usersd refused a request line: ${msg.error.message ?? JSON.stringify(msg.error)} (code ${msg.error.code})`
      return
    }
    return protocolFailure(c, `usersd sent an unexpected frame: ${line.slice(0, 200)}`)
  }

  /** Fails the calls in flight on `c` and drops it; the next call reconnects. */
  const protocolFailure = (c: Connection, message: string) => {
    for (const call of [...c.inFlight.values()]) fail(call, new UsersdProtocolError(message))
    c.socket.destroy()
  }

  const onConnected = (socket: net.Socket) => {
    const c: Connection = { socket, inFlight: new Map(), closeReason: undefined }
    conn = c
    lastConnectError = undefined
    reconnectDelay = FIRST_RECONNECT_DELAY_MS
    let buf = ""
    socket.setEncoding("utf8")
    socket.on("data", (chunk: string) => {
      buf += chunk
      let nl: number
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        onLine(c, line)
      }
    })
    socket.on("error", () => {
      // "close" follows and does the work.
    })
    // The daemon closed its side (it is stopping): no reply can come on this
    // connection any more, so new calls go to a new one; "close" fails the
    // calls in flight here.
    socket.on("end", () => {
      if (conn === c) conn = undefined
    })
    socket.on("close", () => {
      if (conn === c) conn = undefined
      const reason = c.closeReason ?? "the connection to usersd closed before the reply (the daemon restarted or stopped?); the request may have been applied"
      for (const call of [...c.inFlight.values()]) {
        fail(call, c.closeReason ? new UsersdProtocolError(reason) : new UsersdConnectionError(reason, true))
      }
      // Calls made while the close was under way reconnect.
      if (waiting.length > 0) connect()
    })
    flushWaiting()
  }

  const connect = () => {
    if (connecting || conn || closed || retryTimer) return
    connecting = true
    const socket = net.createConnection(socketPath)
    const onError = (e: Error) => {
      socket.removeListener("connect", onConnect)
      connecting = false
      lastConnectError = e
      socket.destroy()
      scheduleRetry()
    }
    const onConnect = () => {
      socket.removeListener("error", onError)
      connecting = false
      if (closed) {
        socket.destroy()
        return
      }
      onConnected(socket)
    }
    socket.once("error", onError)
    socket.once("connect", onConnect)
  }

  /** While calls wait (each bounded by its own deadline), tries again with a doubling delay. */
  const scheduleRetry = () => {
    if (closed || waiting.length === 0) return
    const latest = Math.max(...waiting.map((c) => c.deadline))
    const delay = Math.min(reconnectDelay, Math.max(0, latest - Date.now()))
    reconnectDelay = Math.min(reconnectDelay * 2, maxReconnectDelayMs)
    retryTimer = setTimeout(() => {
      retryTimer = undefined
      if (waiting.length > 0) connect()
    }, delay)
  }

  const call = <T>(tag: string, token: string, payload: unknown, decode: (v: unknown) => T, callOptions?: CallOptions): Promise<T> => {
    if (closed) return Promise.reject(new UsersdConnectionError("the usersd client is closed", false))
    if (typeof token !== "string" || token === "") {
      // The daemon would answer UnauthorizedError too; this keeps a missing argument from looking like a bad token.
      return Promise.reject(new TypeError(`usersd ${tag}: the bearer token (a string) is required`))
    }
    const timeoutMs = checkTimeout(callOptions?.timeoutMs ?? defaultTimeoutMs)
    const signal = callOptions?.signal
    if (signal?.aborted) return Promise.reject(signal.reason)
    const id = String(nextId++)
    const authorization = /^bearer\s/i.test(token) ? token : `Bearer ${token}`
    const request: Record<string, unknown> = { _tag: "Request", id, tag, headers: [["authorization", authorization]] }
    if (payload !== undefined) request.payload = payload
    return new Promise<T>((resolve, reject) => {
      const c: Call = {
        id,
        line: `${JSON.stringify(request)}\n`,
        timeoutMs,
        deadline: Date.now() + timeoutMs,
        decode,
        resolve,
        reject,
        conn: undefined,
        timer: undefined,
        cleanup: undefined
      }
      all.add(c)
      c.timer = setTimeout(() => {
        const sent = c.conn !== undefined
        if (sent) sendInterrupt(c)
        const error = !sent && lastConnectError
          ? new UsersdConnectionError(
            `could not connect to usersd at ${socketPath} within ${timeoutMs} ms: ${(lastConnectError as Error).message}`,
            false,
            { cause: lastConnectError }
          )
          : new UsersdTimeoutError(timeoutMs, sent)
        fail(c, error)
      }, timeoutMs)
      if (signal) {
        const onAbort = () => {
          if (c.conn) sendInterrupt(c)
          fail(c, signal.reason)
        }
        signal.addEventListener("abort", onAbort, { once: true })
        c.cleanup = () => signal.removeEventListener("abort", onAbort)
      }
      if (conn && conn.socket.writable) {
        write(conn, c)
        updateRef()
      } else {
        waiting.push(c)
        connect()
      }
    })
  }

  const withPayload = <T>(tag: string, token: string, encode: () => unknown, decode: (v: unknown) => T, o?: CallOptions): Promise<T> => {
    let payload: unknown
    try {
      payload = encode()
    } catch (e) {
      return Promise.reject(e)
    }
    return call(tag, token, payload, decode, o)
  }

  return {
    me: (token, o) => call("user.me", token, undefined, decodeMe, o),
    update: (token, id, patch, o) =>
      withPayload("user.update", token, () => encodeUpdate({ ...patch, id }), decodeMutation, o),
    delete: (token, id, o) => withPayload("user.delete", token, () => encodeDelete({ id }), decodeDelete, o),
    finalizeOnboarding: (token, o) => call("user.finalizeOnboarding", token, undefined, decodeMutation, o),
    resetAvatar: (token, o) => call("user.resetAvatar", token, undefined, decodeMutation, o),
    close: () => {
      if (!closed) {
        closed = true
        if (retryTimer) clearTimeout(retryTimer)
        retryTimer = undefined
        for (const c of [...all]) fail(c, new UsersdConnectionError("the usersd client was closed before the reply", c.conn !== undefined))
      }
      const c = conn
      if (!c || c.socket.destroyed) return Promise.resolve()
      return new Promise<void>((resolve) => {
        c.socket.once("close", () => resolve())
        c.socket.destroy()
      })
    }
  }
}

function checkTimeout(ms: number): number {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0) {
    throw new TypeError(`usersd client: timeoutMs must be a positive number of milliseconds, got ${String(ms)}`)
  }
  return ms
}
