// ISO 8601 timestamps as they appear on the wire ("2026-11-26T17:52:41.123Z").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace usersd {

// Formats milliseconds since the epoch as UTC with exactly three fraction digits.
std::string FormatIso8601Ms(int64_t epoch_ms);

// Parses "YYYY-MM-DDTHH:MM:SS[.fff...](Z|+HH:MM|-HH:MM)". Returns nullopt on
// anything else. Fractions beyond milliseconds are truncated.
std::optional<int64_t> ParseIso8601Ms(std::string_view text);

}  // namespace usersd
