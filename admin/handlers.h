// Internal to admin/: the admin API's handlers and their state (Handlers;
// AdminApi owns one and dispatches to it) and the pieces its files share: the outcomes a handler answers with, the
// payload readers (a timer is a UvTimer, common/uv_timer.h). The handlers are grouped by job:
// admin_api.cc (dispatch, outbox, dead letters, users, JWKS, config),
// admin_health.cc (status, health, metrics), admin_changes.cc (the
// admin.changes stream), admin_backup.cc (admin.backup). Not part of the
// admin interface; nothing outside admin/ includes it.
//
// Loop thread only, as AdminApi.
#pragma once

#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "admin/admin_deps.h"
#include "admin/limits.h"
#include "common/log.h"
#include "common/status.h"
#include "common/uv_timer.h"
#include "domain/users_service.h"
#include "ipc/server.h"

namespace usersd::admin {

using Json = nlohmann::json;
using store::ChangeOp;
using store::DeadLetter;
using store::JobOp;
using store::OutboxJob;
using store::UserRecord;
using store::WriteTxn;

inline constexpr size_t kChangesPerChunk = 100;
inline constexpr uint64_t kStreamPollMs = 100;
inline constexpr uint64_t kWriterProbeTimeoutMs = 2000;
inline constexpr double kStoreFullRatio = 0.9;

// ------------------------------------------------------------ outcomes

inline ipc::Outcome Invalid(std::string message) {
  return ipc::Outcome::Die(std::move(message), ipc::kInvalidParams);
}

inline ipc::Outcome NotFound(const std::string& id) {
  return ipc::Outcome::UserNotFound(id);
}

inline ipc::Outcome Internal(const std::string& message, const std::string& detail = {}) {
  return ipc::Outcome::InternalServerError(message, detail);
}

// A store/writer failure as the client sees it.
inline ipc::Outcome FromStatus(const Status& st, const std::string& what) {
  switch (st.code()) {
    case Code::kInvalidArgument: return Invalid(st.message());
    case Code::kMapFull: return Internal(what + " failed: the store is full", st.message());
    case Code::kUnavailable: return Internal(what + " failed: usersd is shutting down", st.message());
    default: return Internal(what + " failed", st.message());
  }
}

inline const char* OutcomeLabel(const ipc::Outcome& o) {
  switch (o.kind) {
    case ipc::Outcome::Kind::kSuccess: return "ok";
    case ipc::Outcome::Kind::kFail: return o.code == 404 ? "not_found" : "internal";
    case ipc::Outcome::Kind::kDie: return o.code == ipc::kMethodNotFound ? "unknown_method" : "invalid";
  }
  return "internal";
}

// Whole seconds of a non-negative duration; null for "none" (negative).
inline Json SecondsOrNull(int64_t ms) {
  return ms < 0 ? Json(nullptr) : Json(ms / 1000);
}

// ------------------------------------------------------------ payloads

// The payload as an object: absent (null) is {}, anything else is refused.
inline Result<Json> PayloadObject(const Json& payload) {
  if (payload.is_null()) return Json::object();
  if (!payload.is_object()) return Status::InvalidArgument("payload: must be an object");
  return payload;
}

// `limit`: absent = dflt, else an integer 1..max.
inline Result<size_t> LimitParam(const Json& p, size_t dflt, size_t max) {
  auto it = p.find("limit");
  if (it == p.end() || it->is_null()) return dflt;
  if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > static_cast<int64_t>(max))
    return Status::InvalidArgument("limit: must be an integer from 1 to " + std::to_string(max));
  return static_cast<size_t>(it->get<int64_t>());
}

// A non-negative integer member, also accepted as a string of digits (the
// form an Effect schema for bigint sends). nullopt when absent or null.
inline Result<std::optional<uint64_t>> U64Param(const Json& p, const char* name) {
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

// ================================================================ Handlers

struct Handlers {
  struct ChangeStream;
  AdminDeps deps;
  std::unordered_map<ChangeStream*, std::shared_ptr<ChangeStream>> streams;
  bool backup_running = false;

  std::shared_ptr<const domain::SyncPolicy> sync_policy;

  explicit Handlers(AdminDeps deps_in)
      : deps(std::move(deps_in)), sync_policy(deps.sync ? deps.sync : std::make_shared<const domain::SyncPolicy>()) {}

  void Reply(const ipc::Responder& r, const std::string& tag, const ipc::Outcome& o) {
    deps.metrics->Inc("usersd_admin_requests_total", {{"method", tag}, {"outcome", OutcomeLabel(o)}});
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
  // Stops every stream's poll timer (admin_changes.cc); the streams end
  // when their connections close.
  void StopStreams();
};

}  // namespace usersd::admin
