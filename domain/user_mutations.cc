#include "domain/user_mutations.h"

#include "common/log.h"
#include "common/text.h"
#include "domain/user_json.h"

namespace usersd::domain {

using store::ChangeOp;
using store::JobOp;
using store::OutboxJob;
using store::UserRecord;
using store::WriteTxn;

const char* RemoteOutcomeName(RemoteOutcome o) {
  switch (o) {
    case RemoteOutcome::kCreated: return "created";
    case RemoteOutcome::kUpdated: return "updated";
    case RemoteOutcome::kUnchanged: return "unchanged";
    case RemoteOutcome::kStale: return "stale";
    case RemoteOutcome::kDeleted: return "deleted";
  }
  return "unchanged";
}

namespace {

constexpr std::string_view kEmailWaitPrefix = "email_wait:";
constexpr std::string_view kResyncPrefix = "resync:";

Mutation Refused(OpResult r) {
  Mutation m;
  m.kind = Mutation::Kind::kRefused;
  m.refusal = std::move(r);
  return m;
}

Mutation Done(UserRecord u, Mutation::Kind kind = Mutation::Kind::kCommitted) {
  Mutation m;
  m.kind = kind;
  m.user = std::move(u);
  return m;
}

bool IsAdminRole(const std::string& role) {
  return role == "owner" || role == "admin";
}

// Owners outrank admins, who outrank members.
int RoleRank(const std::string& role) {
  return role == "owner" ? 2 : role == "admin" ? 1 : 0;
}

// The answer for a target the actor may not manage or that is gone; nullopt
// when the operation may go on. Policy comes before existence, so an id of
// another organization is refused the same way whether it exists or not.
// An org admin manages only users of its organization (as their latest
// tokens show it) whose role ranks below its own: an owner manages admins
// and members, an admin members only; nobody another owner. No one changes
// another user's email (`new_email`, when the patch sets one): a password
// reset sent to the new address would take the account over (docs/API.md).
std::optional<OpResult> CheckTarget(const Actor& actor, const std::optional<UserRecord>& target, const std::string& id,
                                    const std::optional<std::string>* new_email = nullptr) {
  bool self = id == actor.user_id;
  if (!self && (!actor.org_admin || !target || target->organization_id != actor.org_id ||
                RoleRank(target->role) >= RoleRank(actor.role)))
    return OpResult::Unauthorized("you may not manage this user");
  if (!target || !target->live()) return OpResult::NotFound(id);
  if (!self && new_email && new_email->has_value() && **new_email != target->email)
    return OpResult::Unauthorized("only the user itself may change its email");
  return std::nullopt;
}

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

// The fields of `after` that WorkOS should learn: WorkOS-owned ones that
// differ from `before` and, with sharing on, shared ones (document values).
Json ChangedFields(const std::optional<UserRecord>& before, const UserRecord& after, const SyncPolicy& sync) {
  Json fields = Json::object();
  if (!before || after.first_name != before->first_name) fields["first_name"] = after.first_name;
  if (!before || after.last_name != before->last_name) fields["last_name"] = after.last_name;
  if (!before || after.email != before->email) fields["email"] = after.email;
  if (sync.metadata.enabled) {
    for (auto name : kSharedFields) {
      Json v = SharedFieldValue(after, name);
      if (!before || v != SharedFieldValue(*before, name)) fields[std::string(name)] = std::move(v);
    }
  }
  return fields;
}

Status Enqueue(WriteTxn& t, const UserRecord& u, JobOp op, Json fields, const MutationContext& c, Mutation* m) {
  OutboxJob job = NewJob(u, op, c.now_ms);
  job.fields = std::move(fields);
  auto id = t.EnqueueJob(std::move(job));
  if (!id.ok()) return id.status();
  if (m) m->queued_job = true;
  return Status::Ok();
}

Status EnqueueUpdate(WriteTxn& t, const UserRecord& u, Json fields, const MutationContext& c, Mutation* m) {
  if (fields.empty()) return Status::Ok();
  return Enqueue(t, u, JobOp::kUpdate, std::move(fields), c, m);
}

// A job that publishes u's id as WorkOS's external_id (set only if empty).
Status EnqueuePublishId(WriteTxn& t, const UserRecord& u, const MutationContext& c, Mutation* m) {
  return Enqueue(t, u, JobOp::kUpdate, Json{{"external_id", u.id}}, c, m);
}

// Whether `email` may go to user `self`: no other live local user holds it.
// When it may not, `self` waits for it (given by Commit when released).
Result<bool> ClaimEmail(WriteTxn& t, const std::string& email, const std::string& self, const std::string& workos_id) {
  auto holder = t.FindByEmail(email);
  if (!holder.ok()) return holder.status();
  if (holder->has_value() && (*holder)->id != self) {
    LogWarn("WorkOS email is held by another local user; left as it is until that user releases it",
            {{"workos_id", workos_id}, {"other", (*holder)->id}});
    USERSD_RETURN_IF_ERROR(t.PutMeta(std::string(kEmailWaitPrefix) + ToLowerAscii(email), self));
    return false;
  }
  return true;
}

Status Commit(WriteTxn& t, UserRecord& after, const std::optional<UserRecord>& before, ChangeOp op,
              const MutationContext& c);

// `before` released an email (changed it or was deleted): a user waiting
// for it with an empty email gets it.
Status GiveReleasedEmail(WriteTxn& t, const std::string& email, const MutationContext& c) {
  std::string key = std::string(kEmailWaitPrefix) + ToLowerAscii(email);
  auto waiter = t.GetMeta(key);
  if (!waiter.ok()) return waiter.status();
  if (!waiter->has_value()) return Status::Ok();
  USERSD_RETURN_IF_ERROR(t.DeleteMeta(key));
  auto holder = t.FindByEmail(email);
  if (!holder.ok()) return holder.status();
  if (holder->has_value()) return Status::Ok();  // taken again in this transaction
  auto w = t.GetUser(**waiter);
  if (!w.ok()) return w.status();
  if (!w->has_value() || !(*w)->live() || !(*w)->email.empty()) return Status::Ok();
  UserRecord after = **w;
  after.email = email;
  after.updated_at_ms = c.now_ms;
  LogInfo("user got the WorkOS email another local user released", {{"user", after.id}});
  return Commit(t, after, *w, ChangeOp::kUpsert, c);
}

// How every change commits: the record and its change-feed entry, then the
// email it released goes to whoever waits for it.
Status Commit(WriteTxn& t, UserRecord& after, const std::optional<UserRecord>& before, ChangeOp op,
              const MutationContext& c) {
  USERSD_RETURN_IF_ERROR(store::CommitUserChange(t, after, before, op, c.now_ms));
  if (before && before->live() && !before->email.empty() &&
      (!after.live() || ToLowerAscii(after.email) != ToLowerAscii(before->email)))
    return GiveReleasedEmail(t, before->email, c);
  return Status::Ok();
}

// How an operation on a live user ends: the change commits and its job
// (what WorkOS should learn, if anything) is queued.
Result<Mutation> CommitUpdate(WriteTxn& t, UserRecord after, const std::optional<UserRecord>& before,
                              const MutationContext& c) {
  Mutation out;
  USERSD_RETURN_IF_ERROR(Commit(t, after, before, ChangeOp::kUpsert, c));
  USERSD_RETURN_IF_ERROR(EnqueueUpdate(t, after, ChangedFields(before, after, *c.sync), c, &out));
  out.kind = Mutation::Kind::kCommitted;
  out.user = std::move(after);
  return out;
}

// A free id for a new user of `workos_id`: the identity rule's, unless a
// user of another WorkOS id holds it (an imported id); then a random one.
Result<std::string> FreeIdFor(WriteTxn& t, const std::string& workos_id, const std::optional<std::string>& external_id,
                              const MutationContext& c) {
  std::string id = IdForWorkosUser(c.sync->identity_namespace, workos_id, external_id);
  auto taken = t.GetUser(id);
  if (!taken.ok()) return taken.status();
  if (!taken->has_value()) return id;
  std::string fallback = UuidV5(c.sync->identity_namespace, workos_id);
  if (fallback != id) {
    auto again = t.GetUser(fallback);
    if (!again.ok()) return again.status();
    if (!again->has_value()) return fallback;
  }
  LogWarn("the shared id of a WorkOS user belongs to another local user; this host gives it a random id",
          {{"workos_id", workos_id}, {"id", id}});
  return NewUuid();
}

// Stores a merge's proposed email when no other user holds it.
Status SettleEmail(WriteTxn& t, MergeResult& r) {
  if (!r.wanted_email) return Status::Ok();
  auto free = ClaimEmail(t, *r.wanted_email, r.after.id, r.after.workos_id);
  if (!free.ok()) return free.status();
  if (*free) r.after.email = *r.wanted_email;
  return Status::Ok();
}

// The id WorkOS's external_id asks this user to move to, if any.
std::optional<std::string> RekeyTarget(const UserRecord& u) {
  if (u.id_from_import) return std::nullopt;
  auto id = IdFromExternalId(u.external_id);
  if (!id || *id == u.id) return std::nullopt;
  return id;
}

HeldFields HeldBy(const std::vector<OutboxJob>& jobs) {
  HeldFields held;
  for (const auto& j : jobs) {
    if (j.op != JobOp::kUpdate || !j.fields.is_object()) continue;
    for (auto it = j.fields.begin(); it != j.fields.end(); ++it) held.insert(it.key());
  }
  return held;
}

Result<RemoteOutcome> ApplyMerge(WriteTxn& t, const Profile& p, const UserRecord& before, MergeMode mode,
                                 const MutationContext& c) {
  auto jobs = t.JobsOfUser(before.id);
  if (!jobs.ok()) return jobs.status();
  HeldFields held = HeldBy(*jobs);
  MergeResult r = MergeProfile(before, p, held, mode, c.sync->metadata);
  if (!held.empty() && mode == MergeMode::kFeed) {
    // WorkOS shows another value for a field this host still has to
    // deliver. The job may already be delivered (its row not yet deleted),
    // and another host's write may have come after it: the user is marked,
    // and read again once this host's jobs are through (QueueResyncIfMarked),
    // so the last write to WorkOS wins here too (SPEC 4b).
    MergeResult unheld = MergeProfile(before, p, {}, mode, c.sync->metadata);
    if (VisiblyDiffers(unheld.after, r.after) || unheld.wanted_email != r.wanted_email)
      USERSD_RETURN_IF_ERROR(t.PutMeta(std::string(kResyncPrefix) + before.id, "1"));
  }
  USERSD_RETURN_IF_ERROR(SettleEmail(t, r));
  UserRecord& after = r.after;
  if (!VisiblyDiffers(after, before)) return RemoteOutcome::kUnchanged;
  // updatedAt says when this host last changed what an application sees.
  UserRecord seen = after;
  seen.external_id = before.external_id;
  seen.id_from_import = before.id_from_import;
  if (VisiblyDiffers(seen, before)) after.updated_at_ms = c.now_ms;
  USERSD_RETURN_IF_ERROR(Commit(t, after, before, ChangeOp::kUpsert, c));
  if (auto target = RekeyTarget(after)) USERSD_RETURN_IF_ERROR(RekeyUser(t, after, *target, c));
  return RemoteOutcome::kUpdated;
}

}  // namespace

Result<bool> QueueResyncIfMarked(WriteTxn& t, const std::string& user_id, const MutationContext& c) {
  std::string key = std::string(kResyncPrefix) + user_id;
  auto mark = t.GetMeta(key);
  if (!mark.ok()) return mark.status();
  if (!mark->has_value()) return false;
  auto jobs = t.JobsOfUser(user_id);
  if (!jobs.ok()) return jobs.status();
  if (!HeldBy(*jobs).empty()) return false;  // not through yet: the last delivery queues it
  USERSD_RETURN_IF_ERROR(t.DeleteMeta(key));
  auto u = t.GetUser(user_id);
  if (!u.ok()) return u.status();
  if (!u->has_value() || !(*u)->live()) return false;
  USERSD_RETURN_IF_ERROR(Enqueue(t, **u, JobOp::kFetch, Json{{"resync", true}}, c, nullptr));
  return true;
}

void RefreshJobFields(const UserRecord& u, Json* fields) {
  if (!fields->is_object()) return;
  for (auto& [k, v] : fields->items()) {
    if (k == "first_name") v = u.first_name;
    else if (k == "last_name") v = u.last_name;
    else if (k == "email") v = u.email;
    else if (IsSharedField(k)) v = SharedFieldValue(u, k);
  }
}

Result<HeldFields> PendingFields(store::ReadTxn& t, std::string_view user_id) {
  auto jobs = t.JobsOfUser(user_id);
  if (!jobs.ok()) return jobs.status();
  return HeldBy(*jobs);
}

// ------------------------------------------------------------ operations

Result<Mutation> ProvisionUser(WriteTxn& t, const ProvisionRequest& r, const MutationContext& c) {
  // Another request may have provisioned the same user meanwhile.
  auto existing = t.FindByWorkosId(r.workos_id);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) return Done(**existing, Mutation::Kind::kUnchanged);

