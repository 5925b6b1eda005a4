// spec-p1 and spec-p2: the p1 and p2 pipelines written as pipeline specs (YAML + SQL), run by
// barge pipeline's planner on the engine, each against the typed C++ pipeline in the same run.
//
//   spec-p1: generate -> select value * 2 -> filter value % 3 <> 0 -> sum
//   spec-p2: generate -> key_by key -> 1 s tumbling window sum(value) -> sum of the results
//   spec-p2-checkpoint: spec-p2 with checkpoints every second against spec-p2 without, in turns
#include <atomic>
#include <chrono>

#include "base/file_util.h"

#include "bench/bench.h"
#include "bench/pipelines.h"
#include "pipeline/planner.h"

namespace barge::bench {
namespace {

constexpr const char* kSpecP1 = R"(name: spec-p1
source:
  generate: {records: RECORDS, keys: 1000}
steps:
  - select: {value: value * 2}
  - filter: value % 3 <> 0
)";

// 1,000,000 records per second of event time: windows of one second hold ~1,000 records for
// each of the 1,000 keys, as in p2.
constexpr const char* kSpecP2 = R"(name: spec-p2
source:
  generate: {records: RECORDS, keys: 1000, records_per_second: 1000000}
steps:
  - key_by: key
  - window: {tumbling: 1s}
    aggregate: {total: sum(value)}
)";

// Runs `text` (RECORDS replaced) with its results summed over `column` into the checksum.
Result<PipelineRun> RunSpec(std::string text, uint64_t records, int parallelism,
                            const std::string& column) {
  text.replace(text.find("RECORDS"), 7, std::to_string(records));
  ASSIGN_OR_RETURN(pipeline::Spec spec,
                   pipeline::ParseSpec(text, "bench.yaml", {.parallelism = parallelism}));
  std::atomic<uint64_t> checksum{0};
  pipeline::PlanOptions options;
  options.collect = [&checksum, &column](const pipeline::RecordBatch& b) {
    int c = b.schema->Find(column);
    const int64_t* v = b.columns[static_cast<size_t>(c)].ints();
    uint64_t sum = 0;
    for (size_t i = 0; i < b.rows; ++i) sum += static_cast<uint64_t>(v[i]);
    checksum.fetch_add(sum, std::memory_order_relaxed);
  };
  ASSIGN_OR_RETURN(auto p, pipeline::SpecPipeline::Make(spec, options));
  auto start = std::chrono::steady_clock::now();
  double cpu_start = ProcessCpuSeconds();
  RETURN_IF_ERROR(p->Run());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return PipelineRun{seconds, ProcessCpuSeconds() - cpu_start, checksum.load()};
}

nlohmann::json Report(const std::string& name, uint64_t n, int par, const PipelineRun& spec,
                      const PipelineRun& typed) {
  auto per_cpu = [n](const PipelineRun& r) { return static_cast<double>(n) / r.cpu_seconds; };
  auto per_sec = [n](const PipelineRun& r) { return static_cast<double>(n) / r.seconds; };
  return {{"bench", name},
          {"records", n},
          {"parallelism", par},
          {"seconds", spec.seconds},
          {"records_per_sec", per_sec(spec)},
          {"records_per_cpu_sec", per_cpu(spec)},
          {"typed_records_per_sec", per_sec(typed)},
          {"typed_records_per_cpu_sec", per_cpu(typed)},
          {"ratio_to_typed", per_sec(spec) / per_sec(typed)},
          {"ratio_to_typed_per_core", per_cpu(spec) / per_cpu(typed)},
          {"checksum", spec.checksum}};
}

template <class Typed>
Result<nlohmann::json> Compare(const std::string& name, const char* spec_text,
                               const std::string& column, const Options& o, Typed typed) {
  uint64_t n = o.records > 0 ? o.records : 200'000'000;
  int par = o.parallelism > 0 ? o.parallelism : 1;
  ASSIGN_OR_RETURN(PipelineRun s, RunSpec(spec_text, n, par, column));
  ASSIGN_OR_RETURN(PipelineRun t, typed(n, par));
  if (s.checksum != t.checksum) {
    return Internal(name + ": the spec pipeline's checksum " + std::to_string(s.checksum) +
                    " differs from the typed pipeline's " + std::to_string(t.checksum));
  }
  return Report(name, n, par, s, t);
}

Result<nlohmann::json> RunSpecP1(const Options& o) {
  return Compare("spec-p1", kSpecP1, "value", o, TypedP1);
}
Result<nlohmann::json> RunSpecP2(const Options& o) {
  return Compare("spec-p2", kSpecP2, "total", o, TypedP2);
}

// spec-p2 with `checkpoint: {interval: 1s}` against spec-p2 without, alternating so that both see
// the same machine; the best of each is compared. Results go to memory (no file sink to commit).
Result<nlohmann::json> RunSpecP2Checkpoint(const Options& o) {
  const uint64_t n = o.records > 0 ? o.records : 200'000'000;
  const int par = o.parallelism > 0 ? o.parallelism : 2;
  const int rounds = o.iterations > 0 ? o.iterations : 3;
  ASSIGN_OR_RETURN(TempDir dir, TempDir::Make("barge-bench-ckpt-"));
  const std::string with =
      std::string(kSpecP2) + "checkpoint: {interval: 1s, dir: " + dir.path() + "/ck, keep: 3}\n";
  double best_plain = 1e300, best_ckpt = 1e300;
  uint64_t checksum = 0;
  for (int r = 0; r < rounds; ++r) {
    ASSIGN_OR_RETURN(PipelineRun plain, RunSpec(kSpecP2, n, par, "total"));
    ASSIGN_OR_RETURN(PipelineRun ckpt, RunSpec(with, n, par, "total"));
    if (plain.checksum != ckpt.checksum) {
      return Internal("spec-p2-checkpoint: checksums differ with and without checkpoints");
    }
    checksum = plain.checksum;
    best_plain = std::min(best_plain, plain.seconds);
    best_ckpt = std::min(best_ckpt, ckpt.seconds);
  }
  const double rate_plain = static_cast<double>(n) / best_plain;
  const double rate_ckpt = static_cast<double>(n) / best_ckpt;
  return nlohmann::json{{"bench", "spec-p2-checkpoint"},
                        {"records", n},
                        {"parallelism", par},
                        {"rounds", rounds},
                        {"records_per_sec", rate_ckpt},
                        {"records_per_sec_without_checkpoints", rate_plain},
                        {"ratio_to_without", rate_ckpt / rate_plain},
                        {"slowdown_percent", (1 - rate_ckpt / rate_plain) * 100},
                        {"checksum", checksum}};
}

const Registration kSpecP1Bench{
    "spec-p1", "p1 as a pipeline spec vs the typed pipeline (records/s)", RunSpecP1};
const Registration kSpecP2Bench{
    "spec-p2", "p2 as a pipeline spec vs the typed pipeline (records/s)", RunSpecP2};
const Registration kSpecP2CheckpointBench{
    "spec-p2-checkpoint", "spec-p2 with checkpoints every second vs without (records/s)",
    RunSpecP2Checkpoint};

}  // namespace
}  // namespace barge::bench
