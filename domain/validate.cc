#include "domain/validate.h"

#include <cstdlib>
#include <exception>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/text.h"

namespace usersd::domain {
namespace {

Status Invalid(std::string_view field, std::string_view what) {
  std::string m;
  m.reserve(field.size() + 2 + what.size());
  m.append(field).append(": ").append(what);
  return Status::InvalidArgument(std::move(m));
}

bool IsControl(char32_t c) { return c <= 0x1F || (c >= 0x7F && c <= 0x9F); }

// Unicode White_Space plus the characters that render as nothing and are
// commonly abused to make a name look empty (zero-width space/joiners, word
// joiner, BOM, Mongolian vowel separator, Hangul fillers, braille blank).
bool IsBlank(char32_t c) {
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20:
    case 0x85: case 0xA0: case 0x1680: case 0x180E:
    case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x2060:
    case 0x3000: case 0xFEFF: case 0x115F: case 0x1160: case 0x3164:
    case 0xFFA0: case 0x2800:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200D;  // en quad .. zero width joiner
  }
}

bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAsciiAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsAsciiHex(char c) {
  return IsAsciiDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// RFC 5322 atext.
bool IsAtext(char c) {
  if (IsAsciiAlpha(c) || IsAsciiDigit(c)) return true;
  static constexpr std::string_view kSpecials = "!#$%&'*+-/=?^_`{|}~";
  return kSpecials.find(c) != std::string_view::npos;
}

// A domain label: 1-63 bytes of [A-Za-z0-9-], not starting or ending with '-'.
bool IsDomainLabel(std::string_view label) {
  if (label.empty() || label.size() > 63) return false;
  if (label.front() == '-' || label.back() == '-') return false;
  for (char c : label) {
    if (!IsAsciiAlpha(c) && !IsAsciiDigit(c) && c != '-') return false;
  }
  return true;
}

bool IsEmailLocalPart(std::string_view local) {
  if (local.empty()) return false;
  if (local.front() == '.' || local.back() == '.') return false;
  size_t i = 0;
  char prev = 0;
  while (i < local.size()) {
    const char c = local[i];
    if (static_cast<unsigned char>(c) >= 0x80) {
      char32_t cp;
      if (!DecodeUtf8(local, &i, &cp)) return false;
      if (IsControl(cp) || IsBlank(cp)) return false;
      prev = 0;
      continue;
    }
    if (c == '.') {
      if (prev == '.') return false;
    } else if (!IsAtext(c)) {
      return false;
    }
    prev = c;
    ++i;
  }
  return true;
}

bool IsEmailDomain(std::string_view domain) {
  size_t labels = 0;
  std::string_view last;
  size_t start = 0;
  while (true) {
    const size_t dot = domain.find('.', start);
    const std::string_view label =
        domain.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!IsDomainLabel(label)) return false;
    ++labels;
    last = label;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (labels < 2) return false;
  // An all-numeric last label makes the domain look like an IPv4 address.
  for (char c : last) {
    if (!IsAsciiDigit(c)) return true;
  }
  return false;
}

// Host of an http(s) URL: a bracketed IP literal or an RFC 3986 reg-name.
bool IsUrlHost(std::string_view host) {
  if (host.empty()) return false;
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return false;
    for (char c : host.substr(1, host.size() - 2)) {
      if (!IsAsciiHex(c) && c != ':' && c != '.' && c != 'v' && c != 'V') return false;
    }
    return true;
  }
  static constexpr std::string_view kAllowed = "-._~%!$&'()*+,;=";
  for (char c : host) {
    if (!IsAsciiAlpha(c) && !IsAsciiDigit(c) && kAllowed.find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

bool IsUrlPort(std::string_view port) {
  // RFC 3986 allows an empty port ("http://host:/"); it means the default.
  if (port.size() > 5) return false;
  unsigned value = 0;
  for (char c : port) {
    if (!IsAsciiDigit(c)) return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value <= 65535;
}

bool IsHhMm(std::string_view s) {
  if (s.size() != 5 || s[2] != ':') return false;
  if (!IsAsciiDigit(s[0]) || !IsAsciiDigit(s[1]) || !IsAsciiDigit(s[3]) || !IsAsciiDigit(s[4])) {
    return false;
  }
  const int hours = (s[0] - '0') * 10 + (s[1] - '0');
  const int minutes = (s[3] - '0') * 10 + (s[4] - '0');
  return hours <= 23 && minutes <= 59;
}

// Components of [A-Za-z0-9._+-] separated by single '/', none "." or "..".
bool IsTimezoneNameShape(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  size_t start = 0;
  while (true) {
    const size_t slash = name.find('/', start);
    const std::string_view part =
        name.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    for (char c : part) {
      if (!IsAsciiAlpha(c) && !IsAsciiDigit(c) && c != '.' && c != '_' && c != '+' && c != '-') {
        return false;
      }
    }
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

// Walks a JSON value without recursion (nlohmann's own dump() recurses, so
// depth is bounded before it runs) and checks that every key and string is
// valid UTF-8.
Status CheckSettingsTree(const Json& root) {
  std::vector<std::pair<const Json*, size_t>> stack;
  stack.emplace_back(&root, 1);
  while (!stack.empty()) {
    auto [node, depth] = stack.back();
    stack.pop_back();
    if (node->is_string()) {
      if (!IsValidUtf8(node->get_ref<const std::string&>())) {
        return Invalid("settings", "contains invalid UTF-8");
      }
      continue;
    }
    if (!node->is_structured()) continue;
    if (depth > kMaxSettingsDepth) {
      return Invalid("settings",
                     "must not be nested more than " + std::to_string(kMaxSettingsDepth) + " levels deep");
    }
    if (node->is_object()) {
      for (auto it = node->begin(); it != node->end(); ++it) {
        if (!IsValidUtf8(it.key())) return Invalid("settings", "contains invalid UTF-8");
        stack.emplace_back(&it.value(), depth + 1);
      }
    } else {
      for (const Json& child : *node) stack.emplace_back(&child, depth + 1);
    }
  }
  return Status::Ok();
}

// The id member of a payload object, lower-cased.
Result<std::string> ParseId(const Json& payload) {
  const auto it = payload.find("id");
  if (it == payload.end()) return Invalid("id", "required");
  if (!it->is_string()) return Invalid("id", "expected a string");
  const std::string& id = it->get_ref<const std::string&>();
  if (id.empty()) return Invalid("id", "required");
  if (!IsUuid(id)) return Invalid("id", "must be a UUID");
  return ToLowerAscii(id);
}

// A non-nullable string member: absent → nullopt; present → validated value.
template <class Validator>
Status ParseString(const Json& payload, const char* field, std::optional<std::string>* out,
                   Validator validate) {
  const auto it = payload.find(field);
  if (it == payload.end()) return Status::Ok();
  if (!it->is_string()) return Invalid(field, "expected a string");
  const std::string& value = it->get_ref<const std::string&>();
  USERSD_RETURN_IF_ERROR(validate(value));
  *out = value;
  return Status::Ok();
}

// A nullable string member: absent → nullopt; null → optional(nullopt).
template <class Validator>
Status ParseNullableString(const Json& payload, const char* field,
                           std::optional<std::optional<std::string>>* out, Validator validate) {
  const auto it = payload.find(field);
  if (it == payload.end()) return Status::Ok();
  if (it->is_null()) {
    out->emplace(std::nullopt);
    return Status::Ok();
  }
  if (!it->is_string()) return Invalid(field, "expected a string or null");
  const std::string& value = it->get_ref<const std::string&>();
  USERSD_RETURN_IF_ERROR(validate(value));
  out->emplace(value);
  return Status::Ok();
}

Result<UserPatch> ParseUpdateObject(const Json& payload) {
  UserPatch patch;
  Result<std::string> id = ParseId(payload);
  if (!id.ok()) return id.status();
  patch.id = std::move(id).value();

  USERSD_RETURN_IF_ERROR(ParseString(payload, "firstName", &patch.first_name,
                                     [](std::string_view v) { return ValidateName("firstName", v); }));
  USERSD_RETURN_IF_ERROR(ParseString(payload, "lastName", &patch.last_name,
                                     [](std::string_view v) { return ValidateName("lastName", v); }));
  USERSD_RETURN_IF_ERROR(
      ParseString(payload, "email", &patch.email, [](std::string_view v) { return ValidateEmail(v); }));
  USERSD_RETURN_IF_ERROR(ParseNullableString(payload, "avatarUrl", &patch.avatar_url,
                                             [](std::string_view v) { return ValidateAvatarUrl(v); }));
  USERSD_RETURN_IF_ERROR(ParseNullableString(payload, "timezone", &patch.timezone,
                                             [](std::string_view v) { return ValidateTimezone(v); }));

  const auto settings = payload.find("settings");
  if (settings != payload.end()) {
    if (settings->is_null()) {
      patch.settings.emplace(std::nullopt);
    } else if (!settings->is_object()) {
      return Invalid("settings", "expected an object or null");
    } else {
      USERSD_RETURN_IF_ERROR(ValidateSettings(*settings));
      patch.settings.emplace(*settings);
    }
  }
  return patch;
}

// A request may omit its payload; the IPC layer then hands over null, which
// is read as {} so that the client learns which field is missing.
const Json* PayloadObject(const Json& payload) {
  static const Json kEmptyObject = Json::object();
  if (payload.is_null()) return &kEmptyObject;
  if (!payload.is_object()) return nullptr;
  return &payload;
}

void AddTabNames(const std::string& path, std::set<std::string, std::less<>>* names) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    // country-code(s) TAB coordinates TAB TZ [TAB comments]
    std::istringstream fields(line);
    std::string codes, coordinates, name;
    if (!std::getline(fields, codes, '\t') || !std::getline(fields, coordinates, '\t') ||
        !std::getline(fields, name, '\t')) {
      continue;
    }
    if (IsTimezoneNameShape(name) && name != "Factory") names->insert(name);
  }
}

}  // namespace

bool UserPatch::empty() const {
  return !first_name && !last_name && !email && !avatar_url && !timezone && !settings;
}

Result<UserPatch> ParseUpdatePayload(const Json& payload) {
  try {
    const Json* object = PayloadObject(payload);
    if (object == nullptr) return Invalid("payload", "expected an object");
    return ParseUpdateObject(*object);
  } catch (const std::exception& e) {
    // Not expected: every access above is type-checked first. A bad_alloc or a
    // library surprise must still not cross into the IPC callback.
    return Status::Internal(std::string("user.update payload: ") + e.what());
  }
}

Result<std::string> ParseDeletePayload(const Json& payload) {
  try {
    const Json* object = PayloadObject(payload);
    if (object == nullptr) return Invalid("payload", "expected an object");
    return ParseId(*object);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("user.delete payload: ") + e.what());
  }
}

bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!IsAsciiHex(s[i])) {
      return false;
    }
  }
  return true;
}

