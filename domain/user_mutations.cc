#include "domain/user_mutations.h"

#include "common/log.h"
#include "common/text.h"
#include "domain/user_json.h"
#include "domain/versions.h"

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

std::optional<size_t> OwnedFieldIndex(std::string_view name) {
  for (size_t i = 0; i < kOwnedFields.size(); ++i)
    if (kOwnedFields[i] == name) return i;
  return std::nullopt;
}

// An update job's fields that concern the shared document: "doc", or the
// field names jobs of earlier releases carried with their values.
bool CarriesDocument(const Json& fields) {
  if (!fields.is_object()) return false;
  if (fields.contains(std::string(kJobDocument))) return true;
  for (auto name : kSharedFields)
    if (fields.contains(std::string(name))) return true;
  return false;
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

// What WorkOS should learn of a local write from `before` to `after`: the
// WorkOS-owned fields that changed, with their values, and, with sharing
// on, "doc" when a shared field was written (its version moved).
Json ChangedFields(const std::optional<UserRecord>& before, const UserRecord& after, const SyncPolicy& sync) {
  Json fields = Json::object();
  if (!before || after.first_name != before->first_name) fields["first_name"] = after.first_name;
  if (!before || after.last_name != before->last_name) fields["last_name"] = after.last_name;
  if (!before || after.email != before->email) fields["email"] = after.email;
  if (sync.metadata.enabled && (!before || after.shared_versions != before->shared_versions))
    fields[std::string(kJobDocument)] = true;
  return fields;
}

// Gives the fields a local write set the write's version: the shared ones
// named in `shared` (whether or not the value changed: a later write wins
// even when it repeats a value), and the WorkOS-owned ones in `owned`.
// Returns the version.
Result<Version> StampWrite(WriteTxn& t, UserRecord& after, const std::vector<std::string_view>& shared,
                           const std::vector<std::string_view>& owned, const MutationContext& c) {
  auto v = NextVersion(t, c.now_ms);
  if (!v.ok()) return v.status();
  for (auto name : shared)
    if (auto i = SharedFieldIndex(name)) after.shared_versions[*i] = std::max(after.shared_versions[*i], *v);
  for (auto name : owned)
    if (auto i = OwnedFieldIndex(name)) after.owned_versions[*i] = *v;
  return *v;
}

Status Enqueue(WriteTxn& t, const UserRecord& u, JobOp op, Json fields, const MutationContext& c, Mutation* m) {
  OutboxJob job = NewJob(u, op, c.now_ms);
  job.fields = std::move(fields);
  auto id = t.EnqueueJob(std::move(job));
  if (!id.ok()) return id.status();
  if (m) m->queued_job = true;
  return Status::Ok();
}

// Queues an update: merged into the user's pending update job when there is
// one (SPEC 4b: the outbox keeps per user what still has to reach WorkOS, so
// writes between two sends cost one request), else a new job. `version`: the write's (zero for work no write made).
Status EnqueueUpdate(WriteTxn& t, const UserRecord& u, Json fields, const MutationContext& c, Mutation* m,
                     Version version = {}) {
  if (fields.empty()) return Status::Ok();
  auto jobs = t.JobsOfUser(u.id);
  if (!jobs.ok()) return jobs.status();
  // The last update job, unless a delete follows it; a re-read (fetch) in
  // between does not matter: the write only goes out sooner.
  OutboxJob* pending = nullptr;
  for (auto it = jobs->rbegin(); it != jobs->rend() && it->op != JobOp::kDelete; ++it) {
    if (it->op == JobOp::kUpdate && it->fields.is_object()) {
      pending = &*it;
      break;
    }
  }
  if (pending) {
    OutboxJob job = std::move(*pending);
    for (auto it = fields.begin(); it != fields.end(); ++it) job.fields[it.key()] = it.value();
    job.version = std::max(job.version, version);
    job.txid = std::max(job.txid, u.txid);
    USERSD_RETURN_IF_ERROR(t.UpdateJob(job));
    if (m) m->queued_job = true;
    return Status::Ok();
  }
  OutboxJob job = NewJob(u, JobOp::kUpdate, c.now_ms);
  job.fields = std::move(fields);
  job.version = version;
  auto id = t.EnqueueJob(std::move(job));
  if (!id.ok()) return id.status();
  if (m) m->queued_job = true;
  return Status::Ok();
}

// After WorkOS was read: when the record holds a shared value WorkOS has
// not got (a change a concurrent PUT erased, or one not yet sent), makes
// sure an update job publishes the document.
Status PublishIfBehind(WriteTxn& t, const UserRecord& u, const MutationContext& c) {
  if (!c.sync->metadata.enabled || !u.live() || !NeedsPublishing(u)) return Status::Ok();
  auto jobs = t.JobsOfUser(u.id);
  if (!jobs.ok()) return jobs.status();
  for (const auto& j : *jobs)
    if (j.op == JobOp::kUpdate && CarriesDocument(j.fields)) return Status::Ok();
  LogDebug("the record holds shared values WorkOS has not got; publishing", {{"user", u.id}});
  return EnqueueUpdate(t, u, Json{{std::string(kJobDocument), true}}, c, nullptr);
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
    USERSD_RETURN_IF_ERROR(t.PutMeta(std::string(kEmailWaitPrefix) + EmailKey(email), self));
    return false;
  }
  return true;
}

