// Fuzz target for domain/validate.h: the user.update and user.delete
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

#include <cstdint>
#include <string>
#include <string_view>

#include "domain/validate.h"
#include "fuzz/targets.h"

namespace usersd::fuzz {
namespace {

using namespace usersd::domain;

void RequireRefusalNamesField(const Status& st) {
  USERSD_FUZZ_CHECK(st.code() == Code::kInvalidArgument);
  const std::string& m = st.message();
  const size_t colon = m.find(": ");
  USERSD_FUZZ_CHECK(colon != std::string::npos && colon > 0);
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
  if (utf8) USERSD_FUZZ_CHECK(CountCodePoints(raw) <= raw.size());
  USERSD_FUZZ_CHECK(ToLowerAscii(raw).size() == raw.size());

  const Status name = ValidateName("firstName", raw);
  if (name.ok()) {
    USERSD_FUZZ_CHECK(utf8);
    const size_t n = CountCodePoints(raw);
    USERSD_FUZZ_CHECK(n >= 1 && n <= kMaxNameCodePoints);
  } else {
    RequireRefusalNamesField(name);
  }

  const Status email = ValidateEmail(raw);
  if (email.ok()) {
    USERSD_FUZZ_CHECK(utf8 && !raw.empty() && raw.size() <= kMaxEmailBytes);
    const size_t at = raw.find('@');
    USERSD_FUZZ_CHECK(at != std::string_view::npos && at > 0 && at <= kMaxEmailLocalPartBytes);
    USERSD_FUZZ_CHECK(raw.find('@', at + 1) == std::string_view::npos);
    USERSD_FUZZ_CHECK(!IsMixedScript(raw.substr(0, at)));
  } else {
    RequireRefusalNamesField(email);
  }
  // The uniqueness key is a fixed point of itself (folding and NFC are
  // idempotent), and folds ASCII exactly as before.
  {
    const std::string key = EmailKey(raw);
    USERSD_FUZZ_CHECK(EmailKey(key) == key);
    bool ascii = true;
    for (char ch : raw) ascii = ascii && static_cast<unsigned char>(ch) < 0x80;
    if (ascii || !utf8) USERSD_FUZZ_CHECK(key == ToLowerAscii(raw));
  }

  const Status url = ValidateAvatarUrl(raw);
  if (url.ok()) {
    USERSD_FUZZ_CHECK(!raw.empty() && raw.size() <= kMaxAvatarUrlBytes);
    const std::string lower = ToLowerAscii(raw.substr(0, 8));
    USERSD_FUZZ_CHECK(lower.rfind("http://", 0) == 0 || lower.rfind("https://", 0) == 0);
  } else {
    RequireRefusalNamesField(url);
  }

  const Status tz = ValidateTimezone(raw);
  if (tz.ok()) {
    USERSD_FUZZ_CHECK(!raw.empty() && raw.find("..") == std::string_view::npos && raw.front() != '/');
  } else {
    RequireRefusalNamesField(tz);
  }

  (void)IsUuid(raw);
}

void FuzzJson(const Json& doc) {
  Result<UserPatch> patch = ParseUpdatePayload(doc);
  if (patch.ok()) {
    USERSD_FUZZ_CHECK(IsUuid(patch->id) && ToLowerAscii(patch->id) == patch->id);
    const Json payload = PatchToPayload(*patch);
    Result<UserPatch> again = ParseUpdatePayload(payload);
    USERSD_FUZZ_CHECK(again.ok());
    USERSD_FUZZ_CHECK(PatchToPayload(*again) == payload);
    USERSD_FUZZ_CHECK(again->empty() == patch->empty());
    // Every accepted string is valid UTF-8, so dump() cannot throw here.
    const Json reparsed = Json::parse(payload.dump());
    USERSD_FUZZ_CHECK(reparsed == payload);
  } else {
    RequireRefusalNamesField(patch.status());
  }

  Result<std::string> id = ParseDeletePayload(doc);
  if (id.ok()) {
    USERSD_FUZZ_CHECK(IsUuid(*id) && ToLowerAscii(*id) == *id);
  } else {
    RequireRefusalNamesField(id.status());
  }

  // The document itself as a settings value, and any settings member, so
  // the settings checks get deep and odd shapes directly.
  const Status settings = ValidateSettings(doc);
  if (settings.ok()) {
    USERSD_FUZZ_CHECK(doc.is_object() && doc.dump().size() <= kMaxSettingsBytes);
  } else {
    RequireRefusalNamesField(settings);
  }
  if (doc.is_object()) {
    const auto it = doc.find("settings");
    if (it != doc.end()) (void)ValidateSettings(*it);
  }
}

}  // namespace

int FuzzDomainValidate(const uint8_t* data, size_t size) {
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

}  // namespace usersd::fuzz
