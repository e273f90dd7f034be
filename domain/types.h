// The domain's value types: what WorkOS shows of a user (Profile), the
// answer of an operation before it goes on the wire (OpResult), and the
// request path's seam to WorkOS (WorkosProfileSource). Every domain module
// may include this; it includes nothing of the domain.
//
// Value types and one interface; thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace usersd::domain {

using Json = nlohmann::json;

// A WorkOS user as WorkOS shows it (its `user` object).
struct Profile {
  std::string workos_id;
  std::string email;
  std::string first_name;
  std::string last_name;
  std::optional<std::string> profile_picture_url;  // nullopt: WorkOS has none
  std::optional<int64_t> created_at_ms;            // WorkOS's created_at / updated_at
  std::optional<int64_t> updated_at_ms;
  std::optional<std::string> external_id;  // nullopt: none (null or "")
  Json metadata = Json::object();          // WorkOS's metadata map as shown
  bool has_metadata = false;               // the user object had a metadata map
  // Which of email, first_name, last_name, external_id the user object
  // had at all: an answer that leaves a field out says nothing about it.
  struct Shown {
    bool email = true, first_name = true, last_name = true, external_id = true;
  } shown;
};

// The request-path side of WorkOS: what UsersService needs to read one
// user's profile while serving a request (provisioning, resetAvatar).
// Implemented by sync::WorkosClient; tests use a fake (domain_service_test).
// The background side (outbox, events poller, reconciler) uses
// sync::WorkosApi (sync/workos_client.h) instead. Loop thread only;
// callbacks run on the loop thread, never synchronously inside the call.
class WorkosProfileSource {
 public:
  using Profile = domain::Profile;
  // kBusy: this host already has too many WorkOS reads waiting
  // (workos.max_queued_requests); nothing was asked.
  enum class Outcome { kOk, kNotFound, kUnreachable, kError, kBusy };
  struct GetResult {
    Outcome outcome = Outcome::kUnreachable;
    Profile profile;
    std::string error;  // for logs; never holds the API key
  };
  virtual ~WorkosProfileSource() = default;
  // False when no API key is configured: live calls are not attempted.
  virtual bool Configured() const = 0;
  // True while upstream is known to be down (the outbox is backing off), so
  // a request does not wait for a timeout to learn it.
  virtual bool Offline() const = 0;
  // Concurrent calls for one workos_id share one read (each gets a copy of
  // its result).
  virtual void GetUser(const std::string& workos_id, std::function<void(GetResult)> cb) = 0;
};

// The result of one operation, before it is put on the wire.
struct OpResult {
  // kInternal stays last: kNumKinds (which sizes per-kind tables) follows it.
  enum class Kind { kOk, kUnauthorized, kNotFound, kInvalid, kInternal };
  static constexpr size_t kNumKinds = static_cast<size_t>(Kind::kInternal) + 1;
  Kind kind = Kind::kOk;
  Json value;           // kOk: the success value (unless `raw` is set)
  std::string raw;      // kOk: the success value as JSON text, instead of `value`
  std::string message;  // human-readable; for kInvalid it names the field
  std::string detail;   // kUnauthorized/kInternal detail
  std::string user_id;  // kNotFound: the id asked for

  static OpResult Ok(Json v) { return {Kind::kOk, std::move(v), {}, {}, {}, {}}; }
  static OpResult OkJson(std::string text) { return {Kind::kOk, nullptr, std::move(text), {}, {}, {}}; }
  static OpResult Unauthorized(std::string detail) {
    return {Kind::kUnauthorized, nullptr, {}, "Unauthorized", std::move(detail), {}};
  }
  static OpResult NotFound(std::string id) { return {Kind::kNotFound, nullptr, {}, "User not found", {}, std::move(id)}; }
  static OpResult Invalid(std::string message) { return {Kind::kInvalid, nullptr, {}, std::move(message), {}, {}}; }
  static OpResult Internal(std::string detail) {
    return {Kind::kInternal, nullptr, {}, "Internal server error", std::move(detail), {}};
  }
};

using OpCallback = std::function<void(OpResult)>;

}  // namespace usersd::domain
