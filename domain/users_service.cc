#include "domain/users_service.h"

#include <sys/random.h>

#include <cstdio>

#include "common/log.h"
#include "domain/remote_user.h"
#include "domain/roles.h"
#include "domain/user_mutations.h"
#include "domain/validate.h"

namespace usersd::domain {

using store::UserRecord;
using store::WriteTxn;

namespace {

// The outcome a WriteOp decided on. When `refused` is set the op wrote
// nothing and `result` is the answer (see Refuse).
struct Decision {
  OpResult result;
  bool refused = false;
  bool queued_job = false;   // the op enqueued an outbox job
  bool created_new = false;  // provisioning created the user (not found it)

  // Called first in every WriteOp: a replayed op starts from scratch.
  void Reset() {
    refused = false;
    queued_job = false;
    created_new = false;
  }
};

// What a WriteOp returns when it refuses (policy, not found, nothing to
// fall back on): the answer is decided and the op commits nothing. It is
// not a failure: the writer's batch goes on (a failed op would make it abort
// and run every op of the batch again, one nested transaction each).
// REQUIRES: the op has written nothing yet; every call below comes before
// the op's first write.
Status Refuse(Decision* d, OpResult r) {
  d->result = std::move(r);
  d->refused = true;
  return Status::Ok();
}

// Maps the writer's status and the op's decision to the reply.
// Runs once per op, after its last replay: the result moves out.
OpResult Conclude(const Status& st, Decision& d) {
  if (st.ok() || d.refused) return std::move(d.result);
  if (st.code() == Code::kInvalidArgument) return OpResult::Invalid(st.message());
  if (st.code() == Code::kMapFull) return OpResult::Internal("store is full: " + st.message());
  if (st.code() == Code::kUnavailable) return OpResult::Internal("usersd is shutting down");
  return OpResult::Internal(st.message());
}

OpResult MutationResult(const UserRecord& u) {
  std::string text;
  text.reserve(512);
  AppendMutationResultJson(text, u);
  return OpResult::OkJson(std::move(text));
}

// An org admin may manage other users at all (their organization is checked
// later, on the stored target).
bool ActsAsOrgAdmin(const ServiceOptions& o, const auth::Claims& caller) {
  return o.org_admins_manage_members && IsAdminRole(caller.role) && caller.org_id.has_value();
}

}  // namespace

UsersService::UsersService(store::Store* store, store::Writer* writer, WorkosProfileSource* workos, const Clock& clock,
                           ServiceOptions options)
    : store_(store), writer_(writer), workos_(workos), clock_(clock) {
  SetOptions(std::move(options));
}

void UsersService::SetOptions(ServiceOptions options) {
  options_ = std::move(options);
  if (!options_.sync) options_.sync = std::make_shared<const SyncPolicy>();
}

// ------------------------------------------------------------ caller

void UsersService::ResolveCaller(const auth::Claims& caller,
                                 std::function<void(Result<UserRecord>, OpResult)> cb) {
  std::optional<UserRecord> found;
  {
    auto txn = store_->BeginRead();
    if (!txn.ok()) return cb(txn.status(), OpResult::Internal(txn.status().message()));
    auto u = txn->FindByWorkosId(caller.sub);
    if (!u.ok()) return cb(u.status(), OpResult::Internal(u.status().message()));
    found = std::move(*u);
  }
  if (found) {
    if (!found->live()) return cb(Status::Unauthorized("deleted"), OpResult::Unauthorized("user has been deleted"));
    return FollowClaims(caller, std::move(*found), std::move(cb));
  }
  if (!options_.jit_provisioning)
    return cb(Status::Unauthorized("unknown"), OpResult::Unauthorized("user is not provisioned on this host"));
  auto not_a_user = [cb] {
    cb(Status::Unauthorized("no such WorkOS user"), OpResult::Unauthorized("token subject is not a WorkOS user"));
  };
  // WorkOS said 404 for this subject a moment ago: it will say it again.
  if (KnownUnknown(caller.sub)) return not_a_user();
  if (workos_ && workos_->Configured() && !workos_->Offline()) {
    auto claims = caller;
    workos_->GetUser(caller.sub, [this, claims, cb, not_a_user](WorkosProfileSource::GetResult r) {
      switch (r.outcome) {
        case WorkosProfileSource::Outcome::kOk: Provision(claims, r.profile, cb); return;
        case WorkosProfileSource::Outcome::kNotFound:
          RememberUnknown(claims.sub);
          not_a_user();
          return;
        case WorkosProfileSource::Outcome::kBusy: cb(Status::Unavailable(r.error), OpResult::Internal(r.error)); return;
        default:
          // WorkOS did not answer usefully: provision from the token and
          // fill the profile in later.
          LogInfo("provisioning without WorkOS profile", {{"reason", r.error}});
          Provision(claims, std::nullopt, cb);
          return;
      }
    });
    return;
  }
  Provision(caller, std::nullopt, cb);
}

void UsersService::FollowClaims(const auth::Claims& caller, UserRecord user,
                                std::function<void(Result<UserRecord>, OpResult)> cb) {
  const std::string role(SessionRole(caller.role));
  // The common case: the token says what the store holds, and nothing is
  // written.
  if (user.organization_id == caller.org_id && user.role == role) return cb(std::move(user), OpResult::Ok(nullptr));
  auto stored = std::make_shared<std::optional<UserRecord>>();
  MutationContext ctx{clock_.NowMs(), options_.sync.get()};
  writer_->Submit(
      [sub = caller.sub, org = caller.org_id, role, stored, ctx, sync = options_.sync](WriteTxn& t) -> Status {
        stored->reset();
        auto m = RecordTokenClaims(t, sub, org, role, ctx);
        if (!m.ok()) return m.status();
        if (m->kind == Mutation::Kind::kCommitted) *stored = std::move(m->user);
        return Status::Ok();
      },
      [user = std::move(user), stored, cb](Status st) mutable {
        // A store that cannot take the write (full, say) must not cost the
        // caller its request: reads go on at the maximum map size (SPEC 6).
        // The record keeps its older organization and role until a write
        // succeeds.
        if (!st.ok())
          LogWarn("could not record the organization and role of a user's token",
                  {{"user", user.id}, {"error", st.message()}});
        cb(stored->has_value() ? std::move(**stored) : std::move(user), OpResult::Ok(nullptr));
      });
}

// ------------------------------------------------- WorkOS read rationing

namespace {
// Drops expired entries of a bounded memory; when it is still full, one
// arbitrary entry makes room (the memories are optimisations, never rules).
template <class Map, class Expired>
void MakeRoom(Map& m, Expired expired) {
  if (m.size() < kMaxRemembered) return;
  for (auto it = m.begin(); it != m.end();) it = expired(it->second) ? m.erase(it) : std::next(it);
  if (m.size() >= kMaxRemembered) m.erase(m.begin());
}
}  // namespace

bool UsersService::KnownUnknown(const std::string& workos_id) {
  auto it = unknown_subjects_.find(workos_id);
  if (it == unknown_subjects_.end()) return false;
  if (clock_.MonotonicMs() < it->second) return true;
  unknown_subjects_.erase(it);
  return false;
}

void UsersService::RememberUnknown(const std::string& workos_id) {
  int64_t now = clock_.MonotonicMs();
  MakeRoom(unknown_subjects_, [now](int64_t until) { return until <= now; });
  unknown_subjects_[workos_id] = now + kUnknownSubjectMs;
}

std::optional<std::optional<std::string>> UsersService::RecentPicture(const std::string& workos_id) {
  auto it = pictures_.find(workos_id);
  if (it == pictures_.end()) return std::nullopt;
  if (clock_.MonotonicMs() - it->second.read_at_ms < kPictureReuseMs) return it->second.url;
  pictures_.erase(it);
  return std::nullopt;
}

void UsersService::RememberPicture(const std::string& workos_id, const std::optional<std::string>& url) {
  int64_t now = clock_.MonotonicMs();
  MakeRoom(pictures_, [now](const Picture& p) { return now - p.read_at_ms >= kPictureReuseMs; });
  pictures_[workos_id] = Picture{url, now};
}

void UsersService::Provision(const auth::Claims& caller, std::optional<WorkosProfileSource::Profile> profile,
                             std::function<void(Result<UserRecord>, OpResult)> cb) {
  auto decision = std::make_shared<Decision>();
  auto created = std::make_shared<std::optional<UserRecord>>();
  MutationContext ctx{clock_.NowMs(), options_.sync.get()};
  ProvisionRequest req{caller.sub, caller.org_id, caller.role, std::move(profile)};
  writer_->Submit(
      [req = std::move(req), decision, created, ctx, sync = options_.sync](WriteTxn& t) -> Status {
        decision->Reset();
        auto m = ProvisionUser(t, req, ctx);
        if (!m.ok()) return m.status();
        decision->queued_job = m->queued_job;
        decision->created_new = m->created;
        *created = std::move(m->user);
        return Status::Ok();
      },
      [this, decision, created, cb](Status st) {
        if (!st.ok() || !created->has_value()) {
          OpResult r = Conclude(st, *decision);
          return cb(st.ok() ? Status::Internal("provisioning produced no user") : st, r);
        }
        if (!(*created)->live())
          return cb(Status::Unauthorized("deleted"), OpResult::Unauthorized("user has been deleted"));
        if (decision->created_new) provisioned_++;
        if (decision->queued_job && notify_outbox_) notify_outbox_();
        cb(std::move(**created), OpResult::Ok(nullptr));
      });
}

// -------------------------------------------------------- operations

namespace {
// The part of the claims an operation uses after resolving the caller: a
// cheap copy (no raw payload) to capture in callbacks.
auth::Claims SessionOf(const auth::Claims& c) {
  auth::Claims s;
  s.sub = c.sub;
  s.org_id = c.org_id;
  s.role = c.role;
  return s;
}
}  // namespace

void UsersService::Me(const auth::Claims& caller, OpCallback cb) {
  ResolveCaller(caller, [claims = SessionOf(caller), cb = std::move(cb)](Result<UserRecord> u, OpResult err) {
    if (!u.ok()) return cb(std::move(err));
    std::string text;
    text.reserve(512);
    AppendCurrentUserJson(text, *u, claims);
    cb(OpResult::OkJson(std::move(text)));
  });
}

namespace {
// Records a mutation's outcome in the op's decision; a refusal is an answer,
// not a failure (see Refuse).
Status Record(Result<Mutation> m, Decision& d, bool mutation_result) {
  if (!m.ok()) return m.status();
  if (m->kind == Mutation::Kind::kRefused) return Refuse(&d, std::move(m->refusal));
  d.queued_job = m->queued_job;
  d.result = mutation_result ? MutationResult(m->user) : OpResult::Ok(Json{{"transactionId", m->user.txid}});
  return Status::Ok();
}
}  // namespace

void UsersService::Update(const auth::Claims& caller, const Json& payload, OpCallback cb) {
  auto parsed = ParseUpdatePayload(payload);
  if (!parsed.ok()) return cb(OpResult::Invalid(parsed.status().message()));
  auto patch = std::make_shared<UserPatch>(std::move(*parsed));
  auto claims = SessionOf(caller);
  ResolveCaller(caller, [this, patch, claims = std::move(claims), cb = std::move(cb)](Result<UserRecord> me,
                                                                                    OpResult err) mutable {
    if (!me.ok()) return cb(std::move(err));
    Actor actor{me->id, claims.org_id, ActsAsOrgAdmin(options_, claims), claims.role};
    // Policy before existence: an id one may not manage is refused without
    // looking it up.
    if (patch->id != actor.user_id && !actor.org_admin)
      return cb(OpResult::Unauthorized("you may only update your own user"));
    auto decision = std::make_shared<Decision>();
    MutationContext ctx{clock_.NowMs(), options_.sync.get()};
    writer_->Submit(
        [patch, actor = std::move(actor), decision, ctx, sync = options_.sync](WriteTxn& t) -> Status {
          decision->Reset();
          return Record(ApplyPatch(t, actor, *patch, ctx), *decision, true);
        },
        [this, decision, cb = std::move(cb)](Status st) {
          if (st.ok() && decision->queued_job && notify_outbox_) notify_outbox_();
          cb(Conclude(st, *decision));
        });
  });
}

void UsersService::Delete(const auth::Claims& caller, const Json& payload, OpCallback cb) {
  auto parsed = ParseDeletePayload(payload);
  if (!parsed.ok()) return cb(OpResult::Invalid(parsed.status().message()));
  std::string target = std::move(*parsed);
  auto claims = SessionOf(caller);
  ResolveCaller(caller, [this, target, claims = std::move(claims), cb = std::move(cb)](Result<UserRecord> me,
                                                                                     OpResult err) mutable {
    if (!me.ok()) return cb(std::move(err));
    Actor actor{me->id, claims.org_id, ActsAsOrgAdmin(options_, claims), claims.role};
    if (target != actor.user_id && !actor.org_admin)
      return cb(OpResult::Unauthorized("you may only delete your own user"));
    auto decision = std::make_shared<Decision>();
    MutationContext ctx{clock_.NowMs(), options_.sync.get()};
    writer_->Submit(
        [target, actor = std::move(actor), decision, ctx, sync = options_.sync](WriteTxn& t) -> Status {
          decision->Reset();
          return Record(SoftDelete(t, actor, target, ctx), *decision, false);
        },
        [this, decision, cb = std::move(cb)](Status st) {
          if (st.ok() && decision->queued_job && notify_outbox_) notify_outbox_();
          cb(Conclude(st, *decision));
        });
  });
}

void UsersService::FinalizeOnboarding(const auth::Claims& caller, OpCallback cb) {
  ResolveCaller(caller, [this, cb](Result<UserRecord> me, OpResult err) {
    if (!me.ok()) return cb(std::move(err));
    auto decision = std::make_shared<Decision>();
    MutationContext ctx{clock_.NowMs(), options_.sync.get()};
    std::string id = me->id;
    writer_->Submit(
        [id, decision, ctx, sync = options_.sync](WriteTxn& t) -> Status {
          decision->Reset();
          return Record(FinishOnboarding(t, id, ctx), *decision, true);
        },
        [this, decision, cb](Status st) {
          if (st.ok() && decision->queued_job && notify_outbox_) notify_outbox_();
          cb(Conclude(st, *decision));
        });
  });
}

void UsersService::ResetAvatar(const auth::Claims& caller, OpCallback cb) {
  ResolveCaller(caller, [this, cb](Result<UserRecord> me, OpResult err) {
    if (!me.ok()) return cb(std::move(err));
    std::string id = me->id;
    // `live` is the picture WorkOS just gave (inner nullopt = none); nullopt
    // means WorkOS could not be asked and the stored fallback applies.
    auto apply = [this, id, cb](std::optional<std::optional<std::string>> live) {
      auto decision = std::make_shared<Decision>();
      MutationContext ctx{clock_.NowMs(), options_.sync.get()};
      writer_->Submit(
          [id, live, decision, ctx, sync = options_.sync](WriteTxn& t) -> Status {
            decision->Reset();
            return Record(domain::ResetAvatar(t, id, live, ctx), *decision, true);
          },
          [this, decision, cb](Status st) {
            if (st.ok() && decision->queued_job && notify_outbox_) notify_outbox_();
            cb(Conclude(st, *decision));
          });
    };
    auto deleted = [this, cb](std::string workos_id) {
      MutationContext ctx{clock_.NowMs(), options_.sync.get()};
      writer_->Submit([workos_id, ctx, sync = options_.sync](
                          WriteTxn& t) -> Status { return ApplyRemoteDelete(t, workos_id, ctx).status(); },
                      [cb](Status st) {
                        if (!st.ok()) return cb(OpResult::Internal(st.message()));
                        cb(OpResult::Unauthorized("user has been deleted"));
                      });
    };
    if (!workos_ || !workos_->Configured() || workos_->Offline()) return apply(std::nullopt);
    // A picture WorkOS showed a moment ago is the answer it would give now,
    // unless WorkOS has shown another one since (an event updated the
    // record's last-seen picture).
    if (auto recent = RecentPicture(me->workos_id);
        recent &&
        recent->value_or(std::string()) == NormalizePictureUrl(me->profile_picture_url).value_or(std::string()))
      return apply(std::optional<std::optional<std::string>>(std::move(*recent)));
    workos_->GetUser(me->workos_id,
                     [this, apply, deleted, cb, workos_id = me->workos_id](WorkosProfileSource::GetResult r) {
                       switch (r.outcome) {
                         case WorkosProfileSource::Outcome::kOk: {
                           auto url = NormalizePictureUrl(r.profile.profile_picture_url);
                           RememberPicture(workos_id, url);
                           apply(std::optional<std::optional<std::string>>(std::move(url)));
                           return;
                         }
                         case WorkosProfileSource::Outcome::kUnreachable: apply(std::nullopt); return;
                         case WorkosProfileSource::Outcome::kNotFound:
                           // WorkOS deleted the user (another host did, and this
                           // host's feed has not shown it yet): deleted here too,
                           // and the token is refused as it will be on every host
                           // (SPEC 4b).
                           deleted(workos_id);
                           return;
                         case WorkosProfileSource::Outcome::kBusy: cb(OpResult::Internal(r.error)); return;
                         case WorkosProfileSource::Outcome::kError:
                           cb(OpResult::Internal("WorkOS refused the profile request: " + r.error));
                           return;
                       }
                     });
  });
}

}  // namespace usersd::domain
