// p1 and p2: the stream engine's throughput benchmarks (shared/docs/VISION.md), written with the
// public API exactly as a user would write them.
//
//   p1: generator -> map(value * 2) -> filter(value % 3 != 0) -> sum sink
//   p2: generator -> key_by(key) -> tumbling event-time window (~1,000 records per key and
//       window) -> sum per key and window -> sink summing the results
//
// At parallelism P > 1 a hash exchange by key sits before the middle operators. The checksum
// is the same at every parallelism.
#include <atomic>
#include <chrono>
#include <ctime>
#include <utility>
#include <vector>

#include "bench/pipelines.h"

#include "barge/stream/pipeline.h"
#include "bench/bench.h"

namespace barge::bench {

using stream::EventTime;

double ProcessCpuSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

namespace {

struct Event {
  uint64_t key;
  uint64_t value;
  uint64_t time;
};

constexpr uint64_t kKeys = 1000;
constexpr uint64_t kRecordsPerKeyAndWindow = 1000;

// Deterministic, cheap: a 64-bit mix of the index gives key and value; time is the index, so a
// window of kKeys * kRecordsPerKeyAndWindow time units holds ~1,000 records per key.
inline Event MakeEvent(uint64_t i) {
  uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ULL;
  h ^= h >> 31;
  return Event{h % kKeys, (h >> 20) & 0xFFFF, i};
}

using Run = PipelineRun;

template <class Build>
Result<Run> Time(int parallelism, Build build) {
  stream::Pipeline p({.parallelism = parallelism});
  std::atomic<uint64_t> checksum{0};
  build(p, checksum);
  auto start = std::chrono::steady_clock::now();
  double cpu_start = ProcessCpuSeconds();
  Status st = p.Run();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double cpu = ProcessCpuSeconds() - cpu_start;
  if (!st.ok()) return st;
  return Run{seconds, cpu, checksum.load()};
}

// The same computation as a hand-written single-thread loop, timed in the same run: the
// baseline the engine's per-core cost is compared with (VISION: at least 20% of it).
template <class Loop>
Run TimeBaseline(Loop loop) {
  auto start = std::chrono::steady_clock::now();
  double cpu_start = ProcessCpuSeconds();
  uint64_t checksum = loop();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return Run{seconds, ProcessCpuSeconds() - cpu_start, checksum};
}

nlohmann::json Report(const std::string& name, uint64_t records, int parallelism, const Run& r,
                      const Run& baseline) {
  double per_cpu = static_cast<double>(records) / r.cpu_seconds;
  double baseline_per_cpu = static_cast<double>(records) / baseline.cpu_seconds;
  return {{"bench", name},
          {"records", records},
          {"parallelism", parallelism},
          {"seconds", r.seconds},
          {"records_per_sec", static_cast<double>(records) / r.seconds},
          {"cpu_seconds", r.cpu_seconds},
          {"records_per_cpu_sec", per_cpu},
          {"hand_loop_records_per_sec", baseline_per_cpu},
          {"ratio_to_hand_loop_per_core", per_cpu / baseline_per_cpu},
          {"checksum", r.checksum}};
}

// Keeps the compiler from vectorizing or folding the baselines away beyond what it would do to
// a user's loop.
template <class T>
inline void Opaque(T& value) {
  asm volatile("" : "+r"(value));
}

}  // namespace

Result<PipelineRun> TypedP1(uint64_t n, int par) {
  return Time(par, [&](stream::Pipeline& p, std::atomic<uint64_t>& checksum) {
    auto events = p.generate("events", n, [](uint64_t i) { return MakeEvent(i); });
    auto mapped = par > 1 ? events.key_by([](const Event& e) { return e.key; }).map([](Event e) {
      e.value *= 2;
      return e;
    })
                          : events.map([](Event e) {
                              e.value *= 2;
                              return e;
                            });
    mapped.filter([](const Event& e) { return e.value % 3 != 0; })
        .sink([&checksum](const stream::Batch<Event>& b) {
          uint64_t sum = 0;
          for (const Event& e : b.records) sum += e.value;
          checksum.fetch_add(sum, std::memory_order_relaxed);
        });
  });
}

Result<PipelineRun> TypedP2(uint64_t n, int par) {
  return Time(par, [&](stream::Pipeline& p, std::atomic<uint64_t>& checksum) {
    p.generate("events", n, [](uint64_t i) { return MakeEvent(i); })
        .with_timestamps([](const Event& e) { return static_cast<EventTime>(e.time); })
        .key_by([](const Event& e) { return e.key; })
        .window(stream::Tumbling{static_cast<EventTime>(kKeys * kRecordsPerKeyAndWindow)})
        .sum([](const Event& e) { return e.value; })
        .sink([&checksum](const stream::Batch<stream::WindowResult<uint64_t, uint64_t>>& b) {
          uint64_t sum = 0;
          for (const auto& w : b.records) sum += w.value;
          checksum.fetch_add(sum, std::memory_order_relaxed);
        });
  });
}

namespace {

Result<nlohmann::json> RunP1(const Options& o) {
  uint64_t n = o.records > 0 ? o.records : 200'000'000;
  int par = o.parallelism > 0 ? o.parallelism : 1;
  ASSIGN_OR_RETURN(Run r, TypedP1(n, par));
  Run baseline = TimeBaseline([n] {
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; ++i) {
      Event e = MakeEvent(i);
      e.value *= 2;
      if (e.value % 3 != 0) sum += e.value;
    }
    return sum;
  });
  if (baseline.checksum != r.checksum)
    return Internal("p1: pipeline checksum differs from the loop's");
  return Report("p1", n, par, r, baseline);
}

Result<nlohmann::json> RunP2(const Options& o) {
  uint64_t n = o.records > 0 ? o.records : 200'000'000;
  int par = o.parallelism > 0 ? o.parallelism : 1;
  ASSIGN_OR_RETURN(Run r, TypedP2(n, par));
  Run baseline = TimeBaseline([n] {
    // Events arrive in time order here, so one array of per-key sums per window suffices.
    constexpr uint64_t kWindow = kKeys * kRecordsPerKeyAndWindow;
    std::vector<uint64_t> sums(kKeys, 0);
    uint64_t total = 0, window = 0;
    for (uint64_t i = 0; i < n; ++i) {
      Event e = MakeEvent(i);
      if (e.time / kWindow != window) {
        for (uint64_t& x : sums) total += std::exchange(x, 0);
        window = e.time / kWindow;
      }
      sums[e.key] += e.value;
      Opaque(total);
    }
    for (uint64_t x : sums) total += x;
    return total;
  });
  if (baseline.checksum != r.checksum)
    return Internal("p2: pipeline checksum differs from the loop's");
  return Report("p2", n, par, r, baseline);
}

const Registration kP1{"p1", "generator -> map -> filter -> sum (records/s)", RunP1};
const Registration kP2{"p2", "generator -> key_by -> tumbling window sum (records/s)", RunP2};

}  // namespace
}  // namespace barge::bench
