// libFuzzer target for domain/validate.h: the user.update and user.delete
// payload parsers and the field validators, which see untrusted client input.
//
// Each input is used twice: as raw bytes for the string validators (so
// invalid UTF-8 reaches them, which a conforming JSON parser would filter
// out), and as JSON for the payload parsers. Properties checked beyond "no
// crash, no exception":
//  - an accepted value satisfies the documented limits;
//  - an accepted patch serialises to a payload that parses back to the same
//    patch, also through JSON text (parse -> serialise -> parse);
//  - every refusal is InvalidArgument with a message naming a field.
//
// Seeds: fuzz/corpus/domain_validate/.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "domain/validate.h"

namespace {

using usersd::Code;
using usersd::Result;
using usersd::Status;
using namespace usersd::domain;

void Require(bool condition) {
  if (!condition) std::abort();
}

void RequireRefusalNamesField(const Status& st) {
  Require(st.code() == Code::kInvalidArgument);
  const std::string& m = st.message();
  const size_t colon = m.find(": ");
  Require(colon != std::string::npos && colon > 0);
}

Json PatchToPayload(const UserPatch& patch) {
  Json out = {{"id", patch.id}};
  if (patch.first_name) out["firstName"] = *patch.first_name;
  if (patch.last_name) out["lastName"] = *patch.last_name;
  if (patch.email) out["email"] = *patch.email;
  if (patch.avatar_url) out["avatarUrl"] = *patch.avatar_url ? Json(**patch.avatar_url) : Json(nullptr);
  if (patch.timezone) out["timezone"] = *patch.timezone ? Json(**patch.timezone) : Json(nullptr);
  if (patch.settings) out["settings"] = *patch.settings ? **patch.settings : Json(nullptr);
  return out;
}

void FuzzRawString(std::string_view raw) {
  const bool utf8 = IsValidUtf8(raw);
  if (utf8) Require(CountCodePoints(raw) <= raw.size());
  Require(ToLowerAscii(raw).size() == raw.size());

  const Status name = ValidateName("firstName", raw);
  if (name.ok()) {
    Require(utf8);
    const size_t n = CountCodePoints(raw);
    Require(n >= 1 && n <= kMaxNameCodePoints);
  } else {
    RequireRefusalNamesField(name);
  }

  const Status email = ValidateEmail(raw);
  if (email.ok()) {
    Require(utf8 && !raw.empty() && raw.size() <= kMaxEmailBytes);
    const size_t at = raw.find('@');
    Require(at != std::string_view::npos && at > 0 && at <= kMaxEmailLocalPartBytes);
    Require(raw.find('@', at + 1) == std::string_view::npos);
  } else {
    RequireRefusalNamesField(email);
  }

  const Status url = ValidateAvatarUrl(raw);
  if (url.ok()) {
    Require(!raw.empty() && raw.size() <= kMaxAvatarUrlBytes);
    const std::string lower = ToLowerAscii(raw.substr(0, 8));
    Require(lower.rfind("http://", 0) == 0 || lower.rfind("https://", 0) == 0);
  } else {
    RequireRefusalNamesField(url);
  }

  const Status tz = ValidateTimezone(raw);
  if (tz.ok()) {
    Require(!raw.empty() && raw.find("..") == std::string_view::npos && raw.front() != '/');
  } else {
    RequireRefusalNamesField(tz);
  }

  (void)IsUuid(raw);
}

void FuzzJson(const Json& doc) {
  Result<UserPatch> patch = ParseUpdatePayload(doc);
  if (patch.ok()) {
    Require(IsUuid(patch->id) && ToLowerAscii(patch->id) == patch->id);
    const Json payload = PatchToPayload(*patch);
    Result<UserPatch> again = ParseUpdatePayload(payload);
    Require(again.ok());
    Require(PatchToPayload(*again) == payload);
    Require(again->empty() == patch->empty());
    // Every accepted string is valid UTF-8, so dump() cannot throw here.
    const Json reparsed = Json::parse(payload.dump());
    Require(reparsed == payload);
  } else {
    RequireRefusalNamesField(patch.status());
  }

  Result<std::string> id = ParseDeletePayload(doc);
  if (id.ok()) {
    Require(IsUuid(*id) && ToLowerAscii(*id) == *id);
  } else {
    RequireRefusalNamesField(id.status());
  }

  // The document itself as a settings value, and any settings member, so
  // the settings checks get deep and odd shapes directly.
  const Status settings = ValidateSettings(doc);
  if (settings.ok()) {
    Require(doc.is_object() && doc.dump().size() <= kMaxSettingsBytes);
  } else {
    RequireRefusalNamesField(settings);
  }
  if (doc.is_object()) {
    const auto it = doc.find("settings");
    if (it != doc.end()) (void)ValidateSettings(*it);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  FuzzRawString(raw);

  Json doc;
  try {
    doc = Json::parse(raw.begin(), raw.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  } catch (const Json::exception&) {
    return 0;  // the JSON library's own behaviour is not under test here
  }
  if (doc.is_discarded()) return 0;
  FuzzJson(doc);
  return 0;
}