Status ValidateName(std::string_view field, std::string_view value) {
  if (!IsValidUtf8(value)) return Invalid(field, "not valid UTF-8");
  const size_t count = CountCodePoints(value);
  if (count < 1 || count > kMaxNameCodePoints) return Invalid(field, "must be 1 to 100 characters");
  bool blank = true;
  size_t i = 0;
  while (i < value.size()) {
    char32_t cp = 0;
    DecodeUtf8(value, &i, &cp);  // cannot fail: checked above
    if (IsControl(cp)) return Invalid(field, "must not contain control characters");
    if (!IsBlank(cp)) blank = false;
  }
  if (blank) return Invalid(field, "must not be blank");
  return Status::Ok();
}

Status ValidateEmail(std::string_view value) {
  if (value.empty()) return Invalid("email", "must not be empty");
  if (value.size() > kMaxEmailBytes) return Invalid("email", "must be at most 255 bytes");
  if (!IsValidUtf8(value)) return Invalid("email", "not valid UTF-8");
  const size_t at = value.find('@');
  if (at == std::string_view::npos || value.find('@', at + 1) != std::string_view::npos) {
    return Invalid("email", "not a valid email address");
  }
  const std::string_view local = value.substr(0, at);
  if (local.size() > kMaxEmailLocalPartBytes) {
    return Invalid("email", "local part must be at most 64 bytes");
  }
  if (!IsEmailLocalPart(local) || !IsEmailDomain(value.substr(at + 1))) {
    return Invalid("email", "not a valid email address");
  }
  // Look-alikes: an address that renders as another one could claim it in
  // the eyes of a reader (the uniqueness key cannot see it).
  for (size_t i = 0; i < local.size();) {
    char32_t cp = 0;
    DecodeUtf8(local, &i, &cp);  // cannot fail: checked above
    if (IsFullwidthForm(cp)) return Invalid("email", "local part must not use fullwidth characters");
  }
  if (IsMixedScript(local)) return Invalid("email", "local part must not mix scripts (such as Latin and Cyrillic)");
  return Status::Ok();
}

