// Window results against a straightforward reference on randomized, out-of-order input.
//
// The reference replays the engine's documented semantics naively: records in arrival order,
// the watermark advanced after every source batch to (max timestamp - bound - 1), windows kept
// in plain vectors and scanned in full.
#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <random>
#include <thread>
#include <tuple>

#include "barge/stream/pipeline.h"

namespace barge::stream {
namespace {

struct Rec {
  uint64_t key;
  int64_t value;
  EventTime time;
};

using Result = WindowResult<uint64_t, int64_t>;

struct Input {
  std::vector<Rec> records;
};

// Keys in [0, keys), timestamps around i * step with jitter, and a share of records delayed by
// up to late_by (some within the allowed lateness, some beyond).
Input MakeInput(uint64_t seed, size_t n, uint64_t keys, EventTime step, EventTime jitter,
                double late_share, EventTime late_by) {
  std::mt19937_64 rng(seed);
  Input in;
  for (size_t i = 0; i < n; ++i) {
    EventTime t = static_cast<EventTime>(i) * step +
                  static_cast<EventTime>(rng() % static_cast<uint64_t>(2 * jitter + 1)) - jitter;
    if (std::uniform_real_distribution<double>(0, 1)(rng) < late_share) {
      t -= 1 + static_cast<EventTime>(rng() % static_cast<uint64_t>(late_by));  // up to late_by
    }
    in.records.push_back({rng() % keys, static_cast<int64_t>(rng() % 100), t});
  }
  return in;
}

struct Expected {
  std::vector<Result> results;
  std::vector<EventTime> late;  // timestamps of records sent to the late output
  size_t late_firings = 0;      // results emitted for windows the watermark had passed
};

// Reference for tumbling and sliding windows.
Expected ReferenceTimeWindows(const Input& in, size_t batch, EventTime bound, EventTime size,
                              EventTime slide, EventTime lateness) {
  struct Win {
    uint64_t key;
    EventTime start;
    int64_t sum;
    bool fired;
  };
  std::vector<Win> wins;
  Expected out;
  EventTime wm = kMinTime, max_ts = kMinTime;
  auto late = [&](EventTime max_t) { return wm != kMinTime && max_t + lateness <= wm; };
  for (size_t b = 0; b < in.records.size(); b += batch) {
    size_t end = std::min(in.records.size(), b + batch);
    for (size_t i = b; i < end; ++i) {
      const Rec& r = in.records[i];
      max_ts = std::max(max_ts, r.time);
      EventTime last = r.time - FloorMod(r.time, slide);
      bool accepted = false;
      for (EventTime s = last; s > r.time - size; s -= slide) {
        if (late(s + size - 1)) continue;
        accepted = true;
        auto it = std::find_if(wins.begin(), wins.end(),
                               [&](const Win& w) { return w.key == r.key && w.start == s; });
        if (it == wins.end()) {
          // A window whose start is known fired already iff the watermark passed its end.
          wins.push_back({r.key, s, 0, false});
          it = wins.end() - 1;
          it->fired = wm != kMinTime && s + size - 1 <= wm;
        }
        it->sum += r.value;
        if (it->fired) {
          out.results.push_back({r.key, s, s + size, it->sum});
          ++out.late_firings;
        }
      }
      // Flink: late output only for a record no window took that is itself late.
      if (!accepted && late(r.time)) out.late.push_back(r.time);
    }
    EventTime next = max_ts - bound - 1;
    if (next > wm) {
      wm = next;
      for (Win& w : wins) {
        if (!w.fired && w.start + size - 1 <= wm) {
          out.results.push_back({w.key, w.start, w.start + size, w.sum});
          w.fired = true;
        }
      }
      std::erase_if(wins, [&](const Win& w) { return w.fired && late(w.start + size - 1); });
    }
  }
  for (Win& w : wins) {
    if (!w.fired) out.results.push_back({w.key, w.start, w.start + size, w.sum});
  }
  return out;
}

// Reference for session windows (Flink semantics: windows that touch merge).
Expected ReferenceSessions(const Input& in, size_t batch, EventTime bound, EventTime gap,
                           EventTime lateness) {
  struct Ses {
    uint64_t key;
    EventTime start, end;
    int64_t sum;
    bool fired;
  };
  std::vector<Ses> ses;
  Expected out;
  EventTime wm = kMinTime, max_ts = kMinTime;
  for (size_t b = 0; b < in.records.size(); b += batch) {
    size_t end = std::min(in.records.size(), b + batch);
    for (size_t i = b; i < end; ++i) {
      const Rec& r = in.records[i];
      max_ts = std::max(max_ts, r.time);
      Ses merged{r.key, r.time, r.time + gap, r.value, false};
      std::vector<size_t> hit;
      for (size_t k = 0; k < ses.size(); ++k) {
        if (ses[k].key == r.key && ses[k].start <= merged.end && ses[k].end >= merged.start) {
          hit.push_back(k);
          merged.start = std::min(merged.start, ses[k].start);
          merged.end = std::max(merged.end, ses[k].end);
        }
      }
      if (wm != kMinTime && merged.end - 1 + lateness <= wm) {
        out.late.push_back(r.time);
        continue;
      }
      for (size_t k : hit) merged.sum += ses[k].sum;
      for (size_t k = hit.size(); k-- > 0;) ses.erase(ses.begin() + static_cast<ptrdiff_t>(hit[k]));
      if (wm != kMinTime && merged.end - 1 <= wm) {
        out.results.push_back({r.key, merged.start, merged.end, merged.sum});
        ++out.late_firings;
        merged.fired = true;
      }
      ses.push_back(merged);
    }
    EventTime next = max_ts - bound - 1;
    if (next > wm) {
      wm = next;
      for (Ses& s : ses) {
        if (!s.fired && s.end - 1 <= wm) {
          out.results.push_back({s.key, s.start, s.end, s.sum});
          s.fired = true;
        }
      }
      std::erase_if(ses, [&](const Ses& s) { return s.fired && s.end - 1 + lateness <= wm; });
    }
  }
  for (Ses& s : ses) {
    if (!s.fired) out.results.push_back({s.key, s.start, s.end, s.sum});
  }
  return out;
}

struct Actual {
  std::vector<Result> results;
  std::vector<EventTime> late;
  uint64_t late_counted = 0;
};

template <class Assigner>
Actual RunEngine(const Input& in, size_t batch, EventTime bound, Assigner assigner,
                 EventTime lateness, int parallelism = 1) {
  Pipeline p({.parallelism = parallelism, .batch_size = batch});
  Collected<Result> results;
  Collected<Rec> late;
  const std::vector<Rec>* records = &in.records;
  auto windowed =
      p.generate(
           "input", in.records.size(), [records](uint64_t i) { return (*records)[i]; }, 1)
          .with_timestamps([](const Rec& r) { return r.time; }, bound)
          .key_by([](const Rec& r) { return r.key; })
          .window(assigner);
  windowed.allowed_lateness(lateness);
  windowed.sum([](const Rec& r) { return r.value; }).collect(results);
  windowed.late_records().collect(late);
  Status st = p.Run();
  EXPECT_TRUE(st.ok()) << st.message();
  Actual a{results.records(), {}, 0};
  for (const Rec& r : late.records()) a.late.push_back(r.time);
  for (const OperatorStats& s : p.Stats()) a.late_counted += s.late_records;
  return a;
}

// The reference must exercise what it checks: late records, and late firings with lateness.
void ExpectInteresting(const Expected& e, EventTime lateness) {
  EXPECT_FALSE(e.results.empty());
  EXPECT_FALSE(e.late.empty());
  if (lateness > 0) {
    EXPECT_GT(e.late_firings, 0u);
  }
}

void ExpectSame(Actual a, Expected e) {
  std::sort(a.results.begin(), a.results.end());
  std::sort(e.results.begin(), e.results.end());
  std::sort(a.late.begin(), a.late.end());
  std::sort(e.late.begin(), e.late.end());
  ASSERT_EQ(a.results.size(), e.results.size());
  EXPECT_TRUE(a.results == e.results);
  EXPECT_EQ(a.late, e.late);
  EXPECT_EQ(a.late_counted, e.late.size());
}

struct Case {
  uint64_t seed;
  size_t batch;
  EventTime bound;
  EventTime lateness;
};

class WindowReferenceTest : public ::testing::TestWithParam<Case> {};

TEST_P(WindowReferenceTest, Tumbling) {
  Case c = GetParam();
  Input in = MakeInput(c.seed, 20000, 17, 3, 40, 0.02, 400);
  Expected e = ReferenceTimeWindows(in, c.batch, c.bound, 100, 100, c.lateness);
  ExpectInteresting(e, c.lateness);
  ExpectSame(RunEngine(in, c.batch, c.bound, Tumbling{100}, c.lateness), e);
}

TEST_P(WindowReferenceTest, Sliding) {
  Case c = GetParam();
  Input in = MakeInput(c.seed + 1, 20000, 11, 3, 40, 0.02, 400);
  Expected e = ReferenceTimeWindows(in, c.batch, c.bound, 150, 50, c.lateness);
  ExpectInteresting(e, c.lateness);
  ExpectSame(RunEngine(in, c.batch, c.bound, Sliding{150, 50}, c.lateness), e);
}

TEST_P(WindowReferenceTest, Session) {
  Case c = GetParam();
  // Sparse keys so that sessions open, close and merge.
  Input in = MakeInput(c.seed + 2, 20000, 200, 1, 30, 0.02, 600);
  Expected e = ReferenceSessions(in, c.batch, c.bound, 60, c.lateness);
  ExpectInteresting(e, c.lateness);
  ExpectSame(RunEngine(in, c.batch, c.bound, Session{60}, c.lateness), e);
}

INSTANTIATE_TEST_SUITE_P(Randomized, WindowReferenceTest,
                         ::testing::Values(Case{1, 64, 20, 0}, Case{2, 7, 0, 0},
                                           Case{3, 128, 50, 150}, Case{4, 1, 10, 300},
                                           Case{5, 1024, 30, 60}));

// Emits the given batches one per Next, so watermarks (bound 0) follow each batch.
class ScriptSource final : public Source<Rec> {
 public:
  explicit ScriptSource(std::vector<std::vector<Rec>> batches) : batches_(std::move(batches)) {}
  barge::Result<SourceState> Next(Batch<Rec>& out, size_t) override {
    if (next_ == batches_.size()) return SourceState::kEnd;
    for (const Rec& r : batches_[next_]) out.records.push_back(r);
    ++next_;
    return SourceState::kMore;
  }

