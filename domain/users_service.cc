#include "domain/users_service.h"

#include <sys/random.h>

#include <cstdio>

#include "common/log.h"
#include "domain/remote_user.h"
#include "domain/validate.h"

namespace usersd::domain {

using store::ChangeOp;
using store::JobOp;
using store::OutboxJob;
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

bool IsAdminRole(const std::string& role) { return role == "owner" || role == "admin"; }

// An org admin may manage other users at all (their organization is checked
// later, on the stored target).
bool ActsAsOrgAdmin(const ServiceOptions& o, const auth::Claims& caller) {
  return o.org_admins_manage_members && IsAdminRole(caller.role) && caller.org_id.has_value();
}

// The answer for a target the caller may not manage or that is gone; nullopt
// when the operation may go on. Policy comes before existence, so an id of
// another organization is refused the same way whether it exists or not.
std::optional<OpResult> CheckTarget(bool self, const auth::Claims& caller, const std::optional<UserRecord>& target,
                                    const std::string& id) {
  if (!self && (!target || target->organization_id != caller.org_id))
    return OpResult::Unauthorized("you may not manage this user");
  if (!target || !target->live()) return OpResult::NotFound(id);
  return std::nullopt;
}

// A new outbox job for `u` created by the change with u.txid.
OutboxJob NewJob(const UserRecord& u, JobOp op, int64_t now_ms) {
  OutboxJob job;
  job.user_id = u.id;
  job.workos_id = u.workos_id;
  job.op = op;
  job.txid = u.txid;
  job.created_at_ms = now_ms;
  job.next_attempt_at_ms = now_ms;
  return job;
}

}  // namespace

std::string NewUuid() {
  unsigned char b[16];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = getrandom(b + got, sizeof b - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  char out[37];
  snprintf(out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
           b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return out;
}

UsersService::UsersService(store::Store* store, store::Writer* writer, WorkosProfileSource* workos, const Clock& clock,
                           ServiceOptions options)
    : store_(store), writer_(writer), workos_(workos), clock_(clock), options_(options) {}

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
    return cb(std::move(*found), OpResult::Ok(nullptr));
  }
  if (!options_.jit_provisioning)
    return cb(Status::Unauthorized("unknown"), OpResult::Unauthorized("user is not provisioned on this host"));
  if (workos_ && workos_->Configured() && !workos_->Offline()) {
    auto claims = caller;
    workos_->GetUser(caller.sub, [this, claims, cb](WorkosProfileSource::GetResult r) {
      switch (r.outcome) {
        case WorkosProfileSource::Outcome::kOk:
          Provision(claims, r.profile, true, cb);
          return;
        case WorkosProfileSource::Outcome::kNotFound:
          cb(Status::Unauthorized("no such WorkOS user"),
             OpResult::Unauthorized("token subject is not a WorkOS user"));
          return;
        default:
          // WorkOS did not answer usefully: provision from the token and
          // fill the profile in later.
          LogInfo("provisioning without WorkOS profile", {{"reason", r.error}});
          Provision(claims, std::nullopt, false, cb);
          return;
      }
    });
    return;
  }
  Provision(caller, std::nullopt, false, cb);
}

