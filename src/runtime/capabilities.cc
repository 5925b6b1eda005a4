#include "runtime/capabilities.h"

#include <linux/capability.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "base/file_util.h"

namespace barge::runtime {

const std::vector<std::string>& DefaultCapabilities() {
  // Docker's default set. Docker pairs CAP_MKNOD with a device cgroup that only lets the
  // standard devices be opened; barge has none (joining a v1 cgroup costs an RCU grace period, and
  // v2 needs a BPF program), so every file system a container can write to is mounted nodev
  // instead (mounts.cc): a device node it makes can be made, copied into a layer, but not opened.
  static const std::vector<std::string> kDefault = {
      "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
      "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
      "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_KILL",    "CAP_AUDIT_WRITE"};
  return kDefault;
}

Result<CapabilitySet> MakeCapabilitySet(const std::vector<std::string>& names) {
  CapabilitySet set;
  Result<std::string> last = ReadFile("/proc/sys/kernel/cap_last_cap");
  set.last_cap = last.ok() ? std::atoi(last->c_str()) : static_cast<int>(cap_max_bits()) - 1;
  for (const std::string& name : names) {
    cap_value_t value = 0;
    if (cap_from_name(name.c_str(), &value) != 0) {
      return InvalidArgument("unknown capability '" + name + "'");
    }
    if (value > set.last_cap) return Unsupported("this kernel lacks capability " + name);
    set.mask |= uint64_t{1} << value;
  }
  return set;
}

namespace detail {

bool DropBoundingSet(const CapabilitySet& set, ChildFailure* f) {
  for (int cap = 0; cap <= set.last_cap; ++cap) {
    if (set.mask & (uint64_t{1} << cap)) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
      return Fail(f, "drop capability from the bounding set", nullptr, errno);
    }
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    return Fail(f, "clear ambient capabilities", nullptr, errno);
  }
  return true;
}

bool ApplyCapabilities(const CapabilitySet& set, ChildFailure* f) {
  // The raw capset call: libcap's cap_set_proc allocates, which the child must not do.
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  for (int i = 0; i < 2; ++i) {
    auto word = static_cast<uint32_t>(set.mask >> (32 * i));
    data[i].effective = word;
    data[i].permitted = word;
    // Empty, as Docker since CVE-2022-24769: a non-root user would otherwise gain these by
    // executing a file that has them as inheritable file capabilities.
    data[i].inheritable = 0;
  }
  if (::syscall(SYS_capset, &header, data) != 0) return Fail(f, "set capabilities", nullptr, errno);
  return true;
}

}  // namespace detail
}  // namespace barge::runtime
