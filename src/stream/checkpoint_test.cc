// Checkpoints: the store (durability, checksum, fallback, retention) and the engine (barriers
// injected by sources, aligned across inputs, operator state restored, transactional sinks
// committed exactly once across a stop and a resume).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "barge/stream/pipeline.h"
#include "base/file_util.h"

namespace barge::stream {
namespace {

Checkpoint Sample(uint64_t id, std::string bytes = "state") {
  Checkpoint c;
  c.id = id;
  c.job = R"({"name":"t"})";
  c.operators.push_back({"map", 0, 2, bytes});
  c.operators.push_back({"map", 1, 2, bytes + "!"});
  return c;
}

// A checkpoint store that keeps 3 checkpoints, in a fresh temporary directory; `store` is empty
// (and the test has failed) when either could not be made.
struct ScratchStore {
  ScratchStore() {
    Result<TempDir> made = TempDir::Make();
    EXPECT_TRUE(made.ok()) << made.status().message();
    if (!made.ok()) return;
    dir = std::move(*made);
    Result<CheckpointStore> opened = CheckpointStore::Open(dir.path(), 3);
    EXPECT_TRUE(opened.ok()) << opened.status().message();
    if (opened.ok()) store.emplace(std::move(*opened));
  }
  TempDir dir;
  std::optional<CheckpointStore> store;
};

TEST(CheckpointStore, WritesLoadsAndKeepsTheNewest) {
  Result<TempDir> dir = TempDir::Make();
  ASSERT_TRUE(dir.ok());
  Result<CheckpointStore> store = CheckpointStore::Open(dir->path() + "/ck", 2);
  ASSERT_TRUE(store.ok()) << store.status().message();
  for (uint64_t id = 1; id <= 4; ++id) ASSERT_TRUE(store->Write(Sample(id)).ok());
  Result<std::vector<uint64_t>> ids = store->List();
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<uint64_t>{4, 3}));
  std::vector<std::string> warnings;
  auto latest = store->LoadLatest(&warnings);
  ASSERT_TRUE(latest.ok());
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->id, 4u);
  EXPECT_EQ((*latest)->job, R"({"name":"t"})");
  ASSERT_EQ((*latest)->operators.size(), 2u);
  EXPECT_EQ((*latest)->operators[1].bytes, "state!");
  EXPECT_TRUE(warnings.empty());
  ASSERT_TRUE(store->Clear().ok());
  latest = store->LoadLatest(&warnings);
  ASSERT_TRUE(latest.ok());
  EXPECT_FALSE(latest->has_value());
}

TEST(CheckpointStore, TruncatedOrBitFlippedFallsBackToThePreviousWithAWarning) {
  ScratchStore scratch;
  std::optional<CheckpointStore>& store = scratch.store;
  ASSERT_TRUE(store.has_value());
  ASSERT_TRUE(store->Write(Sample(1, std::string(1000, 'a'))).ok());
  ASSERT_TRUE(store->Write(Sample(2, std::string(1000, 'b'))).ok());
  ASSERT_TRUE(store->Write(Sample(3, std::string(1000, 'c'))).ok());
  // Truncate 3; flip a bit in the middle of 2.
  ASSERT_EQ(::truncate(store->PathOf(3).c_str(), 700), 0);
  {
    Result<std::string> data = ReadFile(store->PathOf(2));
    ASSERT_TRUE(data.ok());
    (*data)[data->size() / 2] ^= 0x10;
    ASSERT_TRUE(WriteFile(store->PathOf(2), *data).ok());
  }
  std::vector<std::string> warnings;
  auto latest = store->LoadLatest(&warnings);
  ASSERT_TRUE(latest.ok());
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->id, 1u);
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find("chk-3"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find("chk-2"), std::string::npos) << warnings[1];
}

