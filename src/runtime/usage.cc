#include "runtime/usage.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "base/file_util.h"

namespace barge::runtime {
namespace {

constexpr size_t kMaxControlFile = 1 << 20;

// A small kernel file's text, or nullopt when it is absent or unreadable.
std::optional<std::string> ReadKernelFile(const std::string& path) {
  Result<std::string> text = ReadFileLimited(path, kMaxControlFile);
  if (!text.ok()) return std::nullopt;
  return std::move(text).value();
}

// The first of `dirs` that has `file`, read.
std::optional<std::string> ReadControl(const std::vector<std::string>& dirs,
                                       const std::string& file) {
  for (const std::string& dir : dirs) {
    if (std::optional<std::string> text = ReadKernelFile(dir + "/" + file)) return text;
  }
  return std::nullopt;
}

uint64_t ParseU64(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

uint64_t HostMemory() {
  std::optional<std::string> meminfo = ReadKernelFile("/proc/meminfo");
  if (!meminfo) return 0;
  return detail::KeyedValue(*meminfo, "MemTotal:") * 1024;  // "MemTotal: N kB"
}

struct ProcessSums {
  uint64_t cpu_ticks = 0;
  uint64_t rss_bytes = 0;
  uint64_t count = 0;
  uint64_t read_bytes = 0;
  uint64_t write_bytes = 0;
};

// Sums over every process in the pid namespace of `pid`.
Result<ProcessSums> SumNamespace(pid_t pid) {
  struct stat ns {};
  std::string ns_path = "/proc/" + std::to_string(pid) + "/ns/pid";
  if (::stat(ns_path.c_str(), &ns) != 0) {
    if (errno == ENOENT) return NotFound("process " + std::to_string(pid) + " is gone");
    return ErrnoError("stat " + ns_path);
  }
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return ErrnoError("open /proc");
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  ProcessSums sums;
  while (dirent* e = ::readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::string dir = std::string("/proc/") + e->d_name;
    struct stat st {};
    if (::stat((dir + "/ns/pid").c_str(), &st) != 0) continue;  // exited meanwhile
    if (st.st_ino != ns.st_ino || st.st_dev != ns.st_dev) continue;
    ++sums.count;
    if (std::optional<std::string> stat = ReadKernelFile(dir + "/stat")) {
      sums.cpu_ticks += detail::StatCpuTicks(*stat);
    }
    if (std::optional<std::string> statm = ReadKernelFile(dir + "/statm")) {
      size_t space = statm->find(' ');
      if (space != std::string::npos) {
        sums.rss_bytes += ParseU64(std::string_view(*statm).substr(space + 1)) * page;
      }
    }
    if (std::optional<std::string> io = ReadKernelFile(dir + "/io")) {
      sums.read_bytes += detail::KeyedValue(*io, "read_bytes:");
      sums.write_bytes += detail::KeyedValue(*io, "write_bytes:");
    }
  }
  ::closedir(proc);
  if (sums.count == 0) return NotFound("process " + std::to_string(pid) + " is gone");
  return sums;
}

}  // namespace

namespace detail {

uint64_t KeyedValue(const std::string& text, const std::string& key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key &&
        (line[key.size()] == ' ' || line[key.size()] == '\t')) {
      return ParseU64(line.substr(key.size()));
    }
    pos = end + 1;
  }
  return 0;
}

uint64_t StatCpuTicks(const std::string& stat) {
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so fields count from the
  // last ')'. utime, stime, cutime, cstime are fields 14-17, i.e. the 12th-15th after it.
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::string_view rest(stat);
  rest.remove_prefix(paren + 1);
  uint64_t total = 0;
  for (int field = 3; field <= 17 && !rest.empty(); ++field) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    size_t end = rest.find(' ');
    std::string_view value = rest.substr(0, end);
    if (field >= 14) {
      // cutime and cstime are signed in the kernel's format but never negative in practice.
      if (!value.empty() && value.front() != '-') total += ParseU64(value);
    }
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
  }
  return total;
}

void NetDevBytes(const std::string& text, uint64_t* rx, uint64_t* tx) {
  *rx = 0;
  *tx = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;  // the two header lines
    std::string_view name = line.substr(0, colon);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    if (name == "lo") continue;
    // Receive: bytes packets errs drop fifo frame compressed multicast; then transmit: bytes ...
    std::string_view rest = line.substr(colon + 1);
    for (int field = 0; field <= 8 && !rest.empty(); ++field) {
      while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
      size_t sp = rest.find(' ');
      std::string_view value = rest.substr(0, sp);
      if (field == 0) *rx += ParseU64(value);
      if (field == 8) *tx += ParseU64(value);
      rest.remove_prefix(sp == std::string_view::npos ? rest.size() : sp);
    }
  }
}

}  // namespace detail