  auto id = FreeIdFor(t, r.workos_id, r.profile ? r.profile->external_id : std::nullopt, c);
  if (!id.ok()) return id.status();
  MergeResult m;
  if (r.profile) {
    m = NewFromProfile(*id, *r.profile, c.now_ms, c.sync->metadata);
  } else {
    m.after.id = *id;
    m.after.workos_id = r.workos_id;
    m.after.created_at_ms = c.now_ms;
    m.after.profile_pending = true;
  }
  UserRecord& u = m.after;
  u.workos_id = r.workos_id;  // the token's subject, whatever the profile says
  u.organization_id = r.org_id;
  // Only the three roles of SPEC section 1 are stored.
  u.role = IsAdminRole(r.role) ? r.role : "member";
  USERSD_RETURN_IF_ERROR(SettleEmail(t, m));
  Mutation out;
  USERSD_RETURN_IF_ERROR(Commit(t, u, std::nullopt, ChangeOp::kUpsert, c));
  if (!r.profile) {
    USERSD_RETURN_IF_ERROR(Enqueue(t, u, JobOp::kFetch, Json::object(), c, &out));
  } else if (!r.profile->external_id) {
    USERSD_RETURN_IF_ERROR(EnqueuePublishId(t, u, c, &out));
  }
  out.kind = Mutation::Kind::kCommitted;
  out.created = true;
  out.user = u;
  return out;
}

