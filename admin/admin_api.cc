#include "admin/admin_api.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <unordered_map>

#include "admin/admin_users.h"
#include "common/log.h"
#include "common/safe_dir.h"
#include "common/text.h"
#include "common/timefmt.h"
#include "domain/users_service.h"
#include "domain/user_mutations.h"
#include "domain/validate.h"
#include "domain/versions.h"

namespace usersd::admin {

using Json = nlohmann::json;
using store::ChangeOp;
using store::DeadLetter;
using store::JobOp;
using store::OutboxJob;
using store::UserRecord;
using store::WriteTxn;

namespace {

constexpr size_t kDefaultLimit = 100;
constexpr size_t kMaxUsersLimit = 1000;
constexpr size_t kMaxJobsLimit = 10000;
constexpr size_t kMaxImportUsers = 10000;
constexpr size_t kChangesPerChunk = 100;
constexpr uint64_t kStreamPollMs = 100;
constexpr uint64_t kWriterProbeTimeoutMs = 2000;
constexpr double kStoreFullRatio = 0.9;

// ------------------------------------------------------------ outcomes

ipc::Outcome Invalid(std::string message) { return ipc::Outcome::Die(std::move(message), ipc::kInvalidParams); }

ipc::Outcome NotFound(const std::string& id) {
  return ipc::Outcome::Fail(Json{{"_tag", "UserNotFoundError"}, {"userId", id}}, 404, "User not found: " + id);
}

ipc::Outcome Internal(const std::string& message, const std::string& detail = {}) {
  Json e{{"_tag", "InternalServerError"}, {"message", message}};
  if (!detail.empty()) e["detail"] = detail;
  return ipc::Outcome::Fail(e, 500, message + (detail.empty() ? "" : ": " + detail));
}

// A store/writer failure as the client sees it.
ipc::Outcome FromStatus(const Status& st, const std::string& what) {
  switch (st.code()) {
    case Code::kInvalidArgument: return Invalid(st.message());
    case Code::kMapFull: return Internal(what + " failed: the store is full", st.message());
    case Code::kUnavailable: return Internal(what + " failed: usersd is shutting down", st.message());
    default: return Internal(what + " failed", st.message());
  }
}

const char* OutcomeLabel(const ipc::Outcome& o) {
  switch (o.kind) {
    case ipc::Outcome::Kind::kSuccess: return "ok";
    case ipc::Outcome::Kind::kFail: return o.code == 404 ? "not_found" : "internal";
    case ipc::Outcome::Kind::kDie: return o.code == ipc::kMethodNotFound ? "unknown_method" : "invalid";
  }
  return "internal";
}

// Whole seconds of a non-negative duration; null for "none" (negative).
Json SecondsOrNull(int64_t ms) { return ms < 0 ? Json(nullptr) : Json(ms / 1000); }

// ------------------------------------------------------------ payloads

// The payload as an object: absent (null) is {}, anything else is refused.
Result<Json> PayloadObject(const Json& payload) {
  if (payload.is_null()) return Json::object();
  if (!payload.is_object()) return Status::InvalidArgument("payload: must be an object");
  return payload;
}

// `limit`: absent = dflt, else an integer 1..max.
Result<size_t> LimitParam(const Json& p, size_t dflt, size_t max) {
  auto it = p.find("limit");
  if (it == p.end() || it->is_null()) return dflt;
  if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > static_cast<int64_t>(max))
    return Status::InvalidArgument("limit: must be an integer from 1 to " + std::to_string(max));
  return static_cast<size_t>(it->get<int64_t>());
}

// A non-negative integer member, also accepted as a string of digits (the
// form an Effect schema for bigint sends). nullopt when absent or null.
Result<std::optional<uint64_t>> U64Param(const Json& p, const char* name) {
  auto it = p.find(name);
  if (it == p.end() || it->is_null()) return std::optional<uint64_t>();
  if (it->is_number_unsigned()) return std::optional<uint64_t>(it->get<uint64_t>());
  if (it->is_number_integer() && it->get<int64_t>() >= 0)
    return std::optional<uint64_t>(static_cast<uint64_t>(it->get<int64_t>()));
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    if (!s.empty() && s.size() <= 20 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      errno = 0;
      unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
      if (errno == 0) return std::optional<uint64_t>(v);
    }
  }
  return Status::InvalidArgument(std::string(name) + ": must be a non-negative integer");
}

// ------------------------------------------------------------ timers

// A uv timer on the heap that owns its callback and frees itself after
// Close() (in the close callback), so an object that arms it never has to
// outlive the loop turn in which it stops caring. Loop thread only.
class Timer {
 public:
  static Timer* Start(uv_loop_t* loop, uint64_t timeout_ms, uint64_t repeat_ms, std::function<void()> cb) {
    auto* t = new Timer(std::move(cb));
    uv_timer_init(loop, &t->handle_);
    t->handle_.data = t;
    uv_timer_start(&t->handle_, [](uv_timer_t* h) { static_cast<Timer*>(h->data)->cb_(); }, timeout_ms, repeat_ms);
    return t;
  }
  // The callback never runs after this. Safe to call from the callback.
  void Close() {
    if (closing_) return;
    closing_ = true;
    uv_timer_stop(&handle_);
    uv_close(reinterpret_cast<uv_handle_t*>(&handle_), [](uv_handle_t* h) { delete static_cast<Timer*>(h->data); });
  }

 private:
  explicit Timer(std::function<void()> cb) : cb_(std::move(cb)) {}
  uv_timer_t handle_{};
  std::function<void()> cb_;
  bool closing_ = false;
};

}  // namespace

// ================================================================ Impl

struct AdminApi::Impl {
  struct ChangeStream;
  AdminDeps d;
  std::unordered_map<ChangeStream*, std::shared_ptr<ChangeStream>> streams;
  bool backup_running = false;

