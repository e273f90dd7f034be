// Fuzz target for domain/shared_fields.h and the part of domain/remote_user.h
// that reads it: the metadata document another host (or anything with the
// WorkOS API key) wrote into a WorkOS user's metadata, which every host
// decodes and applies.
//
// The input is a WorkOS metadata map when it parses as a JSON object, and
// otherwise the text of chunk usersd_0 (split over usersd_0.. at 600 bytes).
// Properties checked beyond "no crash, no exception":
//  - DecodeDocument refuses with InvalidArgument or gives a JSON object;
//  - a decoded document written back with MetadataForPut (when it fits)
//    decodes to the same document, every chunk is ASCII and at most 600
//    characters, and keys without the prefix are carried unchanged;
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
    USERSD_FUZZ_CHECK((*doc)->is_object());
    auto md = MetadataForPut(metadata, **doc, policy);
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
      USERSD_FUZZ_CHECK(back.ok() && back->has_value() && **back == **doc);
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
