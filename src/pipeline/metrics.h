// What a running spec pipeline exposes to Prometheus (served by `barge pipeline run
// --metrics-addr`; the names are listed in docs/monitoring.md):
//   - the pipeline: records in and out, bad and late records, watermark, largest event time and
//     event-time lag, start time;
//   - every operator instance (labels step, operator, subtask): records in and out, batches in,
//     late and skipped records, and for the first operator of each task, what crossed its input
//     channels (records, bytes), their fill, and the time producers were blocked on them
//     (backpressure);
//   - every container stage replica (labels step, replica), from its cgroup (or its processes
//     when the stage sets no limits): CPU seconds, memory usage and limit, processes, restarts,
//     OOM kills.
//   - with checkpoints: how many completed and failed, and the duration, size and completion time
//     of the last one.
#pragma once

#include <string>

#include "pipeline/planner.h"

namespace barge::pipeline {

class PipelineMetrics {
 public:
  // Borrows `pipeline`, which must outlive this. The start time is now.
  explicit PipelineMetrics(const SpecPipeline& pipeline);

  // The Prometheus text exposition of the pipeline now. Any thread; reads counters, the stage
  // replicas' cgroups and /proc (a few hundred microseconds).
  std::string Render() const;

 private:
  const SpecPipeline& pipeline_;
  double start_time_seconds_;  // since the Unix epoch
};

}  // namespace barge::pipeline