void UsersService::Provision(const auth::Claims& caller, std::optional<WorkosProfileSource::Profile> profile, bool fetched,
                             std::function<void(Result<UserRecord>, OpResult)> cb) {
  auto decision = std::make_shared<Decision>();
  auto created = std::make_shared<std::optional<UserRecord>>();
  int64_t now = clock_.NowMs();
  std::string new_id = NewUuid();
  writer_->Submit(
      [caller, profile, fetched, decision, created, now, new_id](WriteTxn& t) -> Status {
        decision->Reset();
        // Another request may have provisioned the same user meanwhile.
        auto existing = t.FindByWorkosId(caller.sub);
        if (!existing.ok()) return existing.status();
        if (existing->has_value()) {
          *created = **existing;
          return Status::Ok();
        }
        UserRecord u;
        u.id = new_id;
        u.workos_id = caller.sub;
        u.organization_id = caller.org_id;
        // Only the three roles of SPEC section 1 are stored.
        u.role = IsAdminRole(caller.role) ? caller.role : "member";
        u.created_at_ms = now;
        if (profile) {
          u.email = profile->email;
          u.first_name = profile->first_name;
          u.last_name = profile->last_name;
          u.avatar_url = NormalizePictureUrl(profile->profile_picture_url);
          // createdAt is WorkOS's, so every host shows the same (SPEC 4b).
          if (profile->created_at_ms) u.created_at_ms = *profile->created_at_ms;
          u.workos_updated_at_ms = profile->updated_at_ms;
          // "" records "WorkOS has no picture", as opposed to never asked.
          u.profile_picture_url = u.avatar_url ? *u.avatar_url : std::string();
        }
        u.profile_pending = !fetched;
        if (!u.email.empty()) {
          auto holder = t.FindByEmail(u.email);
          if (!holder.ok()) return holder.status();
          if (holder->has_value()) {
            LogWarn("provisioned user's email is held by another local user; left empty",
                    {{"user", u.id}, {"other", (*holder)->id}});
            u.email.clear();
          }
        }
        USERSD_RETURN_IF_ERROR(store::CommitUserChange(t, u, std::nullopt, ChangeOp::kUpsert, now));
        if (!fetched) {
          auto id = t.EnqueueJob(NewJob(u, JobOp::kFetch, now));
          if (!id.ok()) return id.status();
          decision->queued_job = true;
        }
        decision->created_new = true;
        *created = u;
        return Status::Ok();
      },
      [this, decision, created, cb](Status st) {
        if (!st.ok() || !created->has_value()) {
          OpResult r = Conclude(st, *decision);
          return cb(st.ok() ? Status::Internal("provisioning produced no user") : st, r);
        }
        if (!(*created)->live()) return cb(Status::Unauthorized("deleted"), OpResult::Unauthorized("user has been deleted"));
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

void UsersService::Update(const auth::Claims& caller, const Json& payload, OpCallback cb) {
  auto parsed = ParseUpdatePayload(payload);
  if (!parsed.ok()) return cb(OpResult::Invalid(parsed.status().message()));
  auto patch = std::make_shared<UserPatch>(std::move(*parsed));
  auto claims = SessionOf(caller);
  ResolveCaller(caller, [this, patch, claims = std::move(claims), cb = std::move(cb)](Result<UserRecord> me,
                                                                                    OpResult err) mutable {
    if (!me.ok()) return cb(std::move(err));
    bool self = patch->id == me->id;
    bool org_admin = ActsAsOrgAdmin(options_, claims);
    // Policy before existence: an id one may not manage is refused without
    // looking it up.
    if (!self && !org_admin) return cb(OpResult::Unauthorized("you may only update your own user"));
    auto decision = std::make_shared<Decision>();
    int64_t now = clock_.NowMs();
    writer_->Submit(
        [patch, claims = std::move(claims), self, decision, now](WriteTxn& t) -> Status {
          decision->Reset();
          auto cur = t.GetUser(patch->id);
          if (!cur.ok()) return cur.status();
          const std::optional<UserRecord>& before = *cur;
          if (auto refusal = CheckTarget(self, claims, before, patch->id)) return Refuse(decision.get(), *refusal);
          UserRecord after = *before;
          if (patch->first_name) after.first_name = *patch->first_name;
          if (patch->last_name) after.last_name = *patch->last_name;
          if (patch->email) after.email = *patch->email;
          if (patch->avatar_url) after.avatar_url = *patch->avatar_url;
          if (patch->timezone) after.timezone = *patch->timezone;
          if (patch->settings) after.settings = *patch->settings;
          after.updated_at_ms = now;
          USERSD_RETURN_IF_ERROR(store::CommitUserChange(t, after, before, ChangeOp::kUpsert, now));
          // Only WorkOS-owned fields that really changed go to WorkOS.
          Json fields = Json::object();
          if (after.first_name != before->first_name) fields["first_name"] = after.first_name;
          if (after.last_name != before->last_name) fields["last_name"] = after.last_name;
          if (after.email != before->email) fields["email"] = after.email;
          if (!fields.empty()) {
            OutboxJob job = NewJob(after, JobOp::kUpdate, now);
            job.fields = std::move(fields);
            auto id = t.EnqueueJob(std::move(job));
            if (!id.ok()) return id.status();
            decision->queued_job = true;
          }
          decision->result = MutationResult(after);
          return Status::Ok();
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
  auto claims = caller;
  ResolveCaller(caller, [this, target, claims = std::move(claims), cb = std::move(cb)](Result<UserRecord> me,
                                                                                     OpResult err) mutable {
    if (!me.ok()) return cb(std::move(err));
    bool self = target == me->id;
    bool org_admin = ActsAsOrgAdmin(options_, claims);
    if (!self && !org_admin) return cb(OpResult::Unauthorized("you may only delete your own user"));
    auto decision = std::make_shared<Decision>();
    int64_t now = clock_.NowMs();
    writer_->Submit(
        [target, claims, self, decision, now](WriteTxn& t) -> Status {
          decision->Reset();
          auto cur = t.GetUser(target);
          if (!cur.ok()) return cur.status();
          const std::optional<UserRecord>& before = *cur;
          if (auto refusal = CheckTarget(self, claims, before, target)) return Refuse(decision.get(), *refusal);
          UserRecord after = *before;
          after.deleted_at_ms = now;
          after.updated_at_ms = now;
          USERSD_RETURN_IF_ERROR(store::CommitUserChange(t, after, before, ChangeOp::kDelete, now));
          auto id = t.EnqueueJob(NewJob(after, JobOp::kDelete, now));
          if (!id.ok()) return id.status();
          decision->queued_job = true;
          decision->result = OpResult::Ok(Json{{"transactionId", after.txid}});
          return Status::Ok();
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
    int64_t now = clock_.NowMs();
    std::string id = me->id;
    writer_->Submit(
        [id, decision, now](WriteTxn& t) -> Status {
          decision->Reset();
          auto cur = t.GetUser(id);
          if (!cur.ok()) return cur.status();
          if (!cur->has_value() || !(*cur)->live())
            return Refuse(decision.get(), OpResult::Unauthorized("user has been deleted"));
          UserRecord after = **cur;
          after.is_onboarded = true;
          after.updated_at_ms = now;
          USERSD_RETURN_IF_ERROR(store::CommitUserChange(t, after, *cur, ChangeOp::kUpsert, now));
          decision->result = MutationResult(after);
          return Status::Ok();
        },
        [decision, cb](Status st) { cb(Conclude(st, *decision)); });
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
      int64_t now = clock_.NowMs();
      writer_->Submit(
          [id, live, decision, now](WriteTxn& t) -> Status {
            decision->Reset();
            auto cur = t.GetUser(id);
            if (!cur.ok()) return cur.status();
            if (!cur->has_value() || !(*cur)->live())
              return Refuse(decision.get(), OpResult::Unauthorized("user has been deleted"));
            UserRecord after = **cur;
            if (live) {
              after.avatar_url = *live;
              after.profile_picture_url = *live ? **live : std::string();
            } else if (!after.profile_picture_url) {
              return Refuse(decision.get(),
                              OpResult::Internal("WorkOS is unreachable and no profile picture is known for this user"));
            } else {
              after.avatar_url = NormalizePictureUrl(after.profile_picture_url);
            }
            after.updated_at_ms = now;
            USERSD_RETURN_IF_ERROR(store::CommitUserChange(t, after, *cur, ChangeOp::kUpsert, now));
            decision->result = MutationResult(after);
            return Status::Ok();
          },
          [decision, cb](Status st) { cb(Conclude(st, *decision)); });
    };
    if (!workos_ || !workos_->Configured() || workos_->Offline()) return apply(std::nullopt);
    workos_->GetUser(me->workos_id, [apply, cb](WorkosProfileSource::GetResult r) {
      switch (r.outcome) {
        case WorkosProfileSource::Outcome::kOk:
          apply(std::optional<std::optional<std::string>>(NormalizePictureUrl(r.profile.profile_picture_url)));
          return;
        case WorkosProfileSource::Outcome::kUnreachable:
          apply(std::nullopt);
          return;
        case WorkosProfileSource::Outcome::kNotFound:
          cb(OpResult::Internal("WorkOS does not know this user"));
          return;
        case WorkosProfileSource::Outcome::kError:
          cb(OpResult::Internal("WorkOS refused the profile request: " + r.error));
          return;
      }
    });
  });
}

}  // namespace usersd::domain
