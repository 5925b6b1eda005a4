// For tests: what a test needs of the kernel and the host that not every host barge supports
// has. Each function returns "" when the feature is there, else the reason, for GTEST_SKIP, so
// that a test checks before it relies on the feature and says why it did not run.
#pragma once

#include <string>

namespace barge::runtime::testing {

// A cgroup hierarchy that lets barge limit `controller` ("memory", "pids", "cpu"): absent on a
// cgroup v2 host that does not delegate it, or a kernel built or booted without it.
std::string WhyNoController(const std::string& controller);

// A memory limit that bounds swap too: the host has no swap, or the memory controller limits it
// (memory.memsw.* on v1 with swap accounting, memory.swap.max on v2). Otherwise a memory hog
// swaps instead of being OOM-killed.
std::string WhySwapUnbounded();

// The sealed exec shim (and with it --init and the "#!/proc/self/exe" defence): forbidden where
// vm.memfd_noexec=2 (Linux >= 6.3, per pid namespace).
std::string WhyNoExecShim();

}  // namespace barge::runtime::testing