Status ValidateAvatarUrl(std::string_view value) {
  if (value.empty()) return Invalid("avatarUrl", "must not be empty");
  if (value.size() > kMaxAvatarUrlBytes) return Invalid("avatarUrl", "must be at most 2048 bytes");
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == 0x7F) {
      return Invalid("avatarUrl", "must not contain whitespace or control characters");
    }
    if (c >= 0x80) return Invalid("avatarUrl", "must be ASCII (percent-encode other characters)");
  }
  const size_t colon = value.find("://");
  if (colon == std::string_view::npos) return Invalid("avatarUrl", "must be an http or https URL");
  const std::string scheme = ToLowerAscii(value.substr(0, colon));
  if (scheme != "http" && scheme != "https") return Invalid("avatarUrl", "must be an http or https URL");

  const std::string_view rest = value.substr(colon + 3);
  std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  const size_t at = authority.rfind('@');
  if (at != std::string_view::npos) authority.remove_prefix(at + 1);
  std::string_view host = authority;
  std::string_view port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return Invalid("avatarUrl", "must have a valid host");
    host = authority.substr(0, close + 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return Invalid("avatarUrl", "must have a valid host");
      has_port = true;
      port = after.substr(1);
    }
  } else {
    const size_t port_colon = authority.find(':');
    if (port_colon != std::string_view::npos) {
      host = authority.substr(0, port_colon);
      port = authority.substr(port_colon + 1);
      has_port = true;
    }
  }
  if (host.empty()) return Invalid("avatarUrl", "must have a host");
  if (!IsUrlHost(host)) return Invalid("avatarUrl", "must have a valid host");
  if (has_port && !IsUrlPort(port)) return Invalid("avatarUrl", "must have a valid port");
  return Status::Ok();
}

