#include "runtime/cgroups.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include "base/file_util.h"

namespace barge::runtime {
namespace {

TEST(CgroupsTest, DetectsMemoryAndPidsOnSomeHierarchy) {
  auto controllers = DetectControllers();
  ASSERT_TRUE(controllers.ok()) << controllers.status().message();
  bool memory = false, pids = false;
  for (const ControllerMount& c : *controllers) {
    memory = memory || c.controller == "memory";
    pids = pids || c.controller == "pids";
    EXPECT_TRUE(PathExists(c.mount)) << c.mount;
  }
  EXPECT_TRUE(memory);
  EXPECT_TRUE(pids);
}

TEST(CgroupsTest, CreateWritesLimitsAndRemoveDeletes) {
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
