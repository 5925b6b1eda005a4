#include "pipeline/expr_convert.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>

namespace barge::pipeline::detail {

namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// Reads exactly `width` decimal digits at s[*pos].
bool ReadDigits(std::string_view s, size_t* pos, size_t width, int* out) {
  if (*pos + width > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < width; ++i) {
    char c = s[*pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *pos += width;
  *out = v;
  return true;
}

char* TwoDigits(char* p, int v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
  return p + 2;
}

}  // namespace

bool ParseInt64(std::string_view s, int64_t* out) {
  s = TrimSpaces(s);
  if (!s.empty() && s.front() == '+') {
    s.remove_prefix(1);
    if (!s.empty() && s.front() == '-') return false;
  }
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool ParseDouble(std::string_view s, double* out) {
  s = TrimSpaces(s);
  bool negative = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s.empty() || s.front() == '+' || s.front() == '-') return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  // Out of range: from_chars reports it without a value; SQL engines give +-inf or 0 only for
  // explicit "inf", so treat it as not convertible.
  if (ec != std::errc() || end != s.data() + s.size()) return false;
  if (negative) *out = -*out;
  return true;
}

bool ParseBool(std::string_view s, bool* out) {
  s = TrimSpaces(s);
  static constexpr std::string_view kTrue[] = {"true", "t", "yes", "y", "on", "1"};
  static constexpr std::string_view kFalse[] = {"false", "f", "no", "n", "off", "0"};
  for (std::string_view t : kTrue) {
    if (EqualsIgnoreCase(s, t)) {
      *out = true;
      return true;
    }
  }
  for (std::string_view f : kFalse) {
    if (EqualsIgnoreCase(s, f)) {
      *out = false;
      return true;
    }
  }
  return false;
}

bool ParseTimestamp(std::string_view s, int64_t* ms) {
  s = TrimSpaces(s);
  size_t pos = 0;
  bool negative_year = false;
  if (pos < s.size() && (s[pos] == '-' || s[pos] == '+')) {
    negative_year = s[pos] == '-';
    ++pos;
  }
  // Years have four to six digits (six keep every timestamp within int64 milliseconds).
  size_t year_start = pos;
  int64_t year = 0;
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9' && pos - year_start < 6) {
    year = year * 10 + (s[pos] - '0');
    ++pos;
  }
  if (pos - year_start < 4) return false;
  if (negative_year) year = -year;
  int month = 0, day = 0;
  if (pos >= s.size() || s[pos++] != '-' || !ReadDigits(s, &pos, 2, &month)) return false;
  if (pos >= s.size() || s[pos++] != '-' || !ReadDigits(s, &pos, 2, &day)) return false;
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month)) return false;
  int hour = 0, minute = 0, second = 0, millis = 0;
  int64_t zone_ms = 0;
  if (pos < s.size() && (s[pos] == 'T' || s[pos] == 't' || s[pos] == ' ')) {
    ++pos;
    if (!ReadDigits(s, &pos, 2, &hour)) return false;
    if (pos >= s.size() || s[pos++] != ':' || !ReadDigits(s, &pos, 2, &minute)) return false;
    if (pos < s.size() && s[pos] == ':') {
      ++pos;
      if (!ReadDigits(s, &pos, 2, &second)) return false;
      if (pos < s.size() && s[pos] == '.') {
        ++pos;
        size_t digits = 0;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
          if (digits < 3) millis = millis * 10 + (s[pos] - '0');
          ++digits;
          ++pos;
        }
        if (digits == 0) return false;
        for (size_t d = digits; d < 3; ++d) millis *= 10;
      }
    }
    if (hour > 23 || minute > 59 || second > 59) return false;
    while (pos < s.size() && s[pos] == ' ') ++pos;
    if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
      ++pos;
    } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
      int sign = s[pos] == '-' ? -1 : 1;
      ++pos;
      int zh = 0, zm = 0;
      if (!ReadDigits(s, &pos, 2, &zh)) return false;
      bool colon = pos < s.size() && s[pos] == ':';
      if (colon) ++pos;
      if ((colon || pos < s.size()) && !ReadDigits(s, &pos, 2, &zm)) return false;
      if (zh > 23 || zm > 59) return false;
      zone_ms = sign * (zh * kMsPerHour + zm * kMsPerMinute);
    }
  }
  if (pos != s.size()) return false;
  *ms = DaysFromCivil(year, month, day) * kMsPerDay + hour * kMsPerHour + minute * kMsPerMinute +
        second * kMsPerSecond + millis - zone_ms;
  return true;
}

size_t FormatInt64(int64_t v, char* buf) {
  return static_cast<size_t>(std::to_chars(buf, buf + kMaxFormatted, v).ptr - buf);
}

