#include "barge/stream/pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <thread>

namespace barge::stream {
namespace {

struct Event {
  uint64_t key;
  uint64_t value;
  EventTime time;
  bool operator==(const Event&) const = default;
};

Event MakeEvent(uint64_t i) { return {(i * 7919) % 13, i % 101, static_cast<EventTime>(i)}; }

template <class T>
std::vector<T> Sorted(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v;
}

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
  // One fused task: every operator saw every record, in order.
  EXPECT_TRUE(std::is_sorted(records.begin(), records.end()));
}

TEST(PipelineTest, MapChangesTypeAndKeepsTimestamps) {
  Pipeline p({.batch_size = 16});
  Collected<std::string> out;
  p.generate("n", 100, [](uint64_t i) { return i; })
      .with_timestamps([](uint64_t i) { return static_cast<EventTime>(i * 10); })
      .map([](uint64_t i) { return std::to_string(i); })
      .collect(out);
  ASSERT_TRUE(p.Run().ok());
  auto records = out.records();
  auto ts = out.timestamps();
  ASSERT_EQ(records.size(), 100u);
  ASSERT_EQ(ts.size(), 100u);
  for (size_t i = 0; i < records.size(); ++i) EXPECT_EQ(std::stoll(records[i]) * 10, ts[i]);
}

TEST(PipelineTest, FlatMapEmitsZeroOrMorePerRecord) {
  Pipeline p({.batch_size = 8});
  Collected<uint64_t> out;
  p.generate("n", 1000, [](uint64_t i) { return i; })
      .flat_map<uint64_t>([](uint64_t i, Emitter<uint64_t>& emit) {
        for (uint64_t k = 0; k < i % 4; ++k) emit(i);
      })
      .collect(out);
  ASSERT_TRUE(p.Run().ok());
  uint64_t expected = 0;
  for (uint64_t i = 0; i < 1000; ++i) expected += i % 4;
  EXPECT_EQ(out.records().size(), expected);
}

// The same records reach the sink whatever the parallelism and exchange, each with its own
// timestamp when they carry event time.
TEST(PipelineTest, ExchangesDeliverEveryRecordOnce) {
  std::vector<Event> reference;
  for (uint64_t i = 0; i < 50000; ++i) reference.push_back(MakeEvent(i));
  auto by_key = [](const Event& e) { return e.key; };
  auto less = [](const Event& a, const Event& b) { return a.time < b.time; };
  // kind 0: by key; 1: rebalanced; 2: into one instance, then rebalanced. kind 3: by key in
  // batches too small for the hash exchange's runs.
  for (int par : {1, 2, 3, 4}) {
    for (int kind : {0, 1, 2, 3}) {
      for (bool with_time : {false, true}) {
        Pipeline p({.parallelism = par, .batch_size = kind == 3 ? 5u : 100u, .channel_slots = 4});
        Collected<Event> out;
        auto events = p.generate("events", reference.size(), MakeEvent);
        auto src = with_time ? events.with_timestamps([](const Event& e) {
          return static_cast<EventTime>(e.time) * 3;
        })
                             : events;
        if (kind == 0 || kind == 3) src.key_by(by_key).map([](Event e) { return e; }).collect(out);
        if (kind == 1) src.rebalance().map([](Event e) { return e; }).collect(out);
        if (kind == 2) src.map([](Event e) { return e; }).parallelism(1).rebalance().collect(out);
        ASSERT_TRUE(p.Run().ok());
        auto got = out.records();
        auto ts = out.timestamps();
        ASSERT_EQ(ts.size(), with_time ? got.size() : 0u);
        for (size_t i = 0; i < ts.size(); ++i) {
          ASSERT_EQ(ts[i], static_cast<EventTime>(got[i].time) * 3) << "record " << i;
        }
        std::sort(got.begin(), got.end(), less);
        EXPECT_EQ(got, reference) << "parallelism " << par << " kind " << kind
                                  << (with_time ? " with time" : "");
      }
    }
  }
}

// Each key goes to instance (HashKey(key) * P) >> 64, at every parallelism (P = 2 has a loop of
// its own, and so do records with and without event time): checkpoints rely on a key's instance
// staying put.
TEST(PipelineTest, HashExchangeSendsEachKeyToItsInstance) {
  struct InstanceSink final : Sink<Event> {
    InstanceSink(std::mutex* mu, std::map<uint64_t, std::set<int>>* seen) : mu(mu), seen(seen) {}
    Status Open(int i, int) override {
      instance = i;
      return Status::Ok();
    }
    Status Write(const Batch<Event>& b) override {
      std::lock_guard lock(*mu);
      for (const Event& e : b.records) (*seen)[e.key].insert(instance);
      return Status::Ok();
    }
    std::mutex* mu;
    std::map<uint64_t, std::set<int>>* seen;
    int instance = -1;
  };
  for (int par : {2, 3, 4}) {
    for (bool with_time : {false, true}) {
      Pipeline p({.parallelism = par, .batch_size = 64});
      std::mutex mu;
      std::map<uint64_t, std::set<int>> seen;
      auto events = p.generate("events", 30000, MakeEvent);
      auto keyed = (with_time ? events.with_timestamps(
                                    [](const Event& e) { return static_cast<EventTime>(e.time); })
                              : events)
                       .key_by([](const Event& e) { return e.key; });
      keyed.map([](Event e) { return e; }).sink("instances", [&] {
        return std::make_unique<InstanceSink>(&mu, &seen);
      });
      ASSERT_TRUE(p.Run().ok());
      EXPECT_EQ(seen.size(), 13u);
      for (auto& [key, instances] : seen) {
        auto expected = static_cast<int>(
            (static_cast<unsigned __int128>(HashKey(key)) * static_cast<unsigned>(par)) >> 64);
        EXPECT_EQ(instances, std::set<int>{expected})
            << "key " << key << " at parallelism " << par << (with_time ? " with time" : "");
      }
    }
  }
}

// A hot key's records go on while the channel of an instance that gets none of them is full,
// and the instances that get none are sent no empty batches (into two instances, and into three,
// whose loops differ).
TEST(PipelineTest, HashExchangeNeitherBlocksOnNorFloodsTheOtherChannels) {
  for (size_t parts : {2u, 3u}) {
    SCOPED_TRACE("into " + std::to_string(parts) + " instances");
    std::atomic<bool> cancelled{false};
    std::vector<std::unique_ptr<Doorbell>> bells;
    std::vector<std::unique_ptr<Channel<uint64_t>>> owned;
    std::vector<Channel<uint64_t>*> ch;
    for (size_t d = 0; d < parts; ++d) {
      bells.push_back(std::make_unique<Doorbell>());
      owned.push_back(std::make_unique<Channel<uint64_t>>(4, bells.back().get(), &cancelled));
      ch.push_back(owned.back().get());
    }
    auto key = [](uint64_t) { return uint64_t{7}; };
    const auto hot =
        static_cast<size_t>((static_cast<unsigned __int128>(HashKey(uint64_t{7})) * parts) >> 64);
    Channel<uint64_t>& cold = *ch[(hot + 1) % parts];
    detail::Partitioner<uint64_t, decltype(key)> part(detail::Partitioning::kHash, ch, key, 16, 0,
                                                      "window");
    Batch<uint64_t> b;
    for (int round = 0; round < 3; ++round) {
      b.records.assign(5, static_cast<uint64_t>(round));
      part.Push(b);
      part.Idle();  // publishes what is open
    }
    for (size_t d = 0; d < parts; ++d) {
      EXPECT_EQ(ch[d]->Fill(), d == hot ? 3u : 0u)
          << "instance " << d << (d == hot ? "" : " got empty batches");
    }

    // Fill a cold channel (this thread is its only producer), then push more hot records.
    for (Channel<uint64_t>* c : ch) {
      while (Slot<uint64_t>* s = c->Peek()) {
        s->batch.clear();
        c->Release();
      }
    }
    for (size_t i = 0; i < cold.capacity(); ++i) cold.Publish(*cold.Claim());
    std::thread pusher([&] {
      Batch<uint64_t> more;
      more.records.assign(20, 9);
      try {
        part.Push(more);
        part.Idle();
      } catch (const PipelineCancelled&) {
      }
    });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (ch[hot]->Fill() < 2 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_EQ(ch[hot]->Fill(), 2u) << "the hot key's records waited for the full cold channel";
    for (size_t d = 0; d < parts; ++d) {
      if (d == hot) continue;
      EXPECT_EQ(ch[d]->Fill(), ch[d] == &cold ? cold.capacity() : 0u)
          << "instance " << d << " was sent records or empty batches";
    }
    cancelled = true;
    for (Channel<uint64_t>* c : ch) c->WakeProducer();
    pusher.join();
  }
}

TEST(PipelineTest, BroadcastReachesEveryInstance) {
  Pipeline p({.parallelism = 1});
  Collected<uint64_t> out;
  p.generate("n", 1000, [](uint64_t i) { return i; })
      .broadcast()
      .map([](uint64_t i) { return i; })
      .parallelism(3)
      .collect(out);
  ASSERT_TRUE(p.Run().ok());
  EXPECT_EQ(out.records().size(), 3000u);
}

TEST(PipelineTest, UnionMergesStreams) {
  Pipeline p({.batch_size = 32});
  Collected<uint64_t> out;
  auto a = p.generate("a", 500, [](uint64_t i) { return i; });
  auto b = p.generate("b", 700, [](uint64_t i) { return 10000 + i; });
  a.union_with(b).filter([](uint64_t) { return true; }).collect(out);
  ASSERT_TRUE(p.Run().ok());
  EXPECT_EQ(out.records().size(), 1200u);
}

TEST(PipelineTest, StreamUsedTwiceFeedsBothConsumers) {
  Pipeline p({.batch_size = 16});
  Collected<uint64_t> evens, all;
  auto s = p.generate("n", 1000, [](uint64_t i) { return i; });
  s.filter([](uint64_t i) { return i % 2 == 0; }).collect(evens);
  s.collect(all);
  ASSERT_TRUE(p.Run().ok());
  EXPECT_EQ(evens.records().size(), 500u);
  EXPECT_EQ(all.records().size(), 1000u);
}

TEST(PipelineTest, KeyedReduceEmitsRunningValuesPerKey) {
  for (int par : {1, 2}) {
    Pipeline p({.parallelism = par, .batch_size = 50});
    Collected<Event> out;
    p.generate("events", 10000, MakeEvent)
        .key_by([](const Event& e) { return e.key; })
        .reduce([](const Event& acc, const Event& e) {
          return Event{e.key, acc.value + e.value, std::max(acc.time, e.time)};
        })
        .collect(out);
    ASSERT_TRUE(p.Run().ok());
    std::map<uint64_t, uint64_t> final_sum, expected;
    for (const Event& e : out.records()) final_sum[e.key] = std::max(final_sum[e.key], e.value);
    for (uint64_t i = 0; i < 10000; ++i) expected[MakeEvent(i).key] += MakeEvent(i).value;
    EXPECT_EQ(final_sum, expected);
    EXPECT_EQ(out.records().size(), 10000u);
  }
}

TEST(PipelineTest, KeyedAggregateEmitsRunningResultsWithTimestamps) {
  struct Avg {
    uint64_t count = 0, sum = 0;
  };
  struct Out {
    uint64_t key, count;
    double mean;
  };
  for (int par : {1, 2}) {
    Pipeline p({.parallelism = par, .batch_size = 64});
    Collected<Out> out;
    p.generate("events", 5000, MakeEvent)
        .with_timestamps([](const Event& e) { return e.time; })
        .key_by([](const Event& e) { return e.key; })
        .aggregate([] { return Avg{}; },
                   [](Avg& a, const Event& e) {
                     ++a.count;
                     a.sum += e.value;
                   },
                   [](const uint64_t& key, const Avg& a) {
                     return Out{key, a.count, static_cast<double>(a.sum) / a.count};
                   })
        .collect(out);
    ASSERT_TRUE(p.Run().ok());
    std::map<uint64_t, Avg> expected;
    for (uint64_t i = 0; i < 5000; ++i) {
      Event e = MakeEvent(i);
      ++expected[e.key].count;
      expected[e.key].sum += e.value;
    }
    auto records = out.records();
    ASSERT_EQ(records.size(), 5000u);
    ASSERT_EQ(out.timestamps().size(), 5000u);  // each result keeps its record's event time
    std::map<uint64_t, Out> last;  // the result with the highest count is the key's final one
    for (const Out& r : records) {
      if (r.count > last[r.key].count) last[r.key] = r;
    }
    for (auto& [key, a] : expected) {
      EXPECT_EQ(last[key].count, a.count);
      EXPECT_DOUBLE_EQ(last[key].mean, static_cast<double>(a.sum) / a.count) << "key " << key;
    }
  }
}

// Backpressure: a slow sink bounds what is in flight to the channel capacity.
TEST(PipelineTest, SlowSinkKeepsMemoryBounded) {
  constexpr size_t kBatch = 64, kSlots = 4;
  Pipeline p({.parallelism = 1, .batch_size = kBatch, .channel_slots = kSlots});
  std::atomic<uint64_t> produced{0};
  uint64_t consumed = 0, max_in_flight = 0;
  p.generate("fast", 20000, [](uint64_t i) { return i; })
      .map([&produced](uint64_t i) {
        produced.fetch_add(1, std::memory_order_relaxed);
        return i;
      })
      .rebalance()
      .sink([&](const Batch<uint64_t>& b) {
        consumed += b.size();
        max_in_flight = std::max(max_in_flight, produced.load() - consumed);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      });
  ASSERT_TRUE(p.Run().ok());
  EXPECT_EQ(consumed, 20000u);
  // Slots in the ring, plus the batch the producer is filling and the one being consumed.
  EXPECT_LE(max_in_flight, (kSlots + 2) * kBatch);
  EXPECT_GT(max_in_flight, kBatch);  // the producer did run ahead until blocked
  uint64_t blocked = 0, channel_records = 0, channel_bytes = 0;
  for (const OperatorStats& s : p.Stats()) {
    blocked += s.blocked_ns;
    channel_records += s.channel_records;
    channel_bytes += s.channel_bytes;
  }
  EXPECT_GT(blocked, 0u);
  EXPECT_EQ(channel_records, 20000u);
  EXPECT_EQ(channel_bytes, 20000u * sizeof(uint64_t));
}

TEST(PipelineTest, ThrowingOperatorStopsThePipelineNamingIt) {
  for (int par : {1, 2}) {
    Pipeline p({.parallelism = par, .batch_size = 32, .channel_slots = 2});
    std::atomic<uint64_t> sunk{0};
    p.generate("numbers", 1'000'000'000, [](uint64_t i) { return i; })
        .key_by([](uint64_t i) { return i % 7; })
        .map([](uint64_t i) {
          if (i == 5000) throw std::runtime_error("bad record 5000");
          return i;
        })
        .name("parse")
        .sink([&](const Batch<uint64_t>& b) { sunk += b.size(); });
    Status st = p.Run();
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.message(), "operator 'parse' failed: bad record 5000") << "par " << par;
    EXPECT_LT(sunk.load(), 1'000'000u);
  }
}

// The key function belongs to the keyed operator: its errors name that operator whether the
// exchange runs (P=2, the key is computed upstream) or is chained away (P=1).
TEST(PipelineTest, ThrowingKeyFunctionNamesTheKeyedOperator) {
  for (int par : {1, 2}) {
    Pipeline p({.parallelism = par, .batch_size = 32, .channel_slots = 2});
    p.generate("numbers", 1'000'000'000, [](uint64_t i) { return i; })
        .key_by([](uint64_t i) {
          if (i == 5000) throw std::runtime_error("no key for 5000");
          return i % 7;
        })
        .reduce([](uint64_t a, uint64_t b) { return a + b; })
        .name("totals")
        .sink([](const Batch<uint64_t>&) {});
    EXPECT_EQ(p.Run().message(), "operator 'totals' failed: no key for 5000") << "par " << par;
  }
}

struct NotAnException {};

// Values that are not std::exceptions still say something: strings their text, others their type.
TEST(PipelineTest, NonStandardThrowsSaySomethingUseful) {
  auto run = [](int what) {
    Pipeline p({.parallelism = 2, .batch_size = 32});
    p.generate("numbers", 1'000'000, [](uint64_t i) { return i; })
        .key_by([what](uint64_t i) {
          if (i == 500 && what == 3) throw NotAnException{};
          return i % 7;
        })
        .map([what](uint64_t i) {
          if (i == 500 && what == 0) throw 42;
          if (i == 500 && what == 1) throw std::string("a string");
          if (i == 500 && what == 2) throw "a C string";
          return i;
        })
        .name("parse")
        .sink([](const Batch<uint64_t>&) {});
    return p.Run().message();
  };
  EXPECT_EQ(run(0), "operator 'parse' failed: a thrown int, not a std::exception");
  EXPECT_EQ(run(1), "operator 'parse' failed: a string");
  EXPECT_EQ(run(2), "operator 'parse' failed: a C string");
  EXPECT_EQ(
      run(3),
      "operator 'parse' failed: a thrown barge::stream::(anonymous namespace)::NotAnException, "
      "not a std::exception");
}

TEST(PipelineTest, ThrowingSinkStopsAnEndlessSource) {
  Pipeline p({.parallelism = 2, .batch_size = 16, .channel_slots = 2});
  p.generate("endless", UINT64_MAX, [](uint64_t i) { return i; }).rebalance().sink([](uint64_t i) {
    if (i > 100000) throw std::logic_error("sink full");
  });
  Status st = p.Run();
  EXPECT_EQ(st.message(), "operator 'sink' failed: sink full");
}

class FailingSource final : public Source<int> {
 public:
  Result<SourceState> Next(Batch<int>& out, size_t) override {
    if (++calls_ > 3) return IoError("read /data/in: Input/output error");
    out.records.push_back(calls_);
    return SourceState::kMore;
  }

 private:
  int calls_ = 0;
};

TEST(PipelineTest, SourceErrorEndsThePipelineWithIt) {
  Pipeline p;
  Collected<int> out;
  p.source<int>("reader", [] { return std::make_unique<FailingSource>(); }).collect(out);
  Status st = p.Run();
  EXPECT_EQ(st.message(), "operator 'reader' failed: read /data/in: Input/output error");
}

TEST(PipelineTest, CancelStopsARunningPipeline) {
  Pipeline p({.parallelism = 2});
  p.generate("endless", UINT64_MAX, [](uint64_t i) { return i; })
      .rebalance()
      .sink([](const Batch<uint64_t>&) {});
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    p.Cancel();
  });
  Status st = p.Run();
  canceller.join();
  EXPECT_EQ(st.code(), StatusCode::kCancelled);
}

// A consumer that takes 100 ms per batch behind 32 queued slots: cancellation and an upstream
// failure stop it after the batch at hand, not after draining the channel (3.2 s).
double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

TEST(PipelineTest, CancelStopsASlowConsumerWithinABatch) {
  Pipeline p({.parallelism = 1, .batch_size = 16, .channel_slots = 32});
  std::atomic<int> batches{0};
  p.generate("endless", UINT64_MAX, [](uint64_t i) { return i; })
      .rebalance()
      .sink([&](const Batch<uint64_t>&) {
        batches.fetch_add(1);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      });
  std::chrono::steady_clock::time_point cancelled;
  std::thread canceller([&] {
    while (batches.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    cancelled = std::chrono::steady_clock::now();
    p.Cancel();
  });
  Status st = p.Run();
  double took = SecondsSince(cancelled);
  canceller.join();
  EXPECT_EQ(st.code(), StatusCode::kCancelled);
  EXPECT_LT(took, 1.0);
  EXPECT_LE(batches.load(), 5);
}

// Idles for 300 ms, then fails, noting when.
class LateFailingSource final : public Source<uint64_t> {
 public:
  explicit LateFailingSource(std::chrono::steady_clock::time_point* failed) : failed_(failed) {}
  Result<SourceState> Next(Batch<uint64_t>&, size_t) override {
    if (SecondsSince(start_) < 0.3) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return SourceState::kIdle;
    }
    *failed_ = std::chrono::steady_clock::now();
    return IoError("read /data/in: Input/output error");
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point* failed_;
};

TEST(PipelineTest, UpstreamFailureStopsASlowConsumerWithinABatch) {
  Pipeline p({.parallelism = 1, .batch_size = 16, .channel_slots = 32});
  std::atomic<int> batches{0};
  std::chrono::steady_clock::time_point failed;
  p.generate("endless", UINT64_MAX, [](uint64_t i) { return i; })
      .union_with(p.source<uint64_t>(
          "reader", [&failed] { return std::make_unique<LateFailingSource>(&failed); }))
      .rebalance()
      .sink([&](const Batch<uint64_t>&) {
        batches.fetch_add(1);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      });
  Status st = p.Run();
  EXPECT_EQ(st.message(), "operator 'reader' failed: read /data/in: Input/output error");
  EXPECT_LT(SecondsSince(failed), 1.0);
  EXPECT_LE(batches.load(), 8);
}

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// A source that blocks 30 ms per record (without reporting idle), stamping each record with
// the time it was made.
class TrickleSource final : public Source<uint64_t> {
 public:
  explicit TrickleSource(int records) : left_(records) {}
  Result<SourceState> Next(Batch<uint64_t>& out, size_t) override {
    if (left_-- == 0) return SourceState::kEnd;
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    out.records.push_back(NowNs());
    return SourceState::kMore;
  }

 private:
  int left_;
};

double ThreadCpuSecondsOfProcess() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Idle tasks sleep: a pipeline waiting on a slow source uses little CPU, and every record still
// arrives promptly (partial batches are flushed when a task goes idle).
TEST(PipelineTest, IdleTasksSleepAndSlowRecordsStillFlow) {
  Pipeline p({.parallelism = 2});
  std::atomic<int> seen{0};
  std::atomic<uint64_t> max_delay_ns{0};
  p.source<uint64_t>(
       "trickle", [] { return std::make_unique<TrickleSource>(12); }, 1)
      .rebalance()
      .map([](uint64_t x) { return x; })
      .key_by([](uint64_t x) { return x; })
      .sink([&](uint64_t made) {
        seen.fetch_add(1);
        uint64_t delay = NowNs() - made;
        if (delay > max_delay_ns.load()) max_delay_ns.store(delay);
      });
  double cpu_before = ThreadCpuSecondsOfProcess();
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(p.Run().ok());
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double cpu = ThreadCpuSecondsOfProcess() - cpu_before;
  EXPECT_EQ(seen.load(), 12);
  EXPECT_GE(wall, 0.3);
  // Records cross two exchanges within a few wake-ups, not after half a ring of them (120 ms).
  EXPECT_LT(max_delay_ns.load(), 60'000'000u) << "a record waited in a channel";
  EXPECT_LT(cpu, 0.25 * wall) << "tasks spin while idle: " << cpu << " s CPU in " << wall << " s";
}

TEST(PipelineTest, WindowWithoutTimestampsIsAClearError) {
  Pipeline p;
  p.generate("n", 10, MakeEvent)
      .key_by([](const Event& e) { return e.key; })
      .window(Tumbling{10})
      .count()
      .sink([](const auto&) {});
  Status st = p.Run();
  EXPECT_NE(st.message().find("operator 'window' failed: records carry no event time"),
            std::string::npos)
      << st.message();
}

TEST(PipelineTest, MisuseIsReported) {
  Pipeline empty;
  EXPECT_EQ(empty.Run().message(), "pipeline has no source");
  Pipeline p;
  p.generate("n", 10, [](uint64_t i) { return i; }).sink([](uint64_t) {});
  EXPECT_TRUE(p.Run().ok());
  EXPECT_FALSE(p.Run().ok());
  Pipeline bad;
  bad.generate("n", 10, [](uint64_t i) { return i; })
      .map([](uint64_t i) { return i; })
      .parallelism(0);
  EXPECT_NE(bad.Run().message().find("parallelism must be at least 1"), std::string::npos);
}

TEST(PipelineTest, BadWindowAndJoinParametersAreReportedBeforeRunning) {
  auto window_error = [](auto assigner, EventTime lateness, EventTime bound) {
    Pipeline p;
    auto w = p.generate("n", 10, MakeEvent)
                 .with_timestamps([](const Event& e) { return e.time; }, bound)
                 .key_by([](const Event& e) { return e.key; })
                 .window(assigner);
    w.allowed_lateness(lateness);
    w.count().sink([](const auto&) {});
    return p.Run().message();
  };
  EXPECT_EQ(window_error(Tumbling{0}, 0, 0),
            "window: tumbling window size must be positive, got 0");
  EXPECT_EQ(window_error(Sliding{10, -5}, 0, 0),
            "window: sliding window slide must be positive, got -5");
  EXPECT_EQ(window_error(Session{0}, 0, 0), "window: session gap must be positive, got 0");
  EXPECT_EQ(window_error(Tumbling{10}, -1, 0),
            "window: allowed lateness must not be negative, got -1");
  EXPECT_EQ(window_error(Tumbling{10}, 0, -3),
            "with_timestamps: max_out_of_orderness must not be negative, got -3");

  Pipeline p;
  auto a = p.generate("a", 10, MakeEvent)
               .with_timestamps([](const Event& e) { return e.time; })
               .key_by([](const Event& e) { return e.key; });
  auto b = p.generate("b", 10, MakeEvent)
               .with_timestamps([](const Event& e) { return e.time; })
               .key_by([](const Event& e) { return e.key; });
  a.interval_join(b, 5, -5, [](const Event& x, const Event&) { return x.key; }).sink([](uint64_t) {
  });
  EXPECT_EQ(p.Run().message(), "interval_join: lower bound 5 is above upper bound -5");

  Pipeline q;
  auto w = q.generate("n", 10, MakeEvent)
               .with_timestamps([](const Event& e) { return e.time; })
               .key_by([](const Event& e) { return e.key; })
               .window(Tumbling{10});
  w.late_records().sink([](const Event&) {});
  EXPECT_EQ(q.Run().message(), "late_records() must follow an aggregation on its window");
}

TEST(PipelineTest, GenericLambdaSinkTakesRecords) {
  Pipeline p;
  uint64_t sum = 0;
  p.generate("n", 100, [](uint64_t i) { return i; }).sink([&](const auto& x) { sum += x; });
  ASSERT_TRUE(p.Run().ok());
  EXPECT_EQ(sum, 4950u);
}

TEST(PipelineTest, GeneratorNearTheEndOfTheIndexRangeFeedsEveryInstance) {
  Pipeline p({.parallelism = 2, .batch_size = 8});
  std::atomic<uint64_t> seen{0};
  std::set<uint64_t> parity;
  std::mutex mu;
  p.generate("tail", UINT64_MAX, [](uint64_t i) { return i; }).sink([&](const Batch<uint64_t>& b) {
    std::lock_guard lock(mu);
    for (uint64_t x : b.records) parity.insert(x % 2);
    if (seen.fetch_add(b.size()) > 10000) throw std::runtime_error("enough");
  });
  EXPECT_EQ(p.Run().message(), "operator 'sink' failed: enough");
  EXPECT_EQ(parity, (std::set<uint64_t>{0, 1}));
}

TEST(PipelineTest, CancelBeforeRunIsHonoured) {
  Pipeline p;
  p.generate("endless", UINT64_MAX, [](uint64_t i) { return i; }).sink([](uint64_t) {});
  p.Cancel();
  EXPECT_EQ(p.Run().code(), StatusCode::kCancelled);
}

TEST(PipelineTest, StatsCountRecordsPerOperator) {
  Pipeline p({.batch_size = 100});
  p.generate("n", 1000, [](uint64_t i) { return i; })
      .filter([](uint64_t i) { return i < 250; })
      .sink([](uint64_t) {});
  ASSERT_TRUE(p.Run().ok());
  std::map<std::string, OperatorStats> by_name;
  for (const OperatorStats& s : p.Stats()) by_name[s.name] = s;
  EXPECT_EQ(by_name["n"].records_out, 1000u);
  EXPECT_EQ(by_name["filter"].records_in, 1000u);
  EXPECT_EQ(by_name["filter"].records_out, 250u);
  EXPECT_EQ(by_name["sink"].records_in, 250u);
}

}  // namespace
}  // namespace barge::stream

