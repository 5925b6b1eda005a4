#include "runtime/leak_check.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "base/file_util.h"
#include "runtime/cgroups.h"

namespace barge::runtime::testing {
namespace {

std::vector<std::string> ListDirs(const std::string& path) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(path.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_type == DT_DIR && e->d_name[0] != '.') out.push_back(path + "/" + e->d_name);
    }
    ::closedir(d);
  }
  return out;
}

template <class T>
std::vector<T> Added(std::vector<T> before, std::vector<T> after) {
  std::sort(before.begin(), before.end());
  std::sort(after.begin(), after.end());
  std::vector<T> out;
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(),
                      std::back_inserter(out));
  return out;
}

bool InScope(const std::string& path, const std::vector<std::string>& prefixes) {
  for (const std::string& p : prefixes) {
    if (path == p || path.rfind(p + "/", 0) == 0) return true;
  }
  return false;
}

}  // namespace

HostSnapshot TakeHostSnapshot(const LeakScope& scope) {
  HostSnapshot s;
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) {
    std::istringstream in(line);
    std::string id, parent, dev, root, mount_point;
    in >> id >> parent >> dev >> root >> mount_point;
    if (InScope(mount_point, scope.path_prefixes)) s.mounts.push_back(mount_point);
  }
  if (!scope.cgroup_parent.empty()) {
    if (auto controllers = DetectControllers(); controllers.ok()) {
      for (const ControllerMount& c : *controllers) {
        for (std::string& dir : ListDirs(c.mount + "/" + scope.cgroup_parent)) {
          s.cgroups.push_back(dir);
        }
      }
    }
  }
  std::ifstream children("/proc/self/task/" + std::to_string(::gettid()) + "/children");
  int pid = 0;
  while (children >> pid) s.processes.push_back(pid);
  if (!scope.cmdline_marker.empty()) {
    if (DIR* d = ::opendir("/proc")) {
      while (dirent* e = ::readdir(d)) {
        int p = std::atoi(e->d_name);
        if (p <= 0 || p == ::getpid()) continue;
        Result<std::string> cmdline = ReadFile(std::string("/proc/") + e->d_name + "/cmdline");
        if (cmdline.ok() && cmdline->find(scope.cmdline_marker) != std::string::npos) {
          s.processes.push_back(p);
        }
      }
      ::closedir(d);
    }
  }
  std::sort(s.processes.begin(), s.processes.end());
  s.processes.erase(std::unique(s.processes.begin(), s.processes.end()), s.processes.end());
  return s;
}

std::string DescribeLeaks(const HostSnapshot& before, const HostSnapshot& after) {
  std::string out;
  for (const std::string& m : Added(before.mounts, after.mounts)) out += " mount " + m + ";";
  for (const std::string& c : Added(before.cgroups, after.cgroups)) out += " cgroup " + c + ";";
  for (int pid : Added(before.processes, after.processes)) {
    out += " process " + std::to_string(pid) + ";";
  }
  return out;
}

}  // namespace barge::runtime::testing