TEST(CheckpointStore, UnwritableDirectoryIsAClearError) {
  if (::geteuid() == 0) {
    // root writes anywhere: a path under a regular file cannot be a directory for anyone.
    Result<TempDir> dir = TempDir::Make();
    ASSERT_TRUE(dir.ok());
    ASSERT_TRUE(WriteFile(dir->path() + "/file", "x").ok());
    Result<CheckpointStore> store = CheckpointStore::Open(dir->path() + "/file/ck", 3);
    ASSERT_FALSE(store.ok());
    EXPECT_NE(store.status().message().find("checkpoint directory"), std::string::npos)
        << store.status().message();
    return;
  }
  Result<TempDir> dir = TempDir::Make();
  ASSERT_TRUE(dir.ok());
  ASSERT_EQ(::chmod(dir->path().c_str(), 0555), 0);
  Result<CheckpointStore> store = CheckpointStore::Open(dir->path(), 3);
  ::chmod(dir->path().c_str(), 0755);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("not writable"), std::string::npos);
}

// Output committed by TxSink, kept across pipeline runs the way files outlive a process:
// `committed` is what readers see; `sealed` are pre-committed parts (tag: the checkpoint that
// commits them).
struct TxStore {
  std::mutex mu;
  std::vector<uint64_t> committed;
  std::vector<std::pair<uint64_t, std::vector<uint64_t>>> sealed;
};

class TxSink final : public Sink<uint64_t> {
 public:
  explicit TxSink(TxStore* store) : store_(store) {}
  bool transactional() const override { return true; }
  Status Write(const Batch<uint64_t>& b) override {
    current_.insert(current_.end(), b.records.begin(), b.records.end());
    return Status::Ok();
  }
  Status Snapshot(uint64_t id, bool closed, StateWriter& out) override {
    std::lock_guard lock(store_->mu);
    uint64_t tag = closed ? last_ + 1 : id;
    if (!closed) last_ = id;
    store_->sealed.emplace_back(tag, std::move(current_));
    current_.clear();
    uint64_t length = store_->committed.size();
    for (auto& [t, part] : store_->sealed) length += part.size();
    out.Put(length);
    out.Put(tag);
    return Status::Ok();
  }
  Status Restore(StateReader& in) override {
    uint64_t length = in.Get<uint64_t>();
    uint64_t tag = in.Get<uint64_t>();
    std::lock_guard lock(store_->mu);
    CommitLocked(tag);
    if (store_->committed.size() < length) return Internal("committed output lost");
    store_->committed.resize(length);
    store_->sealed.clear();
    last_ = tag;
    return Status::Ok();
  }
  Status Commit(uint64_t id) override {
    std::lock_guard lock(store_->mu);
    CommitLocked(id);
    return Status::Ok();
  }

 private:
  void CommitLocked(uint64_t id) {
    auto& sealed = store_->sealed;
    while (!sealed.empty() && sealed.front().first <= id) {
      store_->committed.insert(store_->committed.end(), sealed.front().second.begin(),
                               sealed.front().second.end());
      sealed.erase(sealed.begin());
    }
  }
  TxStore* store_;
  std::vector<uint64_t> current_;
  uint64_t last_ = 0;
};

constexpr uint64_t kCountTag = uint64_t{1} << 62;

// Passes records on and counts them; at the end emits kCountTag + count. Its count is state.
class Counter final : public Operator<uint64_t, uint64_t> {
 public:
  using Operator::Operator;
  void Push(Batch<uint64_t>& in) override {
    count_ += in.size();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // slow enough to checkpoint
    out_.Push(in, metrics());
  }
  void End() override {
    Batch<uint64_t>& b = out_.scratch();
    b.records.push_back(kCountTag + count_);
    out_.Flush(metrics());
    out_.target().End();
  }
  void Snapshot(uint64_t, StateWriter& out) override { out.Put(count_); }
  Status Restore(StateReader& in) override {
    count_ = in.Get<uint64_t>();
    return Status::Ok();
  }

 private:
  uint64_t count_ = 0;
};

constexpr uint64_t kRecords = 40'000;

// Options of the transactional pipelines below: parallelism 2, small batches, a checkpoint
// every 20 ms into `store` under `job`.
PipelineOptions CheckpointedOptions(CheckpointStore* store, std::string job) {
  PipelineOptions o;
  o.parallelism = 2;
  o.batch_size = 64;
  o.checkpoint.interval = std::chrono::milliseconds(20);
  o.checkpoint.store = store;
  o.checkpoint.job = std::move(job);
  return o;
}

