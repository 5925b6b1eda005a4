#include "barge/stream/sink.h"

#include <gtest/gtest.h>

#include <mutex>
#include <set>

#include "barge/stream/pipeline.h"

namespace barge::stream {
namespace {

// What the sink instances of one pipeline saw.
struct Log {
  std::mutex mu;
  std::set<std::pair<int, int>> opened;  // (instance, parallelism)
  uint64_t records = 0;
  int closed = 0;
};

class RecordingSink final : public Sink<uint64_t> {
 public:
  RecordingSink(Log& log, uint64_t fail_at) : log_(log), fail_at_(fail_at) {}

  Status Open(int instance, int parallelism) override {
    std::lock_guard lock(log_.mu);
    EXPECT_TRUE(log_.opened.emplace(instance, parallelism).second) << "opened twice";
    opened_ = true;
    return Status::Ok();
  }
  Status Write(const Batch<uint64_t>& batch) override {
    EXPECT_TRUE(opened_);
    for (uint64_t r : batch.records) {
      if (r == fail_at_) return IoError("disk on fire at " + std::to_string(r));
    }
    std::lock_guard lock(log_.mu);
    log_.records += batch.size();
    return Status::Ok();
  }
  Status Close() override {
    std::lock_guard lock(log_.mu);
    ++log_.closed;
    return Status::Ok();
  }

 private:
  Log& log_;
  uint64_t fail_at_;
  bool opened_ = false;
};

TEST(SinkTest, EveryInstanceOpensWritesAndCloses) {
  Log log;
  Pipeline p({.parallelism = 3});
  p.generate("n", 10000, [](uint64_t i) { return i; }).sink("recorder", [&log] {
    return std::make_unique<RecordingSink>(log, UINT64_MAX);
  });
  ASSERT_TRUE(p.Run().ok());
  EXPECT_EQ(log.opened, (std::set<std::pair<int, int>>{{0, 3}, {1, 3}, {2, 3}}));
  EXPECT_EQ(log.records, 10000u);
  EXPECT_EQ(log.closed, 3);
}

TEST(SinkTest, EmptyStreamStillOpensAndCloses) {
  Log log;
  Pipeline p;
  p.generate("n", 0, [](uint64_t i) { return i; }).sink("recorder", [&log] {
    return std::make_unique<RecordingSink>(log, UINT64_MAX);
  });
  ASSERT_TRUE(p.Run().ok());
  EXPECT_EQ(log.opened.size(), 1u);
  EXPECT_EQ(log.closed, 1);
}

TEST(SinkTest, WriteErrorStopsThePipelineNamingTheSink) {
  Log log;
  Pipeline p;
  p.generate("n", 1'000'000, [](uint64_t i) { return i; }).sink("recorder", [&log] {
    return std::make_unique<RecordingSink>(log, 5000);
  });
  EXPECT_EQ(p.Run().message(), "operator 'recorder' failed: disk on fire at 5000");
  EXPECT_EQ(log.closed, 0);
}

}  // namespace
}  // namespace barge::stream
