// Metrics in the Prometheus text exposition format (version 0.0.4), as `promtool check metrics`
// accepts it: each family's # HELP and # TYPE once, then all its samples together, label values
// escaped. Families come out in the order they were first added, whatever order samples arrive in.
//
//   PrometheusText m;
//   m.Add({"barge_step_records_in_total", "counter", "Records received."},
//         {{"step", "filter_1"}, {"subtask", "0"}}, 1234);
//   std::string body = m.Render();
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace barge::metrics {

struct FamilyInfo {
  std::string_view
      name;  // barge_..., counters end in _total, units in base units (_seconds, _bytes)
  std::string_view type;  // "counter", "gauge"
  std::string_view help;
};

using Labels = std::vector<std::pair<std::string_view, std::string>>;

// Content-Type of the rendered text.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

class PrometheusText {
 public:
  void Add(const FamilyInfo& family, const Labels& labels, double value);
  // A family with no samples yet still gets its HELP and TYPE (so a dashboard's queries find the
  // metric's name before, say, the first late record).
  void Declare(const FamilyInfo& family);
  std::string Render() const;

 private:
  struct Family {
    std::string name;
    std::string type;
    std::string help;
    std::string samples;
  };
  Family& Get(const FamilyInfo& info);
  std::vector<Family> families_;
};

// A sample value as the format writes it: integers without a fraction, NaN, +Inf, -Inf.
std::string FormatValue(double value);
// A label value with \, " and newline escaped.
std::string EscapeLabelValue(std::string_view value);

}  // namespace barge::metrics
