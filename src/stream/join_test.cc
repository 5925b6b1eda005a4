#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
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

// The operator driven directly, one call at a time, so watermarks fall exactly between records.
using Pair = std::pair<uint64_t, uint64_t>;
using Tagged = JoinInput<Order, Click>;
struct TaggedKey {
  uint64_t operator()(const Tagged& r) const {
    return r.is_left() ? r.left().user : r.right().user;
  }
};
struct MakePair {
  Pair operator()(const Order& o, const Click& c) const { return {o.id, c.page}; }
};
using Join = IntervalJoinOperator<Order, Click, uint64_t, TaggedKey, MakePair, Pair>;

class PairSink final : public Input<Pair> {
 public:
  void Push(Batch<Pair>& b) override {
    pairs.insert(pairs.end(), b.records.begin(), b.records.end());
  }
  void Watermark(EventTime) override {}
  void Barrier(uint64_t) override {}
  void End() override {}
  void Idle() override {}
  std::vector<Pair> pairs;
};

class JoinDriver {
 public:
  JoinDriver(EventTime lower, EventTime upper) : join_("join", {}, lower, upper, {}, 64) {
    dynamic_cast<Output<Pair>*>(join_.Port(0))->Connect(&sink_);
  }
  void Left(uint64_t user, uint64_t id, EventTime t) { Send(Tagged::Left({user, id, t}), t); }
  void Right(uint64_t user, uint64_t page, EventTime t) { Send(Tagged::Right({user, page, t}), t); }
  void Watermark(EventTime w) { join_.Watermark(w); }
  std::vector<Pair>& pairs() { return sink_.pairs; }
  Join& join() { return join_; }

 private:
  void Send(const Tagged& r, EventTime t) {
    Batch<Tagged> b;
    b.records.push_back(r);
    b.timestamps.push_back(t);
    join_.Push(b);
  }
  Join join_;
  PairSink sink_;
};

// Flink's IntervalJoinOperator.isLate: late is strictly below the watermark.
TEST(IntervalJoinTest, RecordAtTheWatermarkIsNotLate) {
  JoinDriver d(-5, 5);
  d.Left(1, 10, 100);
  d.Watermark(99);
  d.Right(1, 20, 99);  // at the watermark: joins a@100
  d.Right(1, 21, 98);  // below it: late, dropped
  EXPECT_EQ(d.pairs(), (std::vector<Pair>{{10, 20}}));
  EXPECT_EQ(d.join().metrics().late_records.load(), 1u);
}

// A buffered record stays until no record that is not late can match it: at watermark 105, a@100
// (upper 5) can still meet b@105, which is not late.
TEST(IntervalJoinTest, RecordsStayUntilNoLaterRecordCanMatchThem) {
  JoinDriver d(-5, 5);
  d.Left(1, 10, 100);
  d.Watermark(105);
  d.Right(1, 20, 105);
  EXPECT_EQ(d.pairs(), (std::vector<Pair>{{10, 20}}));
  EXPECT_EQ(d.join().buffered_records(), 2u);
  d.Watermark(106);  // a@100 can meet nothing at or after 106; b@105 can meet a up to 110
  EXPECT_EQ(d.join().buffered_records(), 1u);
  d.Watermark(110);
  EXPECT_EQ(d.join().buffered_records(), 1u);
  d.Watermark(111);
  EXPECT_EQ(d.join().buffered_records(), 0u);
  EXPECT_EQ(d.join().buffered_keys(), 0u);
}

// A join restored from a checkpoint goes on as the one that took it: its buffered records still
// meet new ones, a record below the saved watermark is late, and its cleanup timers are armed
// again, so buffered records are dropped at the same watermarks.
TEST(IntervalJoinTest, RestoredFromACheckpointItJoinsLatesAndDropsAsBefore) {
  JoinDriver before(-5, 5);
  before.Left(1, 10, 100);
  before.Right(2, 30, 103);
  before.Watermark(101);
  StateWriter saved;
  ASSERT_TRUE(before.join().CheckpointSupport().ok());
  before.join().Snapshot(1, saved);

  JoinDriver after(-5, 5);
  StateReader in(saved.bytes());
  ASSERT_TRUE(after.join().Restore(in).ok());
  EXPECT_TRUE(in.done());
  EXPECT_EQ(after.join().buffered_records(), 2u);
  after.Right(1, 20, 104);  // meets a@100
  after.Right(1, 21, 100);  // below the watermark 101: late
  EXPECT_EQ(after.pairs(), (std::vector<Pair>{{10, 20}}));
  EXPECT_EQ(after.join().metrics().late_records.load(), 1u);
  after.Watermark(106);                            // a@100 can meet nothing at or after 106
  EXPECT_EQ(after.join().buffered_records(), 2u);  // b@103 and b@104 stay (they meet a up to 108)
  after.Watermark(109);
  EXPECT_EQ(after.join().buffered_records(), 1u);  // b@104 can still meet a@109
  after.Watermark(110);
  EXPECT_EQ(after.join().buffered_records(), 0u);

  JoinDriver wider(-6, 5);
  StateReader again(saved.bytes());
  Status st = wider.join().Restore(again);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("the join changed"), std::string::npos) << st.message();
}

// Cleanup visits only keys with something to drop: many keys buffered far ahead in time do not
// slow down a stream on a few other keys (a scan of every key per watermark made it ~40x slower).
TEST(IntervalJoinTest, BufferedIdleKeysDoNotSlowOtherKeys) {
  auto run = [](uint64_t idle_keys) {
    JoinDriver d(-5, 5);
    for (uint64_t k = 0; k < idle_keys; ++k) d.Left(1'000'000 + k, k, 1'000'000'000);
    auto start = std::chrono::steady_clock::now();
    Batch<Tagged> b;
    EventTime t = 0;
    for (int batch = 0; batch < 3000; ++batch) {
      b.clear();
      for (int i = 0; i < 64; ++i, ++t) {
        uint64_t user = static_cast<uint64_t>(t) % 16;
        b.records.push_back(i % 2 == 0 ? Tagged::Left({user, 0, t}) : Tagged::Right({user, 0, t}));
        b.timestamps.push_back(t);
      }
      d.join().Push(b);
      d.Watermark(t - 1);
    }
    EXPECT_GE(d.join().buffered_keys(), idle_keys);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  run(0);  // warm up
  double alone = run(0);
  double beside_idle = run(200'000);
  EXPECT_LT(beside_idle, 5 * alone + 0.05) << alone << " s alone, " << beside_idle << " s beside";
}

}  // namespace
}  // namespace barge::stream
