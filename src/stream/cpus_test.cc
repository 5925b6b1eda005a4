#include "barge/stream/detail/cpus.h"

#include <gtest/gtest.h>

#include "base/file_util.h"

namespace barge::stream::detail {
namespace {

class CgroupCpuQuotaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::Make("barge-cpus-test-");
    ASSERT_TRUE(t.ok());
    tmp_ = std::move(*t);
  }
  void Put(const std::string& rel, const std::string& text) {
    std::string path = tmp_.path() + "/" + rel;
    ASSERT_TRUE(MakeDirs(path.substr(0, path.rfind('/'))).ok());
    ASSERT_TRUE(WriteFile(path, text).ok());
  }
  TempDir tmp_;
};

TEST_F(CgroupCpuQuotaTest, V2TakesTheTightestQuotaUpThePath) {
  Put("cpu.max", "max 100000\n");
  Put("a/cpu.max", "150000 100000\n");
  Put("a/b/cpu.max", "max 100000\n");
  Put("a/b/c/cpu.max", "400000 100000\n");
  EXPECT_EQ(CgroupCpuQuota("0::/a/b/c\n", tmp_.path()), 1.5);
  EXPECT_EQ(CgroupCpuQuota("0::/a/b\n", tmp_.path()), 1.5);
  EXPECT_EQ(CgroupCpuQuota("0::/\n", tmp_.path()), std::nullopt);
}

TEST_F(CgroupCpuQuotaTest, V1CpuControllerAndHybridUnified) {
  Put("cpu,cpuacct/x/cpu.cfs_quota_us", "50000\n");
  Put("cpu,cpuacct/x/cpu.cfs_period_us", "100000\n");
  Put("cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  Put("cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(CgroupCpuQuota("4:memory:/x\n3:cpu,cpuacct:/x\n0::/\n", tmp_.path()), 0.5);
  EXPECT_EQ(CgroupCpuQuota("3:cpu,cpuacct:/\n", tmp_.path()), std::nullopt);
  // A v1 memory line alone says nothing about CPUs.
  EXPECT_EQ(CgroupCpuQuota("4:memory:/x\n", tmp_.path()), std::nullopt);
  // Hybrid: the v2 hierarchy is mounted at unified/.
  Put("unified/y/cpu.max", "250000 100000\n");
  EXPECT_EQ(CgroupCpuQuota("3:cpu,cpuacct:/\n0::/y\n", tmp_.path()), 2.5);
}

TEST_F(CgroupCpuQuotaTest, MissingOrMalformedFilesMeanNoQuota) {
  Put("a/cpu.max", "lots 100000\n");
  Put("b/cpu.max", "100000 0\n");
  EXPECT_EQ(CgroupCpuQuota("0::/a\n", tmp_.path()), std::nullopt);
  EXPECT_EQ(CgroupCpuQuota("0::/b\n", tmp_.path()), std::nullopt);
  EXPECT_EQ(CgroupCpuQuota("0::/nowhere\n", tmp_.path()), std::nullopt);
  EXPECT_EQ(CgroupCpuQuota("garbage\n\n", tmp_.path()), std::nullopt);
}

TEST(UsableCpusTest, AtLeastOneAndNoMoreThanTheAffinityAllows) {
  size_t cpus = UsableCpus();
  EXPECT_GE(cpus, 1u);
  size_t allowed = AllowedCpuList().size();
  if (allowed > 0) {
    EXPECT_LE(cpus, allowed);
  }
}

}  // namespace
}  // namespace barge::stream::detail
