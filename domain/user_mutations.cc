#include "domain/user_mutations.h"

#include "domain/user_mutations_internal.h"

#include "common/log.h"
#include "common/text.h"
#include "domain/user_json.h"
#include "domain/versions.h"
#include "store/meta_keys.h"

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

namespace internal {

Mutation Refused(OpResult r) {
  Mutation m;
  m.kind = Mutation::Kind::kRefused;
  m.refusal = std::move(r);
  return m;
}

namespace {
Mutation WithUser(UserRecord u, Mutation::Kind kind) {
  Mutation m;
  m.kind = kind;
  m.user = std::move(u);
  return m;
}
}  // namespace

Mutation Unchanged(UserRecord u) {
  return WithUser(std::move(u), Mutation::Kind::kUnchanged);
}

Mutation Committed(UserRecord u) {
  return WithUser(std::move(u), Mutation::Kind::kCommitted);
}

std::optional<OpResult> CheckTarget(const Actor& actor, const std::optional<UserRecord>& target, const std::string& id,
                                    const std::optional<std::string>* new_email) {
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

Json ChangedFields(const std::optional<UserRecord>& before, const UserRecord& after, const SyncPolicy& sync) {
  Json fields = Json::object();
  if (!before || after.first_name != before->first_name) fields["first_name"] = after.first_name;
  if (!before || after.last_name != before->last_name) fields["last_name"] = after.last_name;
  if (!before || after.email != before->email) fields["email"] = after.email;
  if (sync.metadata.enabled && (!before || after.shared_versions != before->shared_versions))
    fields[std::string(kJobDocument)] = true;
  return fields;
}

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

Status EnqueueUpdate(WriteTxn& t, const UserRecord& u, Json fields, const MutationContext& c, Mutation* m,
                     Version version) {
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

Status PublishIfBehind(WriteTxn& t, const UserRecord& u, const MutationContext& c) {
  if (!c.sync->metadata.enabled || !u.live() || !NeedsPublishing(u)) return Status::Ok();
  auto jobs = t.JobsOfUser(u.id);
  if (!jobs.ok()) return jobs.status();
  for (const auto& j : *jobs)
    if (j.op == JobOp::kUpdate && CarriesDocument(j.fields)) return Status::Ok();
  LogDebug("the record holds shared values WorkOS has not got; publishing", {{"user", u.id}});
  return EnqueueUpdate(t, u, Json{{std::string(kJobDocument), true}}, c, nullptr);
}

Status EnqueuePublishId(WriteTxn& t, const UserRecord& u, const MutationContext& c, Mutation* m) {
  return Enqueue(t, u, JobOp::kUpdate, Json{{"external_id", u.id}}, c, m);
}

Result<bool> ClaimEmail(WriteTxn& t, const std::string& email, const std::string& self, const std::string& workos_id) {
  auto holder = t.FindByEmail(email);
  if (!holder.ok()) return holder.status();
  if (holder->has_value() && (*holder)->id != self) {
    LogWarn("WorkOS email is held by another local user; left as it is until that user releases it",
            {{"workos_id", workos_id}, {"other", (*holder)->id}});
    USERSD_RETURN_IF_ERROR(t.PutMeta(std::string(store::kMetaEmailWaitPrefix) + EmailKey(email), self));
    return false;
  }
  return true;
}

Status WriteChange(WriteTxn& t, UserRecord& after, const std::optional<UserRecord>& before, ChangeOp op,
                   const MutationContext& c);

Status GiveReleasedEmail(WriteTxn& t, const std::string& email, const MutationContext& c) {
  std::string key = std::string(store::kMetaEmailWaitPrefix) + EmailKey(email);
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
  return WriteChange(t, after, *w, ChangeOp::kUpsert, c);
}

Status WriteChange(WriteTxn& t, UserRecord& after, const std::optional<UserRecord>& before, ChangeOp op,
                   const MutationContext& c) {
  USERSD_RETURN_IF_ERROR(store::WriteUserChange(t, after, before, op, c.now_ms));
  if (before && before->live() && !before->email.empty() &&
      (!after.live() || EmailKey(after.email) != EmailKey(before->email)))
    return GiveReleasedEmail(t, before->email, c);
  return Status::Ok();
}

Result<Mutation> WriteUpdate(WriteTxn& t, UserRecord after, const std::optional<UserRecord>& before,
                             const MutationContext& c, Version version) {
  Mutation out;
  USERSD_RETURN_IF_ERROR(WriteChange(t, after, before, ChangeOp::kUpsert, c));
  USERSD_RETURN_IF_ERROR(EnqueueUpdate(t, after, ChangedFields(before, after, *c.sync), c, &out, version));
  out.kind = Mutation::Kind::kCommitted;
  out.user = std::move(after);
  return out;
}

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

Status SettleEmail(WriteTxn& t, MergeResult& r) {
  if (!r.wanted_email) return Status::Ok();
  auto free = ClaimEmail(t, *r.wanted_email, r.after.id, r.after.workos_id);
  if (!free.ok()) return free.status();
  if (*free) r.after.email = *r.wanted_email;
  return Status::Ok();
}

std::optional<std::string> RekeyTarget(const UserRecord& u) {
  if (u.id_from_import) return std::nullopt;
  auto id = IdFromExternalId(u.external_id);
  if (!id || *id == u.id) return std::nullopt;
  return id;
}

}  // namespace internal

using namespace internal;

// ------------------------------------------------------------ operations

Result<Mutation> ProvisionUser(WriteTxn& t, const ProvisionRequest& r, const MutationContext& c) {
  // Another request may have provisioned the same user meanwhile.
  auto existing = t.FindByWorkosId(r.workos_id);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) return Unchanged(**existing);

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
  u.role = SessionRole(r.role);
  USERSD_RETURN_IF_ERROR(SettleEmail(t, m));
  Mutation out;
  USERSD_RETURN_IF_ERROR(WriteChange(t, u, std::nullopt, ChangeOp::kUpsert, c));
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
  return WriteUpdate(t, std::move(after), before, c, *v);
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
  USERSD_RETURN_IF_ERROR(WriteChange(t, after, before, ChangeOp::kDelete, c));
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
  return WriteUpdate(t, std::move(after), *cur, c, *v);
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
  return WriteUpdate(t, std::move(after), *cur, c, *v);
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
  Status st = WriteChange(t, after, before, op, c);
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

// ------------------------------------------------ the caller's token

Result<Mutation> RecordTokenClaims(WriteTxn& t, std::string_view workos_id, const std::optional<std::string>& org_id,
                                   const std::string& role, const MutationContext& c) {
  auto cur = t.FindByWorkosId(workos_id);
  if (!cur.ok()) return cur.status();
  if (!cur->has_value() || !(*cur)->live()) return Unchanged(cur->value_or(UserRecord{}));
  const UserRecord& before = **cur;
  UserRecord after = before;
  after.organization_id = org_id;
  after.role = SessionRole(role);
  if (after.organization_id == before.organization_id && after.role == before.role) return Unchanged(before);
  LogInfo("user's organization or role follows its token", {{"user", before.id},
                                                            {"organization", after.organization_id.value_or("")},
                                                            {"role", after.role},
                                                            {"was_organization", before.organization_id.value_or("")},
                                                            {"was_role", before.role}});
  // Bookkeeping, not a change an application sees: updatedAt stays.
  USERSD_RETURN_IF_ERROR(WriteChange(t, after, before, ChangeOp::kUpsert, c));
  return Committed(std::move(after));
}

}  // namespace usersd::domain
