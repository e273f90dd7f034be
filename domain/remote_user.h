// RemoteUser: what WorkOS's view of a user does to the local record (SPEC
// sections 4 and 4b "Reconciliation"). The one place that decides it for the
// events poller, reconciliation and `usersctl users resync`; they parse
// WorkOS's JSON into a WorkosProfileSource::Profile and call these inside their
// write transaction.
//
// Rules:
//   - A user not stored yet is created (new id given by the caller, role
//     member, no organization, createdAt from WorkOS).
//   - A live local user takes email and names from WorkOS, except a field
//     with an undelivered local change (`held`), which keeps its local value
//     until that change is delivered. An email another live local user holds
//     is not taken over (logged; the rest applies).
//   - profile_picture_url always records the WorkOS picture; avatarUrl
//     follows it only while it still shows the previous WorkOS picture.
//   - A soft-deleted local user stays deleted.
//   - Stale states are refused: a profile whose updated_at is older than the
//     last WorkOS state applied to the record (UserRecord::workos_updated_at_ms)
//     changes nothing, so a feed that arrives out of order, a replay from an
//     old cursor or a slow reconciliation page cannot put an older state over
//     a newer one. Both times are WorkOS's, so the comparison is meaningful
//     (the local updatedAt comes from another clock and is not used).
//   - Nothing is committed when no visible field changes.
//
// Writer thread only (they take a WriteTxn). No I/O besides the transaction.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"
#include "domain/users_service.h"
#include "store/store.h"

namespace usersd::domain {

// WorkOS-owned fields ("email", "first_name", "last_name") with an
// undelivered local change.
using HeldFields = std::set<std::string>;

// Held fields by local user id.
using PendingByUser = std::unordered_map<std::string, HeldFields>;

// Held fields of every user with pending update jobs: one scan of the outbox.
Result<PendingByUser> PendingFieldsByUser(store::ReadTxn& t);

enum class RemoteOutcome {
  kCreated,    // a new local user
  kUpdated,    // a visible field changed
  kUnchanged,  // nothing to change
  kStale,      // older than what the record already shows
  kDeleted,    // soft-deleted here
};
const char* RemoteOutcomeName(RemoteOutcome o);

// Applies WorkOS's state of a user. REQUIRES: !p.workos_id.empty().
// `pending` holds the fields with undelivered local changes
// (PendingFieldsByUser, read once for many users). `new_id` is the id a user
// not stored yet gets (chosen by the caller so the WriteOp can be replayed).
// Fails only on storage errors and on a record the store refuses
// (InvalidArgument); the caller decides whether to skip it.
Result<RemoteOutcome> ApplyRemoteUser(store::WriteTxn& t, const WorkosProfileSource::Profile& p,
                                      const PendingByUser& pending, const std::string& new_id, int64_t now_ms);

// WorkOS deleted the user (an event) or no longer has it (reconciliation, a
// 404): soft-deletes a live local user. kUnchanged when there is none.
Result<RemoteOutcome> ApplyRemoteDelete(store::WriteTxn& t, std::string_view workos_id, int64_t now_ms);

// Trims whitespace from a profile picture URL; nullopt when nothing is left
// (WorkOS has no picture).
std::optional<std::string> NormalizePictureUrl(const std::optional<std::string>& url);

// Records the picture WorkOS reported for `u` (nullopt: none) in
// profile_picture_url ("" for none). avatar_url follows it only while it
// still shows the previously recorded WorkOS picture, or nothing when none
// was recorded: an avatar the user chose is kept.
void AdoptProfilePicture(store::UserRecord& u, const std::optional<std::string>& picture);

}  // namespace usersd::domain
