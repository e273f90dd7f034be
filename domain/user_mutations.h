// UserMutations: the one place that changes a user.
//
// Every change to a stored user goes through a function here: the five
// operations (patch, soft delete, finish onboarding, reset the avatar, and
// provisioning on first use), WorkOS's view of a user arriving by an event,
// a reconciliation page, a provisioning GET or an outbox fetch, an admin
// import, and the SPEC 4b identity work (re-keying, the external_id
// backfill). UsersService, the events poller, the reconciler, the outbox
// sender and the admin socket call these inside their WriteOp; none of them
// touches a UserRecord's fields, the email index or the outbox directly.
//
// What each function decides, once for all callers:
//   - Write (Mutation::kCommitted): the record, its change-feed entry
//     (store::WriteUserChange) and what WorkOS must learn are written in the
//     caller's transaction, and commit with it. A user
//     has at most one pending update job (SPEC 4b: state, not operations):
//     a write merges into it. It carries the WorkOS-owned fields that
//     changed with their values ("email", "first_name", "last_name"), "doc"
//     when a shared field was written (publish.h), and "external_id" when
//     the id must be published. Every write of a field gets a version
//     (versions.h); a read of WorkOS merges the document by version and
//     queues a publish when the record holds something WorkOS has not got.
//   - Refuse (Mutation::kRefused with the API's answer): nothing is written,
//     and the caller's batch goes on (a refusal is not a storage failure).
//   - Fail (a non-Ok Status): storage errors, and InvalidArgument for a
//     record the store refuses; the writer rolls the op back.
// Shared rules: an email another live local user holds is not taken
// (WorkOS's email waits, and is given when that user releases it); nothing
// commits when no visible field changes (remote_user.h VisiblyDiffers;
// bookkeeping such as versions is stored without a transactionId);
// profile picture URLs are normalised (remote_user.h).
//
// Writer thread only (they take a WriteTxn). No I/O besides the transaction;
// time comes in MutationContext.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "domain/identity.h"
#include "domain/publish.h"
#include "domain/remote_user.h"
#include "domain/shared_fields.h"
#include "domain/types.h"
#include "domain/validate.h"
#include "store/store.h"

