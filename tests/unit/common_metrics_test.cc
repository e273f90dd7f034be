// common/metrics.h: numbers in the text exposition (issue 22: values such as
// 0.865 were printed as 0.86499999999999999).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include "common/metrics.h"

using namespace usersd;

TEST_CASE("metrics: values print as the shortest decimal that reads back the same", "[common][metrics]") {
  CHECK(FormatMetricValue(0.865) == "0.865");
  CHECK(FormatMetricValue(0.1 + 0.2) == "0.30000000000000004");
  CHECK(FormatMetricValue(0) == "0");
  CHECK(FormatMetricValue(3) == "3");
  CHECK(FormatMetricValue(-2.5) == "-2.5");
  CHECK(FormatMetricValue(1733550000.123) == "1733550000.123");
  CHECK(FormatMetricValue(18446744073709551615.0) == "18446744073709551616");
  CHECK(FormatMetricValue(1e21) == "1e+21");
  CHECK(FormatMetricValue(0.0001) == "0.0001");
  CHECK(FormatMetricValue(0.00001) == "1e-05");
  CHECK(FormatMetricValue(std::numeric_limits<double>::quiet_NaN()) == "NaN");
  CHECK(FormatMetricValue(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(FormatMetricValue(-std::numeric_limits<double>::infinity()) == "-Inf");
  for (double v : {0.865, 1.0 / 3, 123456.789, 5e-324, 1.7976931348623157e308}) {
    CHECK(std::strtod(FormatMetricValue(v).c_str(), nullptr) == v);
  }
}

TEST_CASE("metrics: the rendered text has no float noise in gauges, sums and bucket bounds", "[common][metrics]") {
  Metrics m;
  m.Describe("usersd_test_ratio", "gauge", "A ratio.");
  m.Set("usersd_test_ratio", {}, 0.865);
  m.Describe("usersd_test_seconds", "histogram", "Latency.");
  m.Observe("usersd_test_seconds", {}, 0.1);
  m.Observe("usersd_test_seconds", {}, 0.2);
  std::string text = m.Render();
  CHECK(text.find("usersd_test_ratio 0.865\n") != std::string::npos);
  CHECK(text.find("usersd_test_seconds_bucket{le=\"0.0001\"} 0\n") != std::string::npos);
  CHECK(text.find("usersd_test_seconds_bucket{le=\"0.25\"} 2\n") != std::string::npos);
  CHECK(text.find("usersd_test_seconds_sum 0.30000000000000004\n") != std::string::npos);
  CHECK(text.find("99999") == std::string::npos);
}
