// The operator contract. An operator consumes batches of In through Input<In> and produces
// batches of Out into Output<Out>. Every call is per batch or per control event; user functions
// are template parameters, so they inline into the per-batch loop.
//
// Threading: one operator instance is driven by exactly one task thread, so it needs no locks.
// Metrics are relaxed atomics written by that thread and read by anyone.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

#include "barge/status.h"
#include "barge/stream/batch.h"
#include "barge/stream/checkpoint.h"

namespace barge::stream {

// What flows into an operator, in order.
template <class T>
class Input {
 public:
  virtual ~Input() = default;
  // Records (see Batch for the ownership contract). Never called with an empty batch.
  virtual void Push(Batch<T>& batch) = 0;
  // Event time has advanced to `watermark`: no record with a smaller or equal timestamp is
  // expected any more (records that still come are late).
  virtual void Watermark(EventTime watermark) = 0;
  // Checkpoint barrier `id`: everything before it belongs to checkpoint id.
  virtual void Barrier(uint64_t id) = 0;
  // No more input. Flush all state downstream, then forward End.
  virtual void End() = 0;
  // The task has no input right now: hand partial batches downstream so nothing waits on a
  // batch that will not fill (latency); cheap when there is nothing to flush.
  virtual void Idle() = 0;
  // This input will carry neither records nor watermarks for a while (an idle source
  // partition): leave it out of event-time progress until it sends something again. Sinks
  // ignore it; operators forward it.
  virtual void MarkIdle() {}
};

struct OperatorMetrics {
  std::atomic<uint64_t> records_in{0};
  std::atomic<uint64_t> records_out{0};
  std::atomic<uint64_t> batches_in{0};
  std::atomic<uint64_t> late_records{0};  // window operators: records after their window closed
  // The newest event-time watermark the operator saw: the one a task's inputs agreed on for its
  // first operator, the one it emitted for a source or an operator that makes watermarks (the
  // newer of the two for one that does both); kMinTime: none.
  std::atomic<EventTime> watermark{kMinTime};

  // From the operator's task thread (its only writer).
  void SetWatermark(EventTime w) {
    if (w > watermark.load(std::memory_order_relaxed)) {
      watermark.store(w, std::memory_order_relaxed);
    }
  }

  static void Add(std::atomic<uint64_t>& counter, uint64_t n) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

// A failure inside an operator (an exception from user code, or an error the operator raises),
// carrying the operator's name to the pipeline's error.
class OperatorFailure : public std::runtime_error {
 public:
  OperatorFailure(const std::string& op, const std::string& what)
      : std::runtime_error("operator '" + op + "' failed: " + what), op_(op) {}
  const std::string& op() const { return op_; }

 private:
  std::string op_;
};

// Thrown inside the engine when the pipeline is cancelled while a task waits; caught at the
// task boundary, never seen by users.
struct PipelineCancelled {};

// What the exception being handled says: what() of a std::exception, the text of a thrown string
// or C string, else the thrown value's type ("a thrown int, not a std::exception"). Call only
// inside a catch block.
std::string DescribeCurrentException();

// Runs `fn`, turning any exception except one already attributed (and the engine's own
// cancellation) into an OperatorFailure naming `op`. Zero cost when nothing throws.
template <class Fn>
inline void Guarded(const std::string& op, Fn&& fn) {
  try {
    fn();
  } catch (const OperatorFailure&) {
    throw;
  } catch (const PipelineCancelled&) {
    throw;
  } catch (const std::exception& e) {
    throw OperatorFailure(op, e.what());
  } catch (...) {
    throw OperatorFailure(op, DescribeCurrentException());
  }
}

namespace detail {
class CheckpointCoordinator;
}

class OutputBase {
 public:
  virtual ~OutputBase() = default;
};

// Swallows everything: where an output port leads when nothing consumes it.
template <class T>
class DiscardInput final : public Input<T> {
 public:
  static DiscardInput* Get() {
    static DiscardInput instance;
    return &instance;
  }
  void Push(Batch<T>&) override {}
  void Watermark(EventTime) override {}
  void Barrier(uint64_t) override {}
  void End() override {}
  void Idle() override {}
};

// An operator's output port: the downstream Input plus a recycled batch to build output in.
template <class T>
class Output final : public OutputBase {
 public:
  void Connect(Input<T>* target) { target_ = target; }
  bool connected() const { return target_ != DiscardInput<T>::Get(); }
  Input<T>& target() { return *target_; }

