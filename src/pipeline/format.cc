#include "pipeline/format.h"

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>

namespace barge::pipeline {

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Length of the valid UTF-8 sequence starting s[i], or 0 when it is not one.
size_t Utf8Length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  size_t n;
  uint32_t min;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  uint32_t cp = c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

constexpr char kHex[] = "0123456789abcdef";

void AppendInt(int64_t v, std::string& out) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

}  // namespace

void AppendJsonString(std::string_view s, std::string& out) {
  out += '"';
  size_t i = 0;
  while (i < s.size()) {
    // Runs of plain ASCII are copied at once.
    size_t run = i;
    while (run < s.size()) {
      unsigned char c = static_cast<unsigned char>(s[run]);
      if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
      ++run;
    }
    out.append(s.data() + i, run - i);
    i = run;
    if (i >= s.size()) break;
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t n = Utf8Length(s, i);
      if (n == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD
        ++i;
      } else {
        out.append(s.data() + i, n);
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 15];
    }
    ++i;
  }
  out += '"';
}

void AppendDouble(double v, std::string& out, bool json) {
  if (std::isnan(v)) {
    out += json ? "null" : "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += json ? "null" : (v > 0 ? "inf" : "-inf");
    return;
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  std::string_view text(buf, static_cast<size_t>(end - buf));
  out += text;
  if (text.find_first_of(".e") == std::string_view::npos) out += ".0";
}

void AppendTimestamp(int64_t ms, std::string& out) {
  using namespace std::chrono;
  int64_t days = ms >= 0 ? ms / 86'400'000 : -((-ms + 86'399'999) / 86'400'000);
  int64_t rest = ms - days * 86'400'000;
  year_month_day ymd{sys_days{std::chrono::days{days}}};
  int64_t h = rest / 3'600'000, m = rest / 60'000 % 60, s = rest / 1000 % 60, f = rest % 1000;
  char buf[48];
  int y = static_cast<int>(ymd.year());
  int n = std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ", y,
                        static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                        static_cast<long long>(h), static_cast<long long>(m),
                        static_cast<long long>(s), static_cast<long long>(f));
  out.append(buf, static_cast<size_t>(n));
}

void AppendJsonValue(const Column& c, size_t row, std::string& out) {
  if (c.IsNull(row)) {
    out += "null";
    return;
  }
  switch (c.type()) {
    case Type::kInt64:
      AppendInt(c.ints()[row], out);
      break;
    case Type::kDouble:
      AppendDouble(c.doubles()[row], out, /*json=*/true);
      break;
    case Type::kBool:
      out += c.bools()[row] ? "true" : "false";
      break;
    case Type::kString:
      AppendJsonString(c.String(row), out);
      break;
    case Type::kTimestamp:
      out += '"';
      AppendTimestamp(c.ints()[row], out);
      out += '"';
      break;
    case Type::kNull:
      out += "null";
      break;
  }
}

void AppendJsonRow(const RecordBatch& batch, size_t row, std::string& out) {
  JsonRowWriter writer;
  writer.Append(batch, row, out);
}

namespace {

// Whether `s` needs no escaping in JSON (printable ASCII without quote or backslash).
bool PlainJson(std::string_view s) {
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) return false;
  }
  return true;
}

}  // namespace

void JsonRowWriter::Append(const RecordBatch& batch, size_t row, std::string& out) {
  const Schema& schema = *batch.schema;
  if (batch.schema != schema_ || keys_.size() != batch.columns.size()) {
    schema_ = batch.schema;
    keys_.clear();
    for (size_t i = 0; i < schema.fields.size(); ++i) {
      std::string key(i == 0 ? "{" : ",");
      AppendJsonString(schema.fields[i].name, key);
      key += ':';
      keys_.push_back(std::move(key));
    }
  }
  // Numbers and short plain strings go through a local buffer, appended when it fills and at
  // the end: one append per row instead of one per character.
  char buf[1024];
  char* p = buf;
  char* const end = buf + sizeof buf;
  auto flush = [&] {
    out.append(buf, static_cast<size_t>(p - buf));
    p = buf;
  };
  constexpr size_t kNumber = 40;  // the longest number text, with room for ".0"
  for (size_t i = 0; i < batch.columns.size(); ++i) {
    const std::string& key = keys_[i];
    if (static_cast<size_t>(end - p) < key.size() + kNumber) flush();
    if (key.size() + kNumber > sizeof buf) {
      out += key;
    } else {
      std::memcpy(p, key.data(), key.size());
      p += key.size();
    }
    const Column& c = batch.columns[i];
    if (c.IsNull(row)) {
      std::memcpy(p, "null", 4);
      p += 4;
      continue;
    }
    switch (c.type()) {
      case Type::kInt64:
        p = std::to_chars(p, end, c.ints()[row]).ptr;
        break;
      case Type::kDouble: {
        const double v = c.doubles()[row];
        if (!std::isfinite(v)) {
          std::memcpy(p, "null", 4);
          p += 4;
          break;
        }
        char* start = p;
        p = std::to_chars(p, end, v).ptr;
        if (std::string_view(start, static_cast<size_t>(p - start)).find_first_of(".e") ==
            std::string_view::npos) {
          *p++ = '.';
          *p++ = '0';
        }
        break;
      }
      case Type::kBool:
        if (c.bools()[row]) {
          std::memcpy(p, "true", 4);
          p += 4;
        } else {
          std::memcpy(p, "false", 5);
          p += 5;
        }
        break;
      case Type::kString: {
        std::string_view v = c.String(row);
        if (v.size() + 2 <= static_cast<size_t>(end - p) && PlainJson(v)) {
          *p++ = '"';
          std::memcpy(p, v.data(), v.size());
          p += v.size();
          *p++ = '"';
        } else {
          flush();
          AppendJsonString(v, out);
        }
        break;
      }
      case Type::kTimestamp:
        flush();
        out += '"';
        AppendTimestamp(c.ints()[row], out);
        out += '"';
        break;
      case Type::kNull:
        std::memcpy(p, "null", 4);
        p += 4;
        break;
    }
  }
  if (p == end) flush();
  *p++ = batch.columns.empty() ? '{' : '}';
  if (batch.columns.empty()) {
    if (p == end) flush();
    *p++ = '}';
  }
  flush();
}