// Two generators (records i and kRecords + i) united into a Counter at parallelism 2 (each
// instance aligns barriers from four channels), then one transactional sink.
std::unique_ptr<Pipeline> Build(TxStore* tx, CheckpointStore* store) {
  auto p = std::make_unique<Pipeline>(CheckpointedOptions(store, "test"));
  auto a = p->generate("a", kRecords, [](uint64_t i) { return i; });
  auto b = p->generate("b", kRecords, [](uint64_t i) { return kRecords + i; });
  a.union_with(b)
      .rebalance()
      .Apply<uint64_t>("counter", [](detail::RunState&,
                                     const std::string& n) { return std::make_unique<Counter>(n); })
      .sink("tx", [tx] { return std::make_unique<TxSink>(tx); })
      .parallelism(1);
  return p;
}

void ExpectExactlyOnce(const std::vector<uint64_t>& out) {
  std::vector<uint64_t> records, counts;
  for (uint64_t r : out) (r >= kCountTag ? counts : records).push_back(r);
  std::sort(records.begin(), records.end());
  ASSERT_EQ(records.size(), 2 * kRecords);
  for (uint64_t i = 0; i < 2 * kRecords; ++i) ASSERT_EQ(records[i], i) << "record " << i;
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[0] - kCountTag + counts[1] - kCountTag, 2 * kRecords);
}

// Runs `p`, first resumed from the newest checkpoint in `store` when there is one (kept in
// `resume`); with `cancel_after` > 0, cancels it once that many more checkpoints completed.
Status RunResumed(Pipeline& p, CheckpointStore& store, std::optional<Checkpoint>& resume,
                  uint64_t cancel_after = 0) {
  std::vector<std::string> warnings;
  Result<std::optional<Checkpoint>> latest = store.LoadLatest(&warnings);
  if (!latest.ok()) return latest.status();
  resume = std::move(*latest);
  if (resume) p.ResumeFrom(&*resume);
  std::atomic<bool> done{false};
  std::thread stopper([&] {
    if (cancel_after == 0) return;
    const uint64_t first = resume ? resume->id : 0;
    while (!done && p.last_checkpoint() < first + cancel_after) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    p.Cancel();
  });
  Status st = p.Run();
  done = true;
  stopper.join();
  return st;
}

TEST(Checkpoints, UninterruptedRunCommitsEverythingOnce) {
  ScratchStore scratch;
  std::optional<CheckpointStore>& store = scratch.store;
  ASSERT_TRUE(store.has_value());
  TxStore tx;
  auto p = Build(&tx, &*store);
  Status st = p->Run();
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_GT(p->last_checkpoint(), 1u);  // periodic ones, then the final one
  ExpectExactlyOnce(tx.committed);
  std::vector<std::string> warnings;
  auto latest = store->LoadLatest(&warnings);
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_TRUE((*latest)->final);
}

// A run stopped abruptly (cancelled: what it wrote after its last checkpoint stays uncommitted),
// then resumed from the latest checkpoint, commits every record exactly once.
TEST(Checkpoints, CancelledThenResumedIsExactlyOnce) {
  ScratchStore scratch;
  std::optional<CheckpointStore>& store = scratch.store;
  ASSERT_TRUE(store.has_value());
  TxStore tx;
  std::optional<Checkpoint> resume;
  for (uint64_t stop_after : {2, 5}) {
    Status st = RunResumed(*Build(&tx, &*store), *store, resume, stop_after);
    ASSERT_EQ(st.code(), StatusCode::kCancelled) << st.message();
  }
  // The last run goes to the end.
  Status st = RunResumed(*Build(&tx, &*store), *store, resume);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_TRUE(resume.has_value());
  EXPECT_FALSE(resume->final);
  ExpectExactlyOnce(tx.committed);
}