  // Sends `batch` downstream unless it is empty; the caller clears it afterwards.
  void Push(Batch<T>& batch, OperatorMetrics& metrics) {
    if (batch.empty()) return;
    OperatorMetrics::Add(metrics.records_out, RecordCount(batch));
    target_->Push(batch);
  }

  // A batch owned by this port for operators that build output record by record.
  Batch<T>& scratch() { return scratch_; }
  // Pushes scratch downstream (if not empty) and clears it.
  void Flush(OperatorMetrics& metrics) {
    Push(scratch_, metrics);
    scratch_.clear();
  }

 private:
  Input<T>* target_ = DiscardInput<T>::Get();
  Batch<T> scratch_;
};

// Base of every operator: name, metrics, output ports for wiring.
class OperatorBase {
 public:
  explicit OperatorBase(std::string name) : name_(std::move(name)) {}
  virtual ~OperatorBase() = default;
  OperatorBase(const OperatorBase&) = delete;
  OperatorBase& operator=(const OperatorBase&) = delete;

  const std::string& name() const { return name_; }
  OperatorMetrics& metrics() { return metrics_; }

  // Port 0 is the main output; window operators have port 1 for late records.
  virtual OutputBase* Port(int port) = 0;

  // Called on the task thread before the first record; `instance` of `parallelism`.
  virtual void Open(int instance, int parallelism) {
    (void)instance;
    (void)parallelism;
  }

  // ---- Checkpoints (checkpoint.h). All but NotifyCheckpointComplete run on the task thread.

  // Whether this operator's state can be checkpointed: OK for stateless operators and those that
  // implement Snapshot and Restore. A pipeline with checkpoints refuses to run an operator that
  // says no (its state would be lost on recovery).
  virtual Status CheckpointSupport() const { return Status::Ok(); }
  // Writes the operator's state as of now (between batches; everything it emitted before is
  // downstream of the barrier being handled). `checkpoint` is the barrier's id.
  virtual void Snapshot(uint64_t checkpoint, StateWriter& out) {
    (void)checkpoint;
    (void)out;
  }
  // Sets the state a Snapshot wrote; called before Open when the pipeline resumes. Throws
  // StateFormatError (or returns an error) when the state cannot be read.
  virtual Status Restore(StateReader& in) {
    (void)in;
    return Status::Ok();
  }
  // Checkpoint `checkpoint` is complete and durable (sinks commit what it covers). Called from
  // the coordinator's thread, not the task's: implementations synchronize.
  virtual Status NotifyCheckpointComplete(uint64_t checkpoint) {
    (void)checkpoint;
    return Status::Ok();
  }

  // Engine side: where snapshots go, and this instance's index there.
  void AttachCheckpoints(detail::CheckpointCoordinator* coordinator, size_t index) {
    coordinator_ = coordinator;
    checkpoint_index_ = index;
  }
  // Writes this operator's state for barrier `id` to the coordinator (nothing when checkpoints
  // are off). Operators call it from Barrier after flushing their output, before forwarding.
  void TakeSnapshot(uint64_t id);
  size_t checkpoint_index() const { return checkpoint_index_; }

 private:
  std::string name_;
  OperatorMetrics metrics_;
  detail::CheckpointCoordinator* coordinator_ = nullptr;
  size_t checkpoint_index_ = 0;
};

// An operator with one input type and one main output type. Control events forward by default.
template <class In, class Out>
class Operator : public OperatorBase, public Input<In> {
 public:
  using OperatorBase::OperatorBase;

  OutputBase* Port(int port) override { return port == 0 ? &out_ : nullptr; }

  void Watermark(EventTime watermark) override { out_.target().Watermark(watermark); }
  // Operators that hold output back (batches being filled) flush it first, then call this.
  void Barrier(uint64_t id) override {
    TakeSnapshot(id);
    out_.target().Barrier(id);
  }
  void End() override { out_.target().End(); }
  void Idle() override { out_.target().Idle(); }
  void MarkIdle() override { out_.target().MarkIdle(); }

 protected:
  // Counts a batch in; call at the top of Push.
  void CountIn(const Batch<In>& batch) {
    OperatorMetrics::Add(metrics().records_in, RecordCount(batch));
    OperatorMetrics::Add(metrics().batches_in, 1);
  }

  Output<Out> out_;
};

}  // namespace barge::stream
