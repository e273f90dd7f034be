// RemoteUser: what WorkOS's view of a user does to the local record (SPEC
// sections 4 and 4b). The one place that decides it; domain/user_mutations
// applies the decision to the store for the events poller, reconciliation,
// provisioning and outbox fetches.
//
// Rules (MergeProfile):
//   - A live local user takes email and names from WorkOS (kFeed), or only
//     where its own are empty (kFill: a user provisioned offline, whose
//     local values set since then win). A field with an undelivered local
//     change (`held`: email, first_name, last_name in a pending job) keeps
//     its local value until that change is delivered. The email is
//     proposed, not set: whether another local user holds it is the
//     store's question (user_mutations).
//   - profile_picture_url always records the WorkOS picture; avatarUrl
//     follows it only while it still shows the previous WorkOS picture.
//   - With metadata sharing on, the document in WorkOS's metadata is merged
//     field by field by version (shared_fields.h MergeDocument), after the
//     picture rule; nothing is held: versions decide. The record remembers
//     the document's versions (workos_versions) and whether WorkOS showed
//     keys of the application. A document that does not parse is ignored
//     (logged, counted), reads as "WorkOS holds no version", and the rest
//     applies.
//   - external_id is recorded as WorkOS shows it; createdAt is WorkOS's.
//   - Stale states (IsStale) are refused: a profile whose updated_at is older
//     than the last WorkOS state applied (UserRecord::workos_updated_at_ms).
//     Both times are WorkOS's, so the comparison is meaningful. Only their
//     document is still merged (MergeStaleDocument): versions do not depend
//     on order, and a value a later PUT erased in WorkOS is kept this way.
//
// No I/O, no clock: pure functions over records.
#pragma once

#include <optional>
#include <set>
#include <string>

#include "domain/shared_fields.h"
#include "domain/types.h"
#include "store/store.h"

namespace usersd::domain {

using Profile = WorkosProfileSource::Profile;

// WorkOS-owned fields with an undelivered local change ("email",
// "first_name", "last_name").
using HeldFields = std::set<std::string>;

enum class MergeMode {
  kFeed,  // an event, a reconciliation page, a provisioning GET: WorkOS wins
  kFill,  // a fetch for a user provisioned offline: only empty fields fill
  kLast,  // the last state of a user WorkOS deleted: WorkOS wins, the document too
};

struct MergeResult {
  store::UserRecord after;                  // every field decided except email
  std::optional<std::string> wanted_email;  // WorkOS's email, when it should replace the local one
  bool document_unreadable = false;
  DocMerge doc;         // what the document did
  store::Version seen;  // the highest version the document carried (for the host's clock)
};

// REQUIRES: before.live().
MergeResult MergeProfile(const store::UserRecord& before, const Profile& p, const HeldFields& held, MergeMode mode,
                         const MetadataPolicy& metadata);

// A stale profile's document merged into `before` by version; nothing else
// of the profile applies, and workos_versions stays (the profile is not
// what WorkOS holds now).
MergeResult MergeStaleDocument(const store::UserRecord& before, const Profile& p, const MetadataPolicy& metadata);

// A new record for a WorkOS user first seen here: id `id`, role member, no
// organization, createdAt from WorkOS (else now_ms). Email not set (see
// MergeResult::wanted_email, which is p.email when not empty).
MergeResult NewFromProfile(const std::string& id, const Profile& p, int64_t now_ms, const MetadataPolicy& metadata);

// True when `p` is older than the WorkOS state `u` last applied.
bool IsStale(const store::UserRecord& u, const Profile& p);

// True when a field an application or another host can see differs
// (everything but txid and updatedAt), or external_id does.
bool VisiblyDiffers(const store::UserRecord& a, const store::UserRecord& b);

// True when a field of the User an application reads differs (SPEC 1:
// email, names, avatarUrl, timezone, settings, isOnboarded, createdAt,
// deleted state): what moves updatedAt.
bool ApplicationSeesChange(const store::UserRecord& a, const store::UserRecord& b);

// True when only bookkeeping differs: versions, what WorkOS showed last
// (workos_versions, workos_updated_at_ms, app_metadata). Stored without a
// new transactionId: applications see no change.
bool BookkeepingDiffers(const store::UserRecord& a, const store::UserRecord& b);

// Records the picture WorkOS reported for `u` (nullopt: none) in
// profile_picture_url ("" for none). avatar_url follows it only while it
// still shows the previously recorded WorkOS picture, or nothing when none
// was recorded: an avatar the user chose is kept.
void AdoptProfilePicture(store::UserRecord& u, const std::optional<std::string>& picture);

}  // namespace usersd::domain
