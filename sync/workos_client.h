// WorkosClient: the WorkOS User Management API over HttpClient, and the
// daemon's view of whether upstream is usable.
//
// Upstream state (SPEC 4, admin.status upstream.state):
//   unconfigured  auth.client_id or the API key was never set: nothing is
//                 sent (Configured() is false; callers check it first);
//   online        the last answer was neither of the two below;
//   offline       a call failed at the transport level, with 5xx or 429;
//   unauthorized  WorkOS answered 401 or 403 to a call carrying the key: the
//                 key is wrong, revoked or lacks a permission. Logged as a
//                 warning when it starts and at most once a minute while it
//                 lasts, naming where the key came from and what to do.
// Each state holds "since" the answer that entered it, until an answer of
// another kind arrives (any other answer returns to online). While offline or
// unauthorized, Offline() tells request paths (provisioning, resetAvatar) not
// to wait for WorkOS, except that one live attempt is let through every probe
// interval so a request path alone can notice recovery. The unauthenticated
// JWKS fetch (Fetch) does not change the state.
//
// GetUser (the request path) merges concurrent reads of one user into one
// GET, and its requests are sheddable (http_client.h): when too many wait,
// the caller hears kBusy at once.
//
// Loop thread only. Borrows the HttpClient and Clock.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "domain/users_service.h"
#include "sync/http_client.h"
#include "sync/request_budget.h"

namespace usersd::sync {

using Json = nlohmann::json;

enum class UpstreamState { kUnconfigured, kOnline, kOffline, kUnauthorized };
const char* UpstreamStateName(UpstreamState s);

struct WorkosOptions {
  std::string base_url = "https://api.workos.com";
  std::optional<std::string> api_key;
  // auth.client_id is set: without it (or a key) nothing is sent.
  bool client_id_set = true;
  // Where the key came from and what to do when WorkOS refuses it, for the
  // log line and status (config::Config::workos.api_key_source / _advice).
  std::string api_key_source;
  std::string api_key_advice;
  int64_t timeout_ms = 10000;
  int64_t offline_probe_interval_ms = 30000;
  // While unauthorized, the warning is repeated at most this often.
  int64_t unauthorized_log_interval_ms = 60000;
};

// True for responses that mean "try again later": transport errors,
// timeouts, 408, 429 and 5xx.
bool IsRetryable(const HttpResponse& r);
// True for 401 and 403: WorkOS refuses the API key (wrong, revoked, or
// without the permission). Not a refusal of the request itself: callers wait
// and retry with backoff until the key works (SPEC 4), never dead-letter.
bool IsUnauthorized(const HttpResponse& r);

// The background side of WorkOS: the raw calls the outbox sender, the events
// poller and the reconciler make, as a seam. WorkosClient implements it and
// unit tests substitute a fake (tests/unit/sync_fake_workos.h). The request
// path (UsersService) uses domain::WorkosProfileSource instead. Loop thread
// only; every callback runs exactly once, on the loop thread, never inside
// the call that started it.
class WorkosApi {
 public:
  virtual ~WorkosApi() = default;
  // False when auth.client_id or the API key is not set: nothing is sent.
  virtual bool Configured() const = 0;
  // kOffline from a transport failure, 5xx or 429, kUnauthorized from a 401
  // or 403, until an answer of another kind.
  virtual UpstreamState state() const = 0;
  virtual void PutUser(const std::string& workos_id, const Json& fields, HttpCallback cb) = 0;
  virtual void DeleteUser(const std::string& workos_id, HttpCallback cb) = 0;
  // GET /user_management/users/{id}, as the raw response.
  virtual void GetUserRaw(const std::string& workos_id, HttpCallback cb) = 0;
  virtual void ListEvents(const std::optional<std::string>& after, const std::optional<std::string>& range_start,
                          int limit, HttpCallback cb) = 0;
  // GET /user_management/users, oldest first, after the user id `after`.
  virtual void ListUsers(const std::optional<std::string>& after, int limit, HttpCallback cb) = 0;
};

class WorkosClient : public domain::WorkosProfileSource, public WorkosApi {
 public:
  WorkosClient(HttpClient* http, const Clock& clock, WorkosOptions options);

