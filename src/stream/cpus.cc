#include "barge/stream/detail/cpus.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "base/file_util.h"

namespace barge::stream::detail {
namespace {

std::optional<std::string> ReadIfThere(const std::string& path) {
  Result<std::string> text = ReadFile(path);
  if (!text.ok()) return std::nullopt;
  return std::move(*text);
}

// "QUOTA PERIOD" (v2 cpu.max; QUOTA may be "max") or the two v1 files.
std::optional<double> QuotaAt(const std::string& dir, bool v2) {
  long long quota = -1, period = 0;
  if (v2) {
    std::optional<std::string> max = ReadIfThere(dir + "/cpu.max");
    if (!max) return std::nullopt;
    std::istringstream in(*max);
    std::string q;
    if (!(in >> q >> period) || q == "max") return std::nullopt;
    try {
      quota = std::stoll(q);
    } catch (...) {
      return std::nullopt;
    }
  } else {
    std::optional<std::string> q = ReadIfThere(dir + "/cpu.cfs_quota_us");
    std::optional<std::string> p = ReadIfThere(dir + "/cpu.cfs_period_us");
    if (!q || !p) return std::nullopt;
    std::istringstream(*q) >> quota;
    std::istringstream(*p) >> period;
  }
  if (quota <= 0 || period <= 0) return std::nullopt;
  return static_cast<double>(quota) / static_cast<double>(period);
}

// The smallest quota from `dir` up to `root` (inclusive).
std::optional<double> TightestUpTo(const std::string& root, std::string path, bool v2) {
  std::optional<double> best;
  for (;;) {
    std::optional<double> q = QuotaAt(root + path, v2);
    if (q && (!best || *q < *best)) best = q;
    if (path.empty() || path == "/") break;
    size_t slash = path.find_last_of('/');
    path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
  }
  return best;
}

}  // namespace

std::vector<int> AllowedCpuList() {
  cpu_set_t allowed;
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) return {};
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  }
  return cpus;
}

std::optional<double> CgroupCpuQuota(const std::string& proc_self_cgroup,
                                     const std::string& cgroup_root) {
  std::optional<double> best;
  std::istringstream lines(proc_self_cgroup);
  std::string line;
  while (std::getline(lines, line)) {
    // "ID:CONTROLLERS:PATH"; v2 is "0::PATH".
    size_t a = line.find(':');
    size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    std::optional<double> q;
    if (line.compare(0, a, "0") == 0 && controllers.empty()) {
      // Unified hierarchy: at the root itself (pure v2) or at unified/ (hybrid).
      q = TightestUpTo(cgroup_root, path, true);
      if (!q) q = TightestUpTo(cgroup_root + "/unified", path, true);
    } else {
      std::istringstream names(controllers);
      std::string name;
      bool cpu = false;
      while (std::getline(names, name, ',')) cpu = cpu || name == "cpu";
      if (!cpu) continue;
      for (const char* mount : {"/cpu,cpuacct", "/cpu", "/cpuacct,cpu"}) {
        q = TightestUpTo(cgroup_root + mount, path, false);
        if (q) break;
      }
    }
    if (q && (!best || *q < *best)) best = q;
  }
  return best;
}

size_t UsableCpus() {
  size_t cpus = std::max<size_t>(AllowedCpuList().size(), 1);
  std::optional<std::string> self = ReadIfThere("/proc/self/cgroup");
  if (self) {
    if (std::optional<double> quota = CgroupCpuQuota(*self, "/sys/fs/cgroup")) {
      cpus = std::min(cpus, std::max<size_t>(static_cast<size_t>(std::ceil(*quota)), 1));
    }
  }
  return cpus;
}

}  // namespace barge::stream::detail