Result<Mutation> ApplyPatch(WriteTxn& t, const Actor& actor, const UserPatch& patch, const MutationContext& c) {
  auto cur = t.GetUser(patch.id);
  if (!cur.ok()) return cur.status();
  const std::optional<UserRecord>& before = *cur;
  if (auto refusal = CheckTarget(actor, before, patch.id, &patch.email)) return Refused(std::move(*refusal));
  UserRecord after = *before;
  std::string_view last = "settings";
  if (patch.first_name) after.first_name = *patch.first_name;
  if (patch.last_name) after.last_name = *patch.last_name;
  if (patch.email) after.email = *patch.email;
  if (patch.avatar_url) after.avatar_url = *patch.avatar_url, last = "avatarUrl";
  if (patch.timezone) after.timezone = *patch.timezone, last = "timezone";
  if (patch.settings) after.settings = *patch.settings, last = "settings";
  if (patch.settings || patch.timezone || patch.avatar_url) {
    Status fits = CheckDocumentFits(after, c.sync->metadata, last);
    if (!fits.ok()) return Refused(OpResult::Invalid(fits.message()));
  }
  after.updated_at_ms = c.now_ms;
  return CommitUpdate(t, std::move(after), before, c);
}

Result<Mutation> SoftDelete(WriteTxn& t, const Actor& actor, const std::string& id, const MutationContext& c) {
  auto cur = t.GetUser(id);
  if (!cur.ok()) return cur.status();
  const std::optional<UserRecord>& before = *cur;
  if (auto refusal = CheckTarget(actor, before, id)) return Refused(std::move(*refusal));
  UserRecord after = *before;
  after.deleted_at_ms = c.now_ms;
  after.updated_at_ms = c.now_ms;
  Mutation out;
  USERSD_RETURN_IF_ERROR(Commit(t, after, before, ChangeOp::kDelete, c));
  USERSD_RETURN_IF_ERROR(Enqueue(t, after, JobOp::kDelete, Json::object(), c, &out));
  out.kind = Mutation::Kind::kCommitted;
  out.user = std::move(after);
  return out;
}

