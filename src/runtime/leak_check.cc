#include "runtime/leak_check.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "runtime/cgroups.h"

namespace barge::runtime::testing {
namespace {

std::vector<std::string> ListDir(const std::string& path) {
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

}  // namespace

HostSnapshot TakeHostSnapshot() {
  HostSnapshot s;
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) {
    std::istringstream in(line);
    std::string id, parent, dev, root, mount_point;
    in >> id >> parent >> dev >> root >> mount_point;
    s.mounts.push_back(mount_point);
  }
  if (auto controllers = DetectControllers(); controllers.ok()) {
    for (const ControllerMount& c : *controllers) {
      for (std::string& dir : ListDir(c.mount + "/barge")) s.barge_cgroups.push_back(dir);
    }
  }
  std::ifstream children("/proc/self/task/" + std::to_string(::gettid()) + "/children");
  int pid = 0;
  while (children >> pid) s.children.push_back(pid);
  return s;
}

std::string DescribeLeaks(const HostSnapshot& before, const HostSnapshot& after) {
  std::string out;
  for (const std::string& m : Added(before.mounts, after.mounts)) out += " mount " + m + ";";
  for (const std::string& c : Added(before.barge_cgroups, after.barge_cgroups)) {
    out += " cgroup " + c + ";";
  }
  for (int pid : Added(before.children, after.children)) {
    out += " process " + std::to_string(pid) + ";";
  }
  return out;
}

}  // namespace barge::runtime::testing
