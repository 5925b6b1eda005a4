// For tests: what containers may leave behind on the host, captured before and compared after.
// Scoped to one test, so that tests running in parallel (and other work on the machine) do not
// count as leaks.
#pragma once

#include <string>
#include <vector>

namespace barge::runtime::testing {

struct LeakScope {
  std::string cgroup_parent;               // cgroups under <hierarchy>/<parent>/ are the test's
  std::vector<std::string> path_prefixes;  // mounts at or below these paths are the test's
  std::string cmdline_marker;  // processes whose command line has it are the test's ("": none)
};

struct HostSnapshot {
  std::vector<std::string> mounts;   // mount points in scope, from /proc/self/mountinfo
  std::vector<std::string> cgroups;  // directories under <hierarchy>/<parent>/
  std::vector<int> processes;        // this process's children, and processes with the marker
};

HostSnapshot TakeHostSnapshot(const LeakScope& scope);

// Describes what `after` has that `before` had not ("" when nothing leaked).
std::string DescribeLeaks(const HostSnapshot& before, const HostSnapshot& after);

}  // namespace barge::runtime::testing
