#include "common/backoff.h"

#include <algorithm>
#include <cmath>

namespace usersd {

int64_t Backoff::CeilingMs(uint32_t attempt) const {
  int64_t ceiling = std::min(initial_ms, max_ms);
  for (uint32_t i = 0; i < attempt && ceiling > 0 && ceiling < max_ms; ++i)
    ceiling = ceiling > max_ms / 2 ? max_ms : ceiling * 2;
  return ceiling;
}

int64_t Backoff::DelayMs(uint32_t attempt, double random01) const {
  int64_t ceiling = CeilingMs(attempt);
  if (jitter == Jitter::kNone) return std::max<int64_t>(0, ceiling);
  if (!(random01 >= 0.0)) random01 = 0.0;  // also NaN
  if (random01 >= 1.0) random01 = std::nextafter(1.0, 0.0);
  auto delay = static_cast<int64_t>(std::floor(random01 * static_cast<double>(ceiling)));
  if (ceiling > 0 && delay >= ceiling) delay = ceiling - 1;
  return std::max<int64_t>(0, delay);
}

}  // namespace usersd
