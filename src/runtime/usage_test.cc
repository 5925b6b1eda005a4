#include "runtime/usage.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace barge::runtime {
namespace {

TEST(UsageTest, KeyedValue) {
  std::string stat = "anon 4096\nfile 8192\ninactive_file 100\ntotal_inactive_file 7\n";
  EXPECT_EQ(detail::KeyedValue(stat, "inactive_file"), 100u);
  EXPECT_EQ(detail::KeyedValue(stat, "total_inactive_file"), 7u);
  EXPECT_EQ(detail::KeyedValue(stat, "file"), 8192u);
  EXPECT_EQ(detail::KeyedValue(stat, "missing"), 0u);
  EXPECT_EQ(detail::KeyedValue("read_bytes: 12\nwrite_bytes: 34\n", "write_bytes:"), 34u);
}

TEST(UsageTest, StatCpuTicksCountsFromTheLastParenthesis) {
  // comm "a) b" holds a space and a parenthesis; utime 11, stime 22, cutime 33, cstime 44.
  std::string stat = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0 5 0 0\n";
  EXPECT_EQ(detail::StatCpuTicks(stat), 110u);
  EXPECT_EQ(detail::StatCpuTicks("garbage"), 0u);
}

TEST(UsageTest, NetDevLeavesOutLoopback) {
  std::string dev =
      "Inter-|   Receive                                                |  Transmit\n"
      " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets\n"
      "    lo:    1000      10    0    0    0     0          0         0     1000      10    0 0 0 "
      "0 0 0\n"
      "  eth0:    2000      20    0    0    0     0          0         0     3000      30    0 0 0 "
      "0 0 0\n"
      "  eth1:       5       1    0    0    0     0          0         0        7       1    0 0 0 "
      "0 0 0\n";
  uint64_t rx = 0, tx = 0;
  detail::NetDevBytes(dev, &rx, &tx);
  EXPECT_EQ(rx, 2005u);
  EXPECT_EQ(tx, 3007u);
}

TEST(UsageTest, ReadsThisProcessWithoutACgroup) {
  // This test's own pid namespace: every process in it is summed.
  Result<ResourceUsage> u = ReadResourceUsage(::getpid(), {}, /*host_network=*/true);
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_GT(u->memory_bytes, 0u);
  EXPECT_GT(u->memory_limit, 0u);
  EXPECT_FALSE(u->memory_limited);
  EXPECT_GE(u->pids, 1u);
}

TEST(UsageTest, GoneProcessIsNotFound) {
  Result<ResourceUsage> u = ReadResourceUsage(0, {}, false);
  EXPECT_EQ(u.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace barge::runtime