Result<ResourceUsage> ReadResourceUsage(pid_t pid, const std::vector<std::string>& cgroup_dirs,
                                        bool host_network) {
  if (pid <= 0) return NotFound("container is not running");
  ASSIGN_OR_RETURN(ProcessSums sums, SumNamespace(pid));
  ResourceUsage u;
  static const double kTicks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  u.cpu_seconds = static_cast<double>(sums.cpu_ticks) / kTicks;
  u.memory_bytes = sums.rss_bytes;
  u.pids = sums.count;
  u.block_read_bytes = sums.read_bytes;
  u.block_write_bytes = sums.write_bytes;

  // The cgroup's figures, where it has the controller, count what exited too.
  if (std::optional<std::string> stat = ReadControl(cgroup_dirs, "cpu.stat")) {
    if (stat->find("usage_usec") != std::string::npos) {
      u.cpu_seconds = static_cast<double>(detail::KeyedValue(*stat, "usage_usec")) / 1e6;
    }
  }
  if (std::optional<std::string> ns = ReadControl(cgroup_dirs, "cpuacct.usage")) {
    u.cpu_seconds = static_cast<double>(ParseU64(*ns)) / 1e9;
  }
  if (std::optional<std::string> current = ReadControl(cgroup_dirs, "memory.current")) {  // v2
    uint64_t inactive = 0;
    if (std::optional<std::string> stat = ReadControl(cgroup_dirs, "memory.stat")) {
      inactive = detail::KeyedValue(*stat, "inactive_file");
    }
    uint64_t usage = ParseU64(*current);
    u.memory_bytes = usage > inactive ? usage - inactive : usage;
    if (std::optional<std::string> max = ReadControl(cgroup_dirs, "memory.max")) {
      if (max->rfind("max", 0) != 0) {
        u.memory_limit = ParseU64(*max);
        u.memory_limited = true;
      }
    }
    if (std::optional<std::string> events = ReadControl(cgroup_dirs, "memory.events")) {
      u.oom_kills = detail::KeyedValue(*events, "oom_kill");
    }
  } else if (std::optional<std::string> usage_v1 =
                 ReadControl(cgroup_dirs, "memory.usage_in_bytes")) {
    uint64_t inactive = 0;
    if (std::optional<std::string> stat = ReadControl(cgroup_dirs, "memory.stat")) {
      inactive = detail::KeyedValue(*stat, "total_inactive_file");
    }
    uint64_t usage = ParseU64(*usage_v1);
    u.memory_bytes = usage > inactive ? usage - inactive : usage;
    if (std::optional<std::string> limit = ReadControl(cgroup_dirs, "memory.limit_in_bytes")) {
      uint64_t v = ParseU64(*limit);
      if (v < (1ull << 60)) {  // "unlimited" is the page-rounded maximum
        u.memory_limit = v;
        u.memory_limited = true;
      }
    }
    if (std::optional<std::string> oom = ReadControl(cgroup_dirs, "memory.oom_control")) {
      u.oom_kills = detail::KeyedValue(*oom, "oom_kill");
    }
  }
  if (!u.memory_limited) u.memory_limit = HostMemory();
  if (std::optional<std::string> pids = ReadControl(cgroup_dirs, "pids.current")) {
    u.pids = ParseU64(*pids);
  }
  if (!host_network) {
    if (std::optional<std::string> dev =
            ReadKernelFile("/proc/" + std::to_string(pid) + "/net/dev")) {
      detail::NetDevBytes(*dev, &u.net_rx_bytes, &u.net_tx_bytes);
    }
  }
  return u;
}

Result<std::vector<ContainerStats>> StatsSampler::Sample() {
  std::vector<ContainerRecord> records;
  if (names_.empty()) {
    ASSIGN_OR_RETURN(std::vector<ContainerRecord> all, store_.List());
    for (ContainerRecord& r : all) {
      if (r.state.status == ContainerStatus::kRunning) records.push_back(std::move(r));
    }
  } else {
    for (const std::string& name : names_) {
      ASSIGN_OR_RETURN(ContainerRecord r, store_.Find(name));
      records.push_back(std::move(r));
    }
  }
  const double now =
      std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  std::vector<ContainerStats> out;
  std::vector<Previous> previous;
  for (const ContainerRecord& r : records) {
    ContainerStats s;
    s.id = r.config.id;
    s.name = r.config.name;
    if (r.state.status == ContainerStatus::kRunning) {
      Result<ResourceUsage> u = ReadResourceUsage(r.state.pid, r.state.cgroup_dirs,
                                                  r.config.network == NetworkMode::kHost);
      if (u.ok()) {
        s.running = true;
        s.usage = *u;
      } else if (u.status().code() != StatusCode::kNotFound) {
        return u.status().Wrap("container " + r.config.name);
      }
    }
    if (s.running) {
      for (const Previous& p : previous_) {
        if (p.id == s.id && now > p.when && s.usage.cpu_seconds >= p.cpu_seconds) {
          s.cpu_percent = (s.usage.cpu_seconds - p.cpu_seconds) / (now - p.when) * 100.0;
        }
      }
      previous.push_back({s.id, s.usage.cpu_seconds, now});
    }
    out.push_back(std::move(s));
  }
  previous_ = std::move(previous);
  return out;
}

}  // namespace barge::runtime
