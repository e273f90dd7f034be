// RequestBudget: one pace for a host's WorkOS traffic (SPEC 4b,
// workos.requests_per_second).
//
// A token bucket: `rate` tokens a second, holding at most one second's
// worth (so a host that was idle sends a burst of at most `rate`). The
// outbox, reconciliation and resync ask before each request (TryTake) and
// wait until NextAt when refused. The events poll and JWKS refreshes go
// first: they are never refused, but what they send is charged (Charge), so
// the budget is the host's whole traffic and paced work yields to them.
// Retry-After is honoured by the callers, not here.
//
// Loop thread only. Time comes from the caller (monotonic milliseconds), so
// tests need no clock.
#pragma once

#include <cstdint>

#include "common/metrics.h"

namespace usersd::sync {

class RequestBudget {
 public:
  // rate <= 0: unlimited.
  explicit RequestBudget(double rate = 20) { SetRate(rate); }

  void SetRate(double rate);
  double rate() const { return rate_; }
  // Takes one token at `now_ms` if there is one; false (nothing taken)
  // otherwise.
  bool TryTake(int64_t now_ms);
  // Charges one request that was not asked for (it may leave a debt).
  void Charge(int64_t now_ms);
  // When the next token is there (now_ms when there is one already).
  int64_t NextAt(int64_t now_ms);

  uint64_t taken() const { return taken_; }
  uint64_t charged() const { return charged_; }
  uint64_t refused() const { return refused_; }
  // usersd_workos_budget_* (describes and sets them).
  void ExportMetrics(Metrics& m) const;

 private:
  void Refill(int64_t now_ms);

  double rate_ = 0;
  double tokens_ = 0;
  int64_t last_ms_ = 0;
  bool started_ = false;
  uint64_t taken_ = 0, charged_ = 0, refused_ = 0;
};

}  // namespace usersd::sync
