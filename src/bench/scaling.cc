// scale: how parallelism pays off when records carry real work. Each record costs ~50 ns of
// arithmetic (VISION: with that much work, parallelism 2 at least 1.8x parallelism 1 on two
// cores). Three shapes, each run at parallelism 1 and P (default 2), alternating, `iterations`
// times (default 3); the figures are medians and the ratios are between medians of one run:
//
//   forward: generator -> map(work) -> sink                        (no exchange)
//   hash:    generator -> key_by -> map(work) -> sink               (a hash exchange)
//   window:  generator -> key_by -> tumbling window, add = work     (into keyed state)
//
// The work is a chain of dependent multiply-xorshift rounds; `work_ns` is its cost per record as
// a hand-written loop measured in the same run.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "barge/stream/pipeline.h"
#include "bench/bench.h"

namespace barge::bench {
namespace {

using stream::EventTime;

struct Event {
  uint64_t key;
  uint64_t value;
  uint64_t time;
};

constexpr uint64_t kKeys = 1000;
// Each record's chain is dependent, but the chains of consecutive records overlap in the CPU, so
// a round costs less than its latency: 56 rounds are ~54 ns per record on the development machine
// (24 rounds, as first written, were ~15 ns). `work_ns` reports what it is.
constexpr int kRounds = 56;

inline Event MakeEvent(uint64_t i) {
  uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ULL;
  h ^= h >> 31;
  return Event{h % kKeys, (h >> 20) & 0xFFFF, i};
}

// ~50 ns per record on the 2-core development machine: kRounds multiply/shift/xor steps.
inline uint64_t Work(uint64_t v) {
  for (int r = 0; r < kRounds; ++r) {
    v = v * 0xD6E8FEB86659FD93ULL + 0x9E3779B97F4A7C15ULL;
    v ^= v >> 32;
  }
  return v;
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

enum class Shape { kForward, kHash, kWindow };

Result<double> TimeShape(Shape shape, uint64_t n, int parallelism, uint64_t* checksum_out) {
  stream::Pipeline p({.parallelism = parallelism});
  std::atomic<uint64_t> checksum{0};
  auto events = p.generate("events", n, [](uint64_t i) { return MakeEvent(i); });
  auto sum_sink = [&checksum](const stream::Batch<uint64_t>& b) {
    uint64_t s = 0;
    for (uint64_t v : b.records) s += v;
    checksum.fetch_add(s, std::memory_order_relaxed);
  };
  switch (shape) {
    case Shape::kForward:
      events.map([](const Event& e) { return Work(e.value); }).sink(sum_sink);
      break;
    case Shape::kHash:
      events.key_by([](const Event& e) { return e.key; })
          .map([](const Event& e) { return Work(e.value); })
          .sink(sum_sink);
      break;
    case Shape::kWindow:
      events.with_timestamps([](const Event& e) { return static_cast<EventTime>(e.time); })
          .key_by([](const Event& e) { return e.key; })
          .window(stream::Tumbling{static_cast<EventTime>(kKeys * 1000)})
          .aggregate(
              [] { return uint64_t{0}; },
              [](uint64_t& acc, const Event& e) { acc += Work(e.value); },
              [](uint64_t& acc, const uint64_t& other) { acc += other; },
              [](const uint64_t&, const stream::TimeWindow&, const uint64_t& acc) { return acc; })
          .sink(sum_sink);
      break;
  }
  auto start = std::chrono::steady_clock::now();
  Status st = p.Run();
  double seconds = Seconds(start);
  if (!st.ok()) return st;
  *checksum_out = checksum.load();
  return seconds;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

Result<nlohmann::json> RunScale(const Options& o) {
  const uint64_t n = o.records > 0 ? o.records : 20'000'000;
  const int par = o.parallelism > 1 ? o.parallelism : 2;
  const int iterations = o.iterations > 0 ? o.iterations : 3;

  // The work alone, as a loop; also the checksum every shape must reproduce.
  auto start = std::chrono::steady_clock::now();
  uint64_t expected = 0;
  for (uint64_t i = 0; i < n; ++i) expected += Work(MakeEvent(i).value);
  const double loop_seconds = Seconds(start);

  nlohmann::json out = {{"bench", "scale"},
                        {"records", n},
                        {"parallelism", par},
                        {"iterations", iterations},
                        {"work_ns", loop_seconds * 1e9 / static_cast<double>(n)}};
  const std::pair<Shape, const char*> shapes[] = {
      {Shape::kForward, "forward"}, {Shape::kHash, "hash"}, {Shape::kWindow, "window"}};
  for (auto [shape, name] : shapes) {
    std::vector<double> one, many;
    for (int it = 0; it < iterations; ++it) {
      for (int p : {1, par}) {
        uint64_t checksum = 0;
        ASSIGN_OR_RETURN(double seconds, TimeShape(shape, n, p, &checksum));
        if (checksum != expected) {
          return Internal(std::string("scale: ") + name + " checksum differs from the loop's");
        }
        (p == 1 ? one : many).push_back(static_cast<double>(n) / seconds);
      }
    }
    double r1 = Median(one), rp = Median(many);
    out[name] = {{"records_per_sec_p1", r1}, {"records_per_sec_pn", rp}, {"ratio", rp / r1}};
  }
  return out;
}

const Registration kScale{"scale",
                          "~50 ns of work per record at parallelism 1 and 2: forward, hash "
                          "exchange, keyed window (ratios P2/P1)",
                          RunScale};

}  // namespace
}  // namespace barge::bench
