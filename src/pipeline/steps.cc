#include "pipeline/steps.h"

#include <algorithm>

#include "pipeline/format.h"

namespace barge::pipeline {

namespace {

// Pushes `in` downstream unless its batch has no rows left.
void Forward(stream::Batch<BatchPtr>& in, stream::Output<BatchPtr>& out,
             stream::OperatorMetrics& metrics) {
  if (!in.records.empty() && in.records[0]->rows == 0) in.records.clear();
  out.Push(in, metrics);
}

void ThrowIfError(const Status& st) {
  // The message already names input, line and step: carried as is to the pipeline's error.
  if (!st.ok()) throw std::runtime_error(st.message());
}

}  // namespace

void ReportBadRows(const RecordBatch& b, const std::vector<RowError>& errors, std::string_view step,
                   std::string_view what, BadRecords& bad) {
  std::string reason;
  uint32_t last = UINT32_MAX;
  for (const RowError& e : errors) {
    if (e.row == last) continue;  // one report per row
    last = e.row;
    reason.assign(what);
    if (!reason.empty()) reason += ": ";
    reason += e.message;
    int64_t origin = b.origin.empty() ? -1 : b.origin[e.row];
    ThrowIfError(bad.Report({origin, step, reason, {}, &b, e.row}));
  }
}

void DropBadRows(RecordBatch& b, const std::vector<RowError>& errors, std::string_view step,
                 std::string_view what, BadRecords& bad) {
  if (errors.empty()) return;
  ReportBadRows(b, errors, step, what, bad);
  std::vector<uint8_t> keep(b.rows, 1);
  for (const RowError& e : errors) keep[e.row] = 0;
  b.Compact(keep.data());
}

// ---- EventTimeStep

EventTimeStep::EventTimeStep(std::string name, RunContext& ctx, int field, std::string field_name,
                             int64_t max_delay_ms, int64_t idle_ms, bool carry_watermark)
    : BatchOperator(std::move(name)),
      ctx_(ctx),
      field_(field),
      field_name_(std::move(field_name)),
      delay_(max_delay_ms),
      idle_(idle_ms),
      carry_(carry_watermark) {}

void EventTimeStep::Push(stream::Batch<BatchPtr>& in) {
  CountIn(in);
  if (idle_.count() > 0) {
    last_record_ = std::chrono::steady_clock::now();
    idle_marked_ = false;
  }
  stream::Guarded(name(), [&] {
    for (BatchPtr& ptr : in.records) {
      RecordBatch& b = *ptr;
      const Column& c = b.columns[static_cast<size_t>(field_)];
      errors_.clear();
      if (c.has_validity()) {
        for (size_t i = 0; i < b.rows; ++i) {
          if (c.IsNull(i)) {
            errors_.push_back(
                {static_cast<uint32_t>(i), "event time field '" + field_name_ + "' is NULL"});
          }
        }
      }
      // INT64_MAX is the watermark that ends the input: no window could hold a row at that time.
      const int64_t* times = c.ints();
      if (b.rows > 0 && *std::max_element(times, times + b.rows) == stream::kMaxTime) {
        for (size_t i = 0; i < b.rows; ++i) {
          if (times[i] == stream::kMaxTime && !(c.has_validity() && c.IsNull(i))) {
            errors_.push_back({static_cast<uint32_t>(i),
                               "event time field '" + field_name_ +
                                   "' is 9223372036854775807 (INT64_MAX), which is reserved for "
                                   "the end of input"});
          }
        }
        std::sort(errors_.begin(), errors_.end(),
                  [](const RowError& x, const RowError& y) { return x.row < y.row; });
      }
      DropBadRows(b, errors_, "source", "", *ctx_.bad);
      const size_t n = b.rows;
      const int64_t* t = b.columns[static_cast<size_t>(field_)].ints();
      b.time.assign(t, t + n);
      int64_t max = max_;
      if (carry_) {
        b.watermark.resize(n);
        int64_t* w = b.watermark.data();
        for (size_t i = 0; i < n; ++i) {
          max = t[i] > max ? t[i] : max;
          w[i] = stream::SatSub(stream::SatSub(max, delay_), 1);
        }
      } else {
        for (size_t i = 0; i < n; ++i) max = t[i] > max ? t[i] : max;
      }
      max_ = max;
    }
  });
  Forward(in, out_, metrics());
  if (max_ != stream::kMinTime) {
    Progress::Raise(ctx_.progress.max_event_time, max_);
    int64_t w = stream::SatSub(stream::SatSub(max_, delay_), 1);
    if (w > emitted_) {
      emitted_ = w;
      Progress::Raise(ctx_.progress.source_watermark, w);
      metrics().SetWatermark(w);
      out_.target().Watermark(w);
    }
  }
}

void EventTimeStep::Idle() {
  if (idle_.count() > 0 && !idle_marked_ &&
      std::chrono::steady_clock::now() - last_record_ >= idle_) {
    idle_marked_ = true;
    out_.target().MarkIdle();
  }
  out_.target().Idle();
}

// ---- FilterStep

FilterStep::FilterStep(std::string name, std::string label, RunContext& ctx, Expr expr)
    : BatchOperator(std::move(name)), label_(std::move(label)), ctx_(ctx), expr_(std::move(expr)) {}

void FilterStep::Push(stream::Batch<BatchPtr>& in) {
  CountIn(in);
  stream::Guarded(name(), [&] {
    for (BatchPtr& ptr : in.records) {
      RecordBatch& b = *ptr;
      errors_.clear();
      expr_.Evaluate(b, state_, result_, errors_);
      keep_.resize(b.rows);
      const uint8_t* v = result_.bools();
      if (result_.type() != Type::kBool) {
        std::fill(keep_.begin(), keep_.end(), 0);  // a condition that is always NULL
      } else if (result_.has_validity()) {
        for (size_t i = 0; i < b.rows; ++i) keep_[i] = v[i] & (result_.IsValid(i) ? 1 : 0);
      } else {
        for (size_t i = 0; i < b.rows; ++i) keep_[i] = v[i];
      }
      // Rows that failed are reported; the filter drops them with the others.
      ReportBadRows(b, errors_, label_, "", *ctx_.bad);
      for (const RowError& e : errors_) keep_[e.row] = 0;
      b.Compact(keep_.data());
    }
  });
  Forward(in, out_, metrics());
}

// ---- SelectStep

SelectStep::SelectStep(std::string name, std::string label, RunContext& ctx,
                       std::shared_ptr<const Schema> output, std::vector<Item> items)
    : BatchOperator(std::move(name)),
      label_(std::move(label)),
      ctx_(ctx),
      output_(std::move(output)),
      items_(std::move(items)),
      states_(items_.size()) {
  int max_input = -1;
  for (const Item& it : items_) max_input = std::max(max_input, it.input);
  uses_.assign(static_cast<size_t>(max_input + 1), 0);
  for (const Item& it : items_) {
    if (it.input >= 0) ++uses_[static_cast<size_t>(it.input)];
  }
}

void SelectStep::Push(stream::Batch<BatchPtr>& in) {
  CountIn(in);
  stream::Guarded(name(), [&] {
    for (BatchPtr& ptr : in.records) {
      RecordBatch& b = *ptr;
      BatchPtr out = ctx_.pool.Get(output_);
      RecordBatch& o = *out;
      all_errors_.clear();
      // Expressions first: they read input columns that may be moved out below.
      for (size_t k = 0; k < items_.size(); ++k) {
        if (!items_[k].expr) continue;
        errors_.clear();
        items_[k].expr->Evaluate(b, states_[k], o.columns[k], errors_);
        for (RowError& e : errors_) {
          e.message = output_->fields[k].name + ": " + e.message;
          all_errors_.push_back(std::move(e));
        }
      }
      // Bad rows are reported as they came in, before their fields move to the output.
      if (!all_errors_.empty()) {
        std::sort(all_errors_.begin(), all_errors_.end(),
                  [](const RowError& x, const RowError& y) { return x.row < y.row; });
        ReportBadRows(b, all_errors_, label_, "", *ctx_.bad);
      }
      for (size_t k = 0; k < items_.size(); ++k) {
        int src = items_[k].input;
        if (src < 0) continue;
        Column& from = b.columns[static_cast<size_t>(src)];
        if (uses_[static_cast<size_t>(src)] == 1) {
          o.columns[k].swap(from);
        } else {
          o.columns[k].Reset(from.type());
          o.columns[k].AppendRange(from, 0, b.rows);
        }
      }
      o.rows = b.rows;
      o.time.swap(b.time);
      o.watermark.swap(b.watermark);
      o.origin.swap(b.origin);
      if (!all_errors_.empty()) {
        std::vector<uint8_t> keep(o.rows, 1);
        for (const RowError& e : all_errors_) keep[e.row] = 0;
        o.Compact(keep.data());
      }
      ptr = std::move(out);
    }
  });
  Forward(in, out_, metrics());
}

// ---- KeySplitter

void KeySplitter::operator()(BatchPtr& in, size_t parts, BatchPtr* const* outs) {
  const RecordBatch& b = *in;
  HashKeys(b, key_columns_, hashes_, kPartitionSeed);
  rows_.resize(parts);
  for (auto& r : rows_) r.clear();
  for (size_t i = 0; i < b.rows; ++i) {
    rows_[PartitionOf(hashes_[i], parts)].push_back(static_cast<uint32_t>(i));
  }
  for (size_t d = 0; d < parts; ++d) {
    if (rows_[d].empty()) continue;
    BatchPtr& out = *outs[d];
    if (!out) out = pool_->Get(b.schema);
    out->AppendRows(b, rows_[d].data(), rows_[d].size());
  }
}

// ---- BatchSink

BatchSink::BatchSink(WriterFactory open, std::shared_ptr<const Schema> schema, Format format,
                     char delimiter)
    : open_(std::move(open)), schema_(std::move(schema)), format_(format), delimiter_(delimiter) {}

std::unique_ptr<BatchSink> BatchSink::Transactional(std::string path,
                                                    std::shared_ptr<const Schema> schema,
                                                    Format format, char delimiter) {
  auto sink = std::make_unique<BatchSink>(nullptr, std::move(schema), format, delimiter);
  sink->tx_path_ = std::move(path);
  return sink;
}

BatchSink::~BatchSink() {
  if (!buffer_.empty()) (void)WriteOut(buffer_);
}

Status BatchSink::WriteOut(std::string_view bytes) {
  if (tx_) return tx_->Write(bytes);
  if (writer_ != nullptr) return writer_->Write(bytes);
  return Status::Ok();
}

Status BatchSink::Open(int instance, int parallelism) {
  bool header_written = false;
  if (!tx_path_.empty()) {
    std::string path = parallelism > 1 ? tx_path_ + "." + std::to_string(instance) : tx_path_;
    ASSIGN_OR_RETURN(auto tx, TransactionalFile::Open(path, restored_ ? &*restored_ : nullptr));
    header_written = tx->committed() > 0;
    std::lock_guard lock(tx_mu_);
    tx_ = std::move(tx);
  } else {
    ASSIGN_OR_RETURN(writer_, open_(instance, parallelism));
  }
  buffer_.reserve(stream::detail::kSinkBlockBytes + stream::detail::kSinkBlockBytes / 4);
  if (format_ == Format::kCsv && !header_written) {
    AppendCsvHeader(*schema_, delimiter_, buffer_);
    buffer_ += '\n';
  }
  return Status::Ok();
}

Status BatchSink::Write(const stream::Batch<BatchPtr>& batch) {
  for (const BatchPtr& ptr : batch.records) {
    const RecordBatch& b = *ptr;
    for (size_t i = 0; i < b.rows; ++i) {
      switch (format_) {
        case Format::kJsonl:
          json_.Append(b, i, buffer_);
          break;
        case Format::kCsv:
          AppendCsvRow(b, i, delimiter_, buffer_);
          break;
        case Format::kLines: {
          const Column& c = b.columns[0];
          if (c.IsValid(i)) buffer_ += c.String(i);
          break;
        }
      }
      buffer_ += '\n';
      if (buffer_.size() >= stream::detail::kSinkBlockBytes) RETURN_IF_ERROR(Flush());
    }
  }
  return Status::Ok();
}

Status BatchSink::Flush() {
  if (buffer_.empty()) return Status::Ok();
  Status st = WriteOut(buffer_);
  buffer_.clear();
  return st;
}

Status BatchSink::Close() {
  RETURN_IF_ERROR(Flush());
  if (tx_) return Status::Ok();  // the final checkpoint seals and commits the rest
  Status st = writer_->Close();
  writer_.reset();
  return st;
}

Status BatchSink::Snapshot(uint64_t checkpoint, bool closed, stream::StateWriter& out) {
  if (!tx_) return Status::Ok();
  RETURN_IF_ERROR(Flush());
  // After the end, what is left goes with the next checkpoint to complete.
  const uint64_t tag = closed ? last_checkpoint_ + 1 : checkpoint;
  if (!closed) last_checkpoint_ = checkpoint;
  stream::StateWriter state;
  RETURN_IF_ERROR(tx_->Seal(tag, state));
  out.PutString(state.bytes());
  return Status::Ok();
}

Status BatchSink::Restore(stream::StateReader& in) {
  if (tx_path_.empty()) return Status::Ok();
  restored_ = in.GetString();
  return Status::Ok();
}

Status BatchSink::Commit(uint64_t checkpoint) {
  std::lock_guard lock(tx_mu_);
  if (!tx_) return Status::Ok();
  return tx_->Commit(checkpoint);
}

}  // namespace barge::pipeline
