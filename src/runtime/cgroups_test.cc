#include "runtime/cgroups.h"

#include <unistd.h>

#include <algorithm>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "base/file_util.h"
#include "runtime/host_features.h"

namespace barge::runtime {
namespace {

TEST(CgroupsTest, DetectsEachControllerThatAMountedHierarchyHas) {
  // Checked against the mount table read plainly: a controller in the options of a mounted v1
  // hierarchy is found there; one that the cgroup2 root offers (and no v1 hierarchy has) is found
  // on v2. So a host without these controllers skips the tests that need them, and one with them
  // cannot skip them by a detection that found nothing.
  auto controllers = DetectControllers();
  ASSERT_TRUE(controllers.ok()) << controllers.status().message();
  auto find = [&](const std::string& name) -> const ControllerMount* {
    for (const ControllerMount& c : *controllers) {
      if (c.controller == name) return &c;
    }
    return nullptr;
  };
  for (const ControllerMount& c : *controllers) EXPECT_TRUE(PathExists(c.mount)) << c.mount;
  auto mountinfo = ReadFile("/proc/self/mountinfo");
  ASSERT_TRUE(mountinfo.ok());
  std::istringstream lines(*mountinfo);
  std::string line, v2_root;
  std::set<std::string> on_v1;
  while (std::getline(lines, line)) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream left(line.substr(0, dash)), right(line.substr(dash + 3));
    std::string id, parent, dev, root, mount_point, fstype, source, options;
    left >> id >> parent >> dev >> root >> mount_point;
    right >> fstype >> source >> options;
    for (const char* name : {"memory", "pids", "cpu"}) {
      std::string padded = "," + options + ",";
      if (fstype == "cgroup" && padded.find(std::string(",") + name + ",") != std::string::npos) {
        on_v1.insert(name);
      }
    }
    if (fstype == "cgroup2" && v2_root.empty()) v2_root = mount_point;
  }
  std::string offered;
  if (!v2_root.empty()) offered = " " + ReadFile(v2_root + "/cgroup.controllers").value() + " ";
  std::replace(offered.begin(), offered.end(), '\n', ' ');
  for (const char* name : {"memory", "pids", "cpu"}) {
    const ControllerMount* found = find(name);
    if (on_v1.count(name)) {
      ASSERT_NE(found, nullptr) << name << " is on a mounted v1 hierarchy";
      EXPECT_EQ(found->version, CgroupVersion::kV1) << name;
    } else if (offered.find(std::string(" ") + name + " ") != std::string::npos) {
      ASSERT_NE(found, nullptr) << name << " is offered by the cgroup2 root " << v2_root;
      EXPECT_EQ(found->version, CgroupVersion::kV2) << name;
    } else {
      EXPECT_EQ(found, nullptr) << name << " found where no hierarchy has it";
    }
  }
}

TEST(CgroupsTest, CreateWritesLimitsAndRemoveDeletes) {
  for (const char* controller : {"memory", "pids", "cpu"}) {
    if (std::string why = testing::WhyNoController(controller); !why.empty()) GTEST_SKIP() << why;
  }
  std::string id = "cgtest" + std::to_string(::getpid());
  std::vector<std::string> dirs;
  {
    auto group = Cgroup::Create("barge", id, {.memory_bytes = 64 << 20, .cpus = 1.5, .pids = 7});
    ASSERT_TRUE(group.ok()) << group.status().message();
    dirs = group->dirs();
    ASSERT_FALSE(dirs.empty());
    bool saw_memory = false, saw_pids = false;
    for (const std::string& d : dirs) {
      EXPECT_NE(d.find("/barge/" + id), std::string::npos) << d;
      if (auto v = ReadFile(d + "/memory.limit_in_bytes"); v.ok()) {
        EXPECT_EQ(*v, std::to_string(64 << 20) + "\n");
        saw_memory = true;
      }
      if (auto v = ReadFile(d + "/memory.max"); v.ok()) {
        EXPECT_EQ(*v, std::to_string(64 << 20) + "\n");
        saw_memory = true;
      }
      if (auto v = ReadFile(d + "/pids.max"); v.ok()) {
        EXPECT_EQ(*v, "7\n");
        saw_pids = true;
      }
    }
    EXPECT_TRUE(saw_memory);
    EXPECT_TRUE(saw_pids);
    EXPECT_FALSE(group->OomKilled());
    // A second container with the same id is refused rather than shared.
    auto again = Cgroup::Create("barge", id, {.pids = 3});
    EXPECT_FALSE(again.ok());
  }
  for (const std::string& d : dirs) EXPECT_FALSE(PathExists(d)) << d;
}

// /proc/self/mountinfo of the three kinds of host, cut to their cgroup lines.
constexpr const char* kUnified =
    "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";
constexpr const char* kHybrid =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "36 31 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
constexpr const char* kLegacy =
    "25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
    "26 24 0:23 / /sys/fs/cgroup/memory rw,nosuid shared:10 - cgroup cgroup rw,memory\n"
    "27 24 0:24 / /sys/fs/cgroup/pids rw,nosuid shared:11 - cgroup cgroup rw,pids\n";

std::string Describe(const std::vector<ControllerMount>& controllers) {
  std::string out;
  for (const ControllerMount& c : controllers) {
    out += c.controller + (c.version == CgroupVersion::kV2 ? "@v2:" : "@v1:") + c.mount + " ";
  }
  return out;
}

TEST(CgroupsTest, DetectsEachControllersHierarchyOnV2HybridAndV1Hosts) {
  std::vector<std::string> asked;
  auto read = [&](const std::string& path) {
    asked.push_back(path);
    // What the root's cgroup.controllers lists: all of them on a unified host, only the
    // controllers no v1 hierarchy took on a hybrid one (hugetlb on this build machine).
    return path == "/sys/fs/cgroup/cgroup.controllers"
               ? std::string("cpuset cpu io memory hugetlb pids rdma misc\n")
               : std::string("hugetlb\n");
  };
  EXPECT_EQ(Describe(detail::ParseControllers(kUnified, read)),
            "cpu@v2:/sys/fs/cgroup memory@v2:/sys/fs/cgroup pids@v2:/sys/fs/cgroup ");
  EXPECT_EQ(asked, std::vector<std::string>{"/sys/fs/cgroup/cgroup.controllers"});
  EXPECT_EQ(Describe(detail::ParseControllers(kHybrid, read)),
            "cpu@v1:/sys/fs/cgroup/cpu memory@v1:/sys/fs/cgroup/memory "
            "pids@v1:/sys/fs/cgroup/pids ");
  EXPECT_EQ(Describe(detail::ParseControllers(kLegacy, read)),
            "cpu@v1:/sys/fs/cgroup/cpu,cpuacct memory@v1:/sys/fs/cgroup/memory "
            "pids@v1:/sys/fs/cgroup/pids ");
  // A unified host whose root lists no controllers (none delegated) has none to offer.
  EXPECT_EQ(Describe(detail::ParseControllers(kUnified, [](const std::string&) { return ""; })),
            "");
}

std::string Describe(const std::vector<detail::ControlWrite>& writes) {
  std::string out;
  for (const detail::ControlWrite& w : writes) {
    out += w.file + "=" + w.value + (w.only_if_present ? "?" : "") + " ";
  }
  return out;
}

TEST(CgroupsTest, LimitsAreWrittenInEachVersionsFormat) {
  const Limits limits{.memory_bytes = 64 << 20, .cpus = 1.5, .pids = 7};
  using detail::LimitWrites;
  EXPECT_EQ(Describe(LimitWrites("memory", CgroupVersion::kV2, limits)),
            "memory.max=67108864 memory.swap.max=0? ");
  EXPECT_EQ(Describe(LimitWrites("memory", CgroupVersion::kV1, limits)),
            "memory.limit_in_bytes=67108864 memory.memsw.limit_in_bytes=67108864? ");
  EXPECT_EQ(Describe(LimitWrites("cpu", CgroupVersion::kV2, limits)), "cpu.max=150000 100000 ");
  EXPECT_EQ(Describe(LimitWrites("cpu", CgroupVersion::kV1, limits)),
            "cpu.cfs_period_us=100000 cpu.cfs_quota_us=150000 ");
  EXPECT_EQ(Describe(LimitWrites("pids", CgroupVersion::kV2, limits)), "pids.max=7 ");
  EXPECT_EQ(Describe(LimitWrites("pids", CgroupVersion::kV1, limits)), "pids.max=7 ");
  // The kernel's smallest quota is 1 ms; no limit writes nothing.
  EXPECT_EQ(Describe(LimitWrites("cpu", CgroupVersion::kV2, {.cpus = 0.001})),
            "cpu.max=1000 100000 ");
  EXPECT_EQ(Describe(LimitWrites("memory", CgroupVersion::kV2, {.pids = 3})), "");
}

TEST(CgroupsTest, OomKillsAreReadFromEitherVersion) {
  // v2 memory.events; v1 memory.oom_control.
  EXPECT_TRUE(detail::OomKillReported("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n"));
  EXPECT_FALSE(detail::OomKillReported("low 0\nhigh 0\nmax 12\noom 0\noom_kill 0\n"));
  EXPECT_TRUE(detail::OomKillReported("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"));
  EXPECT_FALSE(detail::OomKillReported("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"));
  EXPECT_FALSE(detail::OomKillReported(""));
}

TEST(CgroupsTest, ParentNamesAreValidated) {
  EXPECT_TRUE(ValidateCgroupParent("barge").ok());
  EXPECT_TRUE(ValidateCgroupParent("machine/barge-1.x").ok());
  for (const char* bad : {"", "/abs", "a/../b", "a//b", "trailing/", "sp ace", ".."}) {
    EXPECT_FALSE(ValidateCgroupParent(bad).ok()) << bad;
  }
}

TEST(CgroupsTest, NoLimitsNoCgroup) {
  auto group = Cgroup::Create("barge", "cgtest-none" + std::to_string(::getpid()), {});
  ASSERT_TRUE(group.ok()) << group.status().message();
  EXPECT_TRUE(group->dirs().empty());
  auto procs = group->OpenProcsFiles();
  ASSERT_TRUE(procs.ok());
  EXPECT_TRUE(procs->empty());
}

}  // namespace
}  // namespace barge::runtime
