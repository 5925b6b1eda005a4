// Scalar conversions shared by the expression compiler (literals, constant folding) and its
// kernels (CAST, time functions): text <-> numbers, booleans and ISO-8601 timestamps, and
// calendar arithmetic on millisecond timestamps. Pure functions; nothing allocates except the
// std::string overloads.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace barge::pipeline::detail {

// ---- Text -> values. Each accepts surrounding ASCII whitespace and returns false (leaving *out
// unspecified) when the whole text is not one value of the type.

// An optional sign and decimal digits, within int64's range.
bool ParseInt64(std::string_view s, int64_t* out);
// A decimal with optional fraction and exponent ("1.5", ".5", "1e-3"), or inf, infinity, nan
// (any case, optionally signed).
bool ParseDouble(std::string_view s, double* out);
// true/false, t/f, yes/no, y/n, on/off, 1/0 (any case), as PostgreSQL.
bool ParseBool(std::string_view s, bool* out);
// ISO-8601: "YYYY-MM-DD", optionally followed by 'T' or ' ' and "HH:MM[:SS[.fraction]]", then
// optionally a zone "Z", "+HH", "+HHMM" or "+HH:MM" (or '-'). Milliseconds since the epoch, UTC;
// digits of the fraction past milliseconds are dropped.
bool ParseTimestamp(std::string_view s, int64_t* ms);

// ---- Values -> text. Each writes at most kMaxFormatted bytes at `buf` and returns the count.

inline constexpr size_t kMaxFormatted = 40;
size_t FormatInt64(int64_t v, char* buf);
// The shortest text that reads back as the same double, with ".0" added to integral values
// ("1.0", "0.1", "1e+20"); "Infinity", "-Infinity", "NaN" as Java and PostgreSQL print them.
size_t FormatDouble(double v, char* buf);
// "YYYY-MM-DD HH:MM:SS", plus ".mmm" when the milliseconds are not zero.
size_t FormatTimestamp(int64_t ms, char* buf);

std::string FormatDouble(double v);
std::string FormatTimestamp(int64_t ms);

// ---- Numbers.

// Rounds half away from zero, as SQL's round() and CAST(DOUBLE AS BIGINT) in PostgreSQL and
// DuckDB (2.5 -> 3, -2.5 -> -3). NaN and infinities come back unchanged.
//
// Branch-free so that loops over it vectorize: adding and subtracting 2^52 rounds |x| < 2^52 to
// the nearest integer with ties to even (the default rounding mode), and a tie that went down
// is moved up. Larger magnitudes are integral already.
inline double RoundHalfAway(double x) {
  constexpr double kTwo52 = 4503599627370496.0;
  double y = std::fabs(x);
  double t = (y + kTwo52) - kTwo52;
  t += (t - y == -0.5) ? 1.0 : 0.0;
  t = y < kTwo52 ? t : y;
  return std::copysign(t, x);
}

// ---- Calendar (proleptic Gregorian, UTC).

inline constexpr int64_t kMsPerSecond = 1000;
inline constexpr int64_t kMsPerMinute = 60 * kMsPerSecond;
inline constexpr int64_t kMsPerHour = 60 * kMsPerMinute;
inline constexpr int64_t kMsPerDay = 24 * kMsPerHour;

// Floor division and its non-negative remainder (b > 0).
inline int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}
inline int64_t FloorMod(int64_t a, int64_t b) { return a - FloorDiv(a, b) * b; }

struct CivilDate {
  int64_t year;
  int month;  // 1..12
  int day;    // 1..31
};
// Days since 1970-01-01 of a date (month and day must be valid) and back.
int64_t DaysFromCivil(int64_t year, int month, int day);
CivilDate CivilFromDays(int64_t days);
int DaysInMonth(int64_t year, int month);

// The units of date_trunc, and the parts of extract/date_part.
enum class TimeUnit : uint8_t {
  kMillisecond,
  kSecond,
  kMinute,
  kHour,
  kDay,
  kWeek,  // ISO weeks start on Monday
  kMonth,
  kQuarter,
  kYear,
};
enum class TimePart : uint8_t {
  kYear,
  kQuarter,
  kMonth,
  kWeek,  // ISO-8601 week number, 1..53
  kDay,
  kDayOfWeek,     // 0 = Sunday .. 6 = Saturday (as PostgreSQL's dow and DuckDB)
  kIsoDayOfWeek,  // 1 = Monday .. 7 = Sunday
  kDayOfYear,     // 1..366
  kHour,
  kMinute,
  kSecond,       // 0..59
  kMillisecond,  // seconds * 1000 + milliseconds, 0..59999 (as PostgreSQL and DuckDB)
  kEpoch,        // seconds since the epoch (BIGINT, rounded down)
};

// Case-insensitive names, singular or plural ("hour", "HOURS"; "ms" too). Empty when unknown.
std::optional<TimeUnit> ParseTimeUnit(std::string_view name);
std::optional<TimePart> ParseTimePart(std::string_view name);
std::string_view TimePartName(TimePart part);

// The start of the unit that contains `ms` (rounding down, also before 1970).
int64_t TruncateTime(TimeUnit unit, int64_t ms);
int64_t ExtractTimePart(TimePart part, int64_t ms);

// The number of milliseconds in one fixed-length INTERVAL unit (MILLISECOND .. WEEK), or empty
// (MONTH and YEAR have no fixed length).
std::optional<int64_t> IntervalUnitMs(std::string_view unit);

}  // namespace barge::pipeline::detail
