// Metrics: counters, gauges and latency histograms in Prometheus text form.
//
// Series are identified by name plus a rendered label set, e.g.
// Inc("usersd_requests_total", {{"method","user.me"},{"outcome","ok"}}).
// Thread-safe. Inc/Observe by name take one mutex; the hot path resolves a
// series once (CounterRef/HistogramRef) and then updates it lock-free.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/mutex.h"

namespace usersd {

using Labels = std::initializer_list<std::pair<const char*, std::string>>;

class Metrics {
 public:
  static constexpr size_t kNumBuckets = 16;
  // One latency histogram series; updated with relaxed atomics.
  struct Hist {
    std::array<std::atomic<uint64_t>, kNumBuckets> buckets{};  // per bucket, not cumulative
    std::atomic<uint64_t> count{0};
    std::atomic<double> sum{0};
    void Observe(double seconds);
  };

  // `help` is recorded the first time a family is seen.
  void Describe(const std::string& name, const std::string& type, const std::string& help);
  void Inc(const std::string& name, Labels labels = {}, uint64_t by = 1);
  void Set(const std::string& name, Labels labels, double value);
  // Records a latency in seconds into fixed buckets (100 µs .. 10 s).
  void Observe(const std::string& name, Labels labels, double seconds);
  // Gauges computed at scrape time.
  void AddCollector(std::function<void(Metrics&)> collector);
  // The Prometheus text exposition (version 0.0.4).
  std::string Render();

  uint64_t CounterValue(const std::string& name, Labels labels = {});

  // The series, created if missing. The pointer stays valid as long as this
  // Metrics; updating through it takes no lock.
  std::atomic<uint64_t>* CounterRef(const std::string& name, Labels labels = {});
  Hist* HistogramRef(const std::string& name, Labels labels);

 private:
  static std::string Key(Labels labels);
  Mutex mu_;
  std::map<std::string, std::pair<std::string, std::string>> meta_ GUARDED_BY(mu_);  // name -> (type, help)
  std::map<std::string, std::map<std::string, std::atomic<uint64_t>>> counters_ GUARDED_BY(mu_);
  std::map<std::string, std::map<std::string, double>> gauges_ GUARDED_BY(mu_);
  std::map<std::string, std::map<std::string, Hist>> hists_ GUARDED_BY(mu_);
  std::vector<std::function<void(Metrics&)>> collectors_ GUARDED_BY(mu_);
};

// A sample value as the text exposition writes it: the shortest decimal that
// reads back as the same double ("0.865", "3", "1e+21"), "NaN", "+Inf", "-Inf".
std::string FormatMetricValue(double v);

}  // namespace usersd