  std::shared_ptr<const domain::SyncPolicy> sync_;

  explicit Impl(AdminDeps deps)
      : d(std::move(deps)), sync_(d.sync ? d.sync : std::make_shared<const domain::SyncPolicy>()) {}

  void Reply(const ipc::Responder& r, const std::string& tag, const ipc::Outcome& o) {
    d.metrics->Inc("usersd_admin_requests_total", {{"method", tag}, {"outcome", OutcomeLabel(o)}});
    if (o.kind != ipc::Outcome::Kind::kSuccess) {
      LogInfo("admin request failed", {{"method", tag}, {"error", o.message}, {"uid", std::to_string(r.peer().uid)}});
    } else {
      LogDebug("admin request", {{"method", tag}, {"uid", std::to_string(r.peer().uid)}});
    }
    r.Reply(o);
  }

  void RegisterMetrics();
  Json StatusJson();

  void HandleStatus(const ipc::Request& q, ipc::Responder r);
  void HandleHealth(const ipc::Request& q, ipc::Responder r);
  void HandleMetrics(const ipc::Request& q, ipc::Responder r);
  void HandleOutboxList(const ipc::Request& q, ipc::Responder r);
  void HandleDeadLettersList(const ipc::Request& q, ipc::Responder r);
  void HandleDeadLettersChange(const ipc::Request& q, ipc::Responder r, bool retry);
  void HandleUsersGet(const ipc::Request& q, ipc::Responder r);
  void HandleUsersList(const ipc::Request& q, ipc::Responder r);
  void HandleUsersImport(const ipc::Request& q, ipc::Responder r);
  void HandleUsersResync(const ipc::Request& q, ipc::Responder r);
  void HandleJwksRefresh(const ipc::Request& q, ipc::Responder r);
  void HandleBackup(const ipc::Request& q, ipc::Responder r);
  void HandleConfigReload(const ipc::Request& q, ipc::Responder r);
  void HandleChanges(const ipc::Request& q, ipc::Responder r);
};

// ------------------------------------------------------- change stream

// One admin.changes stream. Owned by Impl::streams from Start() until it
// ends (Interrupt, connection closed, read error); its stream handler and
// poll timer reach it through weak/raw pointers that end with it.
//
// Flow: read up to kChangesPerChunk changes after `after_`, send them as
// one Chunk and wait for the client's Ack; when caught up, poll LastTxid
// every kStreamPollMs and read again once it moved.
struct AdminApi::Impl::ChangeStream : std::enable_shared_from_this<ChangeStream> {
  ChangeStream(AdminApi::Impl* api, ipc::Responder r, uint64_t after)
      : api_(api), r_(std::move(r)), after_(after), polled_txid_(after) {}

  void Start() {
    std::weak_ptr<ChangeStream> weak = weak_from_this();
    r_.OnStreamEvent([weak](ipc::StreamEvent e) {
      // `self` keeps the stream alive until OnEvent has returned, even when
      // it ends the stream (deferred delete, never `delete this`).
      if (auto self = weak.lock()) self->OnEvent(e);
    });
    Pump();
  }

  void OnEvent(ipc::StreamEvent e) {
    if (done_) return;
    switch (e) {
      case ipc::StreamEvent::kAck:
        awaiting_ack_ = false;
        Pump();
        break;
      case ipc::StreamEvent::kInterrupt:
        r_.EndStream();
        Finish();
        break;
      case ipc::StreamEvent::kClosed:
        Finish();
        break;
    }
  }

  void Pump() {
    if (done_ || awaiting_ack_) return;
    if (!r_.connected()) return Finish();
    std::vector<store::Change> changes;
    {
      auto txn = api_->d.store->BeginRead();
      if (!txn.ok()) return Fail(txn.status());
      auto c = txn->ChangesSince(after_ + 1, kChangesPerChunk);
      if (!c.ok()) return Fail(c.status());
      changes = std::move(*c);
      if (changes.empty()) polled_txid_ = std::max(polled_txid_, txn->LastTxid());
    }
    if (changes.empty()) return StartPolling();
    StopPolling();
    Json values = Json::array();
    for (const auto& c : changes) {
      values.push_back(Json{{"transactionId", c.txid},
                            {"op", c.op == ChangeOp::kDelete ? "delete" : "upsert"},
                            {"user", ToAdminUserJson(c.user)}});
    }
    after_ = changes.back().txid;
    polled_txid_ = std::max(polled_txid_, after_);
    awaiting_ack_ = true;
    sent_ += changes.size();
    r_.Chunk(values);
  }

  void OnTick() {
    if (done_ || awaiting_ack_) return;
    uint64_t last = 0;
    {
      auto txn = api_->d.store->BeginRead();
      if (!txn.ok()) return Fail(txn.status());
      last = txn->LastTxid();
    }
    // A transactionId may be used without a change entry (nothing to
    // send), so only a new id since the last empty read triggers a read.
    if (last > polled_txid_) Pump();
  }

  void StartPolling() {
    if (timer_) return;
    timer_ = Timer::Start(api_->d.loop, kStreamPollMs, kStreamPollMs, [this] {
      auto keep = shared_from_this();
      OnTick();
    });
  }

  void StopPolling() {
    if (timer_) timer_->Close();
    timer_ = nullptr;
  }

  void Fail(const Status& st) {
    LogError("admin.changes: reading the change feed failed", {{"error", st.message()}});
    api_->Reply(r_, "admin.changes", Internal("reading the change feed failed", st.message()));
    Finish();
  }

  // Ends the stream: the timer closes and Impl lets go of it. The caller
  // holds a reference (see Start), so this object outlives the call.
  void Finish() {
    if (done_) return;
    done_ = true;
    StopPolling();
    LogDebug("admin.changes stream ended", {{"sent", std::to_string(sent_)}});
    api_->streams.erase(this);
  }