Result<Mutation> FinishOnboarding(WriteTxn& t, const std::string& id, const MutationContext& c) {
  auto cur = t.GetUser(id);
  if (!cur.ok()) return cur.status();
  if (!cur->has_value() || !(*cur)->live()) return Refused(OpResult::Unauthorized("user has been deleted"));
  UserRecord after = **cur;
  after.is_onboarded = true;
  after.updated_at_ms = c.now_ms;
  return CommitUpdate(t, std::move(after), *cur, c);
}

Result<Mutation> ResetAvatar(WriteTxn& t, const std::string& id, const std::optional<std::optional<std::string>>& live,
                             const MutationContext& c) {
  auto cur = t.GetUser(id);
  if (!cur.ok()) return cur.status();
  if (!cur->has_value() || !(*cur)->live()) return Refused(OpResult::Unauthorized("user has been deleted"));
  UserRecord after = **cur;
  if (live) {
    after.avatar_url = NormalizePictureUrl(*live);
    after.profile_picture_url = after.avatar_url.value_or(std::string());
  } else if (!after.profile_picture_url) {
    return Refused(OpResult::Internal("WorkOS is unreachable and no profile picture is known for this user"));
  } else {
    after.avatar_url = NormalizePictureUrl(after.profile_picture_url);
  }
  after.updated_at_ms = c.now_ms;
  return CommitUpdate(t, std::move(after), *cur, c);
}

