// Payload parsing and field validation for the user.update and user.delete
// operations (SPEC section 1).
//
// Every refusal is Status::InvalidArgument whose message starts with the
// field's wire name ("firstName: must be 1 to 100 characters",
// "settings.quietHoursStart: must be HH:MM"), so the IPC layer can pass it to
// the client unchanged as a ValidationError. The parsers report the first
// failing field, checked in the order id, firstName, lastName, email,
// avatarUrl, timezone, settings. No exception escapes any function here.
//
// Decisions beyond the spec's wording:
//  - Names (firstName, lastName): valid UTF-8, 1 to 100 code points, no
//    control characters (C0 U+0000-U+001F, DEL U+007F, C1 U+0080-U+009F), and
//    not blank (made only of white space or invisible fillers such as
//    U+00A0, U+200B, U+3000, U+3164). Leading and trailing spaces are kept as
//    given, not trimmed.
//  - Email: one '@'; a dot-atom local part of at most 64 bytes (RFC 5322
//    atext plus non-ASCII UTF-8 as RFC 6531 allows, no leading, trailing or
//    doubled dot, no quoted form); an ASCII domain of at least two LDH labels
//    of 1 to 63 bytes, not starting or ending with '-', with a non-numeric
//    last label (internationalised domains must be given as "xn--" A-labels);
//    at most 255 bytes in total. The local part may not use fullwidth forms
//    (U+FF01-U+FF60, U+FFE0-U+FFE6) nor mix scripts (common/text.h
//    IsMixedScript). The address is stored as given; uniqueness compares
//    EmailKey(email): ASCII case-folded, anything else NFC and Unicode
//    case-folded (common/text.h).
//  - avatarUrl: printable ASCII only (other characters must be
//    percent-encoded), "http://" or "https://" (scheme case-insensitive), a
//    non-empty host (reg-name or bracketed IP literal), an optional numeric
//    port up to 65535.
//  - timezone: a Zone or Link name of the system tz database, matched
//    case-sensitively; "Factory" is refused.
//  - settings: besides the 16 KiB limit, nesting deeper than
//    kMaxSettingsDepth levels and invalid UTF-8 in keys or strings are
//    refused. Known keys may not be null.
//  - id: a UUID in 8-4-4-4-12 hex form, either case, returned lower-cased
//    (RFC 9562 compares UUIDs case-insensitively). A well-formed id reveals
//    nothing, so this check may run before the policy check.
//  - An absent (null) payload is treated as {}, so it fails with "id: required".
//
// Thread-safe: all functions are pure except that the system time zone set
// is loaded once, on first use, behind a function-local static.
#pragma once

#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "common/text.h"

namespace usersd::domain {

using Json = nlohmann::json;

inline constexpr size_t kMaxNameCodePoints = 100;
inline constexpr size_t kMaxEmailBytes = 255;
inline constexpr size_t kMaxEmailLocalPartBytes = 64;
inline constexpr size_t kMaxAvatarUrlBytes = 2048;
inline constexpr size_t kMaxSettingsBytes = 16384;  // of settings.dump()
inline constexpr size_t kMaxSettingsDepth = 64;     // the object itself is level 1

// A partial update as parsed from the user.update payload. Absent fields are
// unchanged. For nullable fields the outer optional is "present" and the inner
// one is the value: an inner nullopt means "set to null". Every present value
// has passed its validator. A plain value type.
struct UserPatch {
  std::string id;  // lower-case UUID
  std::optional<std::string> first_name, last_name, email;
  std::optional<std::optional<std::string>> avatar_url, timezone;
  std::optional<std::optional<Json>> settings;  // inner nullopt = clear

  // True when no field besides id is present.
  bool empty() const;
};

// Parses and validates a user.update payload. Unknown members are ignored.
Result<UserPatch> ParseUpdatePayload(const Json& payload);

// Parses and validates a user.delete payload ({id}); returns the lower-cased id.
Result<std::string> ParseDeletePayload(const Json& payload);

// "id": a UUID (8-4-4-4-12 hex digits, either case).
bool IsUuid(std::string_view s);

// `field` is the wire name used in the message ("firstName", "lastName").
Status ValidateName(std::string_view field, std::string_view value);
Status ValidateEmail(std::string_view value);
Status ValidateAvatarUrl(std::string_view value);
Status ValidateTimezone(std::string_view value);  // against SystemTimezoneNames()
// `value` must be an object (a null "clear" is handled by the parser).
Status ValidateSettings(const Json& value);

// A set of IANA time zone names. Immutable once built; safe to share across
// threads.
class TimezoneNames {
 public:
  // Reads `dir`/tzdata.zi (Zone "Z name" and Link "L target name" lines); if
  // that file cannot be read, the third column of zone1970.tab and zone.tab
  // plus "UTC" and "Etc/UTC". Names that are not of IANA shape (components of
  // [A-Za-z0-9._+-], no "." or ".." component) and "Factory" are skipped.
  // IOError when neither source yields a name.
  static Result<TimezoneNames> LoadFromDir(const std::string& dir);
  // Only "UTC" and "Etc/UTC": what the daemon accepts with no tz database.
  static TimezoneNames Minimal();

  bool Contains(std::string_view name) const { return names_.find(name) != names_.end(); }
  size_t size() const { return names_.size(); }

 private:
  std::set<std::string, std::less<>> names_;
};

// The process-wide set, loaded on first call from $TZDIR (when set and
// non-empty) or /usr/share/zoneinfo. If that fails, logs a warning once and
// falls back to TimezoneNames::Minimal(). The reference lives for the process.
const TimezoneNames& SystemTimezoneNames();

// Same as ValidateTimezone(value) against an explicit set (for tests).
Status ValidateTimezone(std::string_view value, const TimezoneNames& names);

// The text helpers the validators use (common/text.h), for the domain's
// callers: well-formed UTF-8 per Unicode Table 3-7, code points, A-Z
// folded to a-z, and the key for email uniqueness.
using usersd::CountCodePoints;
using usersd::EmailKey;
using usersd::IsValidUtf8;
using usersd::ToLowerAscii;

}  // namespace usersd::domain