  AdminApi::Impl* api_;
  ipc::Responder r_;
  uint64_t after_;        // the last transactionId sent (or the client's since)
  uint64_t polled_txid_;  // LastTxid at the last read that found nothing
  bool awaiting_ack_ = false;
  bool done_ = false;
  uint64_t sent_ = 0;
  Timer* timer_ = nullptr;
};

// ------------------------------------------------------------ metrics

void AdminApi::Impl::RegisterMetrics() {
  Metrics& m = *d.metrics;
  m.Describe("usersd_admin_requests_total", "counter", "Admin socket requests by method and outcome.");
  m.Describe("usersd_build_info", "gauge", "Always 1; the version label is the running build.");
  m.Describe("usersd_uptime_seconds", "gauge", "Seconds since usersd started.");
  m.Describe("usersd_admin_streams", "gauge", "Open admin.changes streams.");
  // Collectors run on the caller of Render(): the loop thread (admin.metrics
  // and the textfile writer), which the sync workers' stats() require. Each
  // component describes and sets its own series; the exposition is sorted
  // by name, so the order of these calls does not show.
  m.AddCollector([this](Metrics& m) {
    const Clock& clock = *d.clock;
    int64_t now = clock.NowMs();
    m.Set("usersd_build_info", {{"version", d.version}}, 1);
    m.Set("usersd_uptime_seconds", {}, static_cast<double>(now - d.started_at_ms) / 1000.0);
    d.store->ExportMetrics(m);
    if (d.outbox) d.outbox->ExportMetrics(m);
    if (d.jwks) d.jwks->ExportMetrics(m);
    if (d.events) d.events->ExportMetrics(m);
    if (d.reconciler) d.reconciler->ExportMetrics(m);
    if (d.writer) d.writer->ExportMetrics(m);
    if (d.app_server) d.app_server->ExportMetrics(m);
    m.Set("usersd_admin_streams", {}, static_cast<double>(streams.size()));
  });
}

// -------------------------------------------------------------- status

Json AdminApi::Impl::StatusJson() {
  int64_t now = d.clock->NowMs();
  store::StoreStats s = d.store->Stats();
  uint64_t last_txid = 0;
  int64_t oldest_age_ms = -1;
  Json host_id = nullptr;
  {
    auto txn = d.store->BeginRead();
    if (txn.ok()) {
      last_txid = txn->LastTxid();
      if (auto h = domain::ReadHostId(*txn); h.ok() && h->has_value()) host_id = domain::FormatHostId(**h);
      auto oldest = txn->ListJobs(1);
      if (oldest.ok() && !oldest->empty()) oldest_age_ms = std::max<int64_t>(0, now - oldest->front().created_at_ms);
    }
  }
  sync::UpstreamState up = d.workos->state();
  Json since = up == sync::UpstreamState::kUnconfigured ? Json(nullptr)
                                                         : Json(FormatIso8601Ms(d.workos->state_since_ms()));
  Json upstream{{"state", sync::UpstreamStateName(up)}, {"since", since}};
  if (up == sync::UpstreamState::kUnconfigured) {
    upstream["detail"] = "usersd is not configured: " + config::UnconfiguredDetail(*d.config, d.config_path);
  } else {
    upstream["keySource"] = config::DescribeApiKeySource(*d.config, d.config_path);
  }
  if (up == sync::UpstreamState::kUnauthorized) {
    upstream["detail"] = "WorkOS refuses the API key (" + d.workos->unauthorized_detail() + "); " +
                         config::ApiKeyAdvice(*d.config, d.config_path);
  }
  std::optional<std::string> cursor = d.events ? d.events->cursor() : std::nullopt;
  auto ms_or_null = [](int64_t ms) { return ms > 0 ? Json(FormatIso8601Ms(ms)) : Json(nullptr); };
  Json events = nullptr;
  if (d.events) {
    sync::EventsStats es = d.events->stats();
    events = Json{{"cursor", cursor ? Json(*cursor) : Json(nullptr)},
                  {"cursorCreatedAt", ms_or_null(es.cursor_at_ms)},
                  {"cursorAgeSeconds", es.caught_up_ms > 0 ? Json(std::max<int64_t>(0, now - es.caught_up_ms) / 1000)
                                                          : Json(nullptr)},
                  {"lastPollAt", ms_or_null(es.last_poll_ms)},
                  {"lastSuccessAt", ms_or_null(es.last_success_ms)},
                  {"lastPollEvents", es.last_poll_events},
                  {"stuck", es.stuck},
                  {"newestSeenAt", ms_or_null(es.newest_seen_ms)},
                  {"applied", es.applied},
                  {"stale", es.stale},
                  {"behindCursor", es.behind_cursor},
                  {"newestFirstPages", es.newest_first_pages}};
  }
  Json reconcile = nullptr;
  if (d.reconciler) {
    sync::ReconcileStatus rs = d.reconciler->status();
    reconcile = Json{{"state", rs.running ? "running" : "idle"},
                     {"reason", rs.reason.empty() ? Json(nullptr) : Json(rs.reason)},
                     {"phase", rs.phase.empty() ? Json(nullptr) : Json(rs.phase)},
                     {"runId", rs.run_id},
                     {"startedAt", ms_or_null(rs.started_at_ms)},
                     {"finishedAt", ms_or_null(rs.finished_at_ms)},
                     {"pages", rs.pages},
                     {"usersSeen", rs.users_seen},
                     {"usersApplied", rs.users_applied},
                     {"usersDeleted", rs.users_deleted},
                     {"usersNotListed", rs.users_not_listed},
                     {"lastError", rs.last_error.empty() ? Json(nullptr) : Json(rs.last_error)},
                     {"nextAutomaticStartAt", ms_or_null(rs.next_auto_start_ms)}};
  }
  return Json{{"version", d.version},
              {"hostId", host_id},
              {"uptimeSeconds", std::max<int64_t>(0, now - d.started_at_ms) / 1000},
              {"users", s.users},
              {"lastTransactionId", last_txid},
              {"store",
               {{"path", d.store->path()},
                {"sizeBytes", s.file_bytes},
                {"mapSizeBytes", s.map_size_bytes},
                {"usedBytes", s.used_bytes},
                {"maxMapSizeBytes", d.config->store.max_map_size_mib << 20}}},
              {"outbox", {{"depth", s.outbox_depth}, {"oldestAgeSeconds", SecondsOrNull(oldest_age_ms)}}},
              {"deadLetters", s.dead_letters},
              {"upstream", upstream},
              {"eventsCursor", cursor ? Json(*cursor) : Json(nullptr)},
              {"events", events},
              {"reconcile", reconcile},
              {"jwks", {{"keys", d.jwks->keys()}, {"ageSeconds", SecondsOrNull(d.jwks->age_ms())}}}};
}

