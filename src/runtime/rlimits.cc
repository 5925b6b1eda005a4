#include "runtime/rlimits.h"

#include <algorithm>
#include <cerrno>

namespace barge::runtime {

std::vector<RlimitSetting> DefaultRlimits() {
  struct Want {
    int resource;
    rlim_t value;
  };
  constexpr Want kWanted[] = {{RLIMIT_NOFILE, 1048576}, {RLIMIT_NPROC, 4194304}};
  std::vector<RlimitSetting> out;
  for (const Want& w : kWanted) {
    rlimit current{};
    if (::getrlimit(w.resource, &current) != 0) continue;
    rlim_t value =
        current.rlim_max == RLIM_INFINITY ? w.value : std::min(w.value, current.rlim_max);
    out.push_back({w.resource, {value, value}});
  }
  return out;
}

namespace detail {

bool ApplyRlimits(const std::vector<RlimitSetting>& limits, ChildFailure* f) {
  for (const RlimitSetting& l : limits) {
    if (::setrlimit(l.resource, &l.limit) != 0) return Fail(f, "setrlimit", nullptr, errno);
  }
  return true;
}

}  // namespace detail
}  // namespace barge::runtime
