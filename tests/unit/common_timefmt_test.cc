// FormatIso8601Ms against the gmtime_r + snprintf formatting it replaced on
// the hot path, and ParseIso8601Ms round trips.
#include <catch2/catch.hpp>

#include <cstdio>
#include <ctime>
#include <random>

#include "common/timefmt.h"

namespace {

std::string Reference(int64_t epoch_ms) {
  int64_t secs = epoch_ms / 1000;
  int64_t ms = epoch_ms % 1000;
  if (ms < 0) {
    ms += 1000;
    secs -= 1;
  }
  time_t t = static_cast<time_t>(secs);
  tm utc{};
  gmtime_r(&t, &utc);
  char buf[64];
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
           utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(ms));
  return buf;
}

}  // namespace

TEST_CASE("ParseIso8601Ms: zones, a space for the T, and times without a zone only when asked", "[common][time]") {
  using usersd::ParseIso8601Ms;
  CHECK(ParseIso8601Ms("2026-01-01T00:00:00.123Z") == 1767225600123);
  CHECK(ParseIso8601Ms("2026-01-01 00:00:00.123Z") == 1767225600123);
  CHECK(ParseIso8601Ms("2026-01-01T01:30:00.123+01:30") == 1767225600123);
  CHECK(ParseIso8601Ms("2026-01-01T00:00:00.123456Z") == 1767225600123);  // truncated to ms
  CHECK_FALSE(ParseIso8601Ms("2026-01-01 00:00:00.123"));                 // no zone: strict by default
  CHECK(ParseIso8601Ms("2026-01-01 00:00:00.123", true) == 1767225600123);
  CHECK(ParseIso8601Ms("2020-05-06 04:21:48.649164", true) == 1588738908649);  // workos-node's fixtures
  CHECK(ParseIso8601Ms("2026-01-01T00:00:00", true) == 1767225600000);
  CHECK(ParseIso8601Ms("2026-01-01T00:00:00+02:00", true) == 1767218400000);  // a zone still counts
  CHECK_FALSE(ParseIso8601Ms("2026-01-01 00:00:00.123 UTC", true));
  CHECK_FALSE(ParseIso8601Ms("2026-01-01 00:00:00.", true));
  CHECK_FALSE(ParseIso8601Ms("2026-01-01", true));
}

TEST_CASE("FormatIso8601Ms writes what gmtime_r and snprintf write", "[common][time]") {
  CHECK(usersd::FormatIso8601Ms(0) == "1970-01-01T00:00:00.000Z");
  CHECK(usersd::FormatIso8601Ms(1767225600123) == "2026-01-01T00:00:00.123Z");
  CHECK(usersd::FormatIso8601Ms(-1) == "1969-12-31T23:59:59.999Z");
  CHECK(usersd::FormatIso8601Ms(951782400000) == "2000-02-29T00:00:00.000Z");
  const int64_t edges[] = {-62167219200000, -62167219200001, 253402300799999, 253402300800000,
                           -86400000,       -86399999,       86399999,        4102444800000};
  for (int64_t v : edges) {
    INFO(v);
    CHECK(usersd::FormatIso8601Ms(v) == Reference(v));
  }
  std::mt19937_64 rng(5);
  for (int i = 0; i < 200000; ++i) {
    // Mostly 1900-2200, some across the whole 0000-9999 range.
    int64_t v = i % 4 ? static_cast<int64_t>(rng() % 9'500'000'000'000ull) - 2'208'988'800'000
                      : static_cast<int64_t>(rng() % 315'569'520'000'000ull) - 62'167'219'200'000;
    REQUIRE(usersd::FormatIso8601Ms(v) == Reference(v));
    if (i % 16 == 0) {
      auto back = usersd::ParseIso8601Ms(usersd::FormatIso8601Ms(v));
      REQUIRE(back.has_value());
      CHECK(*back == v);
    }
  }
}
