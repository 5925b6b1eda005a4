// Sink<T>: where records leave a pipeline when leaving needs a resource (a file, a socket) that
// is opened, flushed and closed, and whose failures must fail the pipeline. Plain functions
// (`Stream<T>::sink(f)`) cover everything else.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "barge/status.h"
#include "barge/stream/batch.h"
#include "barge/stream/operator.h"

namespace barge::stream {

// One instance per sink task; every call comes from that task's thread. An error from any call
// stops the pipeline with that error, prefixed by the sink's name.
template <class T>
class Sink {
 public:
  virtual ~Sink() = default;

  // Called once before the first Write (also when the stream turns out to be empty); this is
  // instance `instance` of `parallelism`.
  virtual Status Open(int instance, int parallelism) {
    (void)instance;
    (void)parallelism;
    return Status::Ok();
  }

  // One call per batch.
  virtual Status Write(const Batch<T>& batch) = 0;

  // The input has nothing more right now: make what was written visible (flush buffers) so
  // a slow stream is not held back by a block that will not fill.
  virtual Status Flush() { return Status::Ok(); }

  // End of the input: flush and release. Not called when the pipeline fails or is cancelled;
  // the destructor releases resources then.
  virtual Status Close() { return Status::Ok(); }

  // ---- Checkpoints: a transactional sink (two-phase commit, as Flink's TwoPhaseCommitSink).

  // Whether output is exactly-once with checkpoints: what a failed run wrote after its last
  // completed checkpoint is discarded on recovery. A sink that is not (stdout, a socket) may
  // repeat that output after a recovery (at-least-once).
  virtual bool transactional() const { return false; }
  // Pre-commit: makes everything written so far durable but not yet visible, as part of
  // checkpoint `checkpoint`, and writes what recovery needs into `out`. After Close (`closed`),
  // the output since the last checkpoint goes with the next checkpoint to complete.
  virtual Status Snapshot(uint64_t checkpoint, bool closed, StateWriter& out) {
    (void)checkpoint;
    (void)closed;
    (void)out;
    return Status::Ok();
  }
  // Recovery, before Open: makes visible exactly what the checkpoint Snapshot wrote for covers
  // (finishing a commit a crash interrupted) and discards the rest.
  virtual Status Restore(StateReader& in) {
    (void)in;
    return Status::Ok();
  }
  // Commit: checkpoint `checkpoint` completed; make visible what it covers. Called from another
  // thread than the other calls (the checkpoint coordinator's).
  virtual Status Commit(uint64_t checkpoint) {
    (void)checkpoint;
    return Status::Ok();
  }
};

// Drives a Sink<T> as the last operator of a chain.
template <class T>
class SinkDriver final : public OperatorBase, public Input<T> {
 public:
  SinkDriver(std::string name, std::unique_ptr<Sink<T>> sink)
      : OperatorBase(std::move(name)), sink_(std::move(sink)) {}

  OutputBase* Port(int) override { return nullptr; }

  // Runs before the task threads start; the sink itself opens on its task thread.
  void Open(int instance, int parallelism) override {
    instance_ = instance;
    parallelism_ = parallelism;
  }

  void Push(Batch<T>& in) override {
    OperatorMetrics::Add(metrics().records_in, RecordCount(in));
    OperatorMetrics::Add(metrics().batches_in, 1);
    EnsureOpen();
    Check(sink_->Write(in));
  }
  void Watermark(EventTime) override {}
  void Barrier(uint64_t id) override {
    EnsureOpen();
    TakeSnapshot(id);
  }
  void Idle() override {
    if (opened_) Check(sink_->Flush());
  }
  void End() override {
    EnsureOpen();
    Check(sink_->Close());
    closed_ = true;
  }

  void Snapshot(uint64_t checkpoint, StateWriter& out) override {
    Check(sink_->Snapshot(checkpoint, closed_, out));
  }
  Status Restore(StateReader& in) override { return sink_->Restore(in); }
  Status NotifyCheckpointComplete(uint64_t checkpoint) override {
    return sink_->Commit(checkpoint);
  }

 private:
  void EnsureOpen() {
    if (opened_) return;
    opened_ = true;
    Check(sink_->Open(instance_, parallelism_));
  }
  void Check(const Status& st) {
    if (!st.ok()) throw OperatorFailure(name(), st.message());
  }

  std::unique_ptr<Sink<T>> sink_;
  int instance_ = 0;
  int parallelism_ = 1;
  bool opened_ = false;
  bool closed_ = false;
};

}  // namespace barge::stream