Status Commit(WriteTxn& t, UserRecord& after, const std::optional<UserRecord>& before, ChangeOp op,
              const MutationContext& c);

// `before` released an email (changed it or was deleted): a user waiting
// for it with an empty email gets it.
Status GiveReleasedEmail(WriteTxn& t, const std::string& email, const MutationContext& c) {
  std::string key = std::string(kEmailWaitPrefix) + EmailKey(email);
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
      (!after.live() || EmailKey(after.email) != EmailKey(before->email)))
    return GiveReleasedEmail(t, before->email, c);
  return Status::Ok();
}

// How an operation on a live user ends: the change commits and its job
// (what WorkOS should learn, if anything) is queued.
Result<Mutation> CommitUpdate(WriteTxn& t, UserRecord after, const std::optional<UserRecord>& before,
                              const MutationContext& c, Version version) {
  Mutation out;
  USERSD_RETURN_IF_ERROR(Commit(t, after, before, ChangeOp::kUpsert, c));
  USERSD_RETURN_IF_ERROR(EnqueueUpdate(t, after, ChangedFields(before, after, *c.sync), c, &out, version));
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

// The WorkOS-owned fields pending jobs still have to deliver. Shared
// fields are never held: their versions decide.
HeldFields HeldBy(const std::vector<OutboxJob>& jobs) {
  HeldFields held;
  for (const auto& j : jobs) {
    if (j.op != JobOp::kUpdate || !j.fields.is_object()) continue;
    for (auto it = j.fields.begin(); it != j.fields.end(); ++it)
      if (OwnedFieldIndex(it.key())) held.insert(it.key());
  }
  return held;
}

// Stores `after` over `before`: a change an application sees gets a
// transactionId and a change-feed entry (Commit, updatedAt set when
// `touch`); bookkeeping alone (versions, what WorkOS showed) is stored in
// place. Nothing when neither differs.
Status Save(WriteTxn& t, UserRecord& after, const UserRecord& before, bool touch, const MutationContext& c,
            bool* visible) {
  *visible = VisiblyDiffers(after, before);
  if (*visible) {
    if (touch) after.updated_at_ms = c.now_ms;
    return Commit(t, after, before, ChangeOp::kUpsert, c);
  }
  if (!BookkeepingDiffers(after, before)) return Status::Ok();
  after.txid = before.txid;
  after.updated_at_ms = before.updated_at_ms;
  return t.PutUser(after, before);
}

// `answer`: the profile is WorkOS's answer to this host's own PUT, so a held
// field it shows otherwise differs only because of a write made here since
// (sent next); nothing to read again.
Result<RemoteOutcome> ApplyMerge(WriteTxn& t, const Profile& p, const UserRecord& before, MergeMode mode,
                                 const MutationContext& c, bool answer = false, bool republish = true) {
  auto jobs = t.JobsOfUser(before.id);
  if (!jobs.ok()) return jobs.status();
  HeldFields held = HeldBy(*jobs);
  MergeResult r = MergeProfile(before, p, held, mode, c.sync->metadata);
  USERSD_RETURN_IF_ERROR(ObserveVersion(t, r.seen));
  if (!held.empty() && mode == MergeMode::kFeed && !answer) {
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
  // updatedAt says when this host last changed what an application sees
  // (not WorkOS's picture or external_id as such).
  bool visible = false;
  USERSD_RETURN_IF_ERROR(Save(t, after, before, ApplicationSeesChange(after, before), c, &visible));
  if (republish) USERSD_RETURN_IF_ERROR(PublishIfBehind(t, after, c));
  if (!visible) return RemoteOutcome::kUnchanged;
  if (auto target = RekeyTarget(after)) USERSD_RETURN_IF_ERROR(RekeyUser(t, after, *target, c));
  return RemoteOutcome::kUpdated;
}

// A stale state of a live or deleted user: only its document, by version.
Result<RemoteOutcome> ApplyStaleDocument(WriteTxn& t, const Profile& p, const UserRecord& before,
                                         const MutationContext& c) {
  MergeResult r = MergeStaleDocument(before, p, c.sync->metadata);
  USERSD_RETURN_IF_ERROR(ObserveVersion(t, r.seen));
  bool visible = false;
  USERSD_RETURN_IF_ERROR(Save(t, r.after, before, /*touch=*/true, c, &visible));
  USERSD_RETURN_IF_ERROR(PublishIfBehind(t, r.after, c));
  return visible ? RemoteOutcome::kUpdated : RemoteOutcome::kStale;
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
    USERSD_RETURN_IF_ERROR(ObserveVersion(t, m.seen));
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
  std::vector<std::string_view> shared, owned;
  if (patch.timezone) shared.push_back("timezone");
  if (patch.settings) shared.push_back("settings");
  if (patch.avatar_url) shared.push_back("avatarUrl");
  if (patch.first_name) owned.push_back("first_name");
  if (patch.last_name) owned.push_back("last_name");
  if (patch.email) owned.push_back("email");
  auto v = StampWrite(t, after, shared, owned, c);
  if (!v.ok()) return v.status();
  if (!shared.empty()) {
    Status fits = CheckDocumentFits(after, c.sync->metadata, last);
    if (!fits.ok()) return Refused(OpResult::Invalid(fits.message()));
  }
  after.updated_at_ms = c.now_ms;
  return CommitUpdate(t, std::move(after), before, c, *v);
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
  auto v = StampWrite(t, after, {"isOnboarded"}, {}, c);
  if (!v.ok()) return v.status();
  after.updated_at_ms = c.now_ms;
  return CommitUpdate(t, std::move(after), *cur, c, *v);
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
  auto v = StampWrite(t, after, {"avatarUrl"}, {}, c);
  if (!v.ok()) return v.status();
  after.updated_at_ms = c.now_ms;
  return CommitUpdate(t, std::move(after), *cur, c, *v);
}

// --------------------------------------------------- WorkOS's view

namespace {

// `republish` false: the profile is the answer to a publish whose document
// did not take; sending it again would only make another dead letter.
Result<RemoteOutcome> ApplyRemote(WriteTxn& t, const Profile& p, const MutationContext& c, bool answer,
                                  bool republish = true) {
  auto existing = t.FindByWorkosId(p.workos_id);
  if (!existing.ok()) return existing.status();
  if (!existing->has_value()) {
    auto id = FreeIdFor(t, p.workos_id, p.external_id, c);
    if (!id.ok()) return id.status();
    MergeResult r = NewFromProfile(*id, p, c.now_ms, c.sync->metadata);
    USERSD_RETURN_IF_ERROR(ObserveVersion(t, r.seen));
    USERSD_RETURN_IF_ERROR(SettleEmail(t, r));
    USERSD_RETURN_IF_ERROR(Commit(t, r.after, std::nullopt, ChangeOp::kUpsert, c));
    return RemoteOutcome::kCreated;
  }
  const UserRecord& before = **existing;
  if (!before.live()) return RemoteOutcome::kUnchanged;  // deleted here; the DELETE is on its way or done
  if (IsStale(before, p)) return ApplyStaleDocument(t, p, before, c);
  return ApplyMerge(t, p, before, MergeMode::kFeed, c, answer, republish);
}

}  // namespace

Result<RemoteOutcome> ApplyRemoteUser(WriteTxn& t, const Profile& p, const MutationContext& c) {
  return ApplyRemote(t, p, c, /*answer=*/false);
}

Result<RemoteOutcome> ApplyRemoteDelete(WriteTxn& t, std::string_view workos_id, const MutationContext& c,
                                        const Profile* last) {
  auto existing = t.FindByWorkosId(workos_id);
  if (!existing.ok()) return existing.status();
  if (!existing->has_value()) return RemoteOutcome::kUnchanged;
  const UserRecord& before = **existing;
  UserRecord after = before;
  if (last) {
    // Pending jobs of a user WorkOS deleted can no longer be delivered, so
    // nothing is held; the document merges by version even when stale.
    bool stale = IsStale(before, *last);
    // A value written here that WorkOS never got (the user was gone) cannot
    // reach it any more: every host shows the last state WorkOS had.
    MergeResult r = stale ? MergeStaleDocument(before, *last, c.sync->metadata)
                          : MergeProfile(before, *last, {}, MergeMode::kLast, c.sync->metadata);
    USERSD_RETURN_IF_ERROR(ObserveVersion(t, r.seen));
    // A deleted user holds no email in the index: it is taken as shown.
    if (r.wanted_email) r.after.email = *r.wanted_email;
    after = std::move(r.after);
  }
  bool was_live = before.live();
  if (was_live) after.deleted_at_ms = c.now_ms;
  if (!was_live && !VisiblyDiffers(after, before)) {
    if (BookkeepingDiffers(after, before)) {
      after.txid = before.txid;
      USERSD_RETURN_IF_ERROR(t.PutUser(after, before));
    }
    return RemoteOutcome::kUnchanged;
  }
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

namespace {

// Takes what `sent` delivered out of the pending job `job` (its fields equal
// to what was sent; "doc" when no shared version of `u` is above the sent
// ones; external_id). Returns whether anything is left.
bool TakeDelivered(OutboxJob& job, const PublishSent& sent, const std::optional<UserRecord>& u) {
  if (!job.fields.is_object()) return false;
  for (auto it = sent.owned.begin(); it != sent.owned.end(); ++it) {
    auto have = job.fields.find(it.key());
    if (have != job.fields.end() && *have == it.value()) job.fields.erase(have);
  }
  if (sent.doc) {
    bool newer = false;
    if (u)
      for (size_t i = 0; i < kSharedFields.size(); ++i) newer = newer || sent.doc_versions[i] < u->shared_versions[i];
    if (!newer) {
      job.fields.erase(std::string(kJobDocument));
      for (auto name : kSharedFields) job.fields.erase(std::string(name));
    }
  }
  if (sent.external_id) {
    auto have = job.fields.find("external_id");
    if (have != job.fields.end() && have->is_string() && have->get<std::string>() == *sent.external_id) {
      job.fields.erase("external_id");
      job.fields.erase("external_id_import");
    }
  }
  return !job.fields.empty();
}

// The delivered part of the user's jobs `ids` (a publish's batch, oldest
// first) leaves the outbox: all but the last are gone (their fields were
// merged into what was sent and later writes merge only into the last),
// the last keeps what was written since it was sent.
Result<bool> SettleJobs(WriteTxn& t, const std::vector<uint64_t>& ids, const PublishSent& sent,
                        const std::optional<UserRecord>& u, const MutationContext& c) {
  for (size_t i = 0; i + 1 < ids.size(); ++i) USERSD_RETURN_IF_ERROR(t.DeleteJob(ids[i]));
  if (ids.empty()) return false;
  auto job = t.GetJob(ids.back());
  if (!job.ok()) return job.status();
  if (!job->has_value()) return false;
  OutboxJob left = std::move(**job);
  if (left.op != JobOp::kUpdate || !TakeDelivered(left, sent, u)) {
    USERSD_RETURN_IF_ERROR(t.DeleteJob(left.id));
    return false;
  }
  left.attempts = 0;
  left.next_attempt_at_ms = c.now_ms;
  left.last_error.clear();
  USERSD_RETURN_IF_ERROR(t.UpdateJob(left));
  return true;
}

// A dead letter for the parts of a publish that WorkOS refused or did not
// take: the values that were requested (SPEC 4), under the job's version
// so a retry can tell whether a newer local write came since.
Status BuryParts(WriteTxn& t, const OutboxJob& job, const PublishSent& sent, const std::vector<std::string>& owned,
                 bool doc, bool external_id, int status, const std::string& body, const MutationContext& c) {
  OutboxJob dead = job;
  dead.fields = Json::object();
  for (const auto& k : owned)
    if (auto it = sent.owned.find(k); it != sent.owned.end()) dead.fields[k] = *it;
  if (doc) dead.fields[std::string(kJobDocument)] = true;
  if (external_id && sent.external_id) dead.fields["external_id"] = *sent.external_id;
  if (dead.fields.empty()) return Status::Ok();
  return t.MoveToDeadLetter(dead, status, body, c.now_ms);
}

std::vector<std::string> OwnedNames(const PublishSent& sent) {
  std::vector<std::string> out;
  for (auto it = sent.owned.begin(); it != sent.owned.end(); ++it) out.push_back(it.key());
  return out;
}

// WorkOS now holds the document that was sent (a 2xx without an answer to
// read, or parts given up as dead letters): the record stops asking for it.
Status MarkDocumentDelivered(WriteTxn& t, const std::string& user_id, const store::SharedVersions& sent) {
  auto cur = t.GetUser(user_id);
  if (!cur.ok()) return cur.status();
  if (!cur->has_value()) return Status::Ok();
  UserRecord after = **cur;
  for (size_t i = 0; i < kSharedFields.size(); ++i)
    after.workos_versions[i] = std::max(after.workos_versions[i], sent[i]);
  if (after.workos_versions == (*cur)->workos_versions) return Status::Ok();
  return t.PutUser(after, *cur);
}

}  // namespace

Result<PublishOutcome> CompletePublish(WriteTxn& t, const std::vector<uint64_t>& job_ids, const PublishSent& sent,
                                       const std::optional<Profile>& answer, int status, const MutationContext& c) {
  PublishOutcome out;
  if (job_ids.empty()) return out;
  auto first = t.GetJob(job_ids.back());
  if (!first.ok()) return first.status();
  if (!first->has_value()) return out;  // gone meanwhile (a dead letter retried, a re-key merged it)
  const OutboxJob job = **first;

  NotTaken not_taken;
  if (answer) not_taken = FieldsNotTaken(sent, *answer, c.sync->metadata);
  auto u = t.GetUser(job.user_id);
  if (!u.ok()) return u.status();
  auto kept = SettleJobs(t, job_ids, sent, *u, c);
  if (!kept.ok()) return kept.status();
  out.job_kept = *kept;
  if (!not_taken.empty()) {
    // WorkOS said yes but shows another value: the change did not take. A
    // dead letter naming the field and keeping the value asked for, instead
    // of a silent revert when the next event arrives (SPEC 4).
    out.not_taken = not_taken.body;
    USERSD_RETURN_IF_ERROR(
        BuryParts(t, job, sent, not_taken.owned, not_taken.doc, not_taken.external_id, status, not_taken.body, c));
  }
  if (answer && !answer->workos_id.empty()) {
    // The answer is WorkOS's state after the change: applied like an event,
    // so this host has what WorkOS has (also fields another host changed),
    // and events older than it are stale. A field not taken is no longer
    // held, so it returns to WorkOS's value here (and an email it claimed
    // goes to whoever waits for it).
    auto r = ApplyRemote(t, *answer, c, /*answer=*/true, /*republish=*/!not_taken.doc);
    if (!r.ok()) return r.status();
  }
  if (sent.doc && (!answer || !answer->has_metadata || not_taken.doc))
    USERSD_RETURN_IF_ERROR(MarkDocumentDelivered(t, job.user_id, sent.doc_versions));
  auto q = QueueResyncIfMarked(t, job.user_id, c);
  if (!q.ok()) return q.status();
  out.queued_resync = *q;
  return out;
}

Result<PublishOutcome> RefusePublish(WriteTxn& t, const std::vector<uint64_t>& job_ids, const PublishSent& sent,
                                     int status, const std::string& body, const MutationContext& c) {
  PublishOutcome out;
  if (job_ids.empty()) return out;
  auto first = t.GetJob(job_ids.back());
  if (!first.ok()) return first.status();
  if (!first->has_value()) return out;
  const OutboxJob job = **first;
  auto u = t.GetUser(job.user_id);
  if (!u.ok()) return u.status();
  std::vector<std::string> owned = OwnedNames(sent);
  USERSD_RETURN_IF_ERROR(BuryParts(t, job, sent, owned, sent.doc, sent.external_id.has_value(), status, body, c));
  auto kept = SettleJobs(t, job_ids, sent, *u, c);
  if (!kept.ok()) return kept.status();
  out.job_kept = *kept;
  // A document WorkOS refused (too many metadata keys with the
  // application's) is not sent again until a newer write, or a retry.
  if (sent.doc) USERSD_RETURN_IF_ERROR(MarkDocumentDelivered(t, job.user_id, sent.doc_versions));
  // Values WorkOS refused return to WorkOS's (an email claimed here is
  // released, SPEC 1): read the user again once this host's jobs are through.
  if (!owned.empty() && u->has_value() && (*u)->live()) {
    USERSD_RETURN_IF_ERROR(t.PutMeta(std::string(kResyncPrefix) + job.user_id, "1"));
    auto q = QueueResyncIfMarked(t, job.user_id, c);
    if (!q.ok()) return q.status();
    out.queued_resync = *q;
  }
  return out;
}

Result<bool> RequeueDeadLetter(WriteTxn& t, const store::DeadLetter& dl, const MutationContext& c) {
  OutboxJob job = dl.job;
  job.id = 0;
  job.attempts = 0;
  job.next_attempt_at_ms = c.now_ms;
  job.created_at_ms = c.now_ms;
  job.last_error.clear();
  if (job.op != JobOp::kUpdate) {
    auto id = t.EnqueueJob(std::move(job));
    if (!id.ok()) return id.status();
    return true;
  }
  auto u = t.GetUser(job.user_id);
  if (!u.ok()) return u.status();
  if (!u->has_value()) return false;
  const UserRecord& user = **u;
  Json fields = Json::object();
  if (job.fields.is_object()) {
    for (auto it = job.fields.begin(); it != job.fields.end(); ++it) {
      const std::string& k = it.key();
      if (auto i = OwnedFieldIndex(k)) {
        // The value that was requested, unless this host wrote the field
        // again since (a newer local write wins; it is sent or on its way).
        if (dl.job.version < user.owned_versions[*i]) continue;
        fields[k] = *it;
      } else if (IsSharedField(k) || k == kJobDocument) {
        // The document as it is now: its versions say what wins.
        fields[std::string(kJobDocument)] = true;
      } else {
        fields[k] = *it;
      }
    }
  }
  if (fields.empty()) return false;
  USERSD_RETURN_IF_ERROR(EnqueueUpdate(t, user, std::move(fields), c, nullptr, dl.job.version));
  return true;
}

Result<size_t> ConvertLegacyJobs(WriteTxn& t, const MutationContext& c) {
  size_t converted = 0;
  uint64_t after = 0;
  for (;;) {
    auto chunk = t.ListJobsAfter(after, 512);
    if (!chunk.ok()) return chunk.status();
    for (auto& job : *chunk) {
      after = job.id;
      if (job.op != JobOp::kUpdate || !job.fields.is_object()) continue;
      std::vector<std::string_view> legacy;
      for (auto name : kSharedFields)
        if (job.fields.contains(std::string(name))) legacy.push_back(name);
      if (legacy.empty()) continue;
      // An undelivered write of an earlier release: its fields get a version
      // now, so no document read before it is delivered can replace them.
      auto u = t.GetUser(job.user_id);
      if (!u.ok()) return u.status();
      if (u->has_value()) {
        UserRecord user = **u;
        std::vector<std::string_view> unversioned;
        for (auto name : legacy)
          if (user.shared_versions[*SharedFieldIndex(name)].zero()) unversioned.push_back(name);
        if (!unversioned.empty()) {
          auto v = StampWrite(t, user, unversioned, {}, c);
          if (!v.ok()) return v.status();
          USERSD_RETURN_IF_ERROR(t.PutUser(user, *u));
        }
      }
      for (auto name : legacy) job.fields.erase(std::string(name));
      job.fields[std::string(kJobDocument)] = true;
      USERSD_RETURN_IF_ERROR(t.UpdateJob(job));
      ++converted;
    }
    if (chunk->size() < 512) break;
  }
  return converted;
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
  std::vector<std::string_view> shared, owned;
  if (e.timezone) shared.push_back("timezone");
  if (e.settings) shared.push_back("settings");
  if (e.is_onboarded) shared.push_back("isOnboarded");
  if (e.avatar_url) shared.push_back("avatarUrl");
  if (e.first_name) owned.push_back("first_name");
  if (e.last_name) owned.push_back("last_name");
  if (e.email) owned.push_back("email");
  auto version = StampWrite(t, after, shared, owned, c);
  if (!version.ok()) return version.status();
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
      if (name == kJobDocument)
        return e.timezone.has_value() || e.settings.has_value() || e.is_onboarded.has_value() ||
               e.avatar_url.has_value();
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
    USERSD_RETURN_IF_ERROR(EnqueueUpdate(t, after, std::move(fields), c, &out, *version));
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