void AdminApi::Impl::HandleStatus(const ipc::Request& q, ipc::Responder r) {
  Reply(r, q.tag, ipc::Outcome::Success(StatusJson()));
}

// -------------------------------------------------------------- health

void AdminApi::Impl::HandleHealth(const ipc::Request& q, ipc::Responder r) {
  Json status = StatusJson();
  Json checks = Json::object();

  // store: readable, and not about to hit store.max_map_size_mib.
  {
    auto txn = d.store->BeginRead();
    uint64_t used = status["store"]["usedBytes"].get<uint64_t>();
    uint64_t max = status["store"]["maxMapSizeBytes"].get<uint64_t>();
    double ratio = max ? static_cast<double>(used) / static_cast<double>(max) : 0.0;
    Json c{{"ok", txn.ok() && ratio < kStoreFullRatio}, {"usedBytes", used}, {"maxMapSizeBytes", max}};
    if (!txn.ok()) c["detail"] = "cannot read the store: " + txn.status().message();
    else if (ratio >= kStoreFullRatio) c["detail"] = "the store is above 90% of store.max_map_size_mib";
    checks["store"] = c;
  }
  // jwks: without a key no token verifies.
  {
    size_t keys = d.jwks->keys();
    Json c{{"ok", keys > 0}, {"keys", keys}, {"ageSeconds", status["jwks"]["ageSeconds"]}};
    if (keys == 0) c["detail"] = "no signing keys: every token is refused";
    checks["jwks"] = c;
  }
  // configured: an unconfigured daemon refuses every request (SPEC 4).
  {
    bool configured = status["upstream"]["state"] != "unconfigured";
    Json c{{"ok", configured}};
    if (!configured) c["detail"] = status["upstream"]["detail"];
    checks["configured"] = c;
  }
  // Advisory checks: reported, never fatal (usersd serves while WorkOS is away
  // or refuses the key: tokens are still verified with the cached JWKS).
  {
    const Json& st = status["upstream"]["state"];
    bool good = st == "online" || st == "unconfigured";  // the latter is the check above
    Json c{{"ok", good}, {"state", st}, {"since", status["upstream"]["since"]}};
    if (st == "offline") c["detail"] = "WorkOS is unreachable; serving from the local store";
    if (st == "unauthorized") c["detail"] = status["upstream"]["detail"];
    checks["upstream"] = c;
  }
  {
    Json age = status["outbox"]["oldestAgeSeconds"];
    bool stale = !age.is_null() && age.get<int64_t>() * 1000 > d.config->outbox.max_backoff_ms * 2;
    Json c{{"ok", !stale}, {"depth", status["outbox"]["depth"]}, {"oldestAgeSeconds", age}};
    if (stale) c["detail"] = "the oldest job has waited longer than twice outbox.max_backoff_ms";
    checks["outbox"] = c;
  }
  {
    uint64_t n = status["deadLetters"].get<uint64_t>();
    Json c{{"ok", n == 0}, {"count", n}};
    if (n > 0) c["detail"] = "WorkOS refused jobs for good; see usersctl dead-letters list";
    checks["deadLetters"] = c;
  }

  // writer: a no-op op must come back through the writer thread and the
  // Poster within the timeout (a stuck disk or thread shows here).
  struct Probe {
    Impl* api;
    ipc::Responder r;
    std::string tag;
    Json checks;
    Timer* timer = nullptr;
    bool finished = false;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    void Done(const Status& st, bool timed_out) {
      if (finished) return;
      finished = true;
      if (timer) timer->Close();
      timer = nullptr;
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      Json c{{"ok", st.ok() && !timed_out}, {"latencyMs", ms}, {"queued", api->d.writer->queued()}};
      if (timed_out) c["detail"] = "a probe write did not complete within 2 s";
      else if (!st.ok()) c["detail"] = st.message();
      checks["writer"] = c;
      bool ok = checks["store"]["ok"].get<bool>() && checks["writer"]["ok"].get<bool>() &&
                checks["jwks"]["ok"].get<bool>() && checks["configured"]["ok"].get<bool>();
      api->Reply(r, tag, ipc::Outcome::Success(Json{{"ok", ok}, {"checks", checks}}));
    }
  };
  auto probe = std::make_shared<Probe>(Probe{this, r, q.tag, std::move(checks)});
  probe->timer = Timer::Start(d.loop, kWriterProbeTimeoutMs, 0, [probe] { probe->Done(Status::Ok(), true); });
  d.writer->Submit([](WriteTxn&) { return Status::Ok(); }, [probe](Status st) { probe->Done(st, false); });
}

// ------------------------------------------------------------- metrics

