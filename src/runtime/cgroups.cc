#include "runtime/cgroups.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <functional>
#include <sstream>
#include <thread>

#include "base/file_util.h"

namespace barge::runtime {
namespace {

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

// Writes a control file: cgroup files report a bad value from write(2), so no atomic replace.
Status WriteControl(const std::string& dir, const std::string& file, const std::string& value) {
  std::string path = dir + "/" + file;
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open " + path);
  UniqueFd owned(fd);
  if (::write(fd, value.data(), value.size()) < 0) {
    return ErrnoError("write '" + value + "' to " + path);
  }
  return Status::Ok();
}

}  // namespace

namespace detail {

std::vector<ControllerMount> ParseControllers(
    const std::string& mountinfo, const std::function<std::string(const std::string&)>& read) {
  std::vector<ControllerMount> found;
  std::string v2_mount;
  std::istringstream lines(mountinfo);
  std::string line;
  while (std::getline(lines, line)) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::vector<std::string> left = Split(line.substr(0, dash), ' ');
    std::vector<std::string> right = Split(line.substr(dash + 3), ' ');
    if (left.size() < 5 || right.size() < 3) continue;
    const std::string& mount_point = left[4];
    const std::string& fstype = right[0];
    if (fstype == "cgroup2") {
      if (v2_mount.empty()) v2_mount = mount_point;
    } else if (fstype == "cgroup") {
      for (const std::string& option : Split(right[2], ',')) {
        if (option == "memory" || option == "pids" || option == "cpu") {
          found.push_back({option, CgroupVersion::kV1, mount_point});
        }
      }
    }
  }
  if (!v2_mount.empty()) {
    // A controller bound to a v1 hierarchy is not in cgroup.controllers; one that is there is
    // usable on v2.
    std::string text = read(v2_mount + "/cgroup.controllers");
    std::replace(text.begin(), text.end(), '\n', ' ');
    for (const std::string& name : Split(text, ' ')) {
      if (name != "memory" && name != "pids" && name != "cpu") continue;
      bool have = std::any_of(found.begin(), found.end(),
                              [&](const ControllerMount& c) { return c.controller == name; });
      if (!have) found.push_back({name, CgroupVersion::kV2, v2_mount});
    }
  }
  return found;
}

std::vector<ControlWrite> LimitWrites(const std::string& controller, CgroupVersion version,
                                      const Limits& limits) {
  const bool v2 = version == CgroupVersion::kV2;
  std::vector<ControlWrite> writes;
  if (controller == "memory" && limits.memory_bytes > 0) {
    std::string bytes = std::to_string(limits.memory_bytes);
    if (v2) {
      writes.push_back({"memory.max", bytes});
      writes.push_back({"memory.swap.max", "0", /*only_if_present=*/true});
    } else {
      writes.push_back({"memory.limit_in_bytes", bytes});
      // memsw is memory + swap: the same value means no swap (present with swap accounting).
      writes.push_back({"memory.memsw.limit_in_bytes", bytes, /*only_if_present=*/true});
    }
  } else if (controller == "pids" && limits.pids > 0) {
    writes.push_back({"pids.max", std::to_string(limits.pids)});
  } else if (controller == "cpu" && limits.cpus > 0) {
    constexpr long kPeriodUs = 100000;
    long quota = std::lround(limits.cpus * kPeriodUs);
    if (quota < 1000) quota = 1000;  // the kernel's minimum quota is 1 ms
    if (v2) {
      writes.push_back({"cpu.max", std::to_string(quota) + " " + std::to_string(kPeriodUs)});
    } else {
      writes.push_back({"cpu.cfs_period_us", std::to_string(kPeriodUs)});
      writes.push_back({"cpu.cfs_quota_us", std::to_string(quota)});
    }
  }
  return writes;
}

bool OomKillReported(const std::string& text) {
  std::istringstream in(text);
  std::string key;
  long long value = 0;
  while (in >> key >> value) {
    if (key == "oom_kill" && value > 0) return true;
  }
  return false;
}

}  // namespace detail

Result<std::vector<ControllerMount>> DetectControllers() {
  ASSIGN_OR_RETURN(std::string mountinfo, ReadFile("/proc/self/mountinfo"));
  return detail::ParseControllers(mountinfo, [](const std::string& path) {
    Result<std::string> text = ReadFile(path);
    return text.ok() ? *text : std::string();
  });
}

Status ValidateCgroupParent(const std::string& parent) {
  bool ok = !parent.empty() && parent.front() != '/' && parent.back() != '/' &&
            parent.find("//") == std::string::npos;
  for (const std::string& part : Split(parent, '/')) {
    ok = ok && part != "." && part != "..";
  }
  for (char c : parent) {
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' ||
                c == '/');
  }
  if (!ok) {
    return InvalidArgument("invalid cgroup parent '" + parent +
                           "': use names of letters, digits, '_', '.' and '-' joined by '/'");
  }
  return Status::Ok();
}

Status RemoveCgroupParent(const std::string& parent) {
  RETURN_IF_ERROR(ValidateCgroupParent(parent));
  ASSIGN_OR_RETURN(std::vector<ControllerMount> controllers, DetectControllers());
  for (const ControllerMount& c : controllers) {
    std::string dir = c.mount + "/" + parent;
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) return ErrnoError("remove cgroup " + dir);
  }
  return Status::Ok();
}

