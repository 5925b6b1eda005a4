#include "runtime/host_features.h"

#include <unistd.h>

#include <sstream>

#include "base/file_util.h"
#include "runtime/cgroups.h"
#include "runtime/exec_shim.h"

namespace barge::runtime::testing {

std::string WhyNoController(const std::string& controller) {
  Result<std::vector<ControllerMount>> found = DetectControllers();
  if (!found.ok()) return "cannot read the cgroup mounts: " + found.status().message();
  for (const ControllerMount& c : *found) {
    if (c.controller == controller) return "";
  }
  return "no cgroup hierarchy offers the " + controller +
         " controller (a cgroup v2 host that does not delegate it, or a kernel without it)";
}

std::string WhySwapUnbounded() {
  if (std::string why = WhyNoController("memory"); !why.empty()) return why;
  Result<std::string> meminfo = ReadFile("/proc/meminfo");
  if (!meminfo.ok()) return meminfo.status().message();
  std::istringstream lines(*meminfo);
  std::string key;
  long long kib = 0;
  std::string unit;
  while (lines >> key >> kib) {
    std::getline(lines, unit);
    if (key == "SwapTotal:" && kib == 0) return "";
  }
  std::string parent = "barge-swap-probe-" + std::to_string(::getpid());
  bool bounded = false;
  {
    Result<Cgroup> probe = Cgroup::Create(parent, "probe", {.memory_bytes = 64 << 20});
    if (!probe.ok()) return "cannot make a memory cgroup: " + probe.status().message();
    for (const std::string& dir : probe->dirs()) {
      bounded = bounded || PathExists(dir + "/memory.memsw.limit_in_bytes") ||
                PathExists(dir + "/memory.swap.max");
    }
  }
  (void)RemoveCgroupParent(parent);
  if (bounded) return "";
  return "the host has swap but its memory controller cannot limit it (no swap accounting), so "
         "a memory hog swaps instead of being OOM-killed";
}

std::string WhyNoExecShim() {
  Result<int> fd = ExecShimFd();
  if (!fd.ok()) return fd.status().message();
  if (*fd < 0) return "vm.memfd_noexec=2 forbids executable memfds, so barge has no exec shim";
  return "";
}

}  // namespace barge::runtime::testing