 private:
  std::vector<std::vector<Rec>> batches_;
  size_t next_ = 0;
};

template <class Assigner>
std::vector<Result> RunScript(std::vector<std::vector<Rec>> batches, Assigner assigner,
                              EventTime lateness, uint64_t* late = nullptr) {
  Pipeline p;
  Collected<Result> out;
  auto w = p.source<Rec>("script", [batches] { return std::make_unique<ScriptSource>(batches); })
               .with_timestamps([](const Rec& r) { return r.time; }, 0)
               .key_by([](const Rec& r) { return r.key; })
               .window(assigner);
  w.allowed_lateness(lateness);
  w.sum([](const Rec& r) { return r.value; }).collect(out);
  EXPECT_TRUE(p.Run().ok());
  if (late != nullptr) {
    *late = 0;
    for (const OperatorStats& s : p.Stats()) *late += s.late_records;
  }
  std::vector<Result> results;
  for (const Result& r : out.records()) {
    if (r.key == 1) results.push_back(r);  // key 2 only drives the watermark
  }
  return results;
}

TEST(WindowTest, SessionExtendedPastTheWatermarkFiresAgain) {
  // [0,10) fires at watermark 9; t=5 extends it to [0,15), which fires at watermark 19.
  auto results =
      RunScript({{{1, 1, 0}}, {{2, 0, 10}}, {{1, 10, 5}}, {{2, 0, 20}}}, Session{10}, 100);
  EXPECT_EQ(results, (std::vector<Result>{{1, 0, 10, 1}, {1, 0, 15, 11}}));
}

TEST(WindowTest, LateRecordOpeningAWindowFiresAtOnce) {
  // Watermark 59; [0,10) is within the lateness of 100: each record fires it at once.
  auto results = RunScript({{{2, 0, 60}}, {{1, 1, 5}, {1, 1, 6}}}, Tumbling{10}, 100);
  EXPECT_EQ(results, (std::vector<Result>{{1, 0, 10, 1}, {1, 0, 10, 2}}));
}

TEST(WindowTest, RecordsBetweenSlidingWindowsAreNotLate) {
  uint64_t late = 0;
  auto results = RunScript({{{1, 1, 5}, {1, 1, 15}}}, Sliding{10, 20}, 0, &late);
  EXPECT_EQ(results, (std::vector<Result>{{1, 0, 10, 1}}));
  EXPECT_EQ(late, 0u);
}

// Results (key 1), late records and the late count of a scripted run.
template <class Assigner>
Actual RunScriptWithLate(std::vector<std::vector<Rec>> batches, Assigner assigner,
                         EventTime lateness) {
  Pipeline p;
  Collected<Result> out;
  Collected<Rec> late;
  auto w = p.source<Rec>("script", [batches] { return std::make_unique<ScriptSource>(batches); })
               .with_timestamps([](const Rec& r) { return r.time; }, 0)
               .key_by([](const Rec& r) { return r.key; })
               .window(assigner);
  w.allowed_lateness(lateness);
  w.sum([](const Rec& r) { return r.value; }).collect(out);
  w.late_records().collect(late);
  Status st = p.Run();
  EXPECT_TRUE(st.ok()) << st.message();
  Actual a;
  for (const Result& r : out.records()) {
    if (r.key == 1) a.results.push_back(r);
  }
  for (const Rec& r : late.records()) a.late.push_back(r.time);
  for (const OperatorStats& s : p.Stats()) a.late_counted += s.late_records;
  std::sort(a.results.begin(), a.results.end());
  return a;
}

// Flink sends a record to the late output only when no window took it: a record that one of
// its sliding windows still takes is counted there and nowhere else.
TEST(WindowTest, RecordTakenByOneSlidingWindowIsNotLate) {
  // Watermark 199 after t=200: of 160's windows [100,200) is late, [150,250) is not.
  Actual a = RunScriptWithLate({{{2, 0, 200}}, {{1, 7, 160}}}, Sliding{100, 50}, 0);
  EXPECT_EQ(a.results, (std::vector<Result>{{1, 150, 250, 7}}));
  EXPECT_TRUE(a.late.empty());
  EXPECT_EQ(a.late_counted, 0u);
}

// With slide > size, a late record in a gap between windows is reported late (Flink's
// isSkippedElement && isElementLate); one that is not late vanishes, as in Flink.
TEST(WindowTest, LateRecordBetweenSlidingWindowsIsReportedLate) {
  Actual a = RunScriptWithLate({{{2, 0, 100}}, {{1, 3, 15}}, {{1, 4, 125}}}, Sliding{10, 20}, 0);
  EXPECT_EQ(a.late, std::vector<EventTime>{15});
  EXPECT_EQ(a.late_counted, 1u);
  EXPECT_EQ(a.results, (std::vector<Result>{{1, 120, 130, 4}}));
}

// ---- The ends of the int64 range: windows never wrap, and each has one end.

constexpr EventTime kMin = kMinTime;
constexpr EventTime kMax = kMaxTime;

TEST(WindowEdgeTest, RecordAtInt64MinLandsInTheFirstWindow) {
  // INT64_MIN mod 100 is 92 (floored): the window is [MIN - 92, MIN + 8), reported from MIN.
  Actual a =
      RunScriptWithLate({{{1, 1, kMin}, {1, 2, kMin + 7}, {1, 4, kMin + 8}}}, Tumbling{100}, 0);
  EXPECT_EQ(a.results, (std::vector<Result>{{1, kMin, kMin + 8, 3}, {1, kMin + 8, kMin + 108, 4}}));
  EXPECT_TRUE(a.late.empty());
}

TEST(WindowEdgeTest, SlidingWindowsBelowInt64MinAreDistinctAndFew) {
  // MIN + 5 is in the windows starting MIN - 22, MIN - 52 and MIN - 82 (slide 30, size 100):
  // three windows with distinct ends, found without walking the range.
  Actual a = RunScriptWithLate({{{1, 1, kMin + 5}}}, Sliding{100, 30}, 0);
  EXPECT_EQ(a.results,
            (std::vector<Result>{
                {1, kMin, kMin + 18, 1}, {1, kMin, kMin + 48, 1}, {1, kMin, kMin + 78, 1}}));
}

TEST(WindowEdgeTest, WindowsPastInt64MaxEndThere) {
  // MAX - 1 mod 100 is 6: its tumbling window starts at MAX - 7 and reports end MAX. Both
  // records count once, in one window.
  Actual a = RunScriptWithLate({{{1, 1, kMax - 1}}, {{1, 2, kMax - 1}}}, Tumbling{100}, 0);
  EXPECT_EQ(a.results, (std::vector<Result>{{1, kMax - 7, kMax, 3}}));
  // Sliding: four windows hold MAX - 1, all ending at MAX, told apart by their starts.
  a = RunScriptWithLate({{{1, 1, kMax - 1}}, {{1, 2, kMax - 2}}}, Sliding{100, 30}, 0);
  EXPECT_EQ(a.results, (std::vector<Result>{{1, kMax - 97, kMax, 3},
                                            {1, kMax - 67, kMax, 3},
                                            {1, kMax - 37, kMax, 3},
                                            {1, kMax - 7, kMax, 3}}));
}

TEST(WindowEdgeTest, LatenessNearTheEndsDoesNotOverflow) {
  // Allowed lateness INT64_MAX at watermark -100: [MIN, MIN + 8) has fired but is not late
  // (MIN + 7 + MAX = 6 > -100), so a second record fires it again.
  Actual a = RunScriptWithLate({{{1, 1, kMin}}, {{2, 0, -99}}, {{1, 2, kMin}}}, Tumbling{10}, kMax);
  EXPECT_EQ(a.results, (std::vector<Result>{{1, kMin, kMin + 8, 1}, {1, kMin, kMin + 8, 3}}));
  EXPECT_TRUE(a.late.empty());
  // MIN lies between the windows [MIN - 12, MIN - 2) and [MIN + 8, MIN + 18): it is late only if
  // MIN + lateness <= the watermark.
  a = RunScriptWithLate({{{2, 0, -99}}, {{1, 1, kMin}}}, Sliding{10, 20}, kMax);
  EXPECT_TRUE(a.late.empty());
  a = RunScriptWithLate({{{2, 0, -99}}, {{1, 1, kMin}}}, Sliding{10, 20}, 0);
  EXPECT_EQ(a.late, std::vector<EventTime>{kMin});
}

TEST(WindowEdgeTest, Int64MaxIsRefusedAtWithTimestamps) {
  Pipeline p;
  Collected<Result> out;
  p.source<Rec>("script",
                [] {
                  return std::make_unique<ScriptSource>(
                      std::vector<std::vector<Rec>>{{{1, 1, 5}}, {{1, 1, kMax}}});
                })
      .with_timestamps([](const Rec& r) { return r.time; }, 0)
      .key_by([](const Rec& r) { return r.key; })
      .window(Tumbling{100})
      .sum([](const Rec& r) { return r.value; })
      .collect(out);
  EXPECT_EQ(p.Run().message(),
            "operator 'timestamps' failed: event time 9223372036854775807 (INT64_MAX) is "
            "reserved: it is the watermark that ends the input; give records timestamps below it");
}

// Instance 0 produces a steady stream of records; instance 1 never produces anything.
class HalfIdleSource final : public Source<Rec> {
 public:
  Status Open(int instance, int) override {
    instance_ = instance;
    return Status::Ok();
  }
  barge::Result<SourceState> Next(Batch<Rec>& out, size_t) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    if (instance_ == 1) return SourceState::kIdle;
    for (int i = 0; i < 10; ++i) out.records.push_back({uint64_t(i % 3), 1, next_time_++});
    return SourceState::kMore;
  }

