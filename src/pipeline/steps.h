// The engine operators that run a spec's steps over columnar batches (BatchPtr records): event
// time, filter, select, the key partitioner, and the sink. Windows and rolling aggregates are in
// window_step.h. Each operator instance is driven by one engine task; shared state (the batch
// pool, bad records, progress counters) lives in RunContext.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "barge/stream/operator.h"
#include "barge/stream/sink.h"
#include "pipeline/bad_records.h"
#include "pipeline/batch_pool.h"
#include "pipeline/expr.h"
#include "pipeline/format.h"
#include "pipeline/key_table.h"
#include "pipeline/transactional_file.h"

namespace barge::pipeline {

using BatchOperator = stream::Operator<BatchPtr, BatchPtr>;

// Event-time progress for the live status: the largest event time any source read, and the
// watermark the windows (or, without windows, the sources) have reached. Relaxed atomics.
struct Progress {
  std::atomic<int64_t> max_event_time{stream::kMinTime};
  std::atomic<int64_t> source_watermark{stream::kMinTime};
  std::atomic<int64_t> window_watermark{stream::kMinTime};

  static void Raise(std::atomic<int64_t>& a, int64_t v) {
    int64_t cur = a.load(std::memory_order_relaxed);
    while (v > cur && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
    }
  }
};

// What every operator of one run shares. Outlives the engine pipeline.
struct RunContext {
  BatchPool pool;
  std::unique_ptr<BadRecords> bad;
  Progress progress;
  // The checkpoint this run resumed from (0: it started from the beginning); container stages
  // tell their replicas (BARGE_STAGE_CHECKPOINT) so that state they keep can go back to it.
  uint64_t resumed_checkpoint = 0;
};

// Reports the rows of `b` listed in `errors` (in row order) as bad records of `step`, their
// messages prefixed with `what` when given. Throws the error that stops the pipeline under
// on_error: fail.
void ReportBadRows(const RecordBatch& b, const std::vector<RowError>& errors, std::string_view step,
                   std::string_view what, BadRecords& bad);
// Reports the rows of `b` listed in `errors` as bad records of `step` (their messages prefixed
// with `what` when given), then removes them from `b`. Throws the error that stops the pipeline
// under on_error: fail.
void DropBadRows(RecordBatch& b, const std::vector<RowError>& errors, std::string_view step,
                 std::string_view what, BadRecords& bad);

// Assigns event time from a BIGINT (milliseconds) or TIMESTAMP field and emits watermarks that
// trail the largest time read by `max_delay` (Flink's bounded out-of-orderness: watermark =
// max - max_delay - 1). With `carry_watermark` every row also records the watermark right after
// it, so windows judge lateness exactly as if records were processed one at a time in source
// order. Rows whose time is NULL are bad records.
class EventTimeStep final : public BatchOperator {
 public:
  EventTimeStep(std::string name, RunContext& ctx, int field, std::string field_name,
                int64_t max_delay_ms, int64_t idle_ms, bool carry_watermark);

  void Push(stream::Batch<BatchPtr>& in) override;
  void Watermark(stream::EventTime) override {}  // replaced by this operator's own
  void Idle() override;
  void Open(int, int) override { last_record_ = std::chrono::steady_clock::now(); }
  void Snapshot(uint64_t, stream::StateWriter& out) override {
    out.Put(max_);
    out.Put(emitted_);
  }
  Status Restore(stream::StateReader& in) override {
    max_ = in.Get<int64_t>();
    emitted_ = in.Get<int64_t>();
    return Status::Ok();
  }

 private:
  RunContext& ctx_;
  int field_;
  std::string field_name_;
  int64_t delay_;
  std::chrono::milliseconds idle_;
  bool carry_;
  int64_t max_ = stream::kMinTime;
  int64_t emitted_ = stream::kMinTime;
  bool idle_marked_ = false;
  std::chrono::steady_clock::time_point last_record_{};
  std::vector<RowError> errors_;
};

// Keeps the rows for which a BOOLEAN expression is TRUE (NULL and FALSE are dropped, as SQL's
// WHERE does). Rows whose evaluation fails are bad records.
class FilterStep final : public BatchOperator {
 public:
  FilterStep(std::string name, std::string label, RunContext& ctx, Expr expr);
  void Push(stream::Batch<BatchPtr>& in) override;