TEST(Checkpoints, StopWithSavepointThenResume) {
  ScratchStore scratch;
  std::optional<CheckpointStore>& store = scratch.store;
  ASSERT_TRUE(store.has_value());
  TxStore tx;
  {
    auto p = Build(&tx, &*store);
    Result<uint64_t> savepoint = Unsupported("not taken");
    std::atomic<bool> done{false};
    std::thread stopper([&] {
      while (!done && p->last_checkpoint() < 1) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      savepoint = p->StopWithSavepoint(std::chrono::seconds(10));
    });
    Status st = p->Run();
    done = true;
    stopper.join();
    ASSERT_TRUE(savepoint.ok()) << savepoint.status().message();
    EXPECT_EQ(st.code(), StatusCode::kCancelled);
    std::vector<std::string> warnings;
    auto latest = store->LoadLatest(&warnings);
    ASSERT_TRUE(latest.ok() && latest->has_value());
    EXPECT_EQ((*latest)->id, *savepoint);
    EXPECT_TRUE((*latest)->savepoint);
    // Everything before the savepoint is committed already.
    std::lock_guard lock(tx.mu);
    EXPECT_TRUE(tx.sealed.empty());
  }
  auto p = Build(&tx, &*store);
  std::vector<std::string> warnings;
  auto latest = store->LoadLatest(&warnings);
  ASSERT_TRUE(latest.ok() && latest->has_value());
  Checkpoint resume = std::move(**latest);
  p->ResumeFrom(&resume);
  Status st = p->Run();
  ASSERT_TRUE(st.ok()) << st.message();
  ExpectExactlyOnce(tx.committed);
}

TEST(Checkpoints, ResumeRefusesAnotherPipelinesCheckpoint) {
  ScratchStore scratch;
  std::optional<CheckpointStore>& store = scratch.store;
  ASSERT_TRUE(store.has_value());
  TxStore tx;
  Checkpoint other = Sample(7);
  auto p = Build(&tx, &*store);
  p->ResumeFrom(&other);
  Status st = p->Run();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("checkpoint 7"), std::string::npos) << st.message();
}