 private:
  int instance_ = 0;
  EventTime next_time_ = 0;
};

// Without idleness the silent instance would hold the watermark at its start forever.
TEST(WindowTest, IdleSourceInstancesDoNotHoldBackWindows) {
  Pipeline p({.parallelism = 2});
  std::atomic<int> fired{0};
  p.source<Rec>("half_idle", [] { return std::make_unique<HalfIdleSource>(); })
      .with_timestamps([](const Rec& r) { return r.time; }, 0, std::chrono::milliseconds(30))
      .key_by([](const Rec& r) { return r.key; })
      .window(Tumbling{50})
      .count()
      .sink([&](const WindowResult<uint64_t, uint64_t>&) {
        if (fired.fetch_add(1) >= 5) throw std::runtime_error("windows fired");
      });
  std::thread watchdog([&] {
    for (int i = 0; i < 100 && fired.load() < 6; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    p.Cancel();
  });
  Status st = p.Run();
  watchdog.join();
  EXPECT_EQ(st.message(), "operator 'sink' failed: windows fired");
}

// Instance 0 reads a bounded history (times 0..999) and ends; instance 1 stays idle.
class HistoryAndIdleSource final : public Source<Rec> {
 public:
  Status Open(int instance, int) override {
    instance_ = instance;
    return Status::Ok();
  }
  barge::Result<SourceState> Next(Batch<Rec>& out, size_t) override {
    if (instance_ == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      return SourceState::kIdle;
    }
    if (next_time_ == 1000) return SourceState::kEnd;
    for (int i = 0; i < 100; ++i) out.records.push_back({1, 1, next_time_++});
    return SourceState::kMore;
  }

 private:
  int instance_ = 0;
  EventTime next_time_ = 0;
};

// Once the history has ended and the other input is idle, nothing holds event time back: the
// history's complete windows fire (Flink's valve flushes the largest watermark), while the open
// last window waits, since the idle input may still bring records for it.
TEST(WindowTest, AnEndedInputBesideAnIdleOneStillFiresItsWindows) {
  Pipeline p({.parallelism = 2});
  std::mutex mu;
  std::vector<EventTime> starts;
  p.source<Rec>("history", [] { return std::make_unique<HistoryAndIdleSource>(); })
      .with_timestamps([](const Rec& r) { return r.time; }, 0, std::chrono::milliseconds(20))
      .key_by([](const Rec& r) { return r.key; })
      .window(Tumbling{100})
      .count()
      .sink([&](const WindowResult<uint64_t, uint64_t>& r) {
        std::lock_guard lock(mu);
        starts.push_back(r.start);
      });
  std::thread watchdog([&] {
    for (int i = 0; i < 100; ++i) {
      {
        std::lock_guard lock(mu);
        if (starts.size() >= 9) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    p.Cancel();
  });
  (void)p.Run();
  watchdog.join();
  std::lock_guard lock(mu);
  std::vector<EventTime> want;
  for (EventTime t = 0; t < 900; t += 100) want.push_back(t);
  EXPECT_EQ(starts, want);
}

TEST(WindowTest, LateRecordsAreCountedAndSentToTheSideOutput) {
  Input in;
  for (int i = 0; i < 100; ++i) in.records.push_back({1, 1, i * 10});
  in.records.push_back({1, 5, 3});  // far behind the watermark: late
  Actual a = RunEngine(in, 10, 0, Tumbling{100}, 0);
  ASSERT_EQ(a.late, std::vector<EventTime>{3});
  EXPECT_EQ(a.late_counted, 1u);
  int64_t total = 0;
  for (const Result& r : a.results) total += r.value;
  EXPECT_EQ(total, 100);  // the late record's 5 is not in any window
}

TEST(WindowTest, EndOfInputFlushesEveryOpenWindow) {
  Input in;
  for (int i = 0; i < 1000; ++i) in.records.push_back({uint64_t(i % 7), 1, i});
  // A bound larger than the input's span: no watermark ever fires a window before the end.
  Actual a = RunEngine(in, 64, 1'000'000, Tumbling{100}, 0);
  EXPECT_EQ(a.results.size(), 10u * 7u);
  int64_t total = 0;
  for (const Result& r : a.results) total += r.value;
  EXPECT_EQ(total, 1000);
}

TEST(WindowTest, ParallelRunsEqualTheSingleTaskRun) {
  // Jitter 40 and bound 100 >= 2 x jitter: no record is late whatever the interleaving.
  Input in = MakeInput(9, 50000, 101, 2, 40, 0, 0);
  for (auto run : {0, 1, 2}) {
    auto engine = [&](int par) {
      Actual a;
      if (run == 0) a = RunEngine(in, 256, 100, Tumbling{500}, 0, par);
      if (run == 1) a = RunEngine(in, 256, 100, Sliding{500, 100}, 0, par);
      if (run == 2) a = RunEngine(in, 256, 100, Session{30}, 0, par);
      std::sort(a.results.begin(), a.results.end());
      EXPECT_EQ(a.late_counted, 0u);
      return a.results;
    };
    std::vector<Result> single = engine(1);
    EXPECT_FALSE(single.empty());
    EXPECT_EQ(engine(2), single) << "assigner " << run;
    EXPECT_EQ(engine(3), single) << "assigner " << run;
  }
}

}  // namespace
}  // namespace barge::stream
