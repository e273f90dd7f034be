// SharedFields: the versioned metadata document that carries the fields
// WorkOS has no column for (SPEC 4b): timezone, settings, isOnboarded and
// avatarUrl.
//
// The document is one ASCII JSON object (non-ASCII escaped as \uXXXX),
// split into chunks of at most 600 characters under the metadata keys
// {prefix}0 ... {prefix}{n-1}. It holds every shared field's value under its
// wire name (a cleared field is null, never a missing key) and, under "_v",
// each field's version (domain/versions.h FormatVersion):
//   {"_v":{"timezone":"1765090000000.0.3f9a2c7b1d04e5a6",...},
//    "avatarUrl":null,"isOnboarded":true,"settings":null,"timezone":"UTC"}
// A document of an earlier release has no "_v": its fields read as version
// zero. Earlier releases read the values of this form unchanged.
//
// Merging (MergeDocument) takes, field by field, the value with the higher
// version: a last-writer-wins map, so the result does not depend on the
// order in which documents arrive. Equal versions with different values can
// only come from unversioned (earlier-release) values; the document's value
// wins then, so every host ends with WorkOS's.
//
// The one place that encodes, chunks, measures, decodes and merges the
// document. No I/O, no clock. The count of unreadable documents is a
// process-wide counter (ExportSharedFieldsMetrics).
#pragma once

#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/metrics.h"
#include "common/status.h"
#include "store/records.h"

namespace usersd::domain {

using Json = nlohmann::json;
using store::SharedVersions;
using store::Version;

// WorkOS's limits on user metadata (SPEC 4b).
inline constexpr size_t kMetadataValueChars = 600;
inline constexpr int kMetadataMaxKeys = 10;
inline constexpr size_t kMetadataKeyChars = 40;

// sync.metadata.*
struct MetadataPolicy {
  bool enabled = true;
  std::string prefix = "usersd_";
  int keys = 6;  // 1..10
  // sync.metadata.read_first: read the user before publishing when WorkOS
  // last showed keys of the application, so a server that replaces the map
  // keeps them (kAppKeys), or never (kNever: the server merges, as WorkOS).
  enum class ReadFirst { kAppKeys, kNever };
  ReadFirst read_first = ReadFirst::kAppKeys;
  // Characters the document may take: keys * 600.
  size_t capacity() const { return static_cast<size_t>(keys) * kMetadataValueChars; }
};

// The shared fields, by their document name, in the order of
// store::SharedVersions.
inline constexpr std::array<std::string_view, store::kSharedFieldCount> kSharedFields = {"timezone", "settings",
                                                                                         "isOnboarded", "avatarUrl"};
bool IsSharedField(std::string_view name);
// The index of `name` in kSharedFields; nullopt for other names.
std::optional<size_t> SharedFieldIndex(std::string_view name);

// Trims whitespace from a profile picture URL; nullopt when nothing is left
// (WorkOS has no picture).
std::optional<std::string> NormalizePictureUrl(const std::optional<std::string>& url);

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

// A document: each field's value (nullopt when the document lacks the key)
// and version.
struct SharedDoc {
  std::array<std::optional<Json>, store::kSharedFieldCount> values;
  SharedVersions versions{};
};

// The document of `u`: every field with its version.
SharedDoc DocumentOf(const store::UserRecord& u);

// The document as ASCII JSON text (the form above). A field without a value
// (nullopt) is left out; DocumentOf gives every field one.
std::string EncodeDocument(const SharedDoc& doc);

// InvalidArgument when the document of `u` would not fit in policy.keys
// chunks; the message names `field` (the field the caller changed last)
// and the limit. Ok when sharing is off.
Status CheckDocumentFits(const store::UserRecord& u, const MetadataPolicy& policy, std::string_view field);

// The document in a WorkOS metadata map: chunks {prefix}0, {prefix}1, ...
// joined until the text is a complete JSON object (so chunks left over from
// a longer document, or a larger sync.metadata.keys, are never read), and
// no further than the first missing or empty chunk. nullopt when there is no
// chunk (nobody wrote a document); InvalidArgument when the text is not a
// JSON object (counted; the caller logs it and applies the rest). Versions
// that do not parse read as zero.
Result<std::optional<SharedDoc>> DecodeDocument(const Json& metadata, const MetadataPolicy& policy);

// True when `metadata` holds a key of the application (not our prefix).
bool HasApplicationKeys(const Json& metadata, const MetadataPolicy& policy);

// The metadata map to PUT: {prefix}0..{prefix}{n-1} with the chunks of
// `doc_text` (unused ones ""). With `shown` (the map as WorkOS showed it
// just before), its keys without the prefix are carried unchanged (the
// application's, for a server that replaces the map) and any other
// {prefix}<digits> key is set to "". Without it only our keys are sent: a
// server that merges the map (WorkOS) keeps the rest.
// InvalidArgument when the document does not fit or the map would exceed
// WorkOS's 10 keys.
Result<Json> MetadataForPut(const std::string& doc_text, const Json* shown, const MetadataPolicy& policy);

// What merging a document into a record did.
struct DocMerge {
  bool values_changed = false;    // a field's value changed
  bool versions_changed = false;  // a field's version changed
  std::string rejected;           // fields whose newer value failed validation (left out), comma-separated
};

// Merges `doc` into `u` field by field: a higher version (or an equal one
// with another value) takes the document's value and version. A value that
// fails validation is left out (logged by the caller via `rejected`). With
// `take_all`, every field the document carries is taken whatever its
// version: the last state of a user WorkOS deleted, which nothing this host
// holds can change any more.
DocMerge MergeDocument(store::UserRecord& u, const SharedDoc& doc, bool take_all = false);

// The highest version in `v` (zero when all are).
Version MaxVersion(const SharedVersions& v);

// True when some field of `u` holds a version above what WorkOS's document
// showed last (UserRecord::workos_versions): the user must be published.
bool NeedsPublishing(const store::UserRecord& u);

// usersd_metadata_unreadable_total.
void ExportSharedFieldsMetrics(Metrics& m);

}  // namespace usersd::domain
