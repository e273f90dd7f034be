#include "domain/remote_user.h"

#include "common/log.h"
#include "common/text.h"
#include "domain/roles.h"

namespace usersd::domain {

using store::UserRecord;

void AdoptProfilePicture(UserRecord& u, const std::optional<std::string>& picture) {
  std::optional<std::string> pic = NormalizePictureUrl(picture);
  bool follows = u.avatar_url.value_or(std::string()) == u.profile_picture_url.value_or(std::string());
  if (follows) u.avatar_url = pic;
  u.profile_picture_url = pic.value_or(std::string());
}

bool IsStale(const UserRecord& u, const Profile& p) {
  return p.updated_at_ms && u.workos_updated_at_ms && *p.updated_at_ms < *u.workos_updated_at_ms;
}

bool VisiblyDiffers(const UserRecord& a, const UserRecord& b) {
  return a.email != b.email || a.first_name != b.first_name || a.last_name != b.last_name ||
         a.avatar_url != b.avatar_url || a.profile_picture_url != b.profile_picture_url ||
         a.profile_pending != b.profile_pending || a.timezone != b.timezone || a.settings != b.settings ||
         a.is_onboarded != b.is_onboarded || a.external_id != b.external_id || a.id_from_import != b.id_from_import ||
         a.deleted_at_ms.has_value() != b.deleted_at_ms.has_value() || a.created_at_ms != b.created_at_ms;
}

bool ApplicationSeesChange(const UserRecord& a, const UserRecord& b) {
  return a.email != b.email || a.first_name != b.first_name || a.last_name != b.last_name ||
         a.avatar_url != b.avatar_url || a.timezone != b.timezone || a.settings != b.settings ||
         a.is_onboarded != b.is_onboarded || a.deleted_at_ms.has_value() != b.deleted_at_ms.has_value() ||
         a.created_at_ms != b.created_at_ms;
}

bool BookkeepingDiffers(const UserRecord& a, const UserRecord& b) {
  return a.shared_versions != b.shared_versions || a.workos_versions != b.workos_versions ||
         a.owned_versions != b.owned_versions || a.app_metadata != b.app_metadata ||
         a.workos_updated_at_ms != b.workos_updated_at_ms;
}

namespace {

// Merges the document `p` carries into `r.after` by version. With `latest`
// (the profile is WorkOS's current state) the record also learns what
// WorkOS holds: the document's versions and whether keys of the
// application are there.
void ApplyDocument(MergeResult& r, const Profile& p, const MetadataPolicy& metadata, bool latest,
                   bool take_all = false) {
  if (!metadata.enabled) return;
  UserRecord& u = r.after;
  auto doc = DecodeDocument(p.metadata, metadata);
  if (!doc.ok()) {
    r.document_unreadable = true;
    LogWarn("ignoring the shared fields in WorkOS metadata",
            {{"workos_id", p.workos_id}, {"error", doc.status().message()}});
  } else if (doc->has_value()) {
    r.doc = MergeDocument(u, **doc, take_all);
    r.seen = MaxVersion((*doc)->versions);
    if (!r.doc.rejected.empty())
      LogWarn("ignoring a shared field in WorkOS metadata that does not validate",
              {{"workos_id", p.workos_id}, {"fields", r.doc.rejected}});
  }
  // A user object without a metadata map says nothing about what WorkOS
  // holds (a server that leaves it out of events, say): a host that took
  // it for "no document" would publish on every event it reads.
  if (!latest || !p.has_metadata) return;
  u.workos_versions = SharedVersions{};
  if (doc.ok() && doc->has_value()) {
    for (size_t i = 0; i < kSharedFields.size(); ++i)
      if ((*doc)->values[i]) u.workos_versions[i] = (*doc)->versions[i];
  }
  u.app_metadata = HasApplicationKeys(p.metadata, metadata);
}

}  // namespace

MergeResult MergeProfile(const UserRecord& before, const Profile& p, const HeldFields& held, MergeMode mode,
                         const MetadataPolicy& metadata) {
  MergeResult r{before, std::nullopt, false, {}, {}};
  UserRecord& u = r.after;
  bool fill = mode == MergeMode::kFill;
  if (!held.count("email") && !p.email.empty() && p.email != u.email && (!fill || u.email.empty()))
    r.wanted_email = p.email;
  if (!held.count("first_name") && (!fill || u.first_name.empty())) u.first_name = p.first_name;
  if (!held.count("last_name") && (!fill || u.last_name.empty())) u.last_name = p.last_name;
  AdoptProfilePicture(u, p.profile_picture_url);
  ApplyDocument(r, p, metadata, /*latest=*/true, /*take_all=*/mode == MergeMode::kLast);
  u.external_id = p.external_id.value_or(std::string());
  // createdAt is WorkOS's on every host (SPEC 4b), also for a user this
  // host provisioned offline or imported with its own clock.
  if (p.created_at_ms) u.created_at_ms = *p.created_at_ms;
  if (fill) u.profile_pending = false;
  if (p.updated_at_ms && (!u.workos_updated_at_ms || *p.updated_at_ms > *u.workos_updated_at_ms))
    u.workos_updated_at_ms = p.updated_at_ms;
  return r;
}

MergeResult NewFromProfile(const std::string& id, const Profile& p, int64_t now_ms, const MetadataPolicy& metadata) {
  MergeResult r;
  UserRecord& u = r.after;
  u.id = id;
  u.workos_id = p.workos_id;
  u.first_name = p.first_name;
  u.last_name = p.last_name;
  u.role = kRoleMember;
  // createdAt is WorkOS's, so every host shows the same (SPEC 4b).
  u.created_at_ms = p.created_at_ms.value_or(now_ms);
  u.workos_updated_at_ms = p.updated_at_ms;
  AdoptProfilePicture(u, p.profile_picture_url);
  ApplyDocument(r, p, metadata, /*latest=*/true);
  u.external_id = p.external_id.value_or(std::string());
  if (!p.email.empty()) r.wanted_email = p.email;
  return r;
}

MergeResult MergeStaleDocument(const UserRecord& before, const Profile& p, const MetadataPolicy& metadata) {
  MergeResult r{before, std::nullopt, false, {}, {}};
  ApplyDocument(r, p, metadata, /*latest=*/false);
  return r;
}

}  // namespace usersd::domain