Result<Cgroup> Cgroup::Create(const std::string& parent_name, const std::string& id,
                              const Limits& limits) {
  RETURN_IF_ERROR(ValidateCgroupParent(parent_name));
  ASSIGN_OR_RETURN(std::vector<ControllerMount> controllers, DetectControllers());
  auto find = [&](const std::string& name) -> const ControllerMount* {
    for (const ControllerMount& c : controllers) {
      if (c.controller == name) return &c;
    }
    return nullptr;
  };
  struct Need {
    const char* name;
    bool required;
  };
  const Need needs[] = {
      {"memory", limits.memory_bytes > 0}, {"pids", limits.pids > 0}, {"cpu", limits.cpus > 0}};
  Cgroup group;
  for (const Need& need : needs) {
    if (!need.required) continue;
    const ControllerMount* c = find(need.name);
    if (c == nullptr) {
      if (need.required) {
        return Unsupported(std::string("cannot limit ") + need.name +
                           ": no cgroup hierarchy has the " + need.name + " controller");
      }
      continue;
    }
    std::string parent = c->mount + "/" + parent_name;
    std::string dir = parent + "/" + id;
    if (std::find(group.dirs_.begin(), group.dirs_.end(), dir) == group.dirs_.end()) {
      RETURN_IF_ERROR(MakeDirs(parent));
      if (c->version == CgroupVersion::kV2) {
        // Controllers must be enabled from the root down to the parent before <id> sees them.
        std::string level = c->mount;
        for (const std::string& part : Split(parent_name, '/')) {
          (void)WriteControl(level, "cgroup.subtree_control", std::string("+") + need.name);
          level += "/" + part;
        }
        RETURN_IF_ERROR(
            WriteControl(parent, "cgroup.subtree_control", std::string("+") + need.name));
      }
      if (::mkdir(dir.c_str(), 0755) != 0) {
        if (errno == EEXIST) return AlreadyExists("cgroup " + dir + " already exists");
        return ErrnoError("mkdir " + dir);
      }
      group.dirs_.push_back(dir);
    }
    if (std::string(need.name) == "memory") {
      group.memory_dir_ = dir;
      group.memory_v2_ = c->version == CgroupVersion::kV2;
    }
    for (const detail::ControlWrite& w : detail::LimitWrites(need.name, c->version, limits)) {
      if (w.only_if_present && !PathExists(dir + "/" + w.file)) continue;
      RETURN_IF_ERROR(WriteControl(dir, w.file, w.value));
    }
  }
  return group;
}

Result<Cgroup> Cgroup::AdoptExisting(const std::string& parent, const std::string& id) {
  RETURN_IF_ERROR(ValidateCgroupParent(parent));
  if (id.empty() || id.find('/') != std::string::npos || id == "." || id == "..") {
    return InvalidArgument("invalid container id '" + id + "'");
  }
  ASSIGN_OR_RETURN(std::vector<ControllerMount> controllers, DetectControllers());
  std::vector<std::string> dirs;
  for (const ControllerMount& c : controllers) {
    std::string dir = c.mount + "/" + parent + "/" + id;
    if (PathExists(dir) && std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) {
      dirs.push_back(dir);
    }
  }
  return Adopt(std::move(dirs));
}

Cgroup::~Cgroup() { (void)Remove(); }

Cgroup& Cgroup::operator=(Cgroup&& other) noexcept {
  if (this != &other) {
    (void)Remove();
    dirs_ = std::move(other.dirs_);
    memory_dir_ = std::move(other.memory_dir_);
    memory_v2_ = other.memory_v2_;
    other.dirs_.clear();
    other.memory_dir_.clear();
  }
  return *this;
}

Result<std::vector<UniqueFd>> Cgroup::OpenProcsFiles() const {
  std::vector<UniqueFd> fds;
  for (const std::string& dir : dirs_) {
    ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(dir + "/cgroup.procs", O_WRONLY));
    fds.push_back(std::move(fd));
  }
  return fds;
}

bool Cgroup::OomKilled() const {
  if (memory_dir_.empty()) return false;
  Result<std::string> text =
      ReadFile(memory_dir_ + (memory_v2_ ? "/memory.events" : "/memory.oom_control"));
  return text.ok() && detail::OomKillReported(*text);
}

Status Cgroup::Remove() {
  Status result;
  for (const std::string& dir : dirs_) {
    if (!PathExists(dir)) continue;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      if (Result<std::string> procs = ReadFile(dir + "/cgroup.procs"); procs.ok()) {
        std::istringstream in(*procs);
        pid_t pid = 0;
        while (in >> pid) ::kill(pid, SIGKILL);
      }
      if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) break;
      if (errno != EBUSY || std::chrono::steady_clock::now() > deadline) {
        if (result.ok()) result = ErrnoError("remove cgroup " + dir);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  if (result.ok()) {
    dirs_.clear();
    memory_dir_.clear();
  }
  return result;
}

}  // namespace barge::runtime