namespace usersd::domain {

struct MutationContext {
  int64_t now_ms = 0;
  const SyncPolicy* sync = nullptr;  // borrowed; REQUIRES non-null
};

// Who asks for a change to another user (policy, SPEC 1).
struct Actor {
  std::string user_id;                // the caller's own id
  std::optional<std::string> org_id;  // the caller's organization
  bool org_admin = false;             // may manage users of org_id
  std::string role = "member";        // the caller's token role: an admin manages members only (docs/API.md)
};

struct Mutation {
  enum class Kind { kCommitted, kUnchanged, kRefused };
  Kind kind = Kind::kUnchanged;
  OpResult refusal;         // kRefused: the answer
  store::UserRecord user;   // kCommitted/kUnchanged: the user as stored now
  bool queued_job = false;  // an outbox job was enqueued
  bool created = false;     // the user is new
};

// ------------------------------------------------------------ operations

struct ProvisionRequest {
  std::string workos_id;  // the token's sub
  std::optional<std::string> org_id;
  std::string role;                // the token's role; stored only if owner/admin
  std::optional<Profile> profile;  // WorkOS's answer, when it gave one
};

// Stores the caller on first use (SPEC 1 provisioning, 4b identity): the id
// is the profile's UUID external_id or the version-5 id, so a host offline
// computes the same. Without a profile a fetch job fills it in later; with
// one whose external_id is empty, a job publishes the id. kUnchanged with
// the stored user when another request stored it first.
Result<Mutation> ProvisionUser(store::WriteTxn& t, const ProvisionRequest& r, const MutationContext& c);

// user.update: refusals kUnauthorized (policy), kNotFound, kInvalid (the
// shared fields would not fit in WorkOS metadata).
Result<Mutation> ApplyPatch(store::WriteTxn& t, const Actor& actor, const UserPatch& patch, const MutationContext& c);

// user.delete: soft delete and a DELETE job.
Result<Mutation> SoftDelete(store::WriteTxn& t, const Actor& actor, const std::string& id, const MutationContext& c);

// user.finalizeOnboarding on the caller (kUnauthorized when deleted).
Result<Mutation> FinishOnboarding(store::WriteTxn& t, const std::string& id, const MutationContext& c);

// user.resetAvatar on the caller. `live`: the picture WorkOS just gave
// (inner nullopt: none); nullopt when WorkOS could not be asked, and the
// last picture seen applies (kInternal when none is known).
Result<Mutation> ResetAvatar(store::WriteTxn& t, const std::string& id,
                             const std::optional<std::optional<std::string>>& live, const MutationContext& c);

// --------------------------------------------------- WorkOS's view

enum class RemoteOutcome {
  kCreated,    // a new local user
  kUpdated,    // a visible field changed
  kUnchanged,  // nothing to change
  kStale,      // older than what the record already shows
  kDeleted,    // soft-deleted here
};
const char* RemoteOutcomeName(RemoteOutcome o);

// Applies WorkOS's state of a user (an event, a reconciliation page, a
// resync): remote_user.h's rules in kFeed mode, fields with undelivered
// local changes held (read through the per-user job index, so the cost does
// not grow with the outbox). A UUID external_id other than the local id
// re-keys the user (RekeyUser). REQUIRES: !p.workos_id.empty().
Result<RemoteOutcome> ApplyRemoteUser(store::WriteTxn& t, const Profile& p, const MutationContext& c);

// WorkOS deleted the user or no longer has it: soft-deletes a live local
// user. `last` is the user's last state when the event carries it (a
// `user.deleted` event does): its fields are applied too, even to a user
// already deleted here, so every host keeps the same last state (SPEC 4b
// compares deleted users too; pending jobs of a deleted user can no longer
// be delivered, so nothing is held). kUnchanged when nothing changed.
Result<RemoteOutcome> ApplyRemoteDelete(store::WriteTxn& t, std::string_view workos_id, const MutationContext& c,
                                        const Profile* last = nullptr);

// An outbox fetch: for a user provisioned offline (kFill mode), then the id
// published when WorkOS has no external_id; or, with `resync`, the re-read
// ApplyRemoteUser queues when it kept a held field that WorkOS shows with
// another value (applied like an event, once this host's jobs before it are
// delivered). kUnchanged when the user is gone or deleted.
Result<RemoteOutcome> ApplyFetchedProfile(store::WriteTxn& t, const Profile& p, bool resync, const MutationContext& c);

// The outbox learned WorkOS's external_id for `workos_id` (the GET of a
// read-modify-write): records it, and re-keys the user when it is a UUID
// other than the local id (unless the local id is an imported one).
Status LearnExternalId(store::WriteTxn& t, std::string_view workos_id, const std::optional<std::string>& external_id,
                       const MutationContext& c);

// WorkOS refused to carry an imported id (it holds another external_id):
// the id stays on this host (UserRecord::id_from_import).
Status KeepImportedId(store::WriteTxn& t, std::string_view workos_id, const MutationContext& c);

// Moves the user `before` to id `new_id` in one transaction: the change
// feed shows a delete of the old id and an upsert of the new; its outbox
// jobs follow. Refused (Ok, nothing written, logged) when `new_id` belongs
// to another user.
Status RekeyUser(store::WriteTxn& t, const store::UserRecord& before, const std::string& new_id,
                 const MutationContext& c);

// After this host's jobs of `user_id` were delivered: when an event showed
// WorkOS with another value of a field those jobs held (ApplyRemoteUser
// marks the user), and no update job of the user is left, queues one re-read
// of the user (a fetch job with {"resync": true}, applied like an event), so
// a write another host made after this host's last delivery is not lost.
// Returns whether it queued one.
Result<bool> QueueResyncIfMarked(store::WriteTxn& t, const std::string& user_id, const MutationContext& c);

// ------------------------------------------------ publishing (outbox)

struct PublishOutcome {
  bool job_kept = false;                 // a write since the send left work in the job
  std::optional<std::string> not_taken;  // the dead letter's body, when a part did not take
  bool queued_resync = false;            // a re-read of the user was queued
};

// WorkOS answered 2xx to the publish of jobs `job_ids` (one user's, oldest
// first) that sent `sent`; `answer` is the user WorkOS returned, when it
// could be read. What was delivered leaves the outbox (the last job keeps
// whatever was written since the send); parts WorkOS did not take become a
// dead letter with the values requested; the answer is applied like an
// event (so events older than it are stale here).
Result<PublishOutcome> CompletePublish(store::WriteTxn& t, const std::vector<uint64_t>& job_ids,
                                       const PublishSent& sent, const std::optional<Profile>& answer, int status,
                                       const MutationContext& c);

// WorkOS refused the publish (a 4xx that retrying cannot change, or a plan
// that cannot apply): what was sent becomes a dead letter with the values
// requested and leaves the outbox; refused WorkOS-owned fields return to
// WorkOS's values through a queued re-read (an email claimed here is
// released); a refused document is not sent again until a newer write.
Result<PublishOutcome> RefusePublish(store::WriteTxn& t, const std::vector<uint64_t>& job_ids, const PublishSent& sent,
                                     int status, const std::string& body, const MutationContext& c);

// admin.deadLetters.retry of one dead letter: its job goes back to the
// outbox (merged into the user's pending update). An update sends the
// values requested, except fields this host wrote again since (their newer
// value wins), and the document as it is now. Returns false when nothing
// is left to send (the dead letter is still removed by the caller).
Result<bool> RequeueDeadLetter(store::WriteTxn& t, const store::DeadLetter& dl, const MutationContext& c);

// Startup: update jobs of an earlier release carry shared fields by name,
// with values. Each becomes "doc", and fields of the user still without a
// version get one, so no document read before the job is delivered
// replaces them. Returns the number of jobs converted.
Result<size_t> ConvertLegacyJobs(store::WriteTxn& t, const MutationContext& c);

// Fields with an undelivered local change for `user_id`.
Result<HeldFields> PendingFields(store::ReadTxn& t, std::string_view user_id);

// --------------------------------------------------------- admin

// One validated admin.users.import entry (admin/admin_users.h parses it). A
// field left out is nullopt and leaves an existing user's value unchanged (a
// new user gets the default). For nullable fields the inner optional is the
// value (nullopt = null).
struct UserImport {
  std::string workos_id;                             // required, non-empty
  std::optional<std::string> id;                     // lower-case UUID of an earlier system
  std::optional<std::string> email;                  // "" allowed (profile not known yet)
  std::optional<std::string> first_name, last_name;  // "" allowed (WorkOS has none)
  std::optional<std::string> user_type;              // "user" | "machine"
  std::optional<std::string> role;                   // "owner" | "admin" | "member"
  std::optional<std::optional<std::string>> avatar_url, timezone, organization_id;
  std::optional<std::optional<Json>> settings;
  std::optional<bool> is_onboarded;
  std::optional<int64_t> created_at_ms;
  std::optional<std::optional<int64_t>> updated_at_ms, deleted_at_ms;
};

// Copies the present fields of `e` onto `u` (id and workos_id excepted).
// Pure; ImportUser's first step.
void CopyImportedFields(const UserImport& e, store::UserRecord* u);

// Upserts entry `index` of an import by WorkOS id. What changed goes to
// WorkOS like any write (SPEC 4b): WorkOS-owned and shared fields, a DELETE
// for a user the entry deletes, and an entry's `id` as the external_id.
// Fails with InvalidArgument naming "users[index]..." (an id held by another
// user, a workosId whose user has another id, an email in use, shared fields
// too large); the import is all or nothing.
Result<Mutation> ImportUser(store::WriteTxn& t, const UserImport& e, size_t index, const MutationContext& c);

// The SPEC 4b backfill: enqueues a job publishing the id of each live user
// after `after_id` (at most `limit`) whose external_id is not known to be
// set, with its shared fields when sharing is on (the values this host kept
// before they were shared). Returns the last user id looked at, or "" when
// the table is done.
Result<std::string> BackfillExternalIds(store::WriteTxn& t, const std::string& after_id, size_t limit,
                                        const MutationContext& c, size_t* queued);

// ------------------------------------------------ the caller's token

// Records the organization and role of a user's latest verified token
// (SPEC 1 policy: the org-admin check compares the target's latest ones,
// never only those of its first sign-in). `role` is stored as the three
// roles of SPEC 1 are (anything else reads as "member"). kCommitted with the
// user as stored when they differed (bookkeeping: updatedAt stays; the
// change feed shows it, admin.users.get shows organizationId and role);
// kUnchanged, writing nothing, when they did not, or when the user is
// unknown or deleted. Nothing goes to WorkOS.
Result<Mutation> RecordTokenClaims(store::WriteTxn& t, std::string_view workos_id,
                                   const std::optional<std::string>& org_id, const std::string& role,
                                   const MutationContext& c);

}  // namespace usersd::domain
