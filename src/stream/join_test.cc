#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "barge/stream/pipeline.h"

namespace barge::stream {
namespace {

struct Order {
  uint64_t user;
  uint64_t id;
  EventTime time;
};
struct Click {
  uint64_t user;
  uint64_t page;
  EventTime time;
};

TEST(IntervalJoinTest, MatchesANestedLoopReference) {
  std::mt19937_64 rng(42);
  std::vector<Order> orders;
  std::vector<Click> clicks;
  for (uint64_t i = 0; i < 3000; ++i) {
    orders.push_back({rng() % 50, i, static_cast<EventTime>(i * 4 + rng() % 8)});
    clicks.push_back({rng() % 50, i, static_cast<EventTime>(i * 4 + rng() % 8)});
  }
  for (auto [lower, upper] :
       std::vector<std::pair<EventTime, EventTime>>{{-20, 10}, {0, 0}, {5, 30}, {-30, -5}}) {
    std::vector<std::pair<uint64_t, uint64_t>> expected;
    for (const Order& o : orders) {
      for (const Click& c : clicks) {
        if (o.user == c.user && c.time >= o.time + lower && c.time <= o.time + upper) {
          expected.emplace_back(o.id, c.page);
        }
      }
    }
    ASSERT_FALSE(expected.empty());
    for (int par : {1, 2}) {
      Pipeline p({.parallelism = par, .batch_size = 64});
      Collected<std::pair<uint64_t, uint64_t>> out;
      auto os = p.generate(
                     "orders", orders.size(), [&](uint64_t i) { return orders[i]; }, 1)
                    .with_timestamps([](const Order& o) { return o.time; }, 16)
                    .key_by([](const Order& o) { return o.user; });
      auto cs = p.generate(
                     "clicks", clicks.size(), [&](uint64_t i) { return clicks[i]; }, 1)
                    .with_timestamps([](const Click& c) { return c.time; }, 16)
                    .key_by([](const Click& c) { return c.user; });
      os.interval_join(cs, lower, upper, [](const Order& o, const Click& c) {
          return std::make_pair(o.id, c.page);
        }).collect(out);
      Status st = p.Run();
      ASSERT_TRUE(st.ok()) << st.message();
      auto got = out.records();
      std::sort(got.begin(), got.end());
      auto want = expected;
      std::sort(want.begin(), want.end());
      EXPECT_EQ(got, want) << "parallelism " << par << " bounds " << lower << ".." << upper;
    }
  }
}

}  // namespace
}  // namespace barge::stream