void AdminApi::Impl::HandleMetrics(const ipc::Request& q, ipc::Responder r) {
  Reply(r, q.tag, ipc::Outcome::Success(Json{{"text", d.metrics->Render()}}));
}

// -------------------------------------------------------------- outbox

void AdminApi::Impl::HandleOutboxList(const ipc::Request& q, ipc::Responder r) {
  auto p = PayloadObject(q.payload);
  if (!p.ok()) return Reply(r, q.tag, Invalid(p.status().message()));
  auto limit = LimitParam(*p, kDefaultLimit, kMaxJobsLimit);
  if (!limit.ok()) return Reply(r, q.tag, Invalid(limit.status().message()));
  auto txn = d.store->BeginRead();
  if (!txn.ok()) return Reply(r, q.tag, FromStatus(txn.status(), "reading the outbox"));
  auto jobs = txn->ListJobs(*limit);
  if (!jobs.ok()) return Reply(r, q.tag, FromStatus(jobs.status(), "reading the outbox"));
  Json out = Json::array();
  for (const auto& j : *jobs) {
    out.push_back(Json{{"id", j.id},
                       {"userId", j.user_id},
                       {"op", store::JobOpName(j.op)},
                       {"attempts", j.attempts},
                       {"nextAttemptAt", FormatIso8601Ms(j.next_attempt_at_ms)},
                       {"lastError", j.last_error.empty() ? Json(nullptr) : Json(j.last_error)}});
  }
  Reply(r, q.tag, ipc::Outcome::Success(Json{{"jobs", std::move(out)}}));
}

void AdminApi::Impl::HandleDeadLettersList(const ipc::Request& q, ipc::Responder r) {
  auto p = PayloadObject(q.payload);
  if (!p.ok()) return Reply(r, q.tag, Invalid(p.status().message()));
  auto limit = LimitParam(*p, kDefaultLimit, kMaxJobsLimit);
  if (!limit.ok()) return Reply(r, q.tag, Invalid(limit.status().message()));
  auto txn = d.store->BeginRead();
  if (!txn.ok()) return Reply(r, q.tag, FromStatus(txn.status(), "reading the dead letters"));
  auto dls = txn->ListDeadLetters(*limit);
  if (!dls.ok()) return Reply(r, q.tag, FromStatus(dls.status(), "reading the dead letters"));
  Json out = Json::array();
  for (const auto& dl : *dls) {
    out.push_back(Json{{"id", dl.job.id},
                       {"userId", dl.job.user_id},
                       {"op", store::JobOpName(dl.job.op)},
                       {"status", dl.status},
                       {"body", dl.body},
                       {"failedAt", FormatIso8601Ms(dl.failed_at_ms)},
                       // What was asked for: WorkOS-owned fields with the
                       // values a retry sends, "doc": the shared document.
                       {"fields", dl.job.fields.is_object() ? dl.job.fields : Json::object()}});
  }
  Reply(r, q.tag, ipc::Outcome::Success(Json{{"deadLetters", std::move(out)}}));
}

void AdminApi::Impl::HandleDeadLettersChange(const ipc::Request& q, ipc::Responder r, bool retry) {
  auto p = PayloadObject(q.payload);
  if (!p.ok()) return Reply(r, q.tag, Invalid(p.status().message()));
  bool all = false;
  if (auto it = p->find("all"); it != p->end() && !it->is_null()) {
    if (!it->is_boolean()) return Reply(r, q.tag, Invalid("all: must be a boolean"));
    all = it->get<bool>();
  }
  auto id = U64Param(*p, "id");
  if (!id.ok()) return Reply(r, q.tag, Invalid(id.status().message()));
  if (all && id->has_value()) return Reply(r, q.tag, Invalid("id: give either id or all: true, not both"));
  if (!all && !id->has_value()) return Reply(r, q.tag, Invalid("id: required (or all: true)"));

  struct Outcome {
    uint64_t count = 0;
    bool missing = false;
  };
  auto out = std::make_shared<Outcome>();
  int64_t now = d.clock->NowMs();
  std::optional<uint64_t> one = *id;
  d.writer->Submit(
      [out, one, retry, now, sync = sync_](WriteTxn& t) -> Status {
        // Re-runnable: the writer replays the batch after growing the map.
        *out = Outcome{};
        std::vector<DeadLetter> dls;
        if (one) {
          auto g = t.GetDeadLetter(*one);
          if (!g.ok()) return g.status();
          if (!g->has_value()) {
            out->missing = true;
            return Status::NotFound("no such dead letter");
          }
          dls.push_back(std::move(**g));
        } else {
          auto l = t.ListDeadLetters(0);
          if (!l.ok()) return l.status();
          dls = std::move(*l);
        }
        const domain::MutationContext ctx{now, sync.get()};
        for (const auto& dl : dls) {
          if (retry) {
            auto queued = domain::RequeueDeadLetter(t, dl, ctx);
            if (!queued.ok()) return queued.status();
          }
          USERSD_RETURN_IF_ERROR(t.DeleteDeadLetter(dl.job.id));
          out->count++;
        }
        return Status::Ok();
      },
      [this, r, tag = q.tag, out, one, retry](Status st) {
        if (out->missing) return Reply(r, tag, Invalid("id: no dead letter with id " + std::to_string(*one)));
        if (!st.ok()) return Reply(r, tag, FromStatus(st, retry ? "retrying dead letters" : "discarding dead letters"));
        LogInfo(retry ? "dead letters re-queued" : "dead letters discarded",
                {{"count", std::to_string(out->count)}, {"uid", std::to_string(r.peer().uid)}});
        if (retry && out->count > 0 && d.outbox) d.outbox->Kick();
        Reply(r, tag, ipc::Outcome::Success(Json{{"count", out->count}}));
      });
}

// --------------------------------------------------------------- users