size_t FormatDouble(double v, char* buf) {
  if (std::isnan(v)) {
    std::memcpy(buf, "NaN", 3);
    return 3;
  }
  if (std::isinf(v)) {
    if (v < 0) {
      std::memcpy(buf, "-Infinity", 9);
      return 9;
    }
    std::memcpy(buf, "Infinity", 8);
    return 8;
  }
  char* end = std::to_chars(buf, buf + kMaxFormatted, v).ptr;
  bool integral = true;
  for (char* p = buf; p != end; ++p) {
    if (*p == '.' || *p == 'e') integral = false;
  }
  if (integral) {
    *end++ = '.';
    *end++ = '0';
  }
  return static_cast<size_t>(end - buf);
}

size_t FormatTimestamp(int64_t ms, char* buf) {
  int64_t days = FloorDiv(ms, kMsPerDay);
  int64_t in_day = ms - days * kMsPerDay;
  CivilDate date = CivilFromDays(days);
  char* p = buf;
  int64_t year = date.year;
  if (year < 0) {
    *p++ = '-';
    year = -year;
  }
  char digits[24];
  size_t n = static_cast<size_t>(std::to_chars(digits, digits + sizeof(digits), year).ptr - digits);
  for (size_t i = n; i < 4; ++i) *p++ = '0';
  std::memcpy(p, digits, n);
  p += n;
  *p++ = '-';
  p = TwoDigits(p, date.month);
  *p++ = '-';
  p = TwoDigits(p, date.day);
  *p++ = ' ';
  p = TwoDigits(p, static_cast<int>(in_day / kMsPerHour));
  *p++ = ':';
  p = TwoDigits(p, static_cast<int>(in_day / kMsPerMinute % 60));
  *p++ = ':';
  p = TwoDigits(p, static_cast<int>(in_day / kMsPerSecond % 60));
  if (int millis = static_cast<int>(in_day % kMsPerSecond); millis != 0) {
    *p++ = '.';
    *p++ = static_cast<char>('0' + millis / 100);
    p = TwoDigits(p, millis % 100);
  }
  return static_cast<size_t>(p - buf);
}

std::string FormatDouble(double v) {
  char buf[kMaxFormatted];
  return std::string(buf, FormatDouble(v, buf));
}

std::string FormatTimestamp(int64_t ms) {
  char buf[kMaxFormatted];
  return std::string(buf, FormatTimestamp(ms, buf));
}

// Days are counted in 400-year eras of 146097 days, each year starting on March 1st so that the
// leap day falls at the end of it.
int64_t DaysFromCivil(int64_t year, int month, int day) {
  int64_t y = year - (month <= 2 ? 1 : 0);
  int64_t era = FloorDiv(y, 400);
  int64_t year_of_era = y - era * 400;                               // 0..399
  int64_t month_from_march = (month + 9) % 12;                       // March = 0 .. February = 11
  int64_t day_of_year = (153 * month_from_march + 2) / 5 + day - 1;  // 0..365
  int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  // 719468 days from 0000-03-01 to 1970-01-01.
  return era * 146097 + day_of_era - 719468;
}

CivilDate CivilFromDays(int64_t days) {
  int64_t z = days + 719468;
  int64_t era = FloorDiv(z, 146097);
  int64_t day_of_era = z - era * 146097;  // 0..146096
  int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  int64_t month_from_march = (5 * day_of_year + 2) / 153;
  int day = static_cast<int>(day_of_year - (153 * month_from_march + 2) / 5 + 1);
  int month = static_cast<int>(month_from_march < 10 ? month_from_march + 3 : month_from_march - 9);
  int64_t year = year_of_era + era * 400 + (month <= 2 ? 1 : 0);
  return {year, month, day};
}

int DaysInMonth(int64_t year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2) {
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return leap ? 29 : 28;
  }
  return kDays[month - 1];
}

namespace {

// Strips one trailing 's' for plurals ("hours"), except from "ms".
std::string LowerSingular(std::string_view name) {
  std::string s;
  for (char c : name) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s.size() > 2 && s.back() == 's') s.pop_back();
  return s;
}

}  // namespace

std::optional<TimeUnit> ParseTimeUnit(std::string_view name) {
  static const std::pair<std::string_view, TimeUnit> kUnits[] = {
      {"millisecond", TimeUnit::kMillisecond},
      {"ms", TimeUnit::kMillisecond},
      {"second", TimeUnit::kSecond},
      {"minute", TimeUnit::kMinute},
      {"hour", TimeUnit::kHour},
      {"day", TimeUnit::kDay},
      {"week", TimeUnit::kWeek},
      {"month", TimeUnit::kMonth},
      {"quarter", TimeUnit::kQuarter},
      {"year", TimeUnit::kYear},
  };
  std::string s = LowerSingular(name);
  for (const auto& [n, u] : kUnits) {
    if (s == n) return u;
  }
  return std::nullopt;
}

