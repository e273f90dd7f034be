#include "admin/admin_api.h"

#include <unistd.h>

#include <algorithm>

#include "admin/handlers.h"
#include "admin/admin_users.h"
#include "common/log.h"
#include "common/text.h"
#include "common/timefmt.h"
#include "domain/users_service.h"
#include "domain/user_mutations.h"
#include "domain/validate.h"

namespace usersd::admin {

// -------------------------------------------------------------- outbox

void Handlers::HandleOutboxList(const ipc::Request& q, ipc::Responder r) {
  auto p = PayloadObject(q.payload);
  if (!p.ok()) return Reply(r, q.tag, Invalid(p.status().message()));
  auto limit = LimitParam(*p, kDefaultLimit, kMaxJobsLimit);
  if (!limit.ok()) return Reply(r, q.tag, Invalid(limit.status().message()));
  auto txn = deps.store->BeginRead();
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

void Handlers::HandleDeadLettersList(const ipc::Request& q, ipc::Responder r) {
  auto p = PayloadObject(q.payload);
  if (!p.ok()) return Reply(r, q.tag, Invalid(p.status().message()));
  auto limit = LimitParam(*p, kDefaultLimit, kMaxJobsLimit);
  if (!limit.ok()) return Reply(r, q.tag, Invalid(limit.status().message()));
  auto txn = deps.store->BeginRead();
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

void Handlers::HandleDeadLettersChange(const ipc::Request& q, ipc::Responder r, bool retry) {
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
  int64_t now = deps.clock->NowMs();
  std::optional<uint64_t> one = *id;
  deps.writer->Submit(
      [out, one, retry, now, sync = sync_policy](WriteTxn& t) -> Status {
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
        if (retry && out->count > 0 && deps.outbox) deps.outbox->Kick();
        Reply(r, tag, ipc::Outcome::Success(Json{{"count", out->count}}));
      });
}

// --------------------------------------------------------------- users

void Handlers::HandleUsersGet(const ipc::Request& q, ipc::Responder r) {
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
  auto txn = deps.store->BeginRead();
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
void Handlers::HandleUsersResync(const ipc::Request& q, ipc::Responder r) {
  auto p = PayloadObject(q.payload);
  if (!p.ok()) return Reply(r, q.tag, Invalid(p.status().message()));
  if (!deps.reconciler) return Reply(r, q.tag, Internal("reconciliation is not available", ""));
  if (auto all = p->find("all"); all != p->end() && !all->is_null()) {
    if (!all->is_boolean() || !all->get<bool>()) return Reply(r, q.tag, Invalid("all: must be true"));
    if (p->contains("id") || p->contains("workosId"))
      return Reply(r, q.tag, Invalid("all: give either all, id or workosId"));
    auto run = deps.reconciler->StartAll("admin");
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
    auto txn = deps.store->BeginRead();
    if (!txn.ok()) return Reply(r, q.tag, FromStatus(txn.status(), "reading the store"));
    auto u = txn->GetUser(uid);
    if (!u.ok()) return Reply(r, q.tag, FromStatus(u.status(), "reading the store"));
    if (!u->has_value()) return Reply(r, q.tag, NotFound(uid));
    workos_id = (*u)->workos_id;
  } else {
    return Reply(r, q.tag, Invalid("id: give exactly one of id, workosId or all"));
  }
  deps.reconciler->ResyncOne(workos_id, [this, r, tag = q.tag](Result<sync::ResyncResult> res) {
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

void Handlers::HandleUsersList(const ipc::Request& q, ipc::Responder r) {
  auto p = PayloadObject(q.payload);
  if (!p.ok()) return Reply(r, q.tag, Invalid(p.status().message()));
  auto limit = LimitParam(*p, kDefaultLimit, kMaxUsersLimit);
  if (!limit.ok()) return Reply(r, q.tag, Invalid(limit.status().message()));
  std::string after;
  if (auto it = p->find("after"); it != p->end() && !it->is_null()) {
    if (!it->is_string()) return Reply(r, q.tag, Invalid("after: must be a string (a user id)"));
    after = ToLowerAscii(it->get<std::string>());
  }
  auto txn = deps.store->BeginRead();
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

void Handlers::HandleUsersImport(const ipc::Request& q, ipc::Responder r) {
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
  const domain::MutationContext ctx{deps.clock->NowMs(), sync_policy.get()};
  deps.writer->Submit(
      [entries, last_txid, queued, ctx, sync = sync_policy](WriteTxn& t) -> Status {
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
        if (*queued && deps.outbox) deps.outbox->Kick();
        uint64_t txid = *last_txid;
        if (entries->empty()) {
          auto txn = deps.store->BeginRead();
          if (txn.ok()) txid = txn->LastTxid();
        }
        LogInfo("users imported", {{"count", std::to_string(entries->size())},
                                   {"transactionId", std::to_string(txid)},
                                   {"uid", std::to_string(r.peer().uid)}});
        Reply(r, tag, ipc::Outcome::Success(Json{{"count", entries->size()}, {"transactionId", txid}}));
      });
}

// ---------------------------------------------------------------- jwks

void Handlers::HandleJwksRefresh(const ipc::Request& q, ipc::Responder r) {
  deps.jwks->Refresh([this, r, tag = q.tag](Status st) {
    if (!st.ok()) return Reply(r, tag, Internal("JWKS refresh failed", st.message()));
    Reply(r, tag, ipc::Outcome::Success(Json{{"keys", deps.jwks->keys()}}));
  });
}

// -------------------------------------------------------------- config

void Handlers::HandleConfigReload(const ipc::Request& q, ipc::Responder r) {
  if (!deps.reload) return Reply(r, q.tag, Internal("config reload failed", "reloading is not available"));
  std::vector<std::string> reloaded, needs_restart;
  Status st = deps.reload(&reloaded, &needs_restart);
  if (!st.ok()) return Reply(r, q.tag, Internal("config reload failed; the running configuration is kept", st.message()));
  Reply(r, q.tag, ipc::Outcome::Success(Json{{"reloaded", reloaded}, {"needsRestart", needs_restart}}));
}

// ============================================================= AdminApi

AdminApi::AdminApi(AdminDeps deps) : impl_(std::make_unique<Handlers>(std::move(deps))) {
  impl_->RegisterMetrics();
}

AdminApi::~AdminApi() {
  // Streams end when their connections close (ipc::Server::Close), which
  // the daemon completes before destroying the AdminApi.
  impl_->StopStreams();
}

void AdminApi::Dispatch(const ipc::Request& request, ipc::Responder responder) {
  Handlers& i = *impl_;
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
  i.deps.metrics->Inc("usersd_admin_requests_total", {{"method", "unknown"}, {"outcome", "unknown_method"}});
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