void AdminApi::Impl::HandleUsersGet(const ipc::Request& q, ipc::Responder r) {
  auto p = PayloadObject(q.payload);
  if (!p.ok()) return Reply(r, q.tag, Invalid(p.status().message()));
  int given = 0;
  const char* key = nullptr;
  std::string value;
  for (const char* k : {"id", "workosId", "email"}) {
    auto it = p->find(k);
    if (it == p->end() || it->is_null()) continue;
    if (!it->is_string() || it->get<std::string>().empty())
      return Reply(r, q.tag, Invalid(std::string(k) + ": must be a non-empty string"));
    given++;
    key = k;
    value = it->get<std::string>();
  }
  if (given != 1) return Reply(r, q.tag, Invalid("id: give exactly one of id, workosId or email"));
  std::string k(key);
  if (k == "id") {
    if (!domain::IsUuid(value)) return Reply(r, q.tag, Invalid("id: must be a UUID"));
    value = ToLowerAscii(value);
  }
  auto txn = d.store->BeginRead();
  if (!txn.ok()) return Reply(r, q.tag, FromStatus(txn.status(), "reading the store"));
  // By id and WorkOS id, deleted users are found too (deletedAt is set);
  // by email only live users are (emails are unique among live users only).
  auto u = k == "id" ? txn->GetUser(value) : k == "workosId" ? txn->FindByWorkosId(value) : txn->FindByEmail(value);
  if (!u.ok()) return Reply(r, q.tag, FromStatus(u.status(), "reading the store"));
  if (!u->has_value()) return Reply(r, q.tag, NotFound(value));
  Reply(r, q.tag, ipc::Outcome::Success(ToAdminUserJson(**u)));
}

// {id} | {workosId} | {all: true}: the reconciliation of SPEC 4b for one
// user (answered when applied) or everyone (answered when started; progress
// in admin.status "reconcile").
void AdminApi::Impl::HandleUsersResync(const ipc::Request& q, ipc::Responder r) {
  auto p = PayloadObject(q.payload);
  if (!p.ok()) return Reply(r, q.tag, Invalid(p.status().message()));
  if (!d.reconciler) return Reply(r, q.tag, Internal("reconciliation is not available", ""));
  if (auto all = p->find("all"); all != p->end() && !all->is_null()) {
    if (!all->is_boolean() || !all->get<bool>()) return Reply(r, q.tag, Invalid("all: must be true"));
    if (p->contains("id") || p->contains("workosId"))
      return Reply(r, q.tag, Invalid("all: give either all, id or workosId"));
    auto run = d.reconciler->StartAll("admin");
    if (!run.ok()) return Reply(r, q.tag, FromStatus(run.status(), "starting the reconciliation"));
    LogInfo("reconcile requested", {{"uid", std::to_string(r.peer().uid)}, {"run", std::to_string(*run)}});
    return Reply(r, q.tag, ipc::Outcome::Success(Json{{"started", true}, {"runId", *run}}));
  }
  std::string workos_id;
  if (auto it = p->find("workosId"); it != p->end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>().empty())
      return Reply(r, q.tag, Invalid("workosId: must be a non-empty string"));
    if (p->contains("id")) return Reply(r, q.tag, Invalid("id: give exactly one of id, workosId or all"));
    workos_id = it->get<std::string>();
  } else if (auto id = p->find("id"); id != p->end() && !id->is_null()) {
    if (!id->is_string() || !domain::IsUuid(id->get<std::string>()))
      return Reply(r, q.tag, Invalid("id: must be a UUID"));
    std::string uid = ToLowerAscii(id->get<std::string>());
    auto txn = d.store->BeginRead();
    if (!txn.ok()) return Reply(r, q.tag, FromStatus(txn.status(), "reading the store"));
    auto u = txn->GetUser(uid);
    if (!u.ok()) return Reply(r, q.tag, FromStatus(u.status(), "reading the store"));
    if (!u->has_value()) return Reply(r, q.tag, NotFound(uid));
    workos_id = (*u)->workos_id;
  } else {
    return Reply(r, q.tag, Invalid("id: give exactly one of id, workosId or all"));
  }
  d.reconciler->ResyncOne(workos_id, [this, r, tag = q.tag](Result<sync::ResyncResult> res) {
    if (!res.ok()) return Reply(r, tag, FromStatus(res.status(), "resyncing the user"));
    Json user = res->user ? ToAdminUserJson(*res->user) : Json(nullptr);
    // WorkOS answered 404: the user was deleted here now ("deleted"), had
    // been deleted here already ("already_deleted": gone on both sides), or
    // was never here ("not_found_in_workos").
    std::string outcome = domain::RemoteOutcomeName(res->outcome);
    if (!res->in_workos && res->outcome != domain::RemoteOutcome::kDeleted) {
      outcome = res->user && !res->user->live() ? "already_deleted" : "not_found_in_workos";
    }
    Reply(r, tag,
          ipc::Outcome::Success(Json{{"user", std::move(user)}, {"outcome", outcome}, {"inWorkos", res->in_workos}}));
  });
}

void AdminApi::Impl::HandleUsersList(const ipc::Request& q, ipc::Responder r) {
  auto p = PayloadObject(q.payload);
  if (!p.ok()) return Reply(r, q.tag, Invalid(p.status().message()));
  auto limit = LimitParam(*p, kDefaultLimit, kMaxUsersLimit);
  if (!limit.ok()) return Reply(r, q.tag, Invalid(limit.status().message()));
  std::string after;
  if (auto it = p->find("after"); it != p->end() && !it->is_null()) {
    if (!it->is_string()) return Reply(r, q.tag, Invalid("after: must be a string (a user id)"));
    after = ToLowerAscii(it->get<std::string>());
  }
  auto txn = d.store->BeginRead();
  if (!txn.ok()) return Reply(r, q.tag, FromStatus(txn.status(), "reading the store"));
  auto users = txn->ListUsers(after, *limit + 1);
  if (!users.ok()) return Reply(r, q.tag, FromStatus(users.status(), "reading the store"));
  Json next = nullptr;
  if (users->size() > *limit) {
    users->resize(*limit);
    next = users->back().id;
  }
  Json out = Json::array();
  for (const auto& u : *users) out.push_back(ToAdminUserJson(u));
  Reply(r, q.tag, ipc::Outcome::Success(Json{{"users", std::move(out)}, {"next", next}}));
}

