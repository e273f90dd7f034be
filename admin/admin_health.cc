// admin.status, admin.health and admin.metrics (AdminApi, SPEC 6): what
// the daemon reports of itself, and the admin API's own metrics.
#include <chrono>

#include "admin/handlers.h"
#include "common/timefmt.h"
#include "domain/versions.h"

namespace usersd::admin {

// ------------------------------------------------------------ metrics

void Handlers::RegisterMetrics() {
  Metrics& m = *deps.metrics;
  m.Describe("usersd_admin_requests_total", "counter", "Admin socket requests by method and outcome.");
  m.Describe("usersd_build_info", "gauge", "Always 1; the version label is the running build.");
  m.Describe("usersd_uptime_seconds", "gauge", "Seconds since usersd started.");
  m.Describe("usersd_admin_streams", "gauge", "Open admin.changes streams.");
  // Collectors run on the caller of Render(): the loop thread (admin.metrics
  // and the textfile writer), which the sync workers' stats() require. Each
  // component describes and sets its own series; the exposition is sorted
  // by name, so the order of these calls does not show.
  m.AddCollector([this](Metrics& m) {
    const Clock& clock = *deps.clock;
    int64_t now = clock.NowMs();
    m.Set("usersd_build_info", {{"version", deps.version}}, 1);
    m.Set("usersd_uptime_seconds", {}, static_cast<double>(now - deps.started_at_ms) / 1000.0);
    deps.store->ExportMetrics(m);
    if (deps.outbox) deps.outbox->ExportMetrics(m);
    if (deps.jwks) deps.jwks->ExportMetrics(m);
    if (deps.events) deps.events->ExportMetrics(m);
    if (deps.reconciler) deps.reconciler->ExportMetrics(m);
    if (deps.writer) deps.writer->ExportMetrics(m);
    if (deps.app_server) deps.app_server->ExportMetrics(m);
    m.Set("usersd_admin_streams", {}, static_cast<double>(streams.size()));
  });
}

// -------------------------------------------------------------- status

Json Handlers::StatusJson() {
  int64_t now = deps.clock->NowMs();
  store::StoreStats s = deps.store->Stats();
  uint64_t last_txid = 0;
  int64_t oldest_age_ms = -1;
  Json host_id = nullptr;
  {
    auto txn = deps.store->BeginRead();
    if (txn.ok()) {
      last_txid = txn->LastTxid();
      if (auto h = domain::ReadHostId(*txn); h.ok() && h->has_value()) host_id = domain::FormatHostId(**h);
      auto oldest = txn->ListJobs(1);
      if (oldest.ok() && !oldest->empty()) oldest_age_ms = std::max<int64_t>(0, now - oldest->front().created_at_ms);
    }
  }
  sync::UpstreamState up = deps.workos->state();
  Json since =
      up == sync::UpstreamState::kUnconfigured ? Json(nullptr) : Json(FormatIso8601Ms(deps.workos->state_since_ms()));
  Json upstream{{"state", sync::UpstreamStateName(up)}, {"since", since}};
  if (up == sync::UpstreamState::kUnconfigured) {
    upstream["detail"] = "usersd is not configured: " + config::UnconfiguredDetail(*deps.config, deps.config_path);
  } else {
    upstream["keySource"] = config::DescribeApiKeySource(*deps.config, deps.config_path);
  }
  if (up == sync::UpstreamState::kUnauthorized) {
    upstream["detail"] = "WorkOS refuses the API key (" + deps.workos->unauthorized_detail() + "); " +
                         config::ApiKeyAdvice(*deps.config, deps.config_path);
  }
  std::optional<std::string> cursor = deps.events ? deps.events->cursor() : std::nullopt;
  auto ms_or_null = [](int64_t ms) { return ms > 0 ? Json(FormatIso8601Ms(ms)) : Json(nullptr); };
  Json events = nullptr;
  if (deps.events) {
    sync::EventsStats es = deps.events->stats();
    events = Json{{"cursor", cursor ? Json(*cursor) : Json(nullptr)},
                  {"cursorCreatedAt", ms_or_null(es.cursor_at_ms)},
                  {"cursorAgeSeconds",
                   es.caught_up_ms > 0 ? Json(std::max<int64_t>(0, now - es.caught_up_ms) / 1000) : Json(nullptr)},
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
  if (deps.reconciler) {
    sync::ReconcileStatus rs = deps.reconciler->status();
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
  return Json{{"version", deps.version},
              {"hostId", host_id},
              {"uptimeSeconds", std::max<int64_t>(0, now - deps.started_at_ms) / 1000},
              {"users", s.users},
              {"lastTransactionId", last_txid},
              {"store",
               {{"path", deps.store->path()},
                {"sizeBytes", s.file_bytes},
                {"mapSizeBytes", s.map_size_bytes},
                {"usedBytes", s.used_bytes},
                {"maxMapSizeBytes", deps.config->store.max_map_size_mib << 20}}},
              {"outbox", {{"depth", s.outbox_depth}, {"oldestAgeSeconds", SecondsOrNull(oldest_age_ms)}}},
              {"deadLetters", s.dead_letters},
              {"upstream", upstream},
              {"eventsCursor", cursor ? Json(*cursor) : Json(nullptr)},
              {"events", events},
              {"reconcile", reconcile},
              {"jwks", {{"keys", deps.jwks->keys()}, {"ageSeconds", SecondsOrNull(deps.jwks->age_ms())}}}};
}

void Handlers::HandleStatus(const ipc::Request& q, ipc::Responder r) {
  Reply(r, q.tag, ipc::Outcome::Success(StatusJson()));
}

// -------------------------------------------------------------- health

void Handlers::HandleHealth(const ipc::Request& q, ipc::Responder r) {
  Json status = StatusJson();
  Json checks = Json::object();

  // store: readable, and not about to hit store.max_map_size_mib.
  {
    auto txn = deps.store->BeginRead();
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
    size_t keys = deps.jwks->keys();
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
    bool stale = !age.is_null() && age.get<int64_t>() * 1000 > deps.config->outbox.max_backoff_ms * 2;
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
    Handlers* api;
    ipc::Responder r;
    std::string tag;
    Json checks;
    UvTimer timer{};
    bool finished = false;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    void Done(const Status& st, bool timed_out) {
      if (finished) return;
      finished = true;
      timer.Close();
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      Json c{{"ok", st.ok() && !timed_out}, {"latencyMs", ms}, {"queued", api->deps.writer->queued()}};
      if (timed_out) c["detail"] = "a probe write did not complete within 2 s";
      else if (!st.ok()) c["detail"] = st.message();
      checks["writer"] = c;
      bool ok = checks["store"]["ok"].get<bool>() && checks["writer"]["ok"].get<bool>() &&
                checks["jwks"]["ok"].get<bool>() && checks["configured"]["ok"].get<bool>();
      api->Reply(r, tag, ipc::Outcome::Success(Json{{"ok", ok}, {"checks", checks}}));
    }
  };
  auto probe = std::make_shared<Probe>(Probe{this, r, q.tag, std::move(checks)});
  probe->timer.Start(deps.loop, kWriterProbeTimeoutMs, 0, [probe] { probe->Done(Status::Ok(), true); });
  deps.writer->Submit([](WriteTxn&) { return Status::Ok(); }, [probe](Status st) { probe->Done(st, false); });
}

// ------------------------------------------------------------- metrics

void Handlers::HandleMetrics(const ipc::Request& q, ipc::Responder r) {
  Reply(r, q.tag, ipc::Outcome::Success(Json{{"text", deps.metrics->Render()}}));
}

}  // namespace usersd::admin
