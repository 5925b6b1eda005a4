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
  void Barrier(uint64_t) override {}
  void Idle() override {
    if (opened_) Check(sink_->Flush());
  }
  void End() override {
    EnsureOpen();
    Check(sink_->Close());
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
};

}  // namespace barge::stream
