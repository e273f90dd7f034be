// WorkosClient: the WorkOS User Management API over HttpClient, and the
// daemon's view of whether upstream is reachable.
//
// Upstream state: "unconfigured" without an API key; otherwise "online" until
// a call fails at the transport level, with 5xx or 429, then "offline" since
// that moment until any call succeeds again. While offline, Offline() tells
// request paths (provisioning, resetAvatar) not to wait for a timeout, except
// that one live attempt is let through every probe interval so a request path
// alone can notice recovery.
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

enum class UpstreamState { kUnconfigured, kOnline, kOffline };
const char* UpstreamStateName(UpstreamState s);

struct WorkosOptions {
  std::string base_url = "https://api.workos.com";
  std::optional<std::string> api_key;
  int64_t timeout_ms = 10000;
  int64_t offline_probe_interval_ms = 30000;
};

// True for responses that mean "try again later": transport errors,
// timeouts, 408, 429 and 5xx.
bool IsRetryable(const HttpResponse& r);

// The background side of WorkOS: the raw calls the outbox sender, the events
// poller and the reconciler make, as a seam. WorkosClient implements it and
// unit tests substitute a fake (tests/unit/sync_fake_workos.h). The request
// path (UsersService) uses domain::WorkosProfileSource instead. Loop thread
// only; every callback runs exactly once, on the loop thread, never inside
// the call that started it.
class WorkosApi {
 public:
  virtual ~WorkosApi() = default;
  // False when no API key is configured: nothing is sent.
  virtual bool Configured() const = 0;
  // kOffline from a transport failure, 5xx or 429 until any call succeeds.
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
  bool Configured() const override { return options_.api_key.has_value() && !options_.api_key->empty(); }
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
  // usersd_upstream_online and usersd_workos_reads_merged_total (describes
  // and sets them). Loop thread.
  void ExportMetrics(Metrics& m) const;
  void SetOptions(WorkosOptions options);
  const WorkosOptions& options() const { return options_; }
  // Records the outcome of a call made outside this class.
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
  bool offline_ = false;
  int64_t since_ms_;
  mutable int64_t last_probe_ms_ = 0;
  RequestBudget* budget_ = nullptr;
  void ChargeUnpaced();
  // GetUser reads in flight, by WorkOS id: the callers waiting for each.
  std::unordered_map<std::string, std::vector<std::function<void(GetResult)>>> reads_;
  uint64_t reads_merged_ = 0;
};

// Percent-encodes a path segment (RFC 3986 unreserved characters pass).
std::string EncodePathSegment(std::string_view s);

}  // namespace usersd::sync
