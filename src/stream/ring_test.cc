#include "barge/stream/ring.h"

#include <gtest/gtest.h>

#include <thread>

#include "barge/stream/channel.h"

namespace barge::stream {
namespace {

TEST(SpscRingTest, FullAndEmpty) {
  SpscRing<int> ring(3);  // rounds up to 4
  EXPECT_EQ(ring.capacity(), 4u);
  EXPECT_EQ(ring.TryPeek(), nullptr);
  for (int i = 0; i < 4; ++i) {
    int* s = ring.TryClaim();
    ASSERT_NE(s, nullptr);
    *s = i;
    ring.Publish();
  }
  EXPECT_EQ(ring.TryClaim(), nullptr);
  for (int i = 0; i < 4; ++i) {
    int* s = ring.TryPeek();
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(*s, i);
    ring.Release();
  }
  EXPECT_EQ(ring.TryPeek(), nullptr);
}

// With and without spinning before sleeping (no spinning: more task threads than CPUs).
class ChannelSpinTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(ChannelSpinTest, TransfersInOrderAcrossThreadsWithBlocking) {
  std::atomic<bool> cancelled{false};
  Doorbell bell;
  bell.spins = GetParam();
  Channel<uint64_t> ch(4, &bell, &cancelled, GetParam());
  constexpr uint64_t kBatches = 20000;
  std::thread producer([&] {
    for (uint64_t i = 0; i < kBatches; ++i) {
      Slot<uint64_t>* s = ch.Claim();
      s->kind = SlotKind::kData;
      s->batch.records.assign(3, i);
      ch.Publish(*s);
    }
    Slot<uint64_t>* s = ch.Claim();
    s->kind = SlotKind::kEnd;
    ch.Publish(*s);
  });
  uint64_t expected = 0;
  for (;;) {
    bell.WaitUntil([&] { return !ch.Empty(); });
    Slot<uint64_t>* s = ch.Peek();
    if (s->kind == SlotKind::kEnd) {
      ch.Release();
      break;
    }
    ASSERT_EQ(s->batch.records.size(), 3u);
    ASSERT_EQ(s->batch.records[0], expected);
    ++expected;
    s->batch.clear();
    ch.Release();
  }
  producer.join();
  EXPECT_EQ(expected, kBatches);
  EXPECT_EQ(ch.metrics().records.load(), kBatches * 3);
}

INSTANTIATE_TEST_SUITE_P(Spins, ChannelSpinTest, ::testing::Values(0u, Doorbell::kDefaultSpins));

TEST(ChannelTest, CancellationWakesABlockedProducer) {
  std::atomic<bool> cancelled{false};
  Doorbell bell;
  Channel<int> ch(2, &bell, &cancelled);
  std::atomic<bool> threw{false};
  std::thread producer([&] {
    try {
      for (;;) {
        Slot<int>* s = ch.Claim();
        ch.Publish(*s);
      }
    } catch (const PipelineCancelled&) {
      threw = true;
    }
  });
  while (ch.Fill() < ch.capacity()) std::this_thread::yield();
  cancelled = true;
  ch.WakeProducer();
  producer.join();
  EXPECT_TRUE(threw);
}

}  // namespace
}  // namespace barge::stream
