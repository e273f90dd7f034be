#include "common/clock.h"

#include <time.h>

namespace usersd {
namespace {

class RealClock final : public Clock {
 public:
  int64_t NowMs() const override { return Read(CLOCK_REALTIME); }
  int64_t MonotonicMs() const override { return Read(CLOCK_MONOTONIC); }

 private:
  static int64_t Read(clockid_t id) {
    timespec ts{};
    clock_gettime(id, &ts);
    return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
  }
};

}  // namespace

Clock& SystemClock() {
  static RealClock clock;
  return clock;
}

}  // namespace usersd