// --------------------------------------------------- WorkOS's view

Result<RemoteOutcome> ApplyRemoteUser(WriteTxn& t, const Profile& p, const MutationContext& c) {
  auto existing = t.FindByWorkosId(p.workos_id);
  if (!existing.ok()) return existing.status();
  if (!existing->has_value()) {
    auto id = FreeIdFor(t, p.workos_id, p.external_id, c);
    if (!id.ok()) return id.status();
    MergeResult r = NewFromProfile(*id, p, c.now_ms, c.sync->metadata);
    USERSD_RETURN_IF_ERROR(SettleEmail(t, r));
    USERSD_RETURN_IF_ERROR(Commit(t, r.after, std::nullopt, ChangeOp::kUpsert, c));
    return RemoteOutcome::kCreated;
  }
  const UserRecord& before = **existing;
  if (!before.live()) return RemoteOutcome::kUnchanged;  // deleted here; the DELETE is on its way or done
  if (IsStale(before, p)) return RemoteOutcome::kStale;
  return ApplyMerge(t, p, before, MergeMode::kFeed, c);
}

Result<RemoteOutcome> ApplyRemoteDelete(WriteTxn& t, std::string_view workos_id, const MutationContext& c,
                                        const Profile* last) {
  auto existing = t.FindByWorkosId(workos_id);
  if (!existing.ok()) return existing.status();
  if (!existing->has_value()) return RemoteOutcome::kUnchanged;
  const UserRecord& before = **existing;
  UserRecord after = before;
  if (last && !IsStale(before, *last)) {
    MergeResult r = MergeProfile(before, *last, {}, MergeMode::kFeed, c.sync->metadata);
    // A deleted user holds no email in the index: it is taken as shown.
    if (r.wanted_email) r.after.email = *r.wanted_email;
    after = std::move(r.after);
  }
  bool was_live = before.live();
  if (was_live) after.deleted_at_ms = c.now_ms;
  if (!was_live && !VisiblyDiffers(after, before)) return RemoteOutcome::kUnchanged;
  after.updated_at_ms = c.now_ms;
  USERSD_RETURN_IF_ERROR(Commit(t, after, before, ChangeOp::kDelete, c));
  return was_live ? RemoteOutcome::kDeleted : RemoteOutcome::kUpdated;
}