namespace barge::stream {
namespace {

// A record that is a batch of rows, as columnar batches are.
struct Rows {
  std::vector<uint64_t> values;
  size_t row_count() const { return values.size(); }
};

TEST(PipelineTest, PartitionRowsRoutesRowsAndCountsThem) {
  // 100 records of 50 rows each; rows are routed by value, so each instance sees one residue.
  Pipeline p({.parallelism = 3, .batch_size = 64});
  std::mutex mu;
  std::map<int, std::set<uint64_t>> residues;
  std::atomic<uint64_t> rows{0};
  p.generate(
       "rows", 100,
       [](uint64_t i) {
         Rows r;
         for (uint64_t k = 0; k < 50; ++k) r.values.push_back(i * 50 + k);
         return r;
       },
       /*parallelism=*/1)
      .partition_rows([](Rows& in, size_t parts, Rows* const* outs) {
        for (uint64_t v : in.values) outs[v % parts]->values.push_back(v);
      })
      .map([](Rows r) { return r; })
      .name("spread")
      .sink("residues", [&]() -> std::unique_ptr<Sink<Rows>> {
        // Records which residues each sink instance saw.
        struct ResidueSink : Sink<Rows> {
          std::mutex* mu;
          std::map<int, std::set<uint64_t>>* residues;
          std::atomic<uint64_t>* rows;
          int instance = -1;
          Status Open(int i, int) override {
            instance = i;
            return Status::Ok();
          }
          Status Write(const Batch<Rows>& b) override {
            std::lock_guard lock(*mu);
            for (const Rows& r : b.records) {
              EXPECT_LE(r.values.size(), 64u + 50u);
              for (uint64_t v : r.values) (*residues)[instance].insert(v % 3);
              *rows += r.values.size();
            }
            return Status::Ok();
          }
        };
        auto sink = std::make_unique<ResidueSink>();
        sink->mu = &mu;
        sink->residues = &residues;
        sink->rows = &rows;
        return sink;
      });
  ASSERT_TRUE(p.Run().ok());
  EXPECT_EQ(rows.load(), 5000u);
  // Each instance saw exactly one residue, and together all three.
  std::set<uint64_t> all;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(residues[i].size(), 1u) << i;
    all.insert(*residues[i].begin());
  }
  EXPECT_EQ(all.size(), 3u);
  uint64_t in = 0;
  for (const OperatorStats& s : p.Stats()) {
    if (s.name == "spread") in += s.records_in;
  }
  EXPECT_EQ(in, 5000u);  // rows, not records
}

TEST(PipelineTest, PlanShowsChainsWithoutRunning) {
  Pipeline p({.parallelism = 2});
  p.generate("events", 10, [](uint64_t i) { return MakeEvent(i); })
      .map([](const Event& e) { return e; })
      .name("m")
      .key_by([](const Event& e) { return e.key; })
      .reduce([](const Event& a, const Event&) { return a; })
      .sink([](const Event&) {})
      .name("out")
      .parallelism(1);
  std::vector<TaskPlan> plan = p.Plan();
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0].operators, (std::vector<std::string>{"events", "m"}));
  EXPECT_EQ(plan[0].parallelism, 2);
  EXPECT_EQ(plan[1].operators, (std::vector<std::string>{"reduce"}));
  EXPECT_EQ(plan[2].operators, (std::vector<std::string>{"out"}));
}

}  // namespace
}  // namespace barge::stream
