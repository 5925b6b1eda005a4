// Resource limits (setrlimit) for the container's process, clamped to what barge itself may set:
// without CAP_SYS_RESOURCE a hard limit can only go down.
#pragma once

#include <sys/resource.h>

#include <vector>

#include "runtime/detail/child.h"

namespace barge::runtime {

struct RlimitSetting {
  int resource = 0;
  rlimit limit{};
};

// Podman's defaults (1048576 open files, 4194304 processes), each clamped to the caller's current
// hard limit.
std::vector<RlimitSetting> DefaultRlimits();

namespace detail {
bool ApplyRlimits(const std::vector<RlimitSetting>& limits, ChildFailure* failure);
}  // namespace detail

}  // namespace barge::runtime
