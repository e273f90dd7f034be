// Fuzz target for domain/shared_fields.h and the part of domain/remote_user.h
// that reads it: the metadata document another host (or anything with the
// WorkOS API key) wrote into a WorkOS user's metadata, which every host
// decodes and applies.
//
// The input is a WorkOS metadata map when it parses as a JSON object, and
// otherwise the text of chunk usersd_0 (split over usersd_0.. at 600 bytes).
// Properties checked beyond "no crash, no exception":
//  - DecodeDocument refuses with InvalidArgument or gives a document;
//  - a decoded document written back with MetadataForPut (when it fits)
//    decodes to the same values and versions, every chunk is ASCII and at
//    most 600 characters, and keys without the prefix are carried unchanged;
//  - merging is idempotent and order-independent: the document merged into
//    a record twice, or into the record of another document and back, ends
//    the same;
//  - MergeProfile applies only values that validate: the record's shared
//    fields after the merge pass the checks user.update applies.
//
// Seeds: fuzz/corpus/shared_fields/.

#include <string>

#include "domain/remote_user.h"
#include "domain/shared_fields.h"
#include "domain/validate.h"
#include "fuzz/targets.h"

namespace usersd::fuzz {

int FuzzSharedFields(const uint8_t* data, size_t size) {
  using namespace usersd::domain;
  std::string text(reinterpret_cast<const char*>(data), size);
  MetadataPolicy policy;
  Json metadata = Json::parse(text, nullptr, false);
  if (!metadata.is_object()) {
    metadata = Json::object();
    for (size_t i = 0, k = 0; i < text.size() && k < 10; i += kMetadataValueChars, ++k)
      metadata["usersd_" + std::to_string(k)] = text.substr(i, kMetadataValueChars);
  }

  auto doc = DecodeDocument(metadata, policy);
  if (!doc.ok()) {
    USERSD_FUZZ_CHECK(doc.status().code() == Code::kInvalidArgument);
  } else if (doc->has_value()) {
    const SharedDoc& d = **doc;
    auto md = MetadataForPut(EncodeDocument(d), &metadata, policy);
    if (md.ok()) {
      for (auto it = md->begin(); it != md->end(); ++it) {
        if (it.key().rfind(policy.prefix, 0) == 0 && it.key().size() == policy.prefix.size() + 1) {
          const std::string& v = it->get_ref<const std::string&>();
          USERSD_FUZZ_CHECK(v.size() <= kMetadataValueChars);
          for (char c : v) USERSD_FUZZ_CHECK(static_cast<unsigned char>(c) < 0x80);
        } else if (it.key().rfind(policy.prefix, 0) != 0) {
          USERSD_FUZZ_CHECK(metadata.contains(it.key()) && metadata[it.key()] == *it);
        }
      }
      auto back = DecodeDocument(*md, policy);
      USERSD_FUZZ_CHECK(back.ok() && back->has_value());
      USERSD_FUZZ_CHECK((*back)->versions == d.versions);
      for (size_t i = 0; i < kSharedFields.size(); ++i) {
        // A JSON number may come back as another representation of itself.
        USERSD_FUZZ_CHECK((*back)->values[i].has_value() == d.values[i].has_value());
        if (d.values[i]) USERSD_FUZZ_CHECK((*back)->values[i]->dump() == d.values[i]->dump());
      }
    }
    // Idempotent and order-independent, against a record that holds a
    // document of its own.
    store::UserRecord a;
    a.timezone = "UTC";
    a.shared_versions[0] = Version{5, 1, 2};
    a.is_onboarded = true;
    a.shared_versions[2] = Version{9, 0, 3};
    store::UserRecord once = a;
    MergeDocument(once, d);
    store::UserRecord twice = once;
    MergeDocument(twice, d);
    USERSD_FUZZ_CHECK(DocumentOf(twice).values == DocumentOf(once).values);
    USERSD_FUZZ_CHECK(twice.shared_versions == once.shared_versions);
    store::UserRecord other;
    MergeDocument(other, d);
    MergeDocument(other, DocumentOf(a));
    for (size_t i = 0; i < kSharedFields.size(); ++i) {
      // Equal versions with different values are the one order-dependent
      // case (values of an earlier release, version zero): skip them.
      if (d.values[i] && d.versions[i] == a.shared_versions[i]) continue;
      USERSD_FUZZ_CHECK(other.shared_versions[i] == once.shared_versions[i]);
      USERSD_FUZZ_CHECK(DocumentOf(other).values[i] == DocumentOf(once).values[i]);
    }
  }

  store::UserRecord before;
  before.id = "00000000-0000-4000-8000-000000000000";
  before.workos_id = "user_fuzz";
  before.avatar_url = "https://img.example.com/a.png";
  before.profile_picture_url = "https://img.example.com/a.png";
  Profile p;
  p.workos_id = "user_fuzz";
  p.metadata = metadata;
  p.has_metadata = true;
  MergeResult r = MergeProfile(before, p, {}, MergeMode::kFeed, policy);
  const store::UserRecord& u = r.after;
  if (u.timezone) USERSD_FUZZ_CHECK(ValidateTimezone(*u.timezone).ok());
  if (u.settings) USERSD_FUZZ_CHECK(u.settings->is_object() && ValidateSettings(*u.settings).ok());
  if (u.avatar_url && u.avatar_url != NormalizePictureUrl(u.profile_picture_url))
    USERSD_FUZZ_CHECK(ValidateAvatarUrl(*u.avatar_url).ok());
  USERSD_FUZZ_CHECK(r.document_unreadable == !doc.ok());
  return 0;
}

}  // namespace usersd::fuzz
