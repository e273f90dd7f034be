#include "domain/remote_user.h"

#include "common/log.h"
#include "common/text.h"

namespace usersd::domain {

using store::ChangeOp;
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

std::optional<std::string> NormalizePictureUrl(const std::optional<std::string>& url) {
  if (!url) return std::nullopt;
  std::string_view trimmed = Trim(*url, kLineBlanks);
  if (trimmed.empty()) return std::nullopt;
  return std::string(trimmed);
}

void AdoptProfilePicture(UserRecord& u, const std::optional<std::string>& picture) {
  std::optional<std::string> pic = NormalizePictureUrl(picture);
  bool follows = u.avatar_url.value_or(std::string()) == u.profile_picture_url.value_or(std::string());
  if (follows) u.avatar_url = pic;
  u.profile_picture_url = pic.value_or(std::string());
}

Result<PendingByUser> PendingFieldsByUser(store::ReadTxn& t) {
  PendingByUser out;
  auto jobs = t.ListJobs(0);
  if (!jobs.ok()) return jobs.status();
  for (const auto& j : *jobs) {
    if (j.op != store::JobOp::kUpdate || !j.fields.is_object()) continue;
    auto& s = out[j.user_id];
    for (auto it = j.fields.begin(); it != j.fields.end(); ++it) s.insert(it.key());
  }
  return out;
}

namespace {

// Whether `email` may go to user `self`: no other live local user holds it.
Result<bool> EmailFree(WriteTxn& t, const std::string& email, const std::string& self, const std::string& workos_id) {
  auto holder = t.FindByEmail(email);
  if (!holder.ok()) return holder.status();
  if (holder->has_value() && (*holder)->id != self) {
    LogWarn("WorkOS email is held by another local user; email not changed",
            {{"workos_id", workos_id}, {"other", (*holder)->id}});
    return false;
  }
  return true;
}

bool VisiblyDiffers(const UserRecord& a, const UserRecord& b) {
  return a.email != b.email || a.first_name != b.first_name || a.last_name != b.last_name ||
         a.avatar_url != b.avatar_url || a.profile_picture_url != b.profile_picture_url ||
         a.profile_pending != b.profile_pending;
}

// ApplyRemoteUser on the stored version of the user (`existing`), as the
// caller read it in `t`.
Result<RemoteOutcome> ApplyTo(WriteTxn& t, const WorkosProfileSource::Profile& p, const std::optional<UserRecord>& existing,
                              const HeldFields& held, const std::string& new_id, int64_t now_ms) {
  if (!existing) {
    UserRecord u;
    u.id = new_id;
    u.workos_id = p.workos_id;
    u.first_name = p.first_name;
    u.last_name = p.last_name;
    u.role = "member";
    u.created_at_ms = p.created_at_ms.value_or(now_ms);
    u.workos_updated_at_ms = p.updated_at_ms;
    AdoptProfilePicture(u, p.profile_picture_url);
    if (!p.email.empty()) {
      auto free = EmailFree(t, p.email, u.id, p.workos_id);
      if (!free.ok()) return free.status();
      if (*free) u.email = p.email;
    }
    USERSD_RETURN_IF_ERROR(store::CommitUserChange(t, u, std::nullopt, ChangeOp::kUpsert, now_ms));
    return RemoteOutcome::kCreated;
  }

  const UserRecord& before = *existing;
  if (!before.live()) return RemoteOutcome::kUnchanged;  // deleted here; the DELETE is on its way or done
  if (p.updated_at_ms && before.workos_updated_at_ms && *p.updated_at_ms < *before.workos_updated_at_ms) {
    return RemoteOutcome::kStale;
  }
  UserRecord after = before;
  if (!held.count("email") && !p.email.empty() && p.email != after.email) {
    auto free = EmailFree(t, p.email, after.id, p.workos_id);
    if (!free.ok()) return free.status();
    if (*free) after.email = p.email;
  }
  if (!held.count("first_name")) after.first_name = p.first_name;
  if (!held.count("last_name")) after.last_name = p.last_name;
  AdoptProfilePicture(after, p.profile_picture_url);
  if (!VisiblyDiffers(after, before)) return RemoteOutcome::kUnchanged;
  if (p.updated_at_ms) after.workos_updated_at_ms = p.updated_at_ms;
  after.updated_at_ms = now_ms;
  USERSD_RETURN_IF_ERROR(store::CommitUserChange(t, after, existing, ChangeOp::kUpsert, now_ms));
  return RemoteOutcome::kUpdated;
}

}  // namespace

Result<RemoteOutcome> ApplyRemoteUser(WriteTxn& t, const WorkosProfileSource::Profile& p, const PendingByUser& pending,
                                      const std::string& new_id, int64_t now_ms) {
  static const HeldFields kNone;
  auto existing = t.FindByWorkosId(p.workos_id);
  if (!existing.ok()) return existing.status();
  const HeldFields* held = &kNone;
  if (existing->has_value()) {
    auto it = pending.find((*existing)->id);
    if (it != pending.end()) held = &it->second;
  }
  return ApplyTo(t, p, *existing, *held, new_id, now_ms);
}

Result<RemoteOutcome> ApplyRemoteDelete(WriteTxn& t, std::string_view workos_id, int64_t now_ms) {
  auto existing = t.FindByWorkosId(workos_id);
  if (!existing.ok()) return existing.status();
  if (!existing->has_value() || !(*existing)->live()) return RemoteOutcome::kUnchanged;
  UserRecord after = **existing;
  after.deleted_at_ms = now_ms;
  after.updated_at_ms = now_ms;
  USERSD_RETURN_IF_ERROR(store::CommitUserChange(t, after, *existing, ChangeOp::kDelete, now_ms));
  return RemoteOutcome::kDeleted;
}

}  // namespace usersd::domain
