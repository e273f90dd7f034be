#include "domain/shared_fields.h"

#include <atomic>

#include "domain/remote_user.h"
#include "domain/validate.h"

namespace usersd::domain {

using store::UserRecord;

namespace {
std::atomic<uint64_t> g_unreadable{0};

// "{prefix}{digits}": one of our chunk keys, whatever n is.
bool IsChunkKey(std::string_view key, std::string_view prefix) {
  if (key.size() <= prefix.size() || key.substr(0, prefix.size()) != prefix) return false;
  for (char c : key.substr(prefix.size()))
    if (c < '0' || c > '9') return false;
  return true;
}
}  // namespace

bool IsSharedField(std::string_view name) {
  for (auto f : kSharedFields)
    if (f == name) return true;
  return false;
}

Json SharedFieldValue(const UserRecord& u, std::string_view name) {
  if (name == "timezone") return u.timezone ? Json(*u.timezone) : Json(nullptr);
  if (name == "settings") return u.settings ? *u.settings : Json(nullptr);
  if (name == "isOnboarded") return Json(u.is_onboarded);
  if (name == "avatarUrl") {
    // An avatar that shows the WorkOS picture follows it on every host.
    if (u.profile_picture_url && u.avatar_url == NormalizePictureUrl(u.profile_picture_url)) return kFollowsPicture();
    return u.avatar_url ? Json(*u.avatar_url) : Json(nullptr);
  }
  return nullptr;
}

bool SetSharedField(UserRecord& u, std::string_view name, const Json& v) {
  if (name == "isOnboarded") {
    if (!v.is_boolean()) return false;
    u.is_onboarded = v.get<bool>();
    return true;
  }
  if (name == "settings") {
    if (v.is_null()) return u.settings.reset(), true;
    if (!v.is_object() || !ValidateSettings(v).ok()) return false;
    u.settings = v;
    return true;
  }
  if (name == "avatarUrl" && v == kFollowsPicture()) {
    u.avatar_url = NormalizePictureUrl(u.profile_picture_url);
    return true;
  }
  std::optional<std::string>* dst = name == "timezone" ? &u.timezone : name == "avatarUrl" ? &u.avatar_url : nullptr;
  if (!dst) return false;
  if (v.is_null()) return dst->reset(), true;
  if (!v.is_string()) return false;
  const auto& s = v.get_ref<const std::string&>();
  Status st = name == "timezone" ? ValidateTimezone(s) : ValidateAvatarUrl(s);
  if (!st.ok()) return false;
  *dst = s;
  return true;
}

Json DocumentOf(const UserRecord& u) {
  Json doc = Json::object();
  for (auto f : kSharedFields) doc[std::string(f)] = SharedFieldValue(u, f);
  return doc;
}

std::string EncodeDocument(const Json& doc) {
  return doc.dump(-1, ' ', /*ensure_ascii=*/true, Json::error_handler_t::replace);
}

Status CheckDocumentFits(const UserRecord& u, const MetadataPolicy& policy, std::string_view field) {
  if (!policy.enabled) return Status::Ok();
  size_t size = EncodeDocument(DocumentOf(u)).size();
  if (size <= policy.capacity()) return Status::Ok();
  return Status::InvalidArgument(std::string(field) + ": too large to share with other hosts: the shared fields " +
                                 "(timezone, settings, isOnboarded, avatarUrl) take " + std::to_string(size) +
                                 " characters as JSON, at most " + std::to_string(policy.capacity()) +
                                 " fit in WorkOS metadata (sync.metadata.keys " + std::to_string(policy.keys) +
                                 " x 600)");
}

Result<std::optional<Json>> DecodeDocument(const Json& metadata, const MetadataPolicy& policy) {
  if (!metadata.is_object()) return std::optional<Json>();
  std::string text;
  for (int i = 0; i < kMetadataMaxKeys; ++i) {
    auto it = metadata.find(policy.prefix + std::to_string(i));
    if (it == metadata.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) break;
    text += it->get_ref<const std::string&>();
  }
  if (text.empty()) return std::optional<Json>();
  Json doc = Json::parse(text, nullptr, false);
  if (!doc.is_object()) {
    g_unreadable.fetch_add(1, std::memory_order_relaxed);
    return Status::InvalidArgument("the shared-fields document in WorkOS metadata is not a JSON object (" +
                                   std::to_string(text.size()) + " characters)");
  }
  return std::optional<Json>(std::move(doc));
}

Result<Json> MetadataForPut(const Json& shown, const Json& doc, const MetadataPolicy& policy) {
  std::string text = EncodeDocument(doc);
  if (text.size() > policy.capacity())
    return Status::InvalidArgument("the shared fields take " + std::to_string(text.size()) + " characters, at most " +
                                   std::to_string(policy.capacity()) + " fit");
  Json out = Json::object();
  if (shown.is_object()) {
    for (auto it = shown.begin(); it != shown.end(); ++it) {
      if (IsChunkKey(it.key(), policy.prefix)) out[it.key()] = "";
      else out[it.key()] = it.value();
    }
  }
  for (int i = 0; i < policy.keys; ++i) {
    size_t at = static_cast<size_t>(i) * kMetadataValueChars;
    out[policy.prefix + std::to_string(i)] = at < text.size() ? text.substr(at, kMetadataValueChars) : std::string();
  }
  if (out.size() > static_cast<size_t>(kMetadataMaxKeys))
    return Status::InvalidArgument("WorkOS allows " + std::to_string(kMetadataMaxKeys) +
                                   " metadata keys; the application's own keys and " + std::to_string(policy.keys) +
                                   " shared-field chunks make " + std::to_string(out.size()));
  return out;
}

void ExportSharedFieldsMetrics(Metrics& m) {
  m.Describe("usersd_metadata_unreadable_total", "counter",
             "WorkOS metadata documents of shared fields that did not parse (ignored; the rest applied)");
  m.Set("usersd_metadata_unreadable_total", {}, static_cast<double>(g_unreadable.load(std::memory_order_relaxed)));
}

}  // namespace usersd::domain
