#include "metrics/prometheus.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace barge::metrics {
namespace {

constexpr FamilyInfo kIn{"barge_test_records_in_total", "counter", "Records in."};
constexpr FamilyInfo kFill{"barge_test_fill_ratio", "gauge", "Fill."};

TEST(PrometheusTextTest, FamiliesStayTogetherInFirstSeenOrder) {
  PrometheusText m;
  m.Add(kIn, {{"step", "a"}}, 1);
  m.Add(kFill, {{"step", "a"}}, 0.5);
  m.Add(kIn, {{"step", "b"}}, 2);
  m.Declare({"barge_test_late_total", "counter", "Late."});
  EXPECT_EQ(m.Render(),
            "# HELP barge_test_records_in_total Records in.\n"
            "# TYPE barge_test_records_in_total counter\n"
            "barge_test_records_in_total{step=\"a\"} 1\n"
            "barge_test_records_in_total{step=\"b\"} 2\n"
            "# HELP barge_test_fill_ratio Fill.\n"
            "# TYPE barge_test_fill_ratio gauge\n"
            "barge_test_fill_ratio{step=\"a\"} 0.5\n"
            "# HELP barge_test_late_total Late.\n"
            "# TYPE barge_test_late_total counter\n");
}

TEST(PrometheusTextTest, EscapesLabelValues) {
  PrometheusText m;
  m.Add(kIn, {{"step", "a\"b\\c\nd"}, {"subtask", "0"}}, 3);
  EXPECT_NE(m.Render().find("{step=\"a\\\"b\\\\c\\nd\",subtask=\"0\"} 3\n"), std::string::npos);
}

TEST(PrometheusTextTest, Values) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(12345678901234.0), "12345678901234");
  EXPECT_EQ(FormatValue(-3), "-3");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(1e300), "1e+300");
}

}  // namespace
}  // namespace barge::metrics
