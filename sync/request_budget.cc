#include "sync/request_budget.h"

#include <algorithm>
#include <cmath>

namespace usersd::sync {

void RequestBudget::SetRate(double rate) {
  rate_ = rate > 0 ? rate : 0;
  tokens_ = std::min(tokens_, rate_);
}

void RequestBudget::Refill(int64_t now_ms) {
  if (!started_) {
    started_ = true;
    last_ms_ = now_ms;
    tokens_ = rate_;
    return;
  }
  if (now_ms <= last_ms_) return;
  tokens_ = std::min(rate_, tokens_ + rate_ * static_cast<double>(now_ms - last_ms_) / 1000.0);
  last_ms_ = now_ms;
}

bool RequestBudget::TryTake(int64_t now_ms) {
  if (rate_ <= 0) {
    ++taken_;
    return true;
  }
  Refill(now_ms);
  if (tokens_ < 1.0) {
    ++refused_;
    return false;
  }
  tokens_ -= 1.0;
  ++taken_;
  return true;
}

void RequestBudget::Charge(int64_t now_ms) {
  ++charged_;
  if (rate_ <= 0) return;
  Refill(now_ms);
  // A debt of at most a few seconds: a burst of polls must not stop the
  // outbox for long.
  tokens_ = std::max(tokens_ - 1.0, -2.0 * rate_);
}

int64_t RequestBudget::NextAt(int64_t now_ms) {
  if (rate_ <= 0) return now_ms;
  Refill(now_ms);
  if (tokens_ >= 1.0) return now_ms;
  return now_ms + static_cast<int64_t>(std::ceil((1.0 - tokens_) * 1000.0 / rate_));
}

void RequestBudget::ExportMetrics(Metrics& m) const {
  m.Describe("usersd_workos_budget_requests_per_second", "gauge",
             "workos.requests_per_second: the pace of the outbox, reconciliation and resync (0 = unlimited).");
  m.Describe("usersd_workos_budget_taken_total", "counter", "Paced WorkOS requests let through by the budget.");
  m.Describe("usersd_workos_budget_charged_total", "counter",
             "Unpaced WorkOS requests (events poll, JWKS) charged to the budget.");
  m.Describe("usersd_workos_budget_waits_total", "counter",
             "Times paced work waited for the budget (requests it held back, counted at each try).");
  m.Set("usersd_workos_budget_requests_per_second", {}, rate_);
  m.Set("usersd_workos_budget_taken_total", {}, static_cast<double>(taken_));
  m.Set("usersd_workos_budget_charged_total", {}, static_cast<double>(charged_));
  m.Set("usersd_workos_budget_waits_total", {}, static_cast<double>(refused_));
}

}  // namespace usersd::sync
