#include "domain/shared_fields.h"

#include <atomic>

#include "common/text.h"

#include "domain/validate.h"
#include "domain/versions.h"

namespace usersd::domain {

using store::UserRecord;

namespace {
std::atomic<uint64_t> g_unreadable{0};

constexpr std::string_view kVersionsKey = "_v";

// "{prefix}{digits}": one of our chunk keys, whatever n is.
bool IsChunkKey(std::string_view key, std::string_view prefix) {
  if (key.size() <= prefix.size() || key.substr(0, prefix.size()) != prefix) return false;
  for (char c : key.substr(prefix.size()))
    if (c < '0' || c > '9') return false;
  return true;
}
}  // namespace

std::optional<std::string> NormalizePictureUrl(const std::optional<std::string>& url) {
  if (!url) return std::nullopt;
  std::string_view trimmed = Trim(*url, kLineBlanks);
  if (trimmed.empty()) return std::nullopt;
  return std::string(trimmed);
}

bool IsSharedField(std::string_view name) {
  return SharedFieldIndex(name).has_value();
}

std::optional<size_t> SharedFieldIndex(std::string_view name) {
  for (size_t i = 0; i < kSharedFields.size(); ++i)
    if (kSharedFields[i] == name) return i;
  return std::nullopt;
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

SharedDoc DocumentOf(const UserRecord& u) {
  SharedDoc doc;
  for (size_t i = 0; i < kSharedFields.size(); ++i) doc.values[i] = SharedFieldValue(u, kSharedFields[i]);
  doc.versions = u.shared_versions;
  return doc;
}

std::string EncodeDocument(const SharedDoc& doc) {
  Json j = Json::object();
  Json versions = Json::object();
  for (size_t i = 0; i < kSharedFields.size(); ++i) {
    // DocumentOf gives every field a value (null when cleared); a document
    // put together otherwise (tests, tools) leaves out what it lacks.
    if (!doc.values[i]) continue;
    std::string name(kSharedFields[i]);
    j[name] = *doc.values[i];
    if (!doc.versions[i].zero()) versions[name] = FormatVersion(doc.versions[i]);
  }
  if (!versions.empty()) j[std::string(kVersionsKey)] = std::move(versions);
  return j.dump(-1, ' ', /*ensure_ascii=*/true, Json::error_handler_t::replace);
}

Status CheckDocumentFits(const UserRecord& u, const MetadataPolicy& policy, std::string_view field) {
  if (!policy.enabled) return Status::Ok();
  size_t size = EncodeDocument(DocumentOf(u)).size();
  if (size <= policy.capacity()) return Status::Ok();
  return Status::InvalidArgument(std::string(field) + ": too large to share with other hosts: the shared fields " +
                                 "(timezone, settings, isOnboarded, avatarUrl) and their versions take " +
                                 std::to_string(size) + " characters as JSON, at most " +
                                 std::to_string(policy.capacity()) + " fit in WorkOS metadata (sync.metadata.keys " +
                                 std::to_string(policy.keys) + " x 600)");
}

Result<std::optional<SharedDoc>> DecodeDocument(const Json& metadata, const MetadataPolicy& policy) {
  if (!metadata.is_object()) return std::optional<SharedDoc>();
  std::string text;
  Json j;
  for (int i = 0; i < kMetadataMaxKeys; ++i) {
    auto it = metadata.find(policy.prefix + std::to_string(i));
    if (it == metadata.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) break;
    text += it->get_ref<const std::string&>();
    // A proper prefix of a JSON object's text never parses as one: the
    // first text that does is the whole document.
    if (text.back() != '}') continue;
    j = Json::parse(text, nullptr, false);
    if (j.is_object()) break;
  }
  if (text.empty()) return std::optional<SharedDoc>();
  if (!j.is_object()) {
    g_unreadable.fetch_add(1, std::memory_order_relaxed);
    return Status::InvalidArgument("the shared-fields document in WorkOS metadata is not a JSON object (" +
                                   std::to_string(text.size()) + " characters)");
  }
  SharedDoc doc;
  const Json* versions = nullptr;
  if (auto v = j.find(kVersionsKey); v != j.end() && v->is_object()) versions = &*v;
  for (size_t i = 0; i < kSharedFields.size(); ++i) {
    std::string name(kSharedFields[i]);
    auto it = j.find(name);
    if (it == j.end()) continue;
    doc.values[i] = *it;
    if (!versions) continue;
    auto vt = versions->find(name);
    if (vt != versions->end() && vt->is_string()) {
      if (auto parsed = ParseVersion(vt->get_ref<const std::string&>())) doc.versions[i] = *parsed;
    }
  }
  return std::optional<SharedDoc>(std::move(doc));
}

bool HasApplicationKeys(const Json& metadata, const MetadataPolicy& policy) {
  if (!metadata.is_object()) return false;
  for (auto it = metadata.begin(); it != metadata.end(); ++it)
    if (it.key().compare(0, policy.prefix.size(), policy.prefix) != 0) return true;
  return false;
}

Result<Json> MetadataForPut(const std::string& text, const Json* shown, const MetadataPolicy& policy) {
  if (text.size() > policy.capacity())
    return Status::InvalidArgument("the shared fields take " + std::to_string(text.size()) + " characters, at most " +
                                   std::to_string(policy.capacity()) + " fit");
  Json out = Json::object();
  if (shown && shown->is_object()) {
    for (auto it = shown->begin(); it != shown->end(); ++it) {
      if (IsChunkKey(it.key(), policy.prefix)) out[it.key()] = "";
      else if (it.key().compare(0, policy.prefix.size(), policy.prefix) != 0) out[it.key()] = it.value();
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

DocMerge MergeDocument(UserRecord& u, const SharedDoc& doc, bool take_all) {
  DocMerge m;
  for (size_t i = 0; i < kSharedFields.size(); ++i) {
    if (!doc.values[i]) continue;
    const Version& mine = u.shared_versions[i];
    const Version& theirs = doc.versions[i];
    if (theirs < mine && !take_all) continue;
    std::string_view name = kSharedFields[i];
    const Json current = SharedFieldValue(u, name);
    if (theirs == mine && current == *doc.values[i]) continue;
    if (current != *doc.values[i]) {
      if (!SetSharedField(u, name, *doc.values[i])) {
        m.rejected += (m.rejected.empty() ? "" : ",") + std::string(name);
        continue;
      }
      m.values_changed = m.values_changed || SharedFieldValue(u, name) != current;
    }
    if (theirs != mine) {
      u.shared_versions[i] = theirs;
      m.versions_changed = true;
    }
  }
  return m;
}

Version MaxVersion(const SharedVersions& v) {
  Version out;
  for (const auto& x : v) out = std::max(out, x);
  return out;
}

bool NeedsPublishing(const UserRecord& u) {
  for (size_t i = 0; i < kSharedFields.size(); ++i)
    if (u.workos_versions[i] < u.shared_versions[i]) return true;
  return false;
}

void ExportSharedFieldsMetrics(Metrics& m) {
  m.Describe("usersd_metadata_unreadable_total", "counter",
             "WorkOS metadata documents of shared fields that did not parse (ignored; the rest applied)");
  m.Set("usersd_metadata_unreadable_total", {}, static_cast<double>(g_unreadable.load(std::memory_order_relaxed)));
}

}  // namespace usersd::domain
