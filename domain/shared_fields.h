// SharedFields: the metadata document that carries the fields WorkOS has no
// column for (SPEC 4b "Fields WorkOS has no column for"): timezone, settings,
// isOnboarded and avatarUrl, as one ASCII JSON object (non-ASCII escaped as
// \uXXXX) split into chunks of at most 600 characters under the metadata
// keys {prefix}0 ... {prefix}{n-1}.
//
// The one place that encodes, chunks, measures and decodes the document.
// Field names in the document are the wire names above; outbox jobs use the
// same names for the shared fields they carry (domain/user_mutations.h).
//
// No I/O, no clock. The count of unreadable documents is a process-wide
// counter (ExportSharedFieldsMetrics).
#pragma once

#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/metrics.h"
#include "common/status.h"
#include "store/store.h"

namespace usersd::domain {

using Json = nlohmann::json;

// WorkOS's limits on user metadata (SPEC 4b).
inline constexpr size_t kMetadataValueChars = 600;
inline constexpr int kMetadataMaxKeys = 10;
inline constexpr size_t kMetadataKeyChars = 40;

// sync.metadata.*
struct MetadataPolicy {
  bool enabled = true;
  std::string prefix = "usersd_";
  int keys = 6;  // 1..10
  // Characters the document may take: keys * 600.
  size_t capacity() const { return static_cast<size_t>(keys) * kMetadataValueChars; }
};

// The shared fields, by their document (and outbox job) name.
inline constexpr std::array<std::string_view, 4> kSharedFields = {"timezone", "settings", "isOnboarded", "avatarUrl"};
bool IsSharedField(std::string_view name);

// avatarUrl's document value for "the WorkOS profile picture": an avatar
// that shows it (never set, or reset) follows the picture on every host, so
// a later picture change in WorkOS shows everywhere; any other value is the
// URL (or null) the user chose.
inline const Json& kFollowsPicture() {
  static const Json v = Json{{"picture", true}};
  return v;
}

// The document value of shared field `name` of `u` (null for an absent
// optional). REQUIRES: IsSharedField(name).
Json SharedFieldValue(const store::UserRecord& u, std::string_view name);

// Sets shared field `name` of `u` from a document value. Returns false, and
// leaves `u` as it was, when the value has the wrong type or fails the
// validation user.update applies (a document written by another program).
bool SetSharedField(store::UserRecord& u, std::string_view name, const Json& value);

// The document of all four shared fields of `u`.
Json DocumentOf(const store::UserRecord& u);

// The document as ASCII JSON text.
std::string EncodeDocument(const Json& doc);

// InvalidArgument when the document of `u` would not fit in policy.keys
// chunks; the message names `field` (the field the caller changed last)
// and the limit. Ok when sharing is off.
Status CheckDocumentFits(const store::UserRecord& u, const MetadataPolicy& policy, std::string_view field);

// The document in a WorkOS metadata map: chunks {prefix}0, {prefix}1, ...
// joined up to the first missing or empty one. nullopt when there is no
// chunk (nobody wrote a document); InvalidArgument when the text is not a
// JSON object (counted; the caller logs it and applies the rest).
Result<std::optional<Json>> DecodeDocument(const Json& metadata, const MetadataPolicy& policy);

// The metadata map to PUT: the keys without the prefix as WorkOS `shown`
// them (the application's, never changed), {prefix}0..{prefix}{n-1} with the
// chunks of `doc` (unused ones ""), and any other {prefix}<digits> key shown
// set to "" so no stale chunk survives under merge semantics.
// InvalidArgument when the document does not fit or the map would exceed
// WorkOS's 10 keys.
Result<Json> MetadataForPut(const Json& shown, const Json& doc, const MetadataPolicy& policy);

// usersd_metadata_unreadable_total.
void ExportSharedFieldsMetrics(Metrics& m);

}  // namespace usersd::domain