namespace {

constexpr std::pair<std::string_view, TimePart> kParts[] = {
    {"year", TimePart::kYear},
    {"quarter", TimePart::kQuarter},
    {"month", TimePart::kMonth},
    {"week", TimePart::kWeek},
    {"day", TimePart::kDay},
    {"dow", TimePart::kDayOfWeek},
    {"dayofweek", TimePart::kDayOfWeek},
    {"isodow", TimePart::kIsoDayOfWeek},
    {"doy", TimePart::kDayOfYear},
    {"dayofyear", TimePart::kDayOfYear},
    {"hour", TimePart::kHour},
    {"minute", TimePart::kMinute},
    {"second", TimePart::kSecond},
    {"millisecond", TimePart::kMillisecond},
    {"ms", TimePart::kMillisecond},
    {"epoch", TimePart::kEpoch},
};

}  // namespace

std::optional<TimePart> ParseTimePart(std::string_view name) {
  std::string s = LowerSingular(name);
  if (s == "dayofmonth") return TimePart::kDay;
  for (const auto& [n, p] : kParts) {
    if (s == n) return p;
  }
  return std::nullopt;
}

std::string_view TimePartName(TimePart part) {
  for (const auto& [n, p] : kParts) {
    if (p == part) return n;
  }
  return "?";
}

int64_t TruncateTime(TimeUnit unit, int64_t ms) {
  switch (unit) {
    case TimeUnit::kMillisecond:
      return ms;
    case TimeUnit::kSecond:
      return FloorDiv(ms, kMsPerSecond) * kMsPerSecond;
    case TimeUnit::kMinute:
      return FloorDiv(ms, kMsPerMinute) * kMsPerMinute;
    case TimeUnit::kHour:
      return FloorDiv(ms, kMsPerHour) * kMsPerHour;
    case TimeUnit::kDay:
      return FloorDiv(ms, kMsPerDay) * kMsPerDay;
    case TimeUnit::kWeek: {
      // 1970-01-01 was a Thursday: three days after a Monday.
      int64_t days = FloorDiv(ms, kMsPerDay);
      return (days - FloorMod(days + 3, 7)) * kMsPerDay;
    }
    case TimeUnit::kMonth:
    case TimeUnit::kQuarter:
    case TimeUnit::kYear: {
      CivilDate d = CivilFromDays(FloorDiv(ms, kMsPerDay));
      int month = unit == TimeUnit::kYear      ? 1
                  : unit == TimeUnit::kQuarter ? (d.month - 1) / 3 * 3 + 1
                                               : d.month;
      return DaysFromCivil(d.year, month, 1) * kMsPerDay;
    }
  }
  return ms;
}

int64_t ExtractTimePart(TimePart part, int64_t ms) {
  int64_t days = FloorDiv(ms, kMsPerDay);
  int64_t in_day = ms - days * kMsPerDay;
  switch (part) {
    case TimePart::kYear:
      return CivilFromDays(days).year;
    case TimePart::kQuarter:
      return (CivilFromDays(days).month - 1) / 3 + 1;
    case TimePart::kMonth:
      return CivilFromDays(days).month;
    case TimePart::kWeek: {
      // The ISO week belongs to the year of its Thursday.
      int64_t thursday = days - FloorMod(days + 3, 7) + 3;
      int64_t year = CivilFromDays(thursday).year;
      return (thursday - DaysFromCivil(year, 1, 1)) / 7 + 1;
    }
    case TimePart::kDay:
      return CivilFromDays(days).day;
    case TimePart::kDayOfWeek:
      return FloorMod(days + 4, 7);
    case TimePart::kIsoDayOfWeek:
      return FloorMod(days + 3, 7) + 1;
    case TimePart::kDayOfYear:
      return days - DaysFromCivil(CivilFromDays(days).year, 1, 1) + 1;
    case TimePart::kHour:
      return in_day / kMsPerHour;
    case TimePart::kMinute:
      return in_day / kMsPerMinute % 60;
    case TimePart::kSecond:
      return in_day / kMsPerSecond % 60;
    case TimePart::kMillisecond:
      return in_day % kMsPerMinute;
    case TimePart::kEpoch:
      return FloorDiv(ms, kMsPerSecond);
  }
  return 0;
}

std::optional<int64_t> IntervalUnitMs(std::string_view unit) {
  std::optional<TimeUnit> u = ParseTimeUnit(unit);
  if (!u) return std::nullopt;
  switch (*u) {
    case TimeUnit::kMillisecond:
      return 1;
    case TimeUnit::kSecond:
      return kMsPerSecond;
    case TimeUnit::kMinute:
      return kMsPerMinute;
    case TimeUnit::kHour:
      return kMsPerHour;
    case TimeUnit::kDay:
      return kMsPerDay;
    case TimeUnit::kWeek:
      return 7 * kMsPerDay;
    default:
      return std::nullopt;
  }
}

}  // namespace barge::pipeline::detail