namespace {

void AppendCsvField(std::string_view s, char delimiter, std::string& out) {
  bool quote = s.empty();  // "" is an empty string; an unquoted empty field is NULL
  for (char c : s) {
    if (c == delimiter || c == '"' || c == '\n' || c == '\r') {
      quote = true;
      break;
    }
  }
  if (!quote) {
    out += s;
    return;
  }
  out += '"';
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

}  // namespace

void AppendCsvHeader(const Schema& schema, char delimiter, std::string& out) {
  for (size_t i = 0; i < schema.fields.size(); ++i) {
    if (i != 0) out += delimiter;
    AppendCsvField(schema.fields[i].name, delimiter, out);
  }
}

void AppendCsvRow(const RecordBatch& batch, size_t row, char delimiter, std::string& out) {
  for (size_t i = 0; i < batch.columns.size(); ++i) {
    if (i != 0) out += delimiter;
    const Column& c = batch.columns[i];
    if (c.IsNull(row)) continue;
    switch (c.type()) {
      case Type::kInt64:
        AppendInt(c.ints()[row], out);
        break;
      case Type::kDouble:
        AppendDouble(c.doubles()[row], out, /*json=*/false);
        break;
      case Type::kBool:
        out += c.bools()[row] ? "true" : "false";
        break;
      case Type::kString:
        AppendCsvField(c.String(row), delimiter, out);
        break;
      case Type::kTimestamp:
        AppendTimestamp(c.ints()[row], out);
        break;
      case Type::kNull:
        break;
    }
  }
}

std::optional<int64_t> ParseInt64(std::string_view s) {
  s = Trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> ParseDouble(std::string_view s) {
  s = Trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc::result_out_of_range) {
    // Overflow to infinity or underflow to zero, as strtod does.
    v = std::strtod(std::string(s).c_str(), nullptr);
  } else if (ec != std::errc() || end != s.data() + s.size()) {
    return std::nullopt;
  }
  return v;
}

std::optional<bool> ParseBool(std::string_view s) {
  s = Trim(s);
  if (s.size() > 5) return std::nullopt;
  char lower[6] = {};
  for (size_t i = 0; i < s.size(); ++i) {
    lower[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
  }
  std::string_view l(lower, s.size());
  if (l == "true" || l == "t" || l == "yes" || l == "y" || l == "1") return true;
  if (l == "false" || l == "f" || l == "no" || l == "n" || l == "0") return false;
  return std::nullopt;
}

std::optional<int64_t> ParseTimestamp(std::string_view s) {
  s = Trim(s);
  if (auto ms = ParseInt64(s)) return ms;
  // YYYY-MM-DD[(T| )HH:MM[:SS[.fraction]]][Z|(+|-)HH[:]MM]
  auto digits = [&](size_t at, size_t n, int& value) {
    if (at + n > s.size()) return false;
    value = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
      value = value * 10 + (s[i] - '0');
    }
    return true;
  };
  int y, mo, d, h = 0, mi = 0, sec = 0;
  if (!digits(0, 4, y) || s.size() < 10 || s[4] != '-' || !digits(5, 2, mo) || s[7] != '-' ||
      !digits(8, 2, d)) {
    return std::nullopt;
  }
  using namespace std::chrono;
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  size_t i = 10;
  int64_t frac_ms = 0;
  int64_t offset_ms = 0;
  if (i < s.size() && (s[i] == 'T' || s[i] == 't' || s[i] == ' ')) {
    if (!digits(i + 1, 2, h) || i + 3 >= s.size() || s[i + 3] != ':' || !digits(i + 4, 2, mi)) {
      return std::nullopt;
    }
    i += 6;
    if (i < s.size() && s[i] == ':') {
      if (!digits(i + 1, 2, sec)) return std::nullopt;
      i += 3;
      if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
        ++i;
        int64_t scale = 100;
        size_t start = i;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
          frac_ms += (s[i] - '0') * scale;
          scale /= 10;
          ++i;
        }
        if (i == start) return std::nullopt;
      }
    }
    if (h > 23 || mi > 59 || sec > 60) return std::nullopt;
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
      ++i;
    } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
      int oh, om = 0;
      int sign = s[i] == '-' ? -1 : 1;
      if (!digits(i + 1, 2, oh)) return std::nullopt;
      i += 3;
      if (i < s.size() && s[i] == ':') ++i;
      if (i < s.size()) {
        if (!digits(i, 2, om)) return std::nullopt;
        i += 2;
      }
      offset_ms = sign * (oh * 3'600'000LL + om * 60'000LL);
    }
  }
  if (i != s.size()) return std::nullopt;
  int64_t days = sys_days{ymd}.time_since_epoch().count();
  return days * 86'400'000 + h * 3'600'000LL + mi * 60'000LL + sec * 1000LL + frac_ms - offset_ms;
}

}  // namespace barge::pipeline
