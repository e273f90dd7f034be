// Backoff: the one exponential backoff of usersd's retries.
//
// A wait that starts at `initial_ms` and doubles with each failure in a row,
// never above `max_ms`: after `attempt` earlier failures (0: the first),
// min(max_ms, initial_ms * 2^attempt). With full jitter the wait is drawn
// uniformly from [0, that ceiling) by a number the caller takes from its
// injected random source, so tests choose it. Where a site adds a
// Retry-After floor or a pause on top, that stays at the site.
//
// A plain value, pure and thread-compatible. Users: the outbox's jobs and
// whole-sender pause (full jitter, sync/outbox_sender.h), the reconciler's
// request retries and its wait after a failed run, the events poller's wait
// while WorkOS refuses the key (no jitter).
#pragma once

#include <cstdint>

namespace usersd {

struct Backoff {
  enum class Jitter { kNone, kFull };

  int64_t initial_ms = 0;
  int64_t max_ms = 0;
  Jitter jitter = Jitter::kNone;

  // min(max_ms, initial_ms * 2^attempt), without overflow. A ceiling of 0
  // (or less) stays where it is.
  int64_t CeilingMs(uint32_t attempt) const;
  // The wait after `attempt` earlier failures, never negative. kNone: the
  // ceiling. kFull: floor(random01 * ceiling), below the ceiling when it is
  // positive; random01 outside [0, 1) (or NaN) is clamped into it.
  int64_t DelayMs(uint32_t attempt, double random01 = 0.0) const;
};

}  // namespace usersd
