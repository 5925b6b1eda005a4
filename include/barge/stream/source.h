// Source<T>: where records enter a pipeline. Built-in sources (generator, files, sockets) and
// user sources implement the same interface; the engine drives each instance on its own task.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>

#include "barge/status.h"
#include "barge/stream/batch.h"
#include "barge/stream/checkpoint.h"

namespace barge::stream {

enum class SourceState {
  kMore,  // `Next` produced records (or may, if called again)
  kIdle,  // nothing available right now; the engine flushes downstream and calls Next again
  kEnd,   // the input is exhausted
};

// Counters a source keeps; read by the metrics endpoint.
struct SourceMetrics {
  std::atomic<uint64_t> skipped{0};  // malformed inputs skipped (when the user asked to skip)
};

template <class T>
class Source {
 public:
  virtual ~Source() = default;

  // Called once on the task thread before Next; this is instance `instance` of `parallelism`.
  virtual Status Open(int instance, int parallelism) {
    (void)instance;
    (void)parallelism;
    return Status::Ok();
  }

  // Appends up to `max_records` records to `out` (empty on entry). Blocking sources should wait
  // at most ~100 ms before returning kIdle so that cancellation and flushing stay prompt. An
  // error ends the pipeline with that error.
  virtual Result<SourceState> Next(Batch<T>& out, size_t max_records) = 0;

  // Called once after the last Next, on success or failure.
  virtual void Close() {}

  // A source whose records come with event time already decided elsewhere (a container stage
  // echoing the watermarks it was sent) reports here the watermark its records so far are complete
  // up to; after each Next the engine forwards it downstream when it has grown. kMinTime: none.
  virtual EventTime watermark() const { return kMinTime; }

  // Checkpoints: whether the source can go back to a position it reported (files, generators),
  // so that a pipeline resumed from a checkpoint reads exactly what followed it. Sources that
  // cannot (stdin, sockets) lose what they delivered after the last checkpoint (at-most-once).
  virtual bool replayable() const { return false; }
  // Writes the position after the records returned so far (called between Next calls).
  virtual void Snapshot(StateWriter& out) { (void)out; }
  // Goes back to a position Snapshot wrote; called after Open, before the first Next.
  virtual Status Restore(StateReader& in) {
    (void)in;
    return Status::Ok();
  }

  // Sources whose records come from an upstream part of the same pipeline (a container stage's
  // output side) relay that part's checkpoint barriers instead of injecting the coordinator's:
  // a barrier passes them only after every record before it came back. The engine calls
  // TakeBarrier after each Next and forwards the id it returns (0: none) after that call's
  // records, with this source's snapshot.
  virtual bool relays_barriers() const { return false; }
  virtual uint64_t TakeBarrier() { return 0; }

  SourceMetrics& metrics() { return metrics_; }

 private:
  SourceMetrics metrics_;
};

// The deterministic generator: instance k of P produces records fn(i) for i = k, k + P,
// k + 2P, ... < count, so the union over instances is the same for every parallelism and event
// time advances evenly on all instances.
template <class T, class F>
class GeneratorSource final : public Source<T> {
 public:
  GeneratorSource(uint64_t count, F fn) : count_(count), fn_(std::move(fn)) {}

  Status Open(int instance, int parallelism) override {
    next_ = static_cast<uint64_t>(instance);
    stride_ = static_cast<uint64_t>(parallelism);
    return Status::Ok();
  }

  Result<SourceState> Next(Batch<T>& out, size_t max_records) override {
    if (next_ >= count_) return SourceState::kEnd;
    uint64_t remaining = (count_ - next_ - 1) / stride_ + 1;  // no overflow near UINT64_MAX
    size_t n = static_cast<size_t>(std::min<uint64_t>(remaining, max_records));
    out.records.resize(n);
    T* r = out.records.data();
    uint64_t i = next_;
    for (size_t j = 0; j < n; ++j, i += stride_) r[j] = fn_(i);
    // The last index may wrap past UINT64_MAX: then this instance is done.
    next_ = n == remaining ? count_ : i;
    return SourceState::kMore;
  }

  bool replayable() const override { return true; }
  void Snapshot(StateWriter& out) override { out.Put(next_); }
  Status Restore(StateReader& in) override {
    next_ = in.Get<uint64_t>();
    return Status::Ok();
  }

 private:
  uint64_t count_;
  F fn_;
  uint64_t next_ = 0;
  uint64_t stride_ = 1;
};

}  // namespace barge::stream
