#include "pipeline/bad_records.h"

#include <fcntl.h>

#include "base/file_util.h"
#include "pipeline/format.h"

namespace barge::pipeline {

Result<std::unique_ptr<BadRecords>> BadRecords::Open(const OnErrorSpec& spec,
                                                     const std::string& dead_letter_path,
                                                     std::vector<std::string> inputs, bool append) {
  std::unique_ptr<BadRecords> bad(new BadRecords(spec.mode, std::move(inputs)));
  if (spec.mode == OnErrorSpec::Mode::kDeadLetter) {
    // A resumed run adds to the dead letter file kept from the run before.
    Result<std::unique_ptr<stream::detail::ByteWriter>> writer =
        stream::detail::OpenFileWriter(dead_letter_path, 0, 1, append);
    if (!writer.ok()) return writer.status().Wrap("dead_letter");
    bad->writer_ = std::move(*writer);
  }
  return bad;
}

std::string BadRecords::Where(int64_t origin) const {
  if (origin < 0) return "";
  uint64_t input = RecordBatch::OriginInput(origin);
  uint64_t line = RecordBatch::OriginLine(origin);
  std::string name = input < inputs_.size() ? inputs_[input] : "input " + std::to_string(input);
  return line == 0 ? name : name + ":" + std::to_string(line);
}

std::atomic<uint64_t>& BadRecords::StepCounter(std::string_view step) {
  // Each thread remembers the step it counted last: a run of bad records takes no lock.
  struct Last {
    uint64_t owner = 0;
    std::string step;
    std::atomic<uint64_t>* counter = nullptr;
  };
  thread_local Last last;
  if (last.owner == id_ && last.step == step) return *last.counter;
  std::lock_guard lock(steps_mu_);
  auto it = by_step_.find(step);
  if (it == by_step_.end()) {
    it = by_step_.emplace(std::string(step), std::make_unique<std::atomic<uint64_t>>(0)).first;
  }
  last = {id_, std::string(step), it->second.get()};
  return *it->second;
}

std::map<std::string, uint64_t, std::less<>> BadRecords::CountByStep() const {
  std::lock_guard lock(steps_mu_);
  std::map<std::string, uint64_t, std::less<>> out;
  for (const auto& [step, n] : by_step_) out.emplace(step, n->load(std::memory_order_relaxed));
  return out;
}

Status BadRecords::Report(const BadRecord& r) {
  if (mode_ == OnErrorSpec::Mode::kFail) {
    std::string where = Where(r.origin);
    std::string message = where.empty() ? "" : where + ": ";
    message += std::string(r.step) + ": " + std::string(r.reason);
    // The first bad record is the one earliest in the input, whichever step found it first.
    const auto order = static_cast<uint64_t>(r.origin);  // unknown origins (-1) sort last
    std::lock_guard lock(mu_);
    if (failure_.empty() || order < failure_order_) {
      failure_ = message;
      failure_order_ = order;
    }
    return InvalidArgument(message);
  }
  count_.fetch_add(1, std::memory_order_relaxed);
  StepCounter(r.step).fetch_add(1, std::memory_order_relaxed);
  if (mode_ != OnErrorSpec::Mode::kDeadLetter) return Status::Ok();
  std::lock_guard lock(mu_);
  line_.clear();
  line_ += "{\"input\":";
  if (r.origin >= 0) {
    uint64_t input = RecordBatch::OriginInput(r.origin);
    AppendJsonString(input < inputs_.size() ? inputs_[input] : std::to_string(input), line_);
    line_ += ",\"line\":" + std::to_string(RecordBatch::OriginLine(r.origin));
  } else {
    line_ += "null,\"line\":null";
  }
  line_ += ",\"step\":";
  AppendJsonString(r.step, line_);
  line_ += ",\"error\":";
  AppendJsonString(r.reason, line_);
  if (r.batch != nullptr) {
    line_ += ",\"record\":";
    json_.Append(*r.batch, r.row, line_);
  } else {
    line_ += ",\"raw\":";
    AppendJsonString(r.raw, line_);
  }
  line_ += "}\n";
  Status st = writer_->Write(line_);
  return st.ok() ? st : st.Wrap("dead_letter");
}

Status BadRecords::Close() {
  std::lock_guard lock(mu_);
  if (!writer_) return Status::Ok();
  Status st = writer_->Close();
  writer_.reset();
  return st.ok() ? st : st.Wrap("dead_letter");
}

}  // namespace barge::pipeline