Result<RemoteOutcome> ApplyFetchedProfile(WriteTxn& t, const Profile& p, bool resync, const MutationContext& c) {
  if (resync) return ApplyRemoteUser(t, p, c);
  auto cur = t.FindByWorkosId(p.workos_id);
  if (!cur.ok()) return cur.status();
  if (!cur->has_value() || !(*cur)->live()) return RemoteOutcome::kUnchanged;
  const UserRecord before = **cur;
  auto r = ApplyMerge(t, p, before, MergeMode::kFill, c);
  if (!r.ok()) return r;
  if (!p.external_id) {
    auto now = t.FindByWorkosId(p.workos_id);
    if (!now.ok()) return now.status();
    if (now->has_value()) USERSD_RETURN_IF_ERROR(EnqueuePublishId(t, **now, c, nullptr));
  }
  return r;
}

Status LearnExternalId(WriteTxn& t, std::string_view workos_id, const std::optional<std::string>& external_id,
                       const MutationContext& c) {
  auto cur = t.FindByWorkosId(workos_id);
  if (!cur.ok()) return cur.status();
  if (!cur->has_value()) return Status::Ok();
  const UserRecord& before = **cur;
  UserRecord after = before;
  after.external_id = external_id.value_or(std::string());
  // Bookkeeping, not a change an application sees: updatedAt stays.
  if (after.external_id != before.external_id) USERSD_RETURN_IF_ERROR(Commit(t, after, before, ChangeOp::kUpsert, c));
  if (auto target = RekeyTarget(after)) return RekeyUser(t, after, *target, c);
  return Status::Ok();
}

Status KeepImportedId(WriteTxn& t, std::string_view workos_id, const MutationContext& c) {
  auto cur = t.FindByWorkosId(workos_id);
  if (!cur.ok()) return cur.status();
  if (!cur->has_value() || (*cur)->id_from_import) return Status::Ok();
  UserRecord after = **cur;
  after.id_from_import = true;
  return Commit(t, after, *cur, ChangeOp::kUpsert, c);
}

Status RekeyUser(WriteTxn& t, const UserRecord& before, const std::string& new_id, const MutationContext& c) {
  auto taken = t.GetUser(new_id);
  if (!taken.ok()) return taken.status();
  if (taken->has_value()) {
    LogWarn("not re-keying: the id WorkOS carries belongs to another local user",
            {{"user", before.id}, {"external_id", new_id}, {"other", (*taken)->workos_id}});
    return Status::Ok();
  }
  LogInfo("re-keying a user to the id WorkOS carries",
          {{"from", before.id}, {"to", new_id}, {"workos_id", before.workos_id}});
  auto jobs = t.JobsOfUser(before.id);
  if (!jobs.ok()) return jobs.status();
  // The old id leaves the feed as a delete...
  auto txid = t.NextTxid();
  if (!txid.ok()) return txid.status();
  store::Change gone;
  gone.txid = *txid;
  gone.op = ChangeOp::kDelete;
  gone.user = before;
  gone.user.txid = *txid;
  if (!gone.user.deleted_at_ms) gone.user.deleted_at_ms = c.now_ms;
  gone.at_ms = c.now_ms;
  USERSD_RETURN_IF_ERROR(t.RemoveUser(before.id));
  USERSD_RETURN_IF_ERROR(t.AppendChange(gone));
  // ...and comes back under the new one, with its jobs.
  UserRecord after = before;
  after.id = new_id;
  after.updated_at_ms = c.now_ms;
  USERSD_RETURN_IF_ERROR(store::CommitUserChange(t, after, std::nullopt, ChangeOp::kUpsert, c.now_ms));
  for (auto& j : *jobs) {
    j.user_id = new_id;
    if (j.fields.is_object() && j.fields.contains("external_id") && !j.fields.contains("external_id_import"))
      j.fields["external_id"] = new_id;
    USERSD_RETURN_IF_ERROR(t.UpdateJob(j));
  }
  return Status::Ok();
}