Status ValidateTimezone(std::string_view value) { return ValidateTimezone(value, SystemTimezoneNames()); }

Status ValidateTimezone(std::string_view value, const TimezoneNames& names) {
  if (value.empty()) return Invalid("timezone", "must not be empty");
  if (names.Contains(value)) return Status::Ok();
  // Echo the name only when it is short printable ASCII, so the message stays
  // safe to log and to put in JSON.
  bool printable = value.size() <= 64;
  for (char c : value) printable = printable && c > 0x20 && c < 0x7F && c != '"' && c != '\\';
  if (!printable) return Invalid("timezone", "unknown time zone");
  return Invalid("timezone", "unknown time zone \"" + std::string(value) + "\"");
}

Status ValidateSettings(const Json& value) {
  if (!value.is_object()) return Invalid("settings", "expected an object");
  USERSD_RETURN_IF_ERROR(CheckSettingsTree(value));
  std::string serialized;
  try {
    serialized = value.dump();
  } catch (const Json::exception&) {
    // Unreachable after CheckSettingsTree (dump() throws only on bad UTF-8).
    return Invalid("settings", "cannot be serialized");
  }
  if (serialized.size() > kMaxSettingsBytes) {
    return Invalid("settings", "must be at most 16384 bytes when serialized");
  }

  for (const char* key : {"doNotDisturb", "showQuietHoursInStatus"}) {
    const auto it = value.find(key);
    if (it != value.end() && !it->is_boolean()) {
      return Invalid(std::string("settings.") + key, "expected a boolean");
    }
  }
  // Checked in this order so that the message is stable: doNotDisturb,
  // showQuietHoursInStatus, quietHoursStart, quietHoursEnd, theme.
  for (const char* key : {"quietHoursStart", "quietHoursEnd"}) {
    const auto it = value.find(key);
    if (it == value.end()) continue;
    const std::string field = std::string("settings.") + key;
    if (!it->is_string()) return Invalid(field, "expected a string");
    if (!IsHhMm(it->get_ref<const std::string&>())) return Invalid(field, "must be HH:MM");
  }
  const auto theme = value.find("theme");
  if (theme != value.end() && !theme->is_object()) return Invalid("settings.theme", "expected an object");
  return Status::Ok();
}

Result<TimezoneNames> TimezoneNames::LoadFromDir(const std::string& dir) {
  TimezoneNames result;
  std::ifstream zi(dir + "/tzdata.zi");
  if (zi) {
    std::string line;
    while (std::getline(zi, line)) {
      // "Z name stdoff ..." declares a zone; "L target alias" declares a link.
      std::istringstream fields(line);
      std::string kind, first, second;
      if (!(fields >> kind >> first)) continue;
      std::string name;
      if (kind == "Z") {
        name = first;
      } else if (kind == "L" && (fields >> second)) {
        name = second;
      } else {
        continue;
      }
      if (IsTimezoneNameShape(name) && name != "Factory") result.names_.insert(std::move(name));
    }
  }
  if (result.names_.empty()) {
    AddTabNames(dir + "/zone1970.tab", &result.names_);
    AddTabNames(dir + "/zone.tab", &result.names_);
    if (!result.names_.empty()) {
      // The .tab files list only geographic zones.
      result.names_.insert("UTC");
      result.names_.insert("Etc/UTC");
    }
  }
  if (result.names_.empty()) return Status::IOError("no time zone names found in " + dir);
  return result;
}

TimezoneNames TimezoneNames::Minimal() {
  TimezoneNames result;
  result.names_.insert("UTC");
  result.names_.insert("Etc/UTC");
  return result;
}

const TimezoneNames& SystemTimezoneNames() {
  static const TimezoneNames names = [] {
    const char* env = std::getenv("TZDIR");
    const std::string dir = (env != nullptr && *env != '\0') ? env : "/usr/share/zoneinfo";
    Result<TimezoneNames> loaded = TimezoneNames::LoadFromDir(dir);
    if (loaded.ok()) return std::move(loaded).value();
    LogWarn("time zone database unavailable; only UTC is accepted",
            {{"dir", dir}, {"error", loaded.status().message()}});
    return TimezoneNames::Minimal();
  }();
  return names;
}

}  // namespace usersd::domain
