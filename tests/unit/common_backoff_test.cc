// common/backoff.h: the one exponential backoff (issue 23 item 1).
#include "common/backoff.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>

namespace usersd {
namespace {

TEST_CASE("backoff: the ceiling starts at initial and doubles per attempt up to max", "[common]") {
  Backoff b{.initial_ms = 1000, .max_ms = 60'000};
  CHECK(b.CeilingMs(0) == 1000);
  CHECK(b.CeilingMs(1) == 2000);
  CHECK(b.CeilingMs(5) == 32'000);
  CHECK(b.CeilingMs(6) == 60'000);
  CHECK(b.CeilingMs(std::numeric_limits<uint32_t>::max()) == 60'000);
  // No jitter: the wait is the ceiling, whatever the random number.
  for (uint32_t a = 0; a < 10; ++a) CHECK(b.DelayMs(a, 0.5) == b.CeilingMs(a));
}

TEST_CASE("backoff: an initial above max starts at max; zero stays zero", "[common]") {
  CHECK(Backoff{.initial_ms = 5000, .max_ms = 3000}.CeilingMs(0) == 3000);
  CHECK(Backoff{.initial_ms = 0, .max_ms = 3000}.CeilingMs(40) == 0);
  CHECK(Backoff{.initial_ms = 1000, .max_ms = 0}.DelayMs(3) == 0);
  // Near the top of int64 the doubling saturates at max instead of overflowing.
  const int64_t big = std::numeric_limits<int64_t>::max();
  CHECK(Backoff{.initial_ms = big / 2 + 1, .max_ms = big}.CeilingMs(1) == big);
}

TEST_CASE("backoff: full jitter draws from [0, ceiling) with the caller's random number", "[common]") {
  Backoff b{.initial_ms = 1000, .max_ms = 300'000, .jitter = Backoff::Jitter::kFull};
  CHECK(b.DelayMs(0, 0.0) == 0);
  CHECK(b.DelayMs(0, 0.5) == 500);
  CHECK(b.DelayMs(3, 0.25) == 2000);
  CHECK(b.DelayMs(0, 0.9999999999) == 999);
  CHECK(b.DelayMs(20, 0.5) == 150'000);
  // Out of range, and NaN, are clamped into [0, 1).
  CHECK(b.DelayMs(0, 1.0) == 999);
  CHECK(b.DelayMs(0, 7.0) == 999);
  CHECK(b.DelayMs(0, -3.0) == 0);
  CHECK(b.DelayMs(0, std::nan("")) == 0);
  CHECK(Backoff{.initial_ms = 1000, .max_ms = 0, .jitter = Backoff::Jitter::kFull}.DelayMs(0, 0.7) == 0);
}

// The formulas the sites had before they shared Backoff, kept here to show
// that each site waits as long as it did for the same attempt.
TEST_CASE("backoff: the same delays as the formulas the sites had before", "[common]") {
  // Reconciler: a wait kept between retries, doubled each time.
  auto stateful = [](int64_t initial, int64_t max, uint32_t attempt) {
    int64_t b = 0;
    for (uint32_t k = 0; k <= attempt; ++k) b = std::min(max, b ? b * 2 : initial);
    return b;
  };
  // Events poller while the key is refused.
  auto doubled_then_capped = [](int64_t initial, int64_t max, uint32_t attempt) {
    int64_t wait = initial;
    for (uint32_t i = 0; i < attempt && wait < max; ++i) wait *= 2;
    return std::min(wait, max);
  };
  // Outbox (BackoffDelayMs without Retry-After).
  auto full_jitter = [](int64_t initial, int64_t cap, uint32_t attempt, double r) {
    int64_t ceiling = std::min(initial, cap);
    for (uint32_t i = 0; i < attempt && ceiling < cap; ++i) ceiling = std::min(cap, ceiling * 2);
    auto delay = static_cast<int64_t>(std::floor(r * static_cast<double>(ceiling)));
    if (ceiling > 0 && delay >= ceiling) delay = ceiling - 1;
    return std::max<int64_t>(0, delay);
  };
  for (int64_t initial : {1, 999, 1000, 1500, 60'000, 400'000}) {
    for (int64_t max : {0, 1, 1000, 60'000, 300'000, 3'600'000}) {
      for (uint32_t attempt = 0; attempt < 40; ++attempt) {
        INFO("initial " << initial << " max " << max << " attempt " << attempt);
        CHECK(Backoff{.initial_ms = initial, .max_ms = max}.DelayMs(attempt) == stateful(initial, max, attempt));
        if (initial >= 1000 && max == 300'000)
          CHECK(Backoff{.initial_ms = initial, .max_ms = max}.DelayMs(attempt) ==
                doubled_then_capped(initial, max, attempt));
        for (double r : {0.0, 0.3, 0.999999}) {
          CHECK(Backoff{.initial_ms = initial, .max_ms = max, .jitter = Backoff::Jitter::kFull}.DelayMs(attempt, r) ==
                full_jitter(initial, max, attempt, r));
        }
      }
    }
  }
}

}  // namespace
}  // namespace usersd