// --------------------------------------------------------- admin

void CopyImportedFields(const UserImport& e, UserRecord* u) {
  if (e.email) u->email = *e.email;
  if (e.first_name) u->first_name = *e.first_name;
  if (e.last_name) u->last_name = *e.last_name;
  if (e.user_type) u->user_type = *e.user_type;
  if (e.role) u->role = *e.role;
  if (e.avatar_url) u->avatar_url = *e.avatar_url;
  if (e.timezone) u->timezone = *e.timezone;
  if (e.organization_id) u->organization_id = *e.organization_id;
  if (e.settings) u->settings = *e.settings;
  if (e.is_onboarded) u->is_onboarded = *e.is_onboarded;
  if (e.created_at_ms) u->created_at_ms = *e.created_at_ms;
  if (e.updated_at_ms) u->updated_at_ms = *e.updated_at_ms;
  if (e.deleted_at_ms) u->deleted_at_ms = *e.deleted_at_ms;
}

Result<Mutation> ImportUser(WriteTxn& t, const UserImport& e, size_t index, const MutationContext& c) {
  std::string at = "users[" + std::to_string(index) + "]";
  auto existing = t.FindByWorkosId(e.workos_id);
  if (!existing.ok()) return existing.status();
  std::optional<UserRecord> before = std::move(*existing);
  UserRecord after;
  if (before) {
    if (e.id && *e.id != before->id)
      return Status::InvalidArgument(at + ".id: workosId " + e.workos_id + " belongs to user " + before->id);
    after = *before;
    if (!e.updated_at_ms) after.updated_at_ms = c.now_ms;
  } else {
    if (e.id) {
      after.id = *e.id;
    } else {
      auto id = FreeIdFor(t, e.workos_id, std::nullopt, c);
      if (!id.ok()) return id.status();
      after.id = *id;
    }
    auto taken = t.GetUser(after.id);
    if (!taken.ok()) return taken.status();
    if (taken->has_value())
      return Status::InvalidArgument(at + ".id: " + after.id + " belongs to the user with workosId " +
                                     (*taken)->workos_id);
    after.workos_id = e.workos_id;
    after.created_at_ms = c.now_ms;
  }
  CopyImportedFields(e, &after);
  if (e.avatar_url || e.timezone || e.settings) {
    std::string_view last = e.settings ? "settings" : e.timezone ? "timezone" : "avatarUrl";
    Status fits = CheckDocumentFits(after, c.sync->metadata, last);
    if (!fits.ok()) return Status::InvalidArgument(at + "." + fits.message());
  }
  ChangeOp op = after.live() ? ChangeOp::kUpsert : ChangeOp::kDelete;
  Status st = Commit(t, after, before, op, c);
  if (st.code() == Code::kInvalidArgument) {
    std::string field = st.message().find("email") != std::string::npos ? ".email: " : ": ";
    return Status::InvalidArgument(at + field + st.message());
  }
  USERSD_RETURN_IF_ERROR(st);

  // What WorkOS should learn from the import (SPEC 4b).
  Mutation out;
  bool was_live = before && before->live();
  if (was_live && !after.live()) {
    USERSD_RETURN_IF_ERROR(Enqueue(t, after, JobOp::kDelete, Json::object(), c, &out));
  } else if (after.live()) {
    Json fields = Json::object();
    Json changed = ChangedFields(before, after, *c.sync);
    // Only what the entry carries: a new user's absent fields are defaults,
    // not values to give WorkOS.
    auto carried = [&](std::string_view name) {
      if (name == "first_name") return e.first_name.has_value();
      if (name == "last_name") return e.last_name.has_value();
      if (name == "email") return e.email.has_value() && !e.email->empty();
      if (name == "timezone") return e.timezone.has_value();
      if (name == "settings") return e.settings.has_value();
      if (name == "isOnboarded") return e.is_onboarded.has_value();
      if (name == "avatarUrl") return e.avatar_url.has_value();
      return false;
    };
    for (auto it = changed.begin(); it != changed.end(); ++it)
      if (carried(it.key())) fields[it.key()] = it.value();
    if (e.id && (!before || before->external_id != e.id)) {
      fields["external_id"] = *e.id;
      fields["external_id_import"] = true;
    } else if (!before) {
      fields["external_id"] = after.id;
    }
    USERSD_RETURN_IF_ERROR(EnqueueUpdate(t, after, std::move(fields), c, &out));
  }
  out.kind = Mutation::Kind::kCommitted;
  out.created = !before.has_value();
  out.user = std::move(after);
  return out;
}

