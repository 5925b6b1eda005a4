#include "runtime/time_util.h"

#include <time.h>

#include <cstdio>

namespace barge::runtime {

std::string NowRfc3339() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  tm utc{};
  ::gmtime_r(&ts.tv_sec, &utc);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, ts.tv_nsec);
  return buf;
}

std::string HumanSince(const std::string& rfc3339) {
  tm t{};
  if (rfc3339.size() < 19 || ::strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%S", &t) == nullptr) {
    return "";
  }
  long seconds = static_cast<long>(::time(nullptr) - ::timegm(&t));
  if (seconds < 0) seconds = 0;
  auto plural = [](long n, const char* unit) {
    return std::to_string(n) + " " + unit + (n == 1 ? "" : "s");
  };
  if (seconds < 60) return plural(seconds, "second");
  if (seconds < 3600) return plural(seconds / 60, "minute");
  if (seconds < 86400) return plural(seconds / 3600, "hour");
  return plural(seconds / 86400, "day");
}

}  // namespace barge::runtime
