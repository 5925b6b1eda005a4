// How many CPUs a run may use: its affinity mask, lowered by a CPU quota of its cgroup (cgroup v2
// cpu.max or v1 cpu.cfs_quota_us / cpu.cfs_period_us, the tightest along the path, as a container
// started with --cpus has). Used to decide whether waiting threads may spin.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace barge::stream::detail {

// The CPUs this thread may run on (sched_getaffinity), in order; empty if that fails.
std::vector<int> AllowedCpuList();

// The CPU quota, in CPUs, of the cgroup named by `proc_self_cgroup` (the text of
// /proc/self/cgroup), with cgroup filesystems mounted below `cgroup_root` (/sys/fs/cgroup):
// the smallest quota of the cgroup and its parents; nullopt when none is set.
std::optional<double> CgroupCpuQuota(const std::string& proc_self_cgroup,
                                     const std::string& cgroup_root);

// min(allowed CPUs, the cgroup quota rounded up), at least 1.
size_t UsableCpus();

}  // namespace barge::stream::detail
