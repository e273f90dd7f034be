#include "common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace usersd {

namespace {

const double kBuckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
constexpr size_t kNumBuckets = sizeof kBuckets / sizeof kBuckets[0];
static_assert(kNumBuckets == Metrics::kNumBuckets);

std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace

std::string FormatMetricValue(double v) {
  // Prometheus spells the special values this way; to_chars would write
  // "nan" and "inf".
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // The shortest digits that read back as the same double (0.865, not the
  // 0.86499999999999999 that "%.17g" prints), as plain decimals unless the
  // exponent is below -4 or 21 and above (JavaScript's rule): bucket bounds
  // read le="0.0001", timestamps 1733550000.123, and only extremes use an
  // exponent.
  char buf[400];
  auto sci = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  if (sci.ec != std::errc()) return "NaN";
  const char* e = std::find(buf, sci.ptr, 'e');
  int exponent = 0;
  if (e != sci.ptr) {
    const char* digits = e + 1;
    if (digits != sci.ptr && *digits == '+') ++digits;  // from_chars takes '-' only
    std::from_chars(digits, sci.ptr, exponent);
  }
  if (exponent < -4 || exponent >= 21) return std::string(buf, sci.ptr);
  auto fixed = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  if (fixed.ec != std::errc()) return "NaN";
  return std::string(buf, fixed.ptr);
}

namespace {

std::string Num(double v) {
  return FormatMetricValue(v);
}

std::string WithLabel(const std::string& key, const std::string& extra) {
  if (key.empty()) return "{" + extra + "}";
  return key.substr(0, key.size() - 1) + "," + extra + "}";
}

}  // namespace

std::string Metrics::Key(Labels labels) {
  if (labels.size() == 0) return {};
  std::string k = "{";
  bool first = true;
  for (const auto& [n, v] : labels) {
    if (!first) k += ',';
    first = false;
    k += n;
    k += "=\"";
    k += Escape(v);
    k += '"';
  }
  k += '}';
  return k;
}

void Metrics::Describe(const std::string& name, const std::string& type, const std::string& help) {
  MutexLock lock(mu_);
  meta_.emplace(name, std::make_pair(type, help));
}

void Metrics::Inc(const std::string& name, Labels labels, uint64_t by) {
  std::string k = Key(labels);
  MutexLock lock(mu_);
  counters_[name][k].fetch_add(by, std::memory_order_relaxed);
}

std::atomic<uint64_t>* Metrics::CounterRef(const std::string& name, Labels labels) {
  std::string k = Key(labels);
  MutexLock lock(mu_);
  return &counters_[name][k];
}

Metrics::Hist* Metrics::HistogramRef(const std::string& name, Labels labels) {
  std::string k = Key(labels);
  MutexLock lock(mu_);
  return &hists_[name][k];
}

void Metrics::Hist::Observe(double seconds) {
  size_t i = 0;
  while (i < kNumBuckets && seconds > kBuckets[i]) ++i;
  if (i < kNumBuckets) buckets[i].fetch_add(1, std::memory_order_relaxed);
  count.fetch_add(1, std::memory_order_relaxed);
  sum.fetch_add(seconds, std::memory_order_relaxed);
}

void Metrics::Set(const std::string& name, Labels labels, double value) {
  std::string k = Key(labels);
  MutexLock lock(mu_);
  gauges_[name][k] = value;
}

void Metrics::Observe(const std::string& name, Labels labels, double seconds) {
  std::string k = Key(labels);
  Hist* h;
  {
    MutexLock lock(mu_);
    h = &hists_[name][k];
  }
  h->Observe(seconds);
}

void Metrics::AddCollector(std::function<void(Metrics&)> collector) {
  MutexLock lock(mu_);
  collectors_.push_back(std::move(collector));
}

uint64_t Metrics::CounterValue(const std::string& name, Labels labels) {
  std::string k = Key(labels);
  MutexLock lock(mu_);
  auto it = counters_.find(name);
  if (it == counters_.end()) return 0;
  auto jt = it->second.find(k);
  return jt == it->second.end() ? 0 : jt->second.load(std::memory_order_relaxed);
}

std::string Metrics::Render() {
  std::vector<std::function<void(Metrics&)>> collectors;
  {
    MutexLock lock(mu_);
    collectors = collectors_;
  }
  for (auto& c : collectors) c(*this);
  MutexLock lock(mu_);
  std::string out;
  auto header = [&](const std::string& name, const char* dflt_type) REQUIRES(mu_) {
    auto it = meta_.find(name);
    if (it != meta_.end()) {
      out += "# HELP " + name + " " + it->second.second + "\n";
      out += "# TYPE " + name + " " + it->second.first + "\n";
    } else {
      out += "# TYPE " + name + " " + dflt_type + "\n";
    }
  };
  for (const auto& [name, series] : counters_) {
    header(name, "counter");
    for (const auto& [k, v] : series) out += name + k + " " + std::to_string(v.load(std::memory_order_relaxed)) + "\n";
  }
  for (const auto& [name, series] : gauges_) {
    header(name, "gauge");
    for (const auto& [k, v] : series) out += name + k + " " + Num(v) + "\n";
  }
  for (const auto& [name, series] : hists_) {
    header(name, "histogram");
    for (const auto& [k, h] : series) {
      // Read once; buckets are stored per bucket and rendered cumulative. A
      // concurrent Observe may make count run ahead of the buckets briefly.
      uint64_t cumulative = 0;
      for (size_t i = 0; i < kNumBuckets; ++i) {
        cumulative += h.buckets[i].load(std::memory_order_relaxed);
        out += name + "_bucket" + WithLabel(k, "le=\"" + Num(kBuckets[i]) + "\"") + " " + std::to_string(cumulative) + "\n";
      }
      uint64_t count = std::max(h.count.load(std::memory_order_relaxed), cumulative);
      out += name + "_bucket" + WithLabel(k, "le=\"+Inf\"") + " " + std::to_string(count) + "\n";
      out += name + "_sum" + k + " " + Num(h.sum.load(std::memory_order_relaxed)) + "\n";
      out += name + "_count" + k + " " + std::to_string(count) + "\n";
    }
  }
  return out;
}

}  // namespace usersd
