// Keyed aggregation over columnar batches: event-time windows (tumbling, sliding, session) and
// rolling per-key aggregates. Semantics are the engine's and Flink's (src/stream/window.h): a
// window [start, end) fires when the watermark reaches end - 1; a record whose window's end - 1 +
// allowed lateness is at or below the watermark is late (counted, and sent to the late port when
// one is connected); a record within the lateness updates its window and re-emits its key's
// result at once (a late firing); end of input fires every open window. A record goes to the late
// port only when no window took it and it is itself late (Flink's rule for sliding windows).
// Window arithmetic is the engine's stream::WindowGrid: exact over the whole int64 range, bounds
// clamped into it; event time INT64_MAX is a bad record (EventTimeStep).
//
// When rows carry the source's watermark (RecordBatch::watermark), lateness and firing are decided
// row by row with it, so the results are those of processing records one at a time in source
// order, whatever the batch boundaries and the parallelism.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "barge/stream/window.h"
#include "pipeline/aggregates.h"
#include "pipeline/key_table.h"
#include "pipeline/spec.h"
#include "pipeline/steps.h"

namespace barge::pipeline {

struct KeyedConfig {
  std::string label;             // "step 4 (window)", for bad records
  std::vector<int> key_columns;  // in the input
  std::vector<AggregateCall> aggregates;
  // Windows: keys..., window_start, window_end, aggregates... Rolling: keys..., aggregates...
  std::shared_ptr<const Schema> output;
  size_t batch_rows = 1024;
  bool row_watermarks = false;  // rows carry the source's watermark: decide lateness per row
};

class WindowStep final : public BatchOperator {
 public:
  WindowStep(std::string name, RunContext& ctx, KeyedConfig config, WindowSpec window);
  ~WindowStep() override;

  stream::OutputBase* Port(int port) override;
  void Push(stream::Batch<BatchPtr>& in) override;
  void Watermark(stream::EventTime w) override;
  void End() override;
  void Idle() override;
  void MarkIdle() override;
  // Checkpoints: results held back are sent before the barrier, on both ports.
  void Barrier(uint64_t id) override;
  void Snapshot(uint64_t checkpoint, stream::StateWriter& out) override;
  Status Restore(stream::StateReader& in) override;

  size_t open_windows() const { return windows_.size(); }

 private:
  struct Window;
  struct Session;
  struct Timer {
    int64_t time;
    uint32_t entry;
    bool operator>(const Timer& o) const { return time > o.time; }
  };

  // Batch-wide preparation: argument columns, key hashes, rows whose arguments failed.
  void Prepare(RecordBatch& b);
  void PushTimeWindows(RecordBatch& b);
  void PushSessions(RecordBatch& b);
  // The row's watermark moves event time: fire what it completes before the row is taken.
  void Observe(const RecordBatch& b, size_t row);
  // Moves event time to `w`: fires completed windows, purges those past their lateness.
  void Advance(int64_t w);
  void AdvanceSessions(int64_t w);

  Window* FindWindow(stream::WindowGrid::Start start);
  Window* CreateWindow(stream::WindowGrid::Start start);
  void Recompute();
  int64_t Due(const Window& w) const;
  bool Late(int64_t max_timestamp) const;

  // Appends results of `entries` of a key table to the output.
  void EmitResults(const KeyTable& keys, const uint32_t* entries, const uint32_t* slots, size_t n,
                   int64_t start, int64_t end);
  void SendLate(const RecordBatch& b, size_t row);
  void DropOverflowed(RecordBatch& o, size_t first_row);
  void FlushOut();
  void FlushLate();

  RunContext& ctx_;
  KeyedConfig config_;
  WindowSpec window_;
  AggStates aggs_;
  stream::Output<BatchPtr> late_;

  int64_t wm_ = stream::kMinTime;
  int64_t next_trigger_ = stream::kMaxTime;

  // Tumbling and sliding: windows by exact start.
  stream::WindowGrid grid_;
  std::map<stream::WindowGrid::Start, std::unique_ptr<Window>> windows_;
  // The first window that has not fired; those before it have (see Recompute).
  std::map<stream::WindowGrid::Start, std::unique_ptr<Window>>::iterator unfired_ = windows_.end();
  std::vector<std::unique_ptr<Window>> spare_;
  Window* cached_ = nullptr;

  // Sessions: keys, their sessions, and one timer per session.
  KeyTable session_keys_;
  std::vector<std::vector<Session>> sessions_;  // per entry, disjoint, by start
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;

  // Per batch.
  std::vector<ExprState> states_;
  std::vector<Column> scratch_;
  std::vector<const Column*> args_;
  std::vector<uint64_t> hashes_;
  bool hashes_needed_ = true;  // the key tables hash whole keys (not one integer key)
  uint64_t Hash(size_t row) const { return hashes_needed_ ? hashes_[row] : 0; }
  std::vector<uint8_t> skip_;
  std::vector<RowError> errors_;
  std::vector<uint32_t> rows_, entries_, slots_;
  const int64_t* order_ = nullptr;

  BatchPtr out_batch_;
  BatchPtr late_batch_;
  std::vector<std::pair<size_t, std::string>> overflowed_;
};

// Rolling aggregation per key (Kafka Streams' aggregate, Flink's keyed reduce): every record
// updates its key's aggregates and emits the key and their new values, with the record's time.
class RollingStep final : public BatchOperator {
 public:
  RollingStep(std::string name, RunContext& ctx, KeyedConfig config);
  void Push(stream::Batch<BatchPtr>& in) override;
  void Snapshot(uint64_t checkpoint, stream::StateWriter& out) override;
  Status Restore(stream::StateReader& in) override;

 private:
  RunContext& ctx_;
  KeyedConfig config_;
  AggStates aggs_;
  KeyTable keys_;
  std::vector<ExprState> states_;
  std::vector<Column> scratch_;
  std::vector<const Column*> args_;
  std::vector<uint64_t> hashes_;
  std::vector<RowError> errors_;
  std::vector<uint32_t> rows_, entries_, stamp_;
  uint32_t run_ = 0;
};

// Reports the rows first_row + k of `o` for each k in `overflowed` as bad records of `label` (a
// result an aggregate could not hold), then removes them from `o`.
void DropOverflowedRows(RecordBatch& o, size_t first_row,
                        const std::vector<std::pair<size_t, std::string>>& overflowed,
                        const std::string& label, BadRecords& bad);

// The output schema of a keyed step over `input`.
std::shared_ptr<const Schema> KeyedOutputSchema(const Schema& input, const std::vector<int>& keys,
                                                bool windowed,
                                                const std::vector<std::string>& names,
                                                const std::vector<AggregateCall>& aggregates);

}  // namespace barge::pipeline
