// Publish: what one request to WorkOS carries for a user's pending state
// (SPEC 4b "Writes and conflicts"), and what WorkOS's answer says about it.
//
// A user's pending update job holds WorkOS-owned fields with the values to
// send, "doc" when the shared document must be published, and
// "external_id" when the id must be published. PlanPublish turns that and
// the user's record into the PUT: the owned fields as requested, the
// record's whole versioned document (never a read-modify-write), and
// external_id when WorkOS is known to have none. It asks for a read first
// only where a write alone could do harm: external_id not known to be
// empty (an application's own external_id is never overwritten; an
// imported id must not replace another), and, with read_first app_keys, a
// user WorkOS last showed with metadata keys of the application (a server
// that replaces the map would drop them). With the read, the document
// published is the record's merged with WorkOS's, and the application's
// keys are carried as shown.
//
// Pure functions: no I/O, no clock.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "domain/identity.h"
#include "domain/shared_fields.h"
#include "domain/types.h"
#include "store/records.h"

namespace usersd::domain {

using Profile = WorkosProfileSource::Profile;

// identity.namespace and sync.metadata.* (SPEC 6a).
struct SyncPolicy {
  std::string identity_namespace = std::string(kDefaultIdentityNamespace);
  MetadataPolicy metadata;
};

// The WorkOS-owned fields, in the order of UserRecord::owned_versions.
inline constexpr std::array<std::string_view, store::kOwnedFieldCount> kOwnedFields = {"email", "first_name",
                                                                                       "last_name"};
// The key of an update job that asks for the shared document.
inline constexpr std::string_view kJobDocument = "doc";

// What a publish sent, for the answer: delivered parts leave the job.
struct PublishSent {
  Json owned = Json::object();             // WorkOS-owned fields as sent
  bool doc = false;                        // the document was sent...
  store::SharedVersions doc_versions{};    // ...with these versions
  std::optional<std::string> external_id;  // sent as external_id
};

struct PublishPlan {
  bool read_first = false;     // GET the user, then plan again with it
  Json body = Json::object();  // the PUT; empty: nothing to send
  PublishSent sent;
  // The job cannot apply (a dead letter with this JSON text): the shared
  // fields do not fit, or WorkOS holds another external_id than an imported id.
  std::optional<std::string> refusal;
  bool keep_imported_id = false;  // the refusal keeps the imported id on this host
  // WorkOS's external_id as the read showed it, to record (and re-key to
  // when it is a UUID).
  std::optional<std::optional<std::string>> learned_external_id;
};

// A job's whole pending state as if it had been sent: what a refusal that
// came before anything was sent (the read first failed) buries.
PublishSent PendingState(const Json& fields, const store::UserRecord& u);

// `fields`: the pending update jobs' fields merged in job order. `shown`:
// the user as WorkOS showed it just now, when a read was made.
PublishPlan PlanPublish(const Json& fields, const store::UserRecord& u, const Profile* shown, const SyncPolicy& sync);

// The parts of a publish WorkOS answered 2xx without taking (its answer, the
// user after the change, shows another value).
struct NotTaken {
  std::vector<std::string> owned;  // WorkOS-owned field names
  bool doc = false;
  bool external_id = false;
  std::string body;  // the dead letter's JSON text, naming each field
  bool empty() const { return owned.empty() && !doc && !external_id; }
};
// Compares `sent` with `answer`. A field the answer does not show
// (Profile::shown, has_metadata) cannot be judged and counts as taken. Emails compare case-insensitively (WorkOS may
// lower-case them).
NotTaken FieldsNotTaken(const PublishSent& sent, const Profile& answer, const MetadataPolicy& metadata);

}  // namespace usersd::domain
