#include "pipeline/metrics.h"

#include <algorithm>
#include <chrono>

#include "metrics/prometheus.h"
#include "runtime/usage.h"

namespace barge::pipeline {
namespace {

using metrics::FamilyInfo;
using metrics::Labels;
using metrics::PrometheusText;

constexpr FamilyInfo kStartTime{"barge_pipeline_start_time_seconds", "gauge",
                                "When the pipeline started, in seconds since the Unix epoch."};
constexpr FamilyInfo kRecordsIn{"barge_pipeline_records_in_total", "counter",
                                "Records read by the sources."};
constexpr FamilyInfo kRecordsOut{"barge_pipeline_records_out_total", "counter",
                                 "Records written by the sink."};
constexpr FamilyInfo kBad{"barge_pipeline_bad_records_total", "counter",
                          "Bad records skipped or dead-lettered (on_error)."};
constexpr FamilyInfo kLate{"barge_pipeline_late_records_total", "counter",
                           "Records too late for their window."};
constexpr FamilyInfo kWatermark{
    "barge_pipeline_watermark_seconds", "gauge",
    "Event-time watermark of the windows (else of the sources), in seconds since the Unix epoch."};
constexpr FamilyInfo kMaxEventTime{"barge_pipeline_max_event_time_seconds", "gauge",
                                   "Largest event time read, in seconds since the Unix epoch."};
constexpr FamilyInfo kLag{"barge_pipeline_event_time_lag_seconds", "gauge",
                          "Largest event time read minus the watermark."};

constexpr FamilyInfo kStepIn{"barge_step_records_in_total", "counter",
                             "Records an operator instance received."};
constexpr FamilyInfo kStepOut{"barge_step_records_out_total", "counter",
                              "Records an operator instance emitted."};
constexpr FamilyInfo kStepBatches{"barge_step_batches_in_total", "counter",
                                  "Batches an operator instance received."};
constexpr FamilyInfo kStepLate{"barge_step_late_records_total", "counter",
                               "Records too late for their window (window operators)."};
constexpr FamilyInfo kStepSkipped{"barge_step_skipped_records_total", "counter",
                                  "Malformed input records skipped (sources)."};
constexpr FamilyInfo kChannelRecords{
    "barge_step_input_records_total", "counter",
    "Records received through the input channels of a task's first operator."};
constexpr FamilyInfo kChannelBytes{
    "barge_step_input_bytes_total", "counter",
    "Bytes received through the input channels of a task's first operator."};
constexpr FamilyInfo kBackpressure{
    "barge_step_backpressure_seconds_total", "counter",
    "Time producers spent blocked on this task's full input channels."};
constexpr FamilyInfo kStepSentBytes{
    "barge_step_output_bytes_total", "counter",
    "Bytes an operator instance sent through its output channels (to the next task)."};
constexpr FamilyInfo kStepWatermark{
    "barge_step_watermark_seconds", "gauge",
    "Event-time watermark an operator instance last saw, in seconds since the Unix epoch."};
constexpr FamilyInfo kStepLag{"barge_step_event_time_lag_seconds", "gauge",
                              "Largest event time read minus the operator instance's watermark."};
constexpr FamilyInfo kStepBad{"barge_step_bad_records_total", "counter",
                              "Bad records a step found (skipped or dead-lettered)."};
constexpr FamilyInfo kFill{"barge_step_input_channel_fill_ratio", "gauge",
                           "Queued slots over capacity of a task's input channels (0 to 1)."};

constexpr FamilyInfo kReplicaUp{"barge_stage_replica_up", "gauge",
                                "1 while a stage replica's container runs."};
constexpr FamilyInfo kReplicaCpu{"barge_stage_replica_cpu_seconds_total", "counter",
                                 "CPU time of a stage replica's container (user and system)."};
constexpr FamilyInfo kReplicaMem{"barge_stage_replica_memory_usage_bytes", "gauge",
                                 "Memory of a stage replica's container, less inactive file "
                                 "cache (as docker stats)."};
constexpr FamilyInfo kReplicaLimit{
    "barge_stage_replica_memory_limit_bytes", "gauge",
    "Memory limit of a stage replica's container (the host's memory without one)."};
constexpr FamilyInfo kReplicaPids{"barge_stage_replica_pids", "gauge",
                                  "Processes in a stage replica's container."};
constexpr FamilyInfo kReplicaRestarts{"barge_stage_replica_restarts_total", "counter",
                                      "Times a stage replica's container was restarted."};
constexpr FamilyInfo kReplicaOom{"barge_stage_replica_oom_kills_total", "counter",
                                 "Processes of a stage replica killed for lack of memory."};

double Seconds(int64_t ms) { return static_cast<double>(ms) / 1000.0; }

constexpr FamilyInfo kCheckpoints{
    "barge_checkpoints_total", "counter",
    "Checkpoints completed (written and committed), savepoints included."};
constexpr FamilyInfo kCheckpointFailures{
    "barge_checkpoint_failures_total", "counter",
    "Checkpoints abandoned after the timeout or that failed to be written or committed."};
constexpr FamilyInfo kCheckpointDuration{
    "barge_checkpoint_duration_seconds", "gauge",
    "Time the last completed checkpoint took, from its trigger to written and committed."};
constexpr FamilyInfo kCheckpointWrite{
    "barge_checkpoint_write_duration_seconds", "gauge",
    "Part of the last completed checkpoint's duration spent writing it to storage (checksum, "
    "write, fsync, rename)."};
constexpr FamilyInfo kCheckpointSize{"barge_checkpoint_size_bytes", "gauge",
                                     "State held by the last completed checkpoint."};
constexpr FamilyInfo kCheckpointLast{"barge_checkpoint_last_completed_timestamp_seconds", "gauge",
                                     "When the last checkpoint completed, in seconds since the "
                                     "Unix epoch (its age: time() - this)."};

// Checkpoints, when the spec takes them; the figures of the last one once there is one.
void AddCheckpointMetrics(const SpecPipeline& pipeline, PrometheusText& m) {
  if (!pipeline.checkpoints()) return;
  const stream::CheckpointStats s = pipeline.CheckpointStats();
  m.Add(kCheckpoints, {}, static_cast<double>(s.completed));
  m.Add(kCheckpointFailures, {}, static_cast<double>(s.failed));
  for (const FamilyInfo* f :
       {&kCheckpointDuration, &kCheckpointWrite, &kCheckpointSize, &kCheckpointLast}) {
    m.Declare(*f);
  }
  if (s.completed == 0) {
    // Resumed and none completed yet: the one resumed from is the last, so that an alert on the
    // age of the last checkpoint also fires when checkpoints stop completing after a restart.
    if (int64_t resumed = pipeline.resumed_checkpoint_unix_ms(); resumed != 0) {
      m.Add(kCheckpointLast, {}, Seconds(resumed));
    }
    return;
  }
  m.Add(kCheckpointDuration, {}, s.last_duration_seconds);
  m.Add(kCheckpointWrite, {}, s.last_write_seconds);
  m.Add(kCheckpointSize, {}, static_cast<double>(s.last_state_bytes));
  m.Add(kCheckpointLast, {}, Seconds(s.last_unix_ms));
}

}  // namespace

PipelineMetrics::PipelineMetrics(const SpecPipeline& pipeline)
    : pipeline_(pipeline),
      start_time_seconds_(
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
              .count()) {}

std::string PipelineMetrics::Render() const {
  PrometheusText m;
  m.Add(kStartTime, {}, start_time_seconds_);
  RunProgress p = pipeline_.Progress();
  m.Add(kRecordsIn, {}, static_cast<double>(p.records_in));
  m.Add(kRecordsOut, {}, static_cast<double>(p.records_out));
  m.Add(kBad, {}, static_cast<double>(p.bad));
  m.Add(kLate, {}, static_cast<double>(p.late));
  // Event time exists once a record with one was read; until then the gauges are absent.
  m.Declare(kWatermark);
  m.Declare(kMaxEventTime);
  m.Declare(kLag);
  if (p.watermark != stream::kMinTime) m.Add(kWatermark, {}, Seconds(p.watermark));
  if (p.max_event_time != stream::kMinTime) m.Add(kMaxEventTime, {}, Seconds(p.max_event_time));
  if (p.watermark != stream::kMinTime && p.max_event_time != stream::kMinTime) {
    m.Add(kLag, {}, std::max(0.0, Seconds(p.max_event_time - p.watermark)));
  }

  for (const FamilyInfo* f :
       {&kStepIn, &kStepOut, &kStepBatches, &kStepLate, &kStepSkipped, &kChannelRecords,
        &kChannelBytes, &kBackpressure, &kFill, &kStepSentBytes, &kStepWatermark, &kStepLag}) {
    m.Declare(*f);
  }
  const std::vector<PlannedStep>& steps = pipeline_.steps();
  for (const stream::OperatorStats& s : pipeline_.OperatorStats()) {
    auto step = std::find_if(steps.begin(), steps.end(),
                             [&](const PlannedStep& ps) { return ps.op == s.name; });
    Labels labels{{"step", step != steps.end() ? step->label : s.name},
                  {"operator", s.name},
                  {"subtask", std::to_string(s.instance)}};
    m.Add(kStepIn, labels, static_cast<double>(s.records_in));
    m.Add(kStepOut, labels, static_cast<double>(s.records_out));
    m.Add(kStepBatches, labels, static_cast<double>(s.batches_in));
    m.Add(kStepLate, labels, static_cast<double>(s.late_records));
    m.Add(kStepSkipped, labels, static_cast<double>(s.skipped));
    if (s.channel_capacity > 0) {  // the first operator of a task with input channels
      m.Add(kChannelRecords, labels, static_cast<double>(s.channel_records));
      m.Add(kChannelBytes, labels, static_cast<double>(s.channel_bytes));
      m.Add(kBackpressure, labels, static_cast<double>(s.blocked_ns) / 1e9);
      m.Add(kFill, labels,
            static_cast<double>(s.channel_fill) / static_cast<double>(s.channel_capacity));
    }
    if (s.sends) m.Add(kStepSentBytes, labels, static_cast<double>(s.sent_bytes));
    if (s.watermark != stream::kMinTime && s.watermark != stream::kMaxTime) {
      m.Add(kStepWatermark, labels, Seconds(s.watermark));
      if (p.max_event_time != stream::kMinTime) {
        m.Add(kStepLag, labels, std::max(0.0, Seconds(p.max_event_time - s.watermark)));
      }
    }
  }
  m.Declare(kStepBad);
  for (const auto& [step, n] : pipeline_.BadRecordsByStep()) {
    m.Add(kStepBad, {{"step", step}}, static_cast<double>(n));
  }

  for (const FamilyInfo* f : {&kReplicaUp, &kReplicaCpu, &kReplicaMem, &kReplicaLimit,
                              &kReplicaPids, &kReplicaRestarts, &kReplicaOom}) {
    m.Declare(*f);
  }
  for (const StageStatus& stage : pipeline_.Stages()) {
    for (const StageReplicaStatus& r : stage.replicas) {
      Labels labels{{"step", stage.label}, {"replica", std::to_string(r.replica)}};
      Result<runtime::ResourceUsage> u =
          runtime::ReadResourceUsage(r.pid, r.cgroup_dirs, r.host_network);
      m.Add(kReplicaUp, labels, u.ok() ? 1 : 0);
      m.Add(kReplicaRestarts, labels, r.restarts);
      if (!u.ok()) {
        m.Add(kReplicaOom, labels, static_cast<double>(r.oom_kills));
        continue;
      }
      m.Add(kReplicaCpu, labels, u->cpu_seconds);
      m.Add(kReplicaMem, labels, static_cast<double>(u->memory_bytes));
      m.Add(kReplicaLimit, labels, static_cast<double>(u->memory_limit));
      m.Add(kReplicaPids, labels, static_cast<double>(u->pids));
      m.Add(kReplicaOom, labels, static_cast<double>(r.oom_kills + u->oom_kills));
    }
  }
  AddCheckpointMetrics(pipeline_, m);
  return m.Render();
}

}  // namespace barge::pipeline
