#include "barge/stream/pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

namespace barge::stream {
namespace {

struct Event {
  uint64_t key;
  uint64_t value;
  EventTime time;
};

TEST(PipelineTest, MapFilterSinkChained) {
  Pipeline p;
  Collected<uint64_t> out;
  p.generate("numbers", 10000, [](uint64_t i) { return i; })
      .map([](uint64_t x) { return x * 2; })
      .filter([](uint64_t x) { return x % 3 != 0; })
      .collect(out);
  ASSERT_TRUE(p.Run().ok());
  uint64_t expected = 0;
  for (uint64_t i = 0; i < 10000; ++i) {
    if ((i * 2) % 3 != 0) expected += i * 2;
  }
  auto records = out.records();
  EXPECT_EQ(std::accumulate(records.begin(), records.end(), uint64_t{0}), expected);
}

}  // namespace
}  // namespace barge::stream
