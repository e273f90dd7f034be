// Clock: the one source of time in usersd, injected so retry/backoff/expiry
// logic can be tested on a fake clock with no sleeps.
//
// Thread-safe: SystemClock has no state; FakeClock uses atomics.
#pragma once

#include <atomic>
#include <cstdint>

namespace usersd {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock milliseconds since the Unix epoch (for timestamps and token exp).
  virtual int64_t NowMs() const = 0;
  // Monotonic milliseconds from an arbitrary origin (for durations and timers).
  virtual int64_t MonotonicMs() const = 0;
};

// The real clock. The returned reference lives for the whole program.
Clock& SystemClock();

// A clock that moves only when told to; both readings advance together.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t now_ms = 1'790'000'000'000) : now_(now_ms), mono_(1'000'000) {}
  int64_t NowMs() const override { return now_.load(); }
  int64_t MonotonicMs() const override { return mono_.load(); }
  void Advance(int64_t ms) { now_ += ms; mono_ += ms; }
  void SetNowMs(int64_t ms) { now_ = ms; }

 private:
  std::atomic<int64_t> now_;
  std::atomic<int64_t> mono_;
};

}  // namespace usersd