// Keyed state of the typed API: generate -> (slow) -> key_by -> tumbling window sum and, beside
// it, a rolling count per key, session windows over blocks of records with gaps between them,
// and an interval join of the stream with every tenth of its records (times within 50) -> one
// transactional sink. Results are encoded as numbers for TxSink.
std::unique_ptr<Pipeline> BuildKeyed(TxStore* tx, CheckpointStore* store, EventTime window = 1000,
                                     EventTime session_gap = 50, EventTime join_bound = 50) {
  auto p = std::make_unique<Pipeline>(CheckpointedOptions(store, "keyed"));
  auto timed = p->generate("g", kRecords, [](uint64_t i) { return i; })
                   .map([](uint64_t i) {
                     if (i % 64 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
                     return i;
                   })
                   .with_timestamps([](uint64_t i) { return static_cast<EventTime>(i); });
  auto by_key = [](uint64_t i) { return i % 7; };
  auto keyed = timed.key_by(by_key);
  auto encode = [](const WindowResult<uint64_t, uint64_t>& r) {
    return (r.value << 20) ^ (static_cast<uint64_t>(r.start) << 3) ^ r.key;
  };
  auto windows = keyed.window(Tumbling{window}).sum([](uint64_t i) { return i; }).map(encode);
  auto counts = keyed.aggregate(
      [] { return uint64_t{0}; }, [](uint64_t& n, const uint64_t&) { ++n; },
      [](const uint64_t& key, const uint64_t& n) { return kCountTag + (n << 3) + key; });
  // Blocks of 300 time units with 300 between them: each key has one session per block. (The
  // map's sleeps fall on even records, so source instance 1 runs ahead and sessions are open at
  // every checkpoint: a restore that forgot them would lose results.)
  auto sessions = timed.filter([](uint64_t i) { return (i / 300) % 2 == 0; })
                      .key_by(by_key)
                      .window(Session{session_gap})
                      .sum([](uint64_t i) { return i; })
                      .map(encode);
  auto pairs = keyed.interval_join(
      timed.filter([](uint64_t i) { return i % 10 == 0; }).key_by(by_key), -join_bound, join_bound,
      [](const uint64_t& a, const uint64_t& b) { return (a << 17) ^ b; });
  windows.union_with(counts)
      .union_with(sessions)
      .union_with(pairs)
      .sink("tx", [tx] { return std::make_unique<TxSink>(tx); })
      .parallelism(1);
  return p;
}

TEST(Checkpoints, TypedWindowsJoinsAndRollingAggregatesResumeExactlyOnce) {
  auto sorted = [](std::vector<uint64_t> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  std::vector<uint64_t> want;
  {
    ScratchStore scratch;
    std::optional<CheckpointStore>& store = scratch.store;
    ASSERT_TRUE(store.has_value());
    TxStore tx;
    Status st = BuildKeyed(&tx, &*store)->Run();
    ASSERT_TRUE(st.ok()) << st.message();
    want = sorted(tx.committed);
  }
  ASSERT_EQ(std::count_if(want.begin(), want.end(), [](uint64_t v) { return v >= kCountTag; }),
            static_cast<long>(kRecords));
  // Cancelled twice part way, resumed each time, then run to the end.
  ScratchStore scratch;
  std::optional<CheckpointStore>& store = scratch.store;
  ASSERT_TRUE(store.has_value());
  TxStore tx;
  for (int run = 0; run < 3; ++run) {
    std::optional<Checkpoint> resume;
    Status st = RunResumed(*BuildKeyed(&tx, &*store), *store, resume, run < 2 ? 3 : 0);
    ASSERT_EQ(resume.has_value(), run > 0);
    if (run < 2) {
      ASSERT_EQ(st.code(), StatusCode::kCancelled) << st.message();
    } else {
      ASSERT_TRUE(st.ok()) << st.message();
    }
  }
  EXPECT_EQ(sorted(tx.committed), want);
}

// A resumed run whose windows or join differ from the checkpoint's is refused, naming that.
TEST(Checkpoints, AWindowOrJoinResumedWithOtherBoundsIsRefused) {
  struct Change {
    EventTime window = 1000, session_gap = 50, join_bound = 50;
    const char* says;
  };
  for (const Change& c : {Change{.window = 500, .says = "the window changed"},
                          Change{.session_gap = 80, .says = "session gap in the checkpoint is 50"},
                          Change{.join_bound = 60, .says = "the join changed"}}) {
    SCOPED_TRACE(c.says);
    ScratchStore scratch;
    std::optional<CheckpointStore>& store = scratch.store;
    ASSERT_TRUE(store.has_value());
    TxStore tx;
    std::optional<Checkpoint> resume;
    Status st = RunResumed(*BuildKeyed(&tx, &*store), *store, resume, 2);
    ASSERT_EQ(st.code(), StatusCode::kCancelled) << st.message();
    st = RunResumed(*BuildKeyed(&tx, &*store, c.window, c.session_gap, c.join_bound), *store,
                    resume);
    ASSERT_TRUE(resume.has_value());
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.message();
    EXPECT_NE(st.message().find(c.says), std::string::npos) << st.message();
  }
}

// Session windows and interval joins whose keys or values are not plain bytes cannot be saved:
// a checkpointed run with one is refused before it starts.
TEST(Checkpoints, OperatorsWhoseStateCannotBeSavedAreRefused) {
  for (bool join : {false, true}) {
    ScratchStore scratch;
    std::optional<CheckpointStore>& store = scratch.store;
    ASSERT_TRUE(store.has_value());
    PipelineOptions o;
    o.checkpoint.store = &*store;
    Pipeline p(o);
    auto keyed = p.generate("g", 100, [](uint64_t i) { return std::to_string(i); })
                     .with_timestamps([](const std::string& s) { return std::stoll(s); })
                     .key_by([](const std::string& s) { return s.substr(0, 1); });
    Collected<std::string> joined;  // outlive the run, which holds on to them
    Collected<WindowResult<std::string, uint64_t>> counted;
    if (join) {
      keyed.interval_join(keyed, 0, 0, [](const std::string& a, const std::string&) { return a; })
          .collect(joined);
    } else {
      keyed.window(Session{10}).count().collect(counted);
    }
    Status st = p.Run();
    EXPECT_EQ(st.code(), StatusCode::kUnsupported);
    EXPECT_NE(
        st.message().find(join ? "(an interval join) keeps keys or records that are not "
                               : "(a session window) keeps keys or accumulators that are not"),
        std::string::npos)
        << st.message();
  }
}

}  // namespace
}  // namespace barge::stream