void AdminApi::Impl::HandleUsersImport(const ipc::Request& q, ipc::Responder r) {
  auto p = PayloadObject(q.payload);
  if (!p.ok()) return Reply(r, q.tag, Invalid(p.status().message()));
  auto it = p->find("users");
  if (it == p->end() || it->is_null()) return Reply(r, q.tag, Invalid("users: required"));
  if (!it->is_array()) return Reply(r, q.tag, Invalid("users: must be an array"));
  if (it->size() > kMaxImportUsers)
    return Reply(r, q.tag, Invalid("users: at most " + std::to_string(kMaxImportUsers) + " entries per request"));
  auto entries = std::make_shared<std::vector<ImportEntry>>();
  for (size_t i = 0; i < it->size(); ++i) {
    auto e = ParseImportEntry((*it)[i], i);
    if (!e.ok()) return Reply(r, q.tag, Invalid(e.status().message()));
    entries->push_back(std::move(*e));
  }
  auto last_txid = std::make_shared<uint64_t>(0);
  auto queued = std::make_shared<bool>(false);
  const domain::MutationContext ctx{d.clock->NowMs(), sync_.get()};
  d.writer->Submit(
      [entries, last_txid, queued, ctx, sync = sync_](WriteTxn& t) -> Status {
        *last_txid = 0;
        *queued = false;
        for (size_t i = 0; i < entries->size(); ++i) {
          auto m = domain::ImportUser(t, (*entries)[i], i, ctx);
          if (!m.ok()) return m.status();
          *last_txid = m->user.txid;
          *queued = *queued || m->queued_job;
        }
        return Status::Ok();
      },
      [this, r, tag = q.tag, entries, last_txid, queued](Status st) {
        if (!st.ok()) return Reply(r, tag, FromStatus(st, "import"));
        if (*queued && d.outbox) d.outbox->Kick();
        uint64_t txid = *last_txid;
        if (entries->empty()) {
          auto txn = d.store->BeginRead();
          if (txn.ok()) txid = txn->LastTxid();
        }
        LogInfo("users imported", {{"count", std::to_string(entries->size())},
                                   {"transactionId", std::to_string(txid)},
                                   {"uid", std::to_string(r.peer().uid)}});
        Reply(r, tag, ipc::Outcome::Success(Json{{"count", entries->size()}, {"transactionId", txid}}));
      });
}

// ---------------------------------------------------------------- jwks

void AdminApi::Impl::HandleJwksRefresh(const ipc::Request& q, ipc::Responder r) {
  d.jwks->Refresh([this, r, tag = q.tag](Status st) {
    if (!st.ok()) return Reply(r, tag, Internal("JWKS refresh failed", st.message()));
    Reply(r, tag, ipc::Outcome::Success(Json{{"keys", d.jwks->keys()}}));
  });
}

// -------------------------------------------------------------- backup

void AdminApi::Impl::HandleBackup(const ipc::Request& q, ipc::Responder r) {
  auto p = PayloadObject(q.payload);
  if (!p.ok()) return Reply(r, q.tag, Invalid(p.status().message()));
  auto it = p->find("path");
  if (it == p->end() || it->is_null()) return Reply(r, q.tag, Invalid("path: required"));
  if (!it->is_string() || it->get<std::string>().empty()) return Reply(r, q.tag, Invalid("path: must be a string"));
  std::string path = it->get<std::string>();
  // The daemon's working directory is not the operator's: a relative path
  // would land somewhere surprising (/ under systemd), so it is refused.
  if (path[0] != '/') return Reply(r, q.tag, Invalid("path: must be absolute (the daemon resolves it, not the caller)"));
  if (path.size() > 4000 || path.find('\0') != std::string::npos)
    return Reply(r, q.tag, Invalid("path: too long or contains NUL"));
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path == d.store->path()) return Reply(r, q.tag, Invalid("path: is the live store's directory"));
  // Backups go below admin_socket.backup_dir only (issue 21): the daemon
  // writes with its own rights, which are not the caller's.
  const std::string root = d.config->admin_socket.backup_dir;
  if (!IsPathBelow(root, path))
    return Reply(r, q.tag, Invalid("path: must be below admin_socket.backup_dir (" + root + "), without . or .."));
  if (backup_running) return Reply(r, q.tag, Internal("backup refused", "another backup is in progress"));
  backup_running = true;

  // Store::Backup reads the whole store and writes the copy: minutes on a
  // big store, so it runs on libuv's thread pool, off the loop.
  struct Work {
    uv_work_t req{};
    Impl* api;
    ipc::Responder r;
    std::string tag;
    std::string path;
    std::string root;
    Status st;
    uint64_t bytes = 0;
    uint64_t txid = 0;
  };
  auto* w = new Work{{}, this, r, q.tag, path, root, Status::Ok()};
  w->req.data = w;
  LogInfo("backup started", {{"path", path}, {"uid", std::to_string(r.peer().uid)}});
  int rc = uv_queue_work(
      d.loop, &w->req,
      [](uv_work_t* req) {
        auto* w = static_cast<Work*>(req->data);
        auto dir = OpenDirBelow(w->root, w->path);
        if (!dir.ok()) {
          w->st = dir.status();
          return;
        }
        auto info = w->api->d.store->Backup(*dir, w->path);
        ::close(*dir);
        if (!info.ok()) {
          w->st = info.status();
          return;
        }
        w->bytes = info->bytes;
        w->txid = info->txid;
      },
      [](uv_work_t* req, int status) {
        std::unique_ptr<Work> w(static_cast<Work*>(req->data));
        w->api->backup_running = false;
        if (status == UV_ECANCELED) w->st = Status::Unavailable("cancelled");
        if (!w->st.ok()) {
          LogError("backup failed", {{"path", w->path}, {"error", w->st.message()}});
          return w->api->Reply(w->r, w->tag, FromStatus(w->st, "backup"));
        }
        LogInfo("backup written", {{"path", w->path},
                                   {"bytes", std::to_string(w->bytes)},
                                   {"transactionId", std::to_string(w->txid)}});
        w->api->Reply(w->r, w->tag,
                      ipc::Outcome::Success(Json{{"path", w->path}, {"bytes", w->bytes}, {"transactionId", w->txid}}));
      });
  if (rc != 0) {
    backup_running = false;
    delete w;
    Reply(r, q.tag, Internal("backup failed", std::string("uv_queue_work: ") + uv_strerror(rc)));
  }
}