 private:
  std::string label_;
  RunContext& ctx_;
  Expr expr_;
  ExprState state_;
  Column result_;
  std::vector<uint8_t> keep_;
  std::vector<RowError> errors_;
};

// Computes a new set of fields: each output field is an input field (moved, not copied, when used
// once) or an expression. Rows where an expression fails are bad records.
class SelectStep final : public BatchOperator {
 public:
  struct Item {
    int input = -1;            // an input field's index, or -1
    std::optional<Expr> expr;  // else an expression
  };
  SelectStep(std::string name, std::string label, RunContext& ctx,
             std::shared_ptr<const Schema> output, std::vector<Item> items);
  void Push(stream::Batch<BatchPtr>& in) override;

 private:
  std::string label_;
  RunContext& ctx_;
  std::shared_ptr<const Schema> output_;
  std::vector<Item> items_;
  std::vector<int> uses_;  // per input field: how many items take it as is
  std::vector<ExprState> states_;
  std::vector<RowError> errors_;
  std::vector<RowError> all_errors_;
};

// Routes each row to the instance that owns its key (stream::Stream::partition_rows).
class KeySplitter {
 public:
  KeySplitter(std::vector<int> key_columns, BatchPool* pool)
      : key_columns_(std::move(key_columns)), pool_(pool) {}
  KeySplitter(const KeySplitter& other) : key_columns_(other.key_columns_), pool_(other.pool_) {}

  void operator()(BatchPtr& in, size_t parts, BatchPtr* const* outs);

 private:
  std::vector<int> key_columns_;
  BatchPool* pool_;
  std::vector<uint64_t> hashes_;
  std::vector<std::vector<uint32_t>> rows_;
};

// Writes rows as JSON Lines, CSV or lines to a byte writer (file, stdout, TCP), in blocks.
class BatchSink final : public stream::Sink<BatchPtr> {
 public:
  using WriterFactory =
      std::function<Result<std::unique_ptr<stream::detail::ByteWriter>>(int, int)>;
  // A CSV sink writes the header of `schema` first.
  BatchSink(WriterFactory open, std::shared_ptr<const Schema> schema, Format format,
            char delimiter);
  // Under checkpoints: writes file `path` (instance k of P > 1: `path.k`) with two-phase commit
  // (TransactionalFile), so it holds exactly the output of completed checkpoints.
  static std::unique_ptr<BatchSink> Transactional(std::string path,
                                                  std::shared_ptr<const Schema> schema,
                                                  Format format, char delimiter);
  // A pipeline stopped early (Ctrl-C, a failure elsewhere) never calls Close: what this sink
  // received is still written, so the output holds every record counted as out.
  ~BatchSink() override;

  Status Open(int instance, int parallelism) override;
  Status Write(const stream::Batch<BatchPtr>& batch) override;
  Status Flush() override;
  Status Close() override;

  bool transactional() const override { return !tx_path_.empty(); }
  Status Snapshot(uint64_t checkpoint, bool closed, stream::StateWriter& out) override;
  Status Restore(stream::StateReader& in) override;
  Status Commit(uint64_t checkpoint) override;

 private:
  Status WriteOut(std::string_view bytes);

  WriterFactory open_;
  std::shared_ptr<const Schema> schema_;
  Format format_;
  char delimiter_;
  std::unique_ptr<stream::detail::ByteWriter> writer_;
  std::string buffer_;
  JsonRowWriter json_;
  // Transactional mode.
  std::string tx_path_;
  std::optional<std::string> restored_;  // the state to recover from, at Open
  std::mutex tx_mu_;                     // tx_ is set on the task thread, read by Commit
  std::unique_ptr<TransactionalFile> tx_;
  uint64_t last_checkpoint_ = 0;  // the last one snapshotted
};

}  // namespace barge::pipeline
