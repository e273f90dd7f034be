// ISO 8601 timestamps as they appear on the wire ("2026-11-26T17:52:41.123Z").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace usersd {

// Formats milliseconds since the epoch as UTC with exactly three fraction digits.
std::string FormatIso8601Ms(int64_t epoch_ms);

// Parses "YYYY-MM-DDTHH:MM:SS[.fff...](Z|+HH:MM|-HH:MM)" (a space for the
// T is accepted). Returns nullopt on anything else. Fractions beyond
// milliseconds are truncated. With `missing_zone_is_utc`, a time without a
// zone is UTC: WorkOS's own event samples read "2023-04-28 20:05:31.093".
std::optional<int64_t> ParseIso8601Ms(std::string_view text, bool missing_zone_is_utc = false);

}  // namespace usersd
