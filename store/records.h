// The records the store keeps: users, outbox jobs, dead letters and
// change-feed entries, as plain values. Their stored form is
// store/record_codec.h's; the tables they live in are store/store.h's. What
// the fields mean for WorkOS (versions, jobs) is decided in domain/; here
// they are data.
//
// Value types; thread-compatible.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace usersd::store {

using Json = nlohmann::json;

// A hybrid-logical-clock version (SPEC 4b "Writes and conflicts"): the
// writing host's clock in milliseconds, a counter that orders writes within
// one millisecond (and after a version seen from another host), and the
// writing host's id as the tie-break. Ordered lexicographically; the zero
// version is "unversioned" (a value from an earlier release, or never set),
// below every real one. domain/versions.h issues and encodes them.
struct Version {
  int64_t ms = 0;
  uint32_t counter = 0;
  uint64_t host = 0;
  auto operator<=>(const Version&) const = default;
  bool zero() const { return ms == 0 && counter == 0 && host == 0; }
};

// The shared fields (SPEC 4b), in the order of the version arrays below:
// timezone, settings, isOnboarded, avatarUrl (domain/shared_fields.h
// kSharedFields).
inline constexpr size_t kSharedFieldCount = 4;
// The WorkOS-owned fields a local write may change: email, first_name,
// last_name (domain/user_mutations.h kOwnedFields).
inline constexpr size_t kOwnedFieldCount = 3;
using SharedVersions = std::array<Version, kSharedFieldCount>;

// JSON values written into records (settings, job fields) may nest at most
// this many levels, the value itself being level 1 (the domain's limit).
// WriteTxn refuses deeper ones; the record codec decodes no deeper than
// records can nest.
inline constexpr size_t kMaxStoredDepth = 64;


// One user as stored. Times are milliseconds since the epoch.
struct UserRecord {
  std::string id;         // UUID, our primary key
  std::string workos_id;  // WorkOS user id (token `sub`); never on the app socket
  std::string email;
  std::string first_name;
  std::string last_name;
  std::optional<std::string> avatar_url;
  std::string user_type = "user";  // "user" | "machine"
  std::optional<Json> settings;    // object or absent (null on the wire)
  bool is_onboarded = false;
  std::optional<std::string> timezone;
  int64_t created_at_ms = 0;
  std::optional<int64_t> updated_at_ms;
  std::optional<int64_t> deleted_at_ms;
  std::optional<std::string> organization_id;
  std::string role = "member";
  // The last profile picture URL WorkOS showed us (events, fetches,
  // provisioning): user.resetAvatar's offline fallback.
  std::optional<std::string> profile_picture_url;
  // True while a user provisioned offline still waits for its WorkOS profile.
  bool profile_pending = false;
  // WorkOS's updated_at of the last WorkOS state applied to this record
  // (events, reconciliation, fetches): a state older than this is stale and
  // is not applied, whatever order the feed delivered it in.
  std::optional<int64_t> workos_updated_at_ms;
  // WorkOS's external_id for this user as last seen or set by this host
  // (SPEC 4b); nullopt while unknown. Equal to `id` once the id is shared.
  std::optional<std::string> external_id;
  // The id came from an import (an earlier system's id) and WorkOS refused
  // to carry it: it stays on this host and is not re-keyed away.
  bool id_from_import = false;
  uint64_t txid = 0;  // transactionId of the last change

  // SPEC 4b versions (domain/versions.h, domain/shared_fields.h):
  // the version of each shared field's value (the highest seen, local or
  // remote: the record is the merge of every document this host read and
  // every write it made);
  SharedVersions shared_versions{};
  // the versions WorkOS's document held in the latest WorkOS state applied
  // here (by updated_at): a shared version above it means WorkOS has not got
  // that value yet, and the user must be published;
  SharedVersions workos_versions{};
  // the version of this host's last local write of each WorkOS-owned field
  // (email, first_name, last_name): a dead letter's retry does not send a
  // value older than one written since.
  std::array<Version, kOwnedFieldCount> owned_versions{};
  // WorkOS showed metadata keys of the application (keys without the
  // prefix) in the latest state applied: publishing reads the user first,
  // so that a server that replaces the map does not lose them.
  bool app_metadata = false;

  bool live() const { return !deleted_at_ms.has_value(); }
};

enum class JobOp { kUpdate, kDelete, kFetch };
const char* JobOpName(JobOp op);

// A unit of work for WorkOS (domain/user_mutations.h says what `fields`
// holds for each op). An update job is the user's pending state: later
// writes merge into it instead of adding jobs.
struct OutboxJob {
  uint64_t id = 0;
  std::string user_id;
  std::string workos_id;
  JobOp op = JobOp::kUpdate;
  Json fields = Json::object();
  uint64_t txid = 0;  // the mutation that created it
  int64_t created_at_ms = 0;
  uint32_t attempts = 0;
  int64_t next_attempt_at_ms = 0;
  std::string last_error;
  // The version of the last local write merged into the job (zero for jobs
  // of earlier releases and for jobs no write made).
  Version version;
};

struct DeadLetter {
  OutboxJob job;   // job.id is the dead letter's id
  int status = 0;  // last HTTP status, 0 for network errors / too old
  std::string body;
  int64_t failed_at_ms = 0;
};

enum class ChangeOp { kUpsert, kDelete };

struct Change {
  uint64_t txid = 0;
  ChangeOp op = ChangeOp::kUpsert;
  UserRecord user;
  int64_t at_ms = 0;
};

}  // namespace usersd::store