Result<std::string> BackfillExternalIds(WriteTxn& t, const std::string& after_id, size_t limit,
                                        const MutationContext& c, size_t* queued) {
  auto users = t.ListUsers(after_id, limit);
  if (!users.ok()) return users.status();
  for (const auto& u : *users) {
    if (!u.live() || u.id_from_import || u.external_id == u.id) continue;
    // An application's own external_id is never changed; nothing to publish.
    if (u.external_id && !u.external_id->empty() && !IdFromExternalId(u.external_id)) continue;
    // The shared fields this host kept before they were shared go with it,
    // so other hosts learn them without waiting for a change.
    Json fields = ChangedFields(std::nullopt, u, *c.sync);
    fields.erase("first_name");
    fields.erase("last_name");
    fields.erase("email");
    fields["external_id"] = u.id;
    USERSD_RETURN_IF_ERROR(Enqueue(t, u, JobOp::kUpdate, std::move(fields), c, nullptr));
    if (queued) ++*queued;
  }
  if (users->size() < limit) return std::string();
  return users->back().id;
}

// ------------------------------------------- issue 21 (policy follows tokens)

Result<Mutation> RecordTokenClaims(WriteTxn& t, std::string_view workos_id, const std::optional<std::string>& org_id,
                                   const std::string& role, const MutationContext& c) {
  auto cur = t.FindByWorkosId(workos_id);
  if (!cur.ok()) return cur.status();
  if (!cur->has_value() || !(*cur)->live()) return Done(cur->value_or(UserRecord{}), Mutation::Kind::kUnchanged);
  const UserRecord& before = **cur;
  UserRecord after = before;
  after.organization_id = org_id;
  after.role = IsAdminRole(role) ? role : "member";
  if (after.organization_id == before.organization_id && after.role == before.role)
    return Done(before, Mutation::Kind::kUnchanged);
  LogInfo("user's organization or role follows its token", {{"user", before.id},
                                                            {"organization", after.organization_id.value_or("")},
                                                            {"role", after.role},
                                                            {"was_organization", before.organization_id.value_or("")},
                                                            {"was_role", before.role}});
  // Bookkeeping, not a change an application sees: updatedAt stays.
  USERSD_RETURN_IF_ERROR(Commit(t, after, before, ChangeOp::kUpsert, c));
  return Done(std::move(after));
}

}  // namespace usersd::domain
