// The @effect/rpc socket protocol, both serializations (SPEC section 2).
//
// Each line is told apart on its own: an object with "_tag" is the NDJSON
// form (RpcSerialization.layerNdjson), an object with "jsonrpc" or "method" is
// the JSON-RPC form (layerNdJsonRpc). Replies to a request use the request's
// form; replies to lines that are neither use the JSON-RPC form with id null.
//
// Pure functions on values; thread-compatible.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace usersd::ipc {

using Json = nlohmann::json;

enum class Wire { kEffect, kJsonRpc };

// JSON-RPC 2.0 error codes used by SPEC section 2.
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;

struct Request {
  Wire wire = Wire::kEffect;
  Json id;            // echoed with its JSON type; null for a JSON-RPC notification
  std::string tag;    // method name, e.g. "user.me"
  Json payload;       // null when absent
  // Header names lower-cased; values as sent.
  std::vector<std::pair<std::string, std::string>> headers;

  // First header with this (lower-case) name.
  std::optional<std::string_view> Header(std::string_view lower_name) const;
  // The id as the string @effect/rpc uses for Ack/Interrupt ("7" for 7).
  std::string IdString() const;
};

enum class FrameKind {
  kRequest,    // request is set
  kPing,       // reply Pong in `wire`
  kAck,        // request_id is set (flow control for streams)
  kInterrupt,  // request_id is set
  kEof,        // client will send no more requests
  kIgnored,    // a well-formed frame the server has no use for (e.g. Pong)
  kError,      // protocol error: reply with error_code/error_message (id null),
               // or, when `request` carries an id, a per-request ValidationError
};

struct Frame {
  FrameKind kind = FrameKind::kError;
  Wire wire = Wire::kJsonRpc;
  Request request;
  std::string request_id;
  int error_code = 0;
  std::string error_message;
  // For kError: true when the error belongs to a request with a usable id,
  // so it is answered as that request's ValidationError defect.
  bool error_has_request = false;
};

// Parses one line (without the trailing newline). Never throws.
Frame ParseLine(std::string_view line);

// ParseLine's fast path, exposed for tests and the fuzz target: parses a
// strict subset of JSON (ASCII strings with simple escapes, integers of at
// most 18 digits, at most 32 levels) and returns false for anything else,
// which ParseLine then hands to nlohmann. When it returns true, *out is
// exactly what nlohmann::json::parse makes of `text`.
bool FastParseJson(std::string_view text, Json* out);
// ParseLine's fast path for the common frame, an @effect/rpc Request, and
// its general path; for tests and the fuzz target. When the fast path
// returns true, *out is what ParseLineWithDom returns for the line.
bool FastParseEffectRequest(std::string_view line, Frame* out);
Frame ParseLineWithDom(std::string_view line);

// The outcome of one request.
struct Outcome {
  enum class Kind { kSuccess, kFail, kDie };
  Kind kind = Kind::kSuccess;
  Json value;           // success value, or the tagged error object for kFail
  // kSuccess only: the value already encoded as JSON text; when set it is
  // sent instead of `value` (hot replies skip building a DOM).
  std::string raw;
  int code = 0;         // JSON-RPC error code (401/404/500 for kFail, -326xx for kDie)
  std::string message;  // for kDie: the defect message; for kFail: error summary
  std::string defect_name = "ValidationError";

  static Outcome Success(Json v) { return Outcome{Kind::kSuccess, std::move(v), {}, 0, {}, {}}; }
  // `json` must be one complete JSON value.
  static Outcome SuccessRaw(std::string json) { return Outcome{Kind::kSuccess, nullptr, std::move(json), 0, {}, {}}; }
  static Outcome Fail(Json error, int code, std::string message) {
    return Outcome{Kind::kFail, std::move(error), {}, code, std::move(message), {}};
  }
  static Outcome Die(std::string message, int code = kInvalidParams, std::string name = "ValidationError") {
    return Outcome{Kind::kDie, nullptr, {}, code, std::move(message), std::move(name)};
  }

  // SPEC 2's three tagged errors, built here only (the application and the
  // admin socket answer with the same shapes).
  static Outcome Unauthorized(const std::string& message, const std::string& detail) {
    return Fail(Json{{"_tag", "UnauthorizedError"}, {"message", message}, {"detail", detail}}, 401,
                message + ": " + detail);
  }
  static Outcome UserNotFound(const std::string& user_id) {
    return Fail(Json{{"_tag", "UserNotFoundError"}, {"userId", user_id}}, 404, "User not found: " + user_id);
  }
  // `detail` is left out of the object when empty (it is optional).
  static Outcome InternalServerError(const std::string& message, const std::string& detail = {}) {
    Json e{{"_tag", "InternalServerError"}, {"message", message}};
    if (!detail.empty()) e["detail"] = detail;
    return Fail(std::move(e), 500, message + (detail.empty() ? "" : ": " + detail));
  }
};

// Encoders return one complete line including the trailing '\n'. Strings with
// invalid UTF-8 are replaced with U+FFFD rather than failing.
std::string EncodeExit(const Request& req, const Outcome& outcome);
// EncodeExit appended to `out` (no temporary string).
void AppendExit(std::string& out, const Request& req, const Outcome& outcome);
std::string EncodeChunk(const Request& req, const Json& values);
std::string EncodeStreamEnd(const Request& req);  // Exit Success with no value
std::string EncodePong(Wire wire);
std::string EncodeProtocolError(int code, std::string_view message);

// Appends a JSON value to `out` (replacing invalid UTF-8).
void AppendJson(std::string& out, const Json& j);

}  // namespace usersd::ipc
