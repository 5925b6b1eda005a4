// SPSC channel throughput between two threads, one record at a time vs batches (records/s).
// Compare with the reference figures in shared/docs/VISION.md (~20 M/s single, ~97 M/s batched).
#include <benchmark/benchmark.h>

#include <thread>

#include "barge/stream/channel.h"

namespace barge::stream {
namespace {

struct Record {
  uint64_t v[8];  // 64 bytes
};

void BM_ChannelTransfer(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  const uint64_t records = 20'000'000;
  for (auto _ : state) {
    std::atomic<bool> cancelled{false};
    Doorbell bell;
    Channel<Record> ch(64, &bell, &cancelled);
    std::thread producer([&] {
      Record r{};
      for (uint64_t sent = 0; sent < records;) {
        Slot<Record>* s = ch.Claim();
        s->kind = SlotKind::kData;
        s->batch.records.clear();
        for (size_t i = 0; i < batch && sent < records; ++i, ++sent) {
          r.v[0] = sent;
          s->batch.records.push_back(r);
        }
        ch.Publish(*s);
      }
      Slot<Record>* s = ch.Claim();
      s->kind = SlotKind::kEnd;
      ch.Publish(*s);
    });
    uint64_t sum = 0;
    for (;;) {
      bell.WaitUntil([&] { return !ch.Empty(); });
      Slot<Record>* s = ch.Peek();
      if (s->kind == SlotKind::kEnd) {
        ch.Release();
        break;
      }
      for (const Record& r : s->batch.records) sum += r.v[0];
      ch.Release();
    }
    producer.join();
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * records));
}
BENCHMARK(BM_ChannelTransfer)
    ->Arg(1)
    ->Arg(16)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace barge::stream

BENCHMARK_MAIN();
