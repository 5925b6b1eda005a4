// For tests: what a container may leave behind on the host, captured before and compared after.
#pragma once

#include <string>
#include <vector>

namespace barge::runtime::testing {

struct HostSnapshot {
  std::vector<std::string> mounts;         // mount points in /proc/self/mountinfo
  std::vector<std::string> barge_cgroups;  // directories under <hierarchy>/barge/
  std::vector<int> children;               // this process's children
};

HostSnapshot TakeHostSnapshot();

// Describes what `after` has that `before` had not ("" when nothing leaked).
std::string DescribeLeaks(const HostSnapshot& before, const HostSnapshot& after);

}  // namespace barge::runtime::testing
