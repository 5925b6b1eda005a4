// The typed C++ versions of the p1 and p2 benchmark pipelines (pipelines.cc), for benchmarks that
// compare other ways of writing them (spec pipelines) in the same run.
#pragma once

#include <cstdint>

#include "barge/status.h"

namespace barge::bench {

struct PipelineRun {
  double seconds;      // wall clock
  double cpu_seconds;  // CPU time of all threads: on a shared machine the steadier figure
  uint64_t checksum;
};

// CPU time of the whole process so far.
double ProcessCpuSeconds();

// p1: generator -> map(value * 2) -> filter(value % 3 != 0) -> sum, over n records. The records
// are those of the spec generator with seed 0 (key = h % 1000, value = (h >> 20) & 0xFFFF).
Result<PipelineRun> TypedP1(uint64_t n, int parallelism);
// p2: generator -> key_by(key) -> tumbling window of 1,000,000 time units (time = index) -> sum of
// value per key and window; the checksum sums the results.
Result<PipelineRun> TypedP2(uint64_t n, int parallelism);

}  // namespace barge::bench