  // domain::WorkosProfileSource
  bool Configured() const override {
    return options_.client_id_set && options_.api_key.has_value() && !options_.api_key->empty();
  }
  bool Offline() const override;
  void GetUser(const std::string& workos_id, std::function<void(GetResult)> cb) override;

  // WorkosApi: raw calls for the outbox, the events poller and the
  // reconciler. Each updates the upstream state from its response.
  void PutUser(const std::string& workos_id, const Json& fields, HttpCallback cb) override;
  void DeleteUser(const std::string& workos_id, HttpCallback cb) override;
  void GetUserRaw(const std::string& workos_id, HttpCallback cb) override;
  // GET /events for the three user events (events[]= filters), oldest
  // first (order=asc: WorkOS lists newest first unless asked), after `after`
  // (event id) or from `range_start` (ISO 8601) when there is no cursor.
  void ListEvents(const std::optional<std::string>& after, const std::optional<std::string>& range_start,
                  int limit, HttpCallback cb) override;
  // GET /user_management/users?order=asc (reconciliation).
  void ListUsers(const std::optional<std::string>& after, int limit, HttpCallback cb) override;
  void Fetch(const std::string& url, HttpCallback cb);  // unauthenticated GET (JWKS)


  UpstreamState state() const override;
  int64_t state_since_ms() const { return since_ms_; }
  // True once WorkOS has answered an authenticated call (whatever it said, a
  // transport failure included). Before that, state() says online only
  // because nothing said otherwise.
  bool answered() const { return answered_once_; }
  // The last refusal while unauthorized ("HTTP 401: {body...}"), else "".
  const std::string& unauthorized_detail() const { return unauthorized_detail_; }
  // usersd_upstream_online, usersd_upstream_state and
  // usersd_workos_reads_merged_total (describes and sets them). Loop thread.
  void ExportMetrics(Metrics& m) const;
  // A new key resets the unauthorized state's log interval: the next refusal
  // is logged at once.
  void SetOptions(WorkosOptions options);
  const WorkosOptions& options() const { return options_; }
  // Runs after every change of state() caused by an answer (not by
  // SetOptions), with the state before; e.g. to wake workers that back off.
  void SetOnStateChange(std::function<void(UpstreamState before)> f) { on_state_change_ = std::move(f); }
  // Records the outcome of an authenticated call made outside this class.
  void Observe(const HttpResponse& r);
  // The host's request budget (borrowed; may be null). The request path's
  // reads, the events poll and JWKS fetches are not paced, but charged to
  // it (SPEC 4b: they go first); the outbox and reconciliation take their
  // tokens themselves.
  void SetBudget(RequestBudget* budget) { budget_ = budget; }

 private:
  void Call(const std::string& method, const std::string& path, std::string body, HttpCallback cb,
            bool sheddable = false);

  HttpClient* http_;
  const Clock& clock_;
  WorkosOptions options_;
  // What the answers say, when configured: kOnline, kOffline or kUnauthorized.
  UpstreamState answered_ = UpstreamState::kOnline;
  bool answered_once_ = false;
  int64_t since_ms_;
  mutable int64_t last_probe_ms_ = 0;
  RequestBudget* budget_ = nullptr;
  void ChargeUnpaced();
  // GetUser reads in flight, by WorkOS id: the callers waiting for each.
  std::unordered_map<std::string, std::vector<std::function<void(GetResult)>>> reads_;
  uint64_t reads_merged_ = 0;
  int64_t last_unauthorized_log_ms_ = 0;  // monotonic; 0: not logged in this episode
  std::string unauthorized_detail_;
  std::function<void(UpstreamState)> on_state_change_;
};

// Percent-encodes a path segment (RFC 3986 unreserved characters pass).
std::string EncodePathSegment(std::string_view s);

}  // namespace usersd::sync
