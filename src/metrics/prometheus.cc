#include "metrics/prometheus.h"

#include <fmt/core.h>

#include <cmath>

namespace barge::metrics {

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return fmt::format("{}", static_cast<int64_t>(value));
  }
  return fmt::format("{}", value);  // shortest text that reads back as the same double
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

PrometheusText::Family& PrometheusText::Get(const FamilyInfo& info) {
  for (Family& f : families_) {
    if (f.name == info.name) return f;
  }
  families_.push_back({std::string(info.name), std::string(info.type), std::string(info.help), ""});
  return families_.back();
}

void PrometheusText::Declare(const FamilyInfo& family) { (void)Get(family); }

void PrometheusText::Add(const FamilyInfo& family, const Labels& labels, double value) {
  Family& f = Get(family);
  f.samples += f.name;
  if (!labels.empty()) {
    f.samples += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) f.samples += ',';
      f.samples += labels[i].first;
      f.samples += "=\"";
      f.samples += EscapeLabelValue(labels[i].second);
      f.samples += '"';
    }
    f.samples += '}';
  }
  f.samples += ' ';
  f.samples += FormatValue(value);
  f.samples += '\n';
}

std::string PrometheusText::Render() const {
  std::string out;
  for (const Family& f : families_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name, f.help, f.name, f.type);
    out += f.samples;
  }
  return out;
}

}  // namespace barge::metrics
