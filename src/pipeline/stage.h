// Container stages: a step of a pipeline that is an image, run as parallel replicas with the
// runtime's full isolation, fed through shared memory (protocol shm: sdk/c/barge_stage.h,
// docs/stage-protocol.md) or through its stdin and stdout (protocol lines: one JSON object per
// line in, exactly one line back per line, an empty line dropping the record).
//
// On the engine a stage is two operators per replica: StageInput (fed by the step before it,
// partitioned by key after key_by) writes batches and control events to the replica, and
// StageOutput (a source) reads its replies and emits them, with the watermarks the replica echoed,
// so event time passes through a stage in order. A replica that dies is restarted up to `restart`
// times: what it had not answered is sent again and its partial replies are dropped, so no record
// is lost or duplicated.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "barge/stream/operator.h"
#include "barge/stream/source.h"
#include "launch/container_options.h"
#include "pipeline/spec.h"
#include "pipeline/steps.h"

namespace barge::pipeline {

struct StageConfig {
  std::string label;    // "step 3 (stage)"
  std::string display;  // "step 2 (stage 'doubler:1')", for messages
  std::string root;     // the barge root (images, container state, volumes)
  launch::ContainerOptions container;
  StageSpec::Protocol protocol = StageSpec::Protocol::kShm;
  int restart = 0;
  uint64_t ring_bytes = 32ull << 20;
  std::shared_ptr<const Schema> input;
  std::shared_ptr<const Schema> output;
  size_t batch_rows = 1024;
  // Rows per message to a replica (the spec's batch:): consecutive batches are coalesced (and
  // larger ones split) into messages of at most this many rows, sent when full, before a barrier
  // or the end, or when the input idles. 0: batches are sent as they come.
  size_t message_rows = 0;
};

class StageReplica;

// One replica's container, as a metrics scrape sees it.
struct StageReplicaStatus {
  int replica = 0;
  pid_t pid = 0;                         // its pid 1 on the host; 0 while not running
  std::vector<std::string> cgroup_dirs;  // none when the stage sets no limits
  bool host_network = false;
  int restarts = 0;
  uint64_t oom_kills = 0;  // counted at the exits of its earlier containers (OOM-killed ones)
};

// The replicas of one stage step, shared by its StageInput operators and StageOutput sources.
// Owns the containers and the shared-memory files: destroying it stops every replica and removes
// them.
// Removes every stage group's files in /dev/shm now, for a process about to leave without
// running destructors (the forced stop of `barge pipeline run`).
void RemoveStageFiles();

class StageGroup {
 public:
  StageGroup(StageConfig config, RunContext& ctx, int replicas);
  ~StageGroup();
  StageGroup(const StageGroup&) = delete;
  StageGroup& operator=(const StageGroup&) = delete;

  StageReplica& replica(int i) { return *replicas_[static_cast<size_t>(i)]; }
  const StageConfig& config() const { return config_; }
  RunContext& ctx() { return ctx_; }
  // The directory on a tmpfs holding every replica's rings (made on first use).
  Result<std::string> Dir();
  runtime::ContainerStore& store() { return store_; }
  // Every replica's container now. Any thread.
  std::vector<StageReplicaStatus> Status() const;

 private:
  StageConfig config_;
  RunContext& ctx_;
  runtime::ContainerStore store_;
  std::vector<std::unique_ptr<StageReplica>> replicas_;
  std::mutex dir_mu_;
  std::string dir_;
};

// Writes to replica `instance` of its group.
class StageInput final : public BatchOperator {
 public:
  StageInput(std::string name, std::shared_ptr<StageGroup> group,
             const std::atomic<bool>* cancelled);
  void Open(int instance, int parallelism) override;
  void Push(stream::Batch<BatchPtr>& in) override;
  void Watermark(stream::EventTime w) override;
  void Barrier(uint64_t id) override;
  void End() override;
  void Idle() override;
  void MarkIdle() override {}

 private:
  void Check(const Status& st);
  // Sends the coalesced rows, then the watermark held back behind them.
  void Flush();
  // Shared: the group lives as long as the last operator or source of the stage.
  std::shared_ptr<StageGroup> group_;
  StageReplica* replica_ = nullptr;
  const std::atomic<bool>* cancelled_;
  BatchPtr coalesced_;  // message_rows > 0: rows not sent yet
  size_t CoalescedRows() const { return coalesced_ ? coalesced_->rows : 0; }
  std::optional<stream::EventTime> held_watermark_;
};

// Reads replica `instance` of its group: its replies, and the watermarks it echoes.
class StageOutput final : public stream::Source<BatchPtr> {
 public:
  explicit StageOutput(std::shared_ptr<StageGroup> group) : group_(std::move(group)) {}
  Status Open(int instance, int parallelism) override;
  Result<stream::SourceState> Next(stream::Batch<BatchPtr>& out, size_t max_records) override;
  void Close() override;
  stream::EventTime watermark() const override { return watermark_; }
  // Checkpoint barriers come through the replica, after the replies to what preceded them.
  bool relays_barriers() const override { return true; }
  uint64_t TakeBarrier() override;

 private:
  // Shared: see StageInput.
  std::shared_ptr<StageGroup> group_;
  StageReplica* replica_ = nullptr;
  stream::EventTime watermark_ = stream::kMinTime;
};

// Serialization of batches in the shm protocol's columnar layout (exposed for tests and the
// benchmark's pass-through stage).
namespace wire {
// Bytes of a BATCH message holding `b`.
uint64_t BatchBytes(const RecordBatch& b);
// Writes `b` as a BATCH message into `m` (of BatchBytes(b) bytes), numbered `seq`.
void WriteBatch(const RecordBatch& b, uint64_t seq, void* m);
}  // namespace wire

}  // namespace barge::pipeline
