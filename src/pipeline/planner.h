// From a Spec to a running engine pipeline. The planner resolves every source's schema (declared
// or inferred from a sample), compiles each step's expressions against the schema flowing into
// it, chooses parallelism and partitioning, and builds the graph on the stream engine
// (src/stream): the same tasks, channels, watermarks and chaining as typed pipelines. Every error
// names FILE:LINE:COL of what is wrong in the spec.
//
//   ASSIGN_OR_RETURN(Spec spec, LoadSpec(path));
//   ASSIGN_OR_RETURN(auto pipeline, SpecPipeline::Make(spec, {}));
//   fmt::print("{}", pipeline->PlanText());
//   RETURN_IF_ERROR(pipeline->Run());
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "barge/status.h"
#include "barge/stream/pipeline.h"
#include "pipeline/spec.h"
#include "pipeline/stage.h"
#include "pipeline/steps.h"

namespace barge::pipeline {

struct PlanOptions {
  // Check only: nothing is read from stdin (its schema, unless declared, stays unknown) and
  // nothing is opened for writing.
  bool validate_only = false;
  // barge's root directory: where container stages find their images and keep their state.
  std::string root;
  // Where container stages' cgroups go, below each hierarchy; empty: barge's default. (Tests give
  // each process its own, to tell their cgroups from those of tests running beside them.)
  std::string cgroup_parent;
  // Embedding (benchmarks, tests): results go to this function instead of the spec's sink. It is
  // called from the last step's task threads, one call per batch, concurrently when the last step
  // runs in several instances.
  std::function<void(const RecordBatch&)> collect;
  // Checkpoints (the spec's checkpoint:): start over, ignoring and removing saved checkpoints,
  // rather than resume from the latest.
  bool fresh = false;
  // Where Run() says what the user should know as it happens (resuming from a checkpoint, a
  // corrupt checkpoint skipped). Null: nowhere.
  std::function<void(const std::string&)> log;
};

// One operator of the plan, for printing.
struct PlannedStep {
  std::string
      role;        // "source", "event_time", "filter", "select", "window", "aggregate", "sink", ...
  std::string op;  // the engine operator's name (unique)
  std::string label;   // "step 2 (select)" or "source"
  std::string detail;  // what it does, in the spec's terms
  int parallelism = 1;
  std::string input;  // how records reach it: "forward", "by key (country)", "rebalance", ...
  std::shared_ptr<const Schema> schema;  // of its output; null when unknown
  std::vector<bool> optional;            // sources: JSON fields that may be absent
  bool inferred = false;                 // sources: schema inferred from a sample
};

// A snapshot of a running pipeline's progress.
struct RunProgress {
  uint64_t records_in = 0;   // read by the sources
  uint64_t records_out = 0;  // written by the sink
  uint64_t bad = 0;          // bad records skipped or dead-lettered
  uint64_t late = 0;         // records too late for their window
  int64_t max_event_time = stream::kMinTime;
  int64_t watermark = stream::kMinTime;  // of the windows, else of the sources
};

// A container stage's replicas, for metrics.
struct StageStatus {
  std::string label;  // the step's, "step 3 (stage)"
  std::string op;     // the engine source reading its replies
  std::vector<StageReplicaStatus> replicas;
};

class SpecPipeline {
 public:
  static Result<std::unique_ptr<SpecPipeline>> Make(const Spec& spec, PlanOptions options);
  ~SpecPipeline();

  const std::vector<PlannedStep>& steps() const { return steps_; }
  // Which operators run chained in one task.
  std::vector<stream::TaskPlan> tasks() const { return engine_->Plan(); }
  // Things the user should know (a source that cannot be checked before running, ...).
  const std::vector<std::string>& notes() const { return notes_; }
  std::string PlanText() const;
  nlohmann::json PlanJson() const;
  // Where on_error: {dead_letter: PATH} writes bad records, resolved; empty for fail and skip.
  const std::string& dead_letter_path() const { return dead_letter_path_; }

  // Runs to the end of bounded input (every window flushed) or the first error. Errors from bad
  // records name FILE:LINE and the step. With checkpoints, resumes from the latest valid
  // checkpoint of this spec (unless PlanOptions::fresh), refusing one taken by a spec that
  // differs in what its state depends on; a run that reaches the end removes its checkpoints.
  Status Run();
  // Stops a running pipeline from any thread; Run() then returns a Cancelled status.
  void Cancel();
  // With checkpoints: takes a savepoint, then stops (Run() returns Cancelled); without, cancels.
  Result<uint64_t> StopWithSavepoint(std::chrono::milliseconds timeout);
  // The checkpoint directory, or empty without checkpoints.
  const std::string& checkpoint_dir() const { return checkpoint_dir_; }
  // The checkpoint Run() resumed from (0: none).
  uint64_t resumed_from() const { return resume_ ? resume_->id : 0; }
  RunProgress Progress() const;
  // Every operator instance's counters (empty before Run starts). Any thread.
  std::vector<stream::OperatorStats> OperatorStats() const { return engine_->Stats(); }
  // Every container stage's replicas now. Any thread.
  std::vector<StageStatus> Stages() const;
  // Bad records so far per step that found them (on_error: skip or dead_letter). Any thread.
  std::map<std::string, uint64_t, std::less<>> BadRecordsByStep() const;
  // Whether the spec takes checkpoints, and what they did so far in this run.
  bool checkpoints() const { return store_.has_value(); }
  stream::CheckpointStats CheckpointStats() const { return engine_->checkpoint_stats(); }
  // When the checkpoint this run resumed from completed (Unix ms; 0: none). Any thread.
  int64_t resumed_checkpoint_unix_ms() const {
    return resumed_unix_ms_.load(std::memory_order_relaxed);
  }

 private:
  SpecPipeline(const Spec& spec, PlanOptions options);
  class Builder;

  Spec spec_;
  PlanOptions options_;
  std::vector<std::string> inputs_;  // origin input index -> name
  std::vector<PlannedStep> steps_;
  std::vector<std::string> notes_;
  std::vector<std::string> source_ops_;  // engine names of source operators
  std::vector<std::string> sink_ops_;    // of the main sink
  std::vector<std::string> window_ops_;  // of window operators
  std::string dead_letter_path_;
  // Checkpoints.
  std::string checkpoint_dir_;
  std::optional<stream::CheckpointStore> store_;
  std::optional<stream::Checkpoint> resume_;
  // When the checkpoint resumed from completed (Unix ms; 0: none), for metrics from any thread.
  std::atomic<int64_t> resumed_unix_ms_{0};
  std::string job_;  // what the state depends on, as JSON (see JobDescription)
  // Declared before the engine: batches in the engine's channels return to ctx_'s pool.
  std::unique_ptr<RunContext> ctx_;
  std::unique_ptr<stream::Pipeline> engine_;
  struct Stage {
    std::string label;
    std::string op;
    // Shared with the stage's operators. Declared after engine_, so that the last reference
    // still drops with the engine's operators, while ctx_ is alive.
    std::shared_ptr<StageGroup> group;
  };
  std::vector<Stage> stages_;
};

}  // namespace barge::pipeline