// -------------------------------------------------------------- config

void AdminApi::Impl::HandleConfigReload(const ipc::Request& q, ipc::Responder r) {
  if (!d.reload) return Reply(r, q.tag, Internal("config reload failed", "reloading is not available"));
  std::vector<std::string> reloaded, needs_restart;
  Status st = d.reload(&reloaded, &needs_restart);
  if (!st.ok()) return Reply(r, q.tag, Internal("config reload failed; the running configuration is kept", st.message()));
  Reply(r, q.tag, ipc::Outcome::Success(Json{{"reloaded", reloaded}, {"needsRestart", needs_restart}}));
}

// ------------------------------------------------------------- changes

void AdminApi::Impl::HandleChanges(const ipc::Request& q, ipc::Responder r) {
  auto p = PayloadObject(q.payload);
  if (!p.ok()) return Reply(r, q.tag, Invalid(p.status().message()));
  auto since = U64Param(*p, "sinceTransactionId");
  if (!since.ok()) return Reply(r, q.tag, Invalid(since.status().message()));
  d.metrics->Inc("usersd_admin_requests_total", {{"method", q.tag}, {"outcome", "stream"}});
  auto s = std::make_shared<ChangeStream>(this, r, since->value_or(0));
  streams.emplace(s.get(), s);
  s->Start();
}

// ============================================================= AdminApi

AdminApi::AdminApi(AdminDeps deps) : impl_(std::make_unique<Impl>(std::move(deps))) { impl_->RegisterMetrics(); }

AdminApi::~AdminApi() {
  // Streams end when their connections close (ipc::Server::Close), which
  // the daemon completes before destroying the AdminApi.
  for (auto& [p, s] : impl_->streams) s->StopPolling();
}

void AdminApi::Dispatch(const ipc::Request& request, ipc::Responder responder) {
  Impl& i = *impl_;
  const std::string& t = request.tag;
  if (t == "admin.status") return i.HandleStatus(request, responder);
  if (t == "admin.health") return i.HandleHealth(request, responder);
  if (t == "admin.metrics") return i.HandleMetrics(request, responder);
  if (t == "admin.outbox.list") return i.HandleOutboxList(request, responder);
  if (t == "admin.deadLetters.list") return i.HandleDeadLettersList(request, responder);
  if (t == "admin.deadLetters.retry") return i.HandleDeadLettersChange(request, responder, true);
  if (t == "admin.deadLetters.discard") return i.HandleDeadLettersChange(request, responder, false);
  if (t == "admin.users.get") return i.HandleUsersGet(request, responder);
  if (t == "admin.users.list") return i.HandleUsersList(request, responder);
  if (t == "admin.users.import") return i.HandleUsersImport(request, responder);
  if (t == "admin.users.resync") return i.HandleUsersResync(request, responder);
  if (t == "admin.jwks.refresh") return i.HandleJwksRefresh(request, responder);
  if (t == "admin.backup") return i.HandleBackup(request, responder);
  if (t == "admin.config.reload") return i.HandleConfigReload(request, responder);
  if (t == "admin.changes") return i.HandleChanges(request, responder);
  i.d.metrics->Inc("usersd_admin_requests_total", {{"method", "unknown"}, {"outcome", "unknown_method"}});
  responder.Reply(ipc::Outcome::Die("unknown method \"" + t + "\"", ipc::kMethodNotFound));
}

std::function<bool(const ipc::PeerCred&)> AdminAuthorizer(std::vector<uint32_t> allowed_uids,
                                                          std::vector<uint32_t> allowed_gids, uid_t self_uid) {
  return [self_uid, uids = std::move(allowed_uids), gids = std::move(allowed_gids)](const ipc::PeerCred& p) {
    // A peer whose credentials could not be read is nobody we know.
    if (!p.known) return false;
    if (p.uid == 0 || p.uid == self_uid) return true;
    if (std::find(uids.begin(), uids.end(), p.uid) != uids.end()) return true;
    if (std::find(gids.begin(), gids.end(), p.gid) != gids.end()) return true;
    return std::any_of(p.groups.begin(), p.groups.end(),
                       [&](gid_t g) { return std::find(gids.begin(), gids.end(), g) != gids.end(); });
  };
}

std::function<bool(const ipc::PeerCred&)> AdminAuthorizer(std::vector<uint32_t> allowed_uids,
                                                          std::vector<uint32_t> allowed_gids) {
  return AdminAuthorizer(std::move(allowed_uids), std::move(allowed_gids), getuid());
}

}  // namespace usersd::admin
