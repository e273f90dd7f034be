// The helpers the parts of domain/user_mutations.h share: how a change
// commits, how what WorkOS must learn is queued, the email hand-over. Only
// user_mutations*.cc include this; nothing else may call these (they skip
// the rules the public functions keep).
//
// Writer thread only (they take a WriteTxn).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/roles.h"
#include "domain/user_mutations.h"

namespace usersd::domain::internal {

using store::ChangeOp;
using store::JobOp;
using store::OutboxJob;
using store::UserRecord;
using store::WriteTxn;

Mutation Refused(OpResult r);

// A mutation that wrote nothing (the record as it stands), and one whose
// change this transaction committed (the record as it now stands).
Mutation Unchanged(UserRecord u);
Mutation Committed(UserRecord u);

// The answer for a target the actor may not manage or that is gone; nullopt
// when the operation may go on. Policy comes before existence, so an id of
// another organization is refused the same way whether it exists or not.
// An org admin manages only users of its organization (as their latest
// tokens show it) whose role ranks below its own: an owner manages admins
// and members, an admin members only; nobody another owner. No one changes
// another user's email (`new_email`, when the patch sets one): a password
// reset sent to the new address would take the account over (docs/API.md).
std::optional<OpResult> CheckTarget(const Actor& actor, const std::optional<UserRecord>& target, const std::string& id,
                                    const std::optional<std::string>* new_email = nullptr);

std::optional<size_t> OwnedFieldIndex(std::string_view name);

// An update job's fields that concern the shared document: "doc", or the
// field names jobs of earlier releases carried with their values.
bool CarriesDocument(const Json& fields);

OutboxJob NewJob(const UserRecord& u, JobOp op, int64_t now_ms);

// What WorkOS should learn of a local write from `before` to `after`: the
// WorkOS-owned fields that changed, with their values, and, with sharing
// on, "doc" when a shared field was written (its version moved).
Json ChangedFields(const std::optional<UserRecord>& before, const UserRecord& after, const SyncPolicy& sync);

// Gives the fields a local write set the write's version: the shared ones
// named in `shared` (whether or not the value changed: a later write wins
// even when it repeats a value), and the WorkOS-owned ones in `owned`.
// Returns the version.
Result<Version> StampWrite(WriteTxn& t, UserRecord& after, const std::vector<std::string_view>& shared,
                           const std::vector<std::string_view>& owned, const MutationContext& c);

Status Enqueue(WriteTxn& t, const UserRecord& u, JobOp op, Json fields, const MutationContext& c, Mutation* m);

// Queues an update: merged into the user's pending update job when there is
// one (SPEC 4b: the outbox keeps per user what still has to reach WorkOS, so
// writes between two sends cost one request), else a new job. `version`: the write's (zero for work no write made).
Status EnqueueUpdate(WriteTxn& t, const UserRecord& u, Json fields, const MutationContext& c, Mutation* m,
                     Version version = {});

// After WorkOS was read: when the record holds a shared value WorkOS has
// not got (a change a concurrent PUT erased, or one not yet sent), makes
// sure an update job publishes the document.
Status PublishIfBehind(WriteTxn& t, const UserRecord& u, const MutationContext& c);

// A job that publishes u's id as WorkOS's external_id (set only if empty).
Status EnqueuePublishId(WriteTxn& t, const UserRecord& u, const MutationContext& c, Mutation* m);

// Whether `email` may go to user `self`: no other live local user holds it.
// When it may not, `self` waits for it (given by WriteChange when released).
Result<bool> ClaimEmail(WriteTxn& t, const std::string& email, const std::string& self, const std::string& workos_id);

// Writes the change (store::WriteUserChange) and, when `before` released an
// email, gives it to the user waiting for it. How every user change is written.
Status WriteChange(WriteTxn& t, UserRecord& after, const std::optional<UserRecord>& before, ChangeOp op,
                   const MutationContext& c);

// `before` released an email (changed it or was deleted): a user waiting
// for it with an empty email gets it.
Status GiveReleasedEmail(WriteTxn& t, const std::string& email, const MutationContext& c);

// How an operation on a live user ends: the change is written and its job
// (what WorkOS should learn, if anything) is queued, in the caller's
// transaction.
Result<Mutation> WriteUpdate(WriteTxn& t, UserRecord after, const std::optional<UserRecord>& before,
                             const MutationContext& c, Version version);

// A free id for a new user of `workos_id`: the identity rule's, unless a
// user of another WorkOS id holds it (an imported id); then a random one.
Result<std::string> FreeIdFor(WriteTxn& t, const std::string& workos_id, const std::optional<std::string>& external_id,
                              const MutationContext& c);

// Stores a merge's proposed email when no other user holds it.
Status SettleEmail(WriteTxn& t, MergeResult& r);

// The id WorkOS's external_id asks this user to move to, if any.
std::optional<std::string> RekeyTarget(const UserRecord& u);

}  // namespace usersd::domain::internal
