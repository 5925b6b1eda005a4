// What happens to a record that cannot be read or processed (the spec's `on_error`): fail stops
// the pipeline naming the input, line and step; skip counts it; dead_letter writes it, with the
// reason, to a JSON Lines file and counts it. Nothing is dropped without being counted.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "barge/status.h"
#include "barge/stream/io.h"
#include "pipeline/column.h"
#include "pipeline/format.h"
#include "pipeline/spec.h"

namespace barge::pipeline {

// One bad record. `origin` is RecordBatch::MakeOrigin(input, line), or -1 when unknown.
struct BadRecord {
  int64_t origin = -1;
  std::string_view step;               // "source", "step 2 (select)", ...
  std::string_view reason;             // "field 'amount': cannot parse 'abc' as DOUBLE"
  std::string_view raw;                // the record's text, when it could not be parsed
  const RecordBatch* batch = nullptr;  // or the parsed record: row `row` of `batch`
  size_t row = 0;
};

// Shared by every operator instance of one pipeline; thread-safe.
class BadRecords {
 public:
  // `inputs` names each input index of an origin (file paths, "<stdin>", "generate"). With
  // `append` (a run resumed from a checkpoint) the dead letter file is added to, not emptied.
  static Result<std::unique_ptr<BadRecords>> Open(const OnErrorSpec& spec,
                                                  const std::string& dead_letter_path,
                                                  std::vector<std::string> inputs,
                                                  bool append = false);

  // fail: the error that stops the pipeline ("orders.csv:12: step 2 (select): division by
  // zero"). skip, dead_letter: counts (and writes) the record and returns OK, unless writing the
  // dead letter failed.
  Status Report(const BadRecord& record);

  // "orders.csv:12" (or "orders.csv" / "" when line or input are unknown).
  std::string Where(int64_t origin) const;

  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  // Bad records counted so far, per step that found them ("source", "step 2 (select)").
  std::map<std::string, uint64_t, std::less<>> CountByStep() const;
  // on_error: fail: the error of the first bad record (the earliest in the input of those
  // reported), once one was reported; else empty.
  std::string failure() const {
    std::lock_guard lock(mu_);
    return failure_;
  }
  OnErrorSpec::Mode mode() const { return mode_; }
  // Flushes and closes the dead-letter file.
  Status Close();

 private:
  BadRecords(OnErrorSpec::Mode mode, std::vector<std::string> inputs)
      : mode_(mode), inputs_(std::move(inputs)) {}

  OnErrorSpec::Mode mode_;
  std::vector<std::string> inputs_;
  std::atomic<uint64_t> count_{0};
  // The counter of `step`, made on first use.
  std::atomic<uint64_t>& StepCounter(std::string_view step);
  // Tells this object from one made later at the same address (StepCounter's per-thread cache).
  inline static std::atomic<uint64_t> next_id_{1};
  const uint64_t id_ = next_id_.fetch_add(1, std::memory_order_relaxed);
  mutable std::mutex steps_mu_;
  // Guarded by steps_mu_; the counters themselves are atomics that never move.
  std::map<std::string, std::unique_ptr<std::atomic<uint64_t>>, std::less<>> by_step_;
  mutable std::mutex mu_;  // guards writer_, line_ and failure_
  std::string failure_;
  uint64_t failure_order_ = 0;  // origin of failure_'s record, as unsigned
  std::unique_ptr<stream::detail::ByteWriter> writer_;
  std::string line_;
  JsonRowWriter json_;
};

}  // namespace barge::pipeline
