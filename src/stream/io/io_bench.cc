// Built-in source and sink throughput through a real pipeline (records/s and bytes/s):
// a file of lines, JSON Lines or CSV read into a counting sink, and lines written to a file.
// The baseline in the same run is `BM_ReadRawBlocks`: read(2) of the same file in 1 MiB blocks,
// the ceiling for any reader on this machine.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <fstream>

#include "barge/stream/io.h"
#include "base/file_util.h"

namespace barge::stream {
namespace {

constexpr uint64_t kRecords = 1'000'000;

// Test files, made once per process in a temporary directory removed at exit.
class Files {
 public:
  static Files& Get() {
    static Files files;
    return files;
  }
  std::string lines, jsonl, csv, out;
  uint64_t lines_bytes = 0, jsonl_bytes = 0, csv_bytes = 0;

 private:
  Files() {
    dir_ = std::move(TempDir::Make("barge-io-bench-")).value();
    lines = dir_.path() + "/lines.txt";
    jsonl = dir_.path() + "/events.jsonl";
    csv = dir_.path() + "/events.csv";
    out = dir_.path() + "/out.txt";
    std::ofstream l(lines), j(jsonl), c(csv);
    c << "user,bytes,path\n";
    for (uint64_t i = 0; i < kRecords; ++i) {
      l << "2026-11-28T12:00:00Z GET /api/items/" << i << " 200 " << (i * 7919) % 100000 << "\n";
      j << "{\"user\":\"u" << i % 1000 << "\",\"bytes\":" << (i * 7919) % 100000
        << ",\"path\":\"/api/items/" << i << "\"}\n";
      c << "u" << i % 1000 << "," << (i * 7919) % 100000 << ",\"/api/items/" << i << "\"\n";
    }
    l.close();
    j.close();
    c.close();
    lines_bytes = static_cast<uint64_t>(std::ifstream(lines, std::ios::ate).tellg());
    jsonl_bytes = static_cast<uint64_t>(std::ifstream(jsonl, std::ios::ate).tellg());
    csv_bytes = static_cast<uint64_t>(std::ifstream(csv, std::ios::ate).tellg());
  }
  TempDir dir_;
};

// Runs `p` with `stream` counted by a sink; reports records and bytes per second.
template <class T>
void Count(benchmark::State& state, Stream<T> stream, Pipeline& p, uint64_t bytes) {
  uint64_t n = 0;
  stream.sink([&n](const Batch<T>& b) { n += b.size(); });
  Status st = p.Run();
  if (!st.ok() || n != kRecords) state.SkipWithError(st.ok() ? "wrong count" : "run failed");
  state.SetItemsProcessed(state.items_processed() + int64_t(n));
  state.SetBytesProcessed(state.bytes_processed() + int64_t(bytes));
}

void BM_ReadRawBlocks(benchmark::State& state) {
  Files& f = Files::Get();
  std::unique_ptr<char[]> buf(new char[1 << 20]);
  for (auto _ : state) {
    UniqueFd fd(::open(f.lines.c_str(), O_RDONLY | O_CLOEXEC));
    uint64_t total = 0;
    for (ssize_t n; (n = ::read(fd.get(), buf.get(), 1 << 20)) > 0;) total += uint64_t(n);
    benchmark::DoNotOptimize(total);
    state.SetBytesProcessed(state.bytes_processed() + int64_t(total));
  }
}

void BM_ReadLines(benchmark::State& state) {
  Files& f = Files::Get();
  for (auto _ : state) {
    Pipeline p;
    Count(state, ReadLines(p, f.lines).parallelism(int(state.range(0))), p, f.lines_bytes);
  }
}

void BM_ReadJsonLines(benchmark::State& state) {
  Files& f = Files::Get();
  for (auto _ : state) {
    Pipeline p;
    Count(state, ReadJsonLines(p, f.jsonl).parallelism(int(state.range(0))), p, f.jsonl_bytes);
  }
}

void BM_ReadCsv(benchmark::State& state) {
  Files& f = Files::Get();
  for (auto _ : state) {
    Pipeline p;
    Count(state, ReadCsv(p, f.csv, {.header = true}), p, f.csv_bytes);
  }
}

void BM_WriteLines(benchmark::State& state) {
  Files& f = Files::Get();
  for (auto _ : state) {
    Pipeline p;
    auto numbers = p.generate("n", kRecords, [](uint64_t i) { return i; });
    WriteLines(numbers, f.out, [](uint64_t i, std::string& out) { out += std::to_string(i); });
    if (!p.Run().ok()) state.SkipWithError("run failed");
    state.SetItemsProcessed(state.items_processed() + int64_t(kRecords));
  }
}

BENCHMARK(BM_ReadRawBlocks)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ReadLines)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ReadJsonLines)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ReadCsv)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_WriteLines)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace barge::stream

BENCHMARK_MAIN();
