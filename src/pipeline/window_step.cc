#include "pipeline/window_step.h"

#include <algorithm>
#include <numeric>

#include "barge/stream/window.h"
#include "pipeline/state_io.h"

namespace barge::pipeline {

using stream::kMaxTime;
using stream::kMinTime;
using stream::SatAdd;

std::shared_ptr<const Schema> KeyedOutputSchema(const Schema& input, const std::vector<int>& keys,
                                                bool windowed,
                                                const std::vector<std::string>& names,
                                                const std::vector<AggregateCall>& aggregates) {
  auto schema = std::make_shared<Schema>();
  for (int k : keys) schema->fields.push_back(input.fields[static_cast<size_t>(k)]);
  if (windowed) {
    schema->fields.push_back({"window_start", Type::kInt64});
    schema->fields.push_back({"window_end", Type::kInt64});
  }
  for (size_t a = 0; a < aggregates.size(); ++a) {
    schema->fields.push_back({names[a], aggregates[a].type});
  }
  return schema;
}

namespace {

// Evaluates each aggregate's argument over `b`: a field reference is read in place, anything
// else is computed into scratch. Rows whose argument fails are flagged in `skip` and listed in
// `errors`.
void EvaluateArguments(const RecordBatch& b, const std::vector<AggregateCall>& aggregates,
                       std::vector<ExprState>& states, std::vector<Column>& scratch,
                       std::vector<const Column*>& args, std::vector<RowError>& errors) {
  args.assign(aggregates.size(), nullptr);
  errors.clear();
  for (size_t a = 0; a < aggregates.size(); ++a) {
    const std::optional<Expr>& arg = aggregates[a].argument;
    if (!arg) continue;
    if (int ref = arg->field_ref(); ref >= 0) {
      args[a] = &b.columns[static_cast<size_t>(ref)];
      continue;
    }
    size_t before = errors.size();
    arg->Evaluate(b, states[a], scratch[a], errors);
    for (size_t e = before; e < errors.size(); ++e) {
      errors[e].message = aggregates[a].ToString() + ": " + errors[e].message;
    }
    args[a] = &scratch[a];
  }
  std::stable_sort(errors.begin(), errors.end(),
                   [](const RowError& x, const RowError& y) { return x.row < y.row; });
}

}  // namespace

// ---- WindowStep

struct WindowStep::Window {
  stream::WindowGrid::Start exact_start = 0;  // the map's key; may lie below INT64_MIN
  int64_t start = 0;                          // bounds clamped into the int64 range
  int64_t end = 0;                            // exclusive
  KeyTable keys;
  std::vector<uint32_t> slots;  // per key entry: its aggregate slot
  bool fired = false;
  int64_t max_timestamp() const { return end - 1; }
};

struct WindowStep::Session {
  int64_t start;
  int64_t end;
  uint32_t slot;
  bool fired;
  int64_t armed;  // time of this session's pending timer
};

WindowStep::WindowStep(std::string name, RunContext& ctx, KeyedConfig config, WindowSpec window)
    : BatchOperator(std::move(name)),
      ctx_(ctx),
      config_(std::move(config)),
      window_(window),
      aggs_(config_.aggregates),
      grid_(std::max<int64_t>(1, window_.size_ms),
            std::max<int64_t>(1, window_.kind == WindowSpec::Kind::kTumbling ? window_.size_ms
                                                                             : window_.slide_ms),
            window_.offset_ms),
      states_(config_.aggregates.size()),
      scratch_(config_.aggregates.size()) {
  if (window_.kind == WindowSpec::Kind::kTumbling) window_.slide_ms = window_.size_ms;
  std::vector<Type> types;
  for (size_t k = 0; k < config_.key_columns.size(); ++k) {
    types.push_back(config_.output->fields[k].type);
  }
  session_keys_ = KeyTable(types);
  hashes_needed_ = session_keys_.uses_hashes();
}

WindowStep::~WindowStep() = default;

stream::OutputBase* WindowStep::Port(int port) {
  if (port == 0) return &out_;
  if (port == 1) return &late_;
  return nullptr;
}

bool WindowStep::Late(int64_t max_timestamp) const {
  // In 128 bits: the sum may pass INT64_MAX.
  return wm_ != kMinTime && __int128{max_timestamp} + window_.lateness_ms <= __int128{wm_};
}

int64_t WindowStep::Due(const Window& w) const {
  return w.fired ? SatAdd(w.max_timestamp(), window_.lateness_ms) : w.max_timestamp();
}

void WindowStep::Prepare(RecordBatch& b) {
  if (b.time.size() != b.rows) {
    throw stream::OperatorFailure(name(), "records carry no event time");
  }
  EvaluateArguments(b, config_.aggregates, states_, scratch_, args_, errors_);
  skip_.assign(b.rows, 0);
  if (!errors_.empty()) {
    ReportBadRows(b, errors_, config_.label, "", *ctx_.bad);
    for (const RowError& e : errors_) skip_[e.row] = 1;
  }
  if (hashes_needed_) HashKeys(b, config_.key_columns, hashes_);
  order_ = b.origin.empty() ? nullptr : b.origin.data();
}

void WindowStep::Push(stream::Batch<BatchPtr>& in) {
  CountIn(in);
  stream::Guarded(name(), [&] {
    for (BatchPtr& ptr : in.records) {
      RecordBatch& b = *ptr;
      Prepare(b);
      if (window_.kind == WindowSpec::Kind::kSession) {
        PushSessions(b);
      } else {
        PushTimeWindows(b);
      }
    }
  });
}

void WindowStep::Observe(const RecordBatch& b, size_t row) {
  if (!config_.row_watermarks || b.watermark.size() != b.rows) return;
  int64_t w = b.watermark[row];
  if (w <= wm_) return;
  if (w >= next_trigger_) {
    if (window_.kind == WindowSpec::Kind::kSession) {
      AdvanceSessions(w);
    } else {
      Advance(w);
    }
  } else {
    wm_ = w;
  }
}

WindowStep::Window* WindowStep::FindWindow(stream::WindowGrid::Start start) {
  if (cached_ != nullptr && cached_->exact_start == start) return cached_;
  auto it = windows_.find(start);
  if (it == windows_.end()) return nullptr;
  cached_ = it->second.get();
  return cached_;
}

WindowStep::Window* WindowStep::CreateWindow(stream::WindowGrid::Start start) {
  std::unique_ptr<Window> w;
  if (!spare_.empty()) {
    w = std::move(spare_.back());
    spare_.pop_back();
    w->keys.Clear();
    w->slots.clear();
  } else {
    w = std::make_unique<Window>();
    std::vector<Type> types;
    for (size_t k = 0; k < config_.key_columns.size(); ++k) {
      types.push_back(config_.output->fields[k].type);
    }
    w->keys = KeyTable(types);
  }
  const stream::TimeWindow bounds = grid_.Bounds(start);
  w->exact_start = start;
  w->start = bounds.start;
  w->end = bounds.end;
  // A window first seen after the watermark passed its end (within the lateness) has fired:
  // each record re-emits its key's result at once.
  w->fired = wm_ != kMinTime && w->max_timestamp() <= wm_;
  next_trigger_ = std::min(next_trigger_, Due(*w));
  Window* raw = w.get();
  const bool fired = w->fired;
  auto it = windows_.emplace(start, std::move(w)).first;
  // A window that has not fired starts after every fired one; it is the first unfired one when it
  // starts before the others.
  if (!fired && (unfired_ == windows_.end() || start < unfired_->first)) unfired_ = it;
  cached_ = raw;
  return raw;
}

void WindowStep::PushTimeWindows(RecordBatch& b) {
  const size_t n = b.rows;
  const int64_t* t = b.time.data();
  const bool tumbling = window_.kind == WindowSpec::Kind::kTumbling;
  size_t i = 0;
  while (i < n) {
    if (skip_[i]) {
      ++i;
      continue;
    }
    Observe(b, i);
    const int64_t ti = t[i];
    const stream::WindowGrid::Start last = grid_.LastStart(ti);
    if (!tumbling) {
      // Every window the row belongs to, one row at a time.
      bool accepted = false;
      for (stream::WindowGrid::Start s = last; grid_.Holds(s, ti); s -= grid_.slide()) {
        Window* w = FindWindow(s);
        if (w == nullptr) {
          if (Late(grid_.Bounds(s).end - 1)) continue;
          w = CreateWindow(s);
        }
        accepted = true;
        uint32_t entry = w->keys.FindOrInsertRow(b, config_.key_columns, Hash(i), i);
        if (entry == w->slots.size()) w->slots.push_back(aggs_.Allocate());
        uint32_t slot = w->slots[entry];
        uint32_t row = static_cast<uint32_t>(i);
        aggs_.Update(&slot, &row, 1, args_, order_);
        if (w->fired) EmitResults(w->keys, &entry, &slot, 1, w->start, w->end);
      }
      // Flink's rule: the late port takes a row no window took that is itself late.
      if (!accepted && Late(ti)) SendLate(b, i);
      ++i;
      continue;
    }
    Window* w = FindWindow(last);
    if (w == nullptr) {
      if (Late(grid_.Bounds(last).end - 1)) {
        SendLate(b, i);
        ++i;
        continue;
      }
      w = CreateWindow(last);
    }
    if (w->fired) {
      // A late firing per record, as records arrive.
      uint32_t entry = w->keys.FindOrInsertRow(b, config_.key_columns, Hash(i), i);
      if (entry == w->slots.size()) w->slots.push_back(aggs_.Allocate());
      uint32_t slot = w->slots[entry];
      uint32_t row = static_cast<uint32_t>(i);
      aggs_.Update(&slot, &row, 1, args_, order_);
      EmitResults(w->keys, &entry, &slot, 1, w->start, w->end);
      ++i;
      continue;
    }
    // A run of rows into this open window, before event time moves past any trigger.
    size_t j = i + 1;
    const int64_t* rw =
        config_.row_watermarks && b.watermark.size() == b.rows ? b.watermark.data() : nullptr;
    while (j < n && !skip_[j] && t[j] >= w->start && t[j] < w->end &&
           (rw == nullptr || rw[j] < next_trigger_)) {
      ++j;
    }
    if (rw != nullptr && rw[j - 1] > wm_) wm_ = rw[j - 1];
    const size_t len = j - i;
    rows_.resize(len);
    std::iota(rows_.begin(), rows_.end(), static_cast<uint32_t>(i));
    entries_.resize(len);
    w->keys.FindOrInsert(b, config_.key_columns, hashes_needed_ ? hashes_.data() : nullptr,
                         rows_.data(), len, entries_.data());
    while (w->slots.size() < w->keys.size()) w->slots.push_back(aggs_.Allocate());
    slots_.resize(len);
    for (size_t k = 0; k < len; ++k) slots_[k] = w->slots[entries_[k]];
    aggs_.Update(slots_.data(), rows_.data(), len, args_, order_);
    i = j;
  }
}

void WindowStep::EmitResults(const KeyTable& keys, const uint32_t* entries, const uint32_t* slots,
                             size_t n, int64_t start, int64_t end) {
  size_t done = 0;
  while (done < n) {
    if (!out_batch_) out_batch_ = ctx_.pool.Get(config_.output);
    RecordBatch& o = *out_batch_;
    size_t take = std::min(n - done, std::max<size_t>(1, config_.batch_rows - o.rows));
    const size_t nkeys = config_.key_columns.size();
    for (size_t k = 0; k < nkeys; ++k) {
      o.columns[k].AppendRows(keys.keys()[k], entries + done, take);
    }
    size_t agg_first = nkeys;
    {
      Column& ws = o.columns[nkeys];
      Column& we = o.columns[nkeys + 1];
      for (size_t k = 0; k < take; ++k) {
        ws.AppendInt(start);
        we.AppendInt(end);
      }
      agg_first = nkeys + 2;
    }
    overflowed_.clear();
    aggs_.Emit(slots + done, take, o.columns, agg_first, overflowed_);
    o.time.insert(o.time.end(), take, end - 1);
    const size_t first_row = o.rows;
    o.rows += take;
    done += take;
    if (!overflowed_.empty()) DropOverflowed(o, first_row);
    if (o.rows >= config_.batch_rows) FlushOut();
  }
}

// Results whose aggregates do not fit their type are bad records of this step: reported (and
// under on_error: fail, the pipeline stops), then left out.
void DropOverflowedRows(RecordBatch& o, size_t first_row,
                        const std::vector<std::pair<size_t, std::string>>& overflowed,
                        const std::string& label, BadRecords& bad) {
  std::vector<uint8_t> keep(o.rows, 1);
  std::vector<RowError> errors;
  for (const auto& [k, why] : overflowed) {
    if (keep[first_row + k] == 0) continue;
    keep[first_row + k] = 0;
    errors.push_back({static_cast<uint32_t>(first_row + k), why});
  }
  std::sort(errors.begin(), errors.end(),
            [](const RowError& a, const RowError& b) { return a.row < b.row; });
  ReportBadRows(o, errors, label, "", bad);
  o.Compact(keep.data());
}

void WindowStep::DropOverflowed(RecordBatch& o, size_t first_row) {
  DropOverflowedRows(o, first_row, overflowed_, config_.label, *ctx_.bad);
}

void WindowStep::FlushOut() {
  if (!out_batch_ || out_batch_->rows == 0) return;
  stream::Batch<BatchPtr>& b = out_.scratch();
  b.records.push_back(std::move(out_batch_));
  out_.Flush(metrics());
}

void WindowStep::SendLate(const RecordBatch& b, size_t row) {
  stream::OperatorMetrics::Add(metrics().late_records, 1);
  if (!late_.connected()) return;
  if (!late_batch_) late_batch_ = ctx_.pool.Get(b.schema);
  uint32_t r = static_cast<uint32_t>(row);
  late_batch_->AppendRows(b, &r, 1);
  if (late_batch_->rows >= config_.batch_rows) FlushLate();
}

void WindowStep::FlushLate() {
  if (!late_batch_ || late_batch_->rows == 0) return;
  stream::Batch<BatchPtr>& b = late_.scratch();
  b.records.push_back(std::move(late_batch_));
  late_.Flush(metrics());
}

// Windows fire and are purged in the order of their starts (all have one size), and a window has
// fired exactly when its end - 1 is at or below the watermark: the fired windows are a prefix of
// windows_, up to unfired_. So the next trigger is the first unfired window's end or the first
// window's purge time, and moving event time visits only the windows it fires or purges.
void WindowStep::Recompute() {
  next_trigger_ = kMaxTime;
  if (unfired_ != windows_.end()) next_trigger_ = unfired_->second->max_timestamp();
  if (windows_.begin() != unfired_) {
    next_trigger_ = std::min(next_trigger_, Due(*windows_.begin()->second));
  }
}

void WindowStep::Advance(int64_t w) {
  if (w <= wm_) return;
  wm_ = w;
  Progress::Raise(ctx_.progress.window_watermark, w);
  if (w < next_trigger_) return;
  for (; unfired_ != windows_.end() && unfired_->second->max_timestamp() <= w; ++unfired_) {
    Window& win = *unfired_->second;
    entries_.resize(win.keys.size());
    std::iota(entries_.begin(), entries_.end(), 0u);
    EmitResults(win.keys, entries_.data(), win.slots.data(), win.keys.size(), win.start, win.end);
    win.fired = true;
  }
  while (windows_.begin() != unfired_) {
    auto it = windows_.begin();
    Window& win = *it->second;
    if (!Late(win.max_timestamp()) && w != kMaxTime) break;
    for (uint32_t slot : win.slots) aggs_.Free(slot);
    if (cached_ == &win) cached_ = nullptr;
    spare_.push_back(std::move(it->second));
    windows_.erase(it);
  }
  Recompute();
}

void WindowStep::PushSessions(RecordBatch& b) {
  const int64_t* t = b.time.data();
  const int64_t gap = window_.gap_ms;
  for (size_t i = 0; i < b.rows; ++i) {
    if (skip_[i]) continue;
    Observe(b, i);
    const int64_t ts = t[i];
    uint32_t entry = session_keys_.FindOrInsertRow(b, config_.key_columns, Hash(i), i);
    if (entry == sessions_.size()) sessions_.emplace_back();
    std::vector<Session>& list = sessions_[entry];
    int64_t start = ts, end = SatAdd(ts, gap);
    // Sessions that intersect [ts, ts + gap) (touching counts, as in Flink) merge with it.
    size_t first = list.size(), last = 0;
    for (size_t k = 0; k < list.size(); ++k) {
      if (list[k].start <= end && list[k].end >= ts) {
        first = std::min(first, k);
        last = k;
        start = std::min(start, list[k].start);
        end = std::max(end, list[k].end);
      }
    }
    if (Late(end - 1)) {
      SendLate(b, i);
      continue;
    }
    Session* target;
    if (first == list.size()) {
      auto pos = std::lower_bound(list.begin(), list.end(), start,
                                  [](const Session& s, int64_t v) { return s.start < v; });
      target = &*list.insert(pos, Session{start, end, aggs_.Allocate(), false, kMinTime});
    } else {
      target = &list[first];
      for (size_t k = first + 1; k <= last; ++k) {
        aggs_.Merge(target->slot, list[k].slot);
        aggs_.Free(list[k].slot);
        target->fired = target->fired || list[k].fired;
      }
      list.erase(list.begin() + static_cast<ptrdiff_t>(first) + 1,
                 list.begin() + static_cast<ptrdiff_t>(last) + 1);
      target->start = start;
      target->end = end;
      // The merged session is a new window: if it now ends after the watermark it fires again
      // when the watermark gets there (Flink's trigger onMerge).
      if (end - 1 > wm_) target->fired = false;
    }
    uint32_t row = static_cast<uint32_t>(i);
    aggs_.Update(&target->slot, &row, 1, args_, order_);
    if (end - 1 <= wm_) {
      // The watermark is already past this session's end: fire now (a late firing).
      EmitResults(session_keys_, &entry, &target->slot, 1, start, end);
      target->fired = true;
    }
    int64_t due = target->fired ? SatAdd(end - 1, window_.lateness_ms) : end - 1;
    if (due > wm_ && (target->armed <= wm_ || target->armed > due)) {
      target->armed = due;
      timers_.push({due, entry});
      next_trigger_ = std::min(next_trigger_, due);
    }
  }
}

void WindowStep::AdvanceSessions(int64_t w) {
  if (w <= wm_) return;
  wm_ = w;
  Progress::Raise(ctx_.progress.window_watermark, w);
  while (!timers_.empty() && timers_.top().time <= w) {
    uint32_t entry = timers_.top().entry;
    timers_.pop();
    std::vector<Session>& list = sessions_[entry];
    for (auto it = list.begin(); it != list.end();) {
      int64_t max_ts = it->end - 1;
      if (max_ts <= w && !it->fired) {
        EmitResults(session_keys_, &entry, &it->slot, 1, it->start, it->end);
        it->fired = true;
      }
      if (it->fired && (Late(max_ts) || w == kMaxTime)) {
        aggs_.Free(it->slot);
        it = list.erase(it);
        continue;
      }
      int64_t due = it->fired ? SatAdd(max_ts, window_.lateness_ms) : max_ts;
      if (due > wm_ && (it->armed <= wm_ || it->armed > due)) {
        it->armed = due;
        timers_.push({due, entry});
      }
      ++it;
    }
  }
  next_trigger_ = timers_.empty() ? kMaxTime : timers_.top().time;
}

void WindowStep::Watermark(stream::EventTime w) {
  stream::Guarded(name(), [&] {
    if (window_.kind == WindowSpec::Kind::kSession) {
      AdvanceSessions(w);
    } else {
      Advance(w);
    }
  });
  FlushOut();
  FlushLate();
  out_.target().Watermark(w);
  if (late_.connected()) late_.target().Watermark(w);
}

void WindowStep::End() {
  stream::Guarded(name(), [&] {
    if (window_.kind == WindowSpec::Kind::kSession) {
      AdvanceSessions(kMaxTime);
    } else {
      Advance(kMaxTime);
    }
  });
  FlushOut();
  FlushLate();
  out_.target().End();
  if (late_.connected()) late_.target().End();
}

void WindowStep::Idle() {
  FlushOut();
  FlushLate();
  out_.target().Idle();
  if (late_.connected()) late_.target().Idle();
}

void WindowStep::MarkIdle() {
  FlushOut();
  FlushLate();
  out_.target().MarkIdle();
  if (late_.connected()) late_.target().MarkIdle();
}

void WindowStep::Barrier(uint64_t id) {
  FlushOut();
  FlushLate();
  TakeSnapshot(id);
  out_.target().Barrier(id);
  if (late_.connected()) late_.target().Barrier(id);
}

// The state: the watermark, the aggregates' shared state, then per window (tumbling, sliding)
// its exact start, whether it fired, its keys and each key's aggregates; or per session key its
// sessions and the pending timers.
void WindowStep::Snapshot(uint64_t, stream::StateWriter& out) {
  out.Put(wm_);
  aggs_.SaveShared(out);
  if (window_.kind == WindowSpec::Kind::kSession) {
    SaveKeys(session_keys_, out);
    for (size_t e = 0; e < session_keys_.size(); ++e) {
      const std::vector<Session>& list =
          e < sessions_.size() ? sessions_[e] : std::vector<Session>{};
      out.Put<uint64_t>(list.size());
      for (const Session& s : list) {
        out.Put(s.start);
        out.Put(s.end);
        out.Put<uint8_t>(s.fired ? 1 : 0);
        out.Put(s.armed);
        aggs_.SaveSlot(s.slot, out);
      }
    }
    auto timers = timers_;
    out.Put<uint64_t>(timers.size());
    for (; !timers.empty(); timers.pop()) {
      out.Put(timers.top().time);
      out.Put(timers.top().entry);
    }
    return;
  }
  out.Put<uint64_t>(windows_.size());
  for (const auto& [start, w] : windows_) {
    out.Put(start);
    out.Put<uint8_t>(w->fired ? 1 : 0);
    SaveKeys(w->keys, out);
    for (uint32_t slot : w->slots) aggs_.SaveSlot(slot, out);
  }
}

Status WindowStep::Restore(stream::StateReader& in) {
  std::vector<Type> types;
  for (size_t k = 0; k < config_.key_columns.size(); ++k) {
    types.push_back(config_.output->fields[k].type);
  }
  wm_ = in.Get<int64_t>();
  aggs_.LoadShared(in);
  if (window_.kind == WindowSpec::Kind::kSession) {
    LoadKeys(session_keys_, types, in);
    sessions_.resize(session_keys_.size());
    for (std::vector<Session>& list : sessions_) {
      const uint64_t n = in.Get<uint64_t>();
      for (uint64_t i = 0; i < n; ++i) {
        Session s{};
        s.start = in.Get<int64_t>();
        s.end = in.Get<int64_t>();
        s.fired = in.Get<uint8_t>() != 0;
        s.armed = in.Get<int64_t>();
        s.slot = aggs_.LoadSlot(in);
        list.push_back(s);
      }
    }
    const uint64_t timers = in.Get<uint64_t>();
    for (uint64_t i = 0; i < timers; ++i) {
      Timer t{};
      t.time = in.Get<int64_t>();
      t.entry = in.Get<uint32_t>();
      if (t.entry >= sessions_.size()) throw stream::StateFormatError("a timer names no key");
      timers_.push(t);
    }
    next_trigger_ = timers_.empty() ? kMaxTime : timers_.top().time;
  } else {
    const uint64_t n = in.Get<uint64_t>();
    for (uint64_t i = 0; i < n; ++i) {
      const auto start = in.Get<stream::WindowGrid::Start>();
      const bool fired = in.Get<uint8_t>() != 0;
      Window* w = CreateWindow(start);
      if (w->fired != fired)
        throw stream::StateFormatError("a window's state disagrees with the watermark");
      LoadKeys(w->keys, types, in);
      for (size_t e = 0; e < w->keys.size(); ++e) w->slots.push_back(aggs_.LoadSlot(in));
    }
    Recompute();
  }
  if (wm_ != kMinTime) Progress::Raise(ctx_.progress.window_watermark, wm_);
  return Status::Ok();
}

// ---- RollingStep

RollingStep::RollingStep(std::string name, RunContext& ctx, KeyedConfig config)
    : BatchOperator(std::move(name)),
      ctx_(ctx),
      config_(std::move(config)),
      aggs_(config_.aggregates),
      states_(config_.aggregates.size()),
      scratch_(config_.aggregates.size()) {
  std::vector<Type> types;
  for (size_t k = 0; k < config_.key_columns.size(); ++k) {
    types.push_back(config_.output->fields[k].type);
  }
  keys_ = KeyTable(types);
}

void RollingStep::Push(stream::Batch<BatchPtr>& in) {
  CountIn(in);
  stream::Guarded(name(), [&] {
    for (BatchPtr& ptr : in.records) {
      RecordBatch& b = *ptr;
      EvaluateArguments(b, config_.aggregates, states_, scratch_, args_, errors_);
      std::vector<uint8_t> skip(b.rows, 0);
      if (!errors_.empty()) {
        ReportBadRows(b, errors_, config_.label, "", *ctx_.bad);
        for (const RowError& e : errors_) skip[e.row] = 1;
      }
      if (keys_.uses_hashes()) HashKeys(b, config_.key_columns, hashes_);
      rows_.clear();
      for (size_t i = 0; i < b.rows; ++i) {
        if (!skip[i]) rows_.push_back(static_cast<uint32_t>(i));
      }
      entries_.resize(rows_.size());
      keys_.FindOrInsert(b, config_.key_columns, keys_.uses_hashes() ? hashes_.data() : nullptr,
                         rows_.data(), rows_.size(), entries_.data());
      aggs_.ResizeDense(keys_.size());
      const int64_t* order = b.origin.empty() ? nullptr : b.origin.data();
      BatchPtr out = ctx_.pool.Get(config_.output);
      RecordBatch& o = *out;
      const size_t nkeys = config_.key_columns.size();
      // Each record's result must show the state right after it: update and emit in runs in
      // which no key repeats.
      stamp_.resize(keys_.size(), 0);
      std::vector<std::pair<size_t, std::string>> overflowed, overflow_run;
      size_t begin = 0;
      auto flush_run = [&](size_t end) {
        if (end == begin) return;
        aggs_.Update(entries_.data() + begin, rows_.data() + begin, end - begin, args_, order);
        overflow_run.clear();
        aggs_.Emit(entries_.data() + begin, end - begin, o.columns, nkeys, overflow_run);
        for (auto& [k, why] : overflow_run) overflowed.emplace_back(begin + k, std::move(why));
        begin = end;
        ++run_;
      };
      ++run_;
      for (size_t k = 0; k < rows_.size(); ++k) {
        if (stamp_[entries_[k]] == run_) flush_run(k);
        stamp_[entries_[k]] = run_;
      }
      flush_run(rows_.size());
      for (size_t k = 0; k < nkeys; ++k) {
        o.columns[k].AppendRows(b.columns[static_cast<size_t>(config_.key_columns[k])],
                                rows_.data(), rows_.size());
      }
      o.rows = rows_.size();
      if (!b.time.empty()) {
        o.time.resize(o.rows);
        for (size_t k = 0; k < o.rows; ++k) o.time[k] = b.time[rows_[k]];
      }
      if (!b.origin.empty()) {
        o.origin.resize(o.rows);
        for (size_t k = 0; k < o.rows; ++k) o.origin[k] = b.origin[rows_[k]];
      }
      if (!overflowed.empty()) DropOverflowedRows(o, 0, overflowed, config_.label, *ctx_.bad);
      ptr = std::move(out);
    }
  });
  if (!in.records.empty() && in.records[0]->rows == 0) in.records.clear();
  out_.Push(in, metrics());
}

void RollingStep::Snapshot(uint64_t, stream::StateWriter& out) {
  aggs_.SaveShared(out);
  SaveKeys(keys_, out);
  for (uint32_t e = 0; e < keys_.size(); ++e) aggs_.SaveSlot(e, out);
}

Status RollingStep::Restore(stream::StateReader& in) {
  std::vector<Type> types;
  for (size_t k = 0; k < config_.key_columns.size(); ++k) {
    types.push_back(config_.output->fields[k].type);
  }
  aggs_.LoadShared(in);
  LoadKeys(keys_, types, in);
  aggs_.ResizeDense(keys_.size());
  for (uint32_t e = 0; e < keys_.size(); ++e) aggs_.LoadSlotAt(e, in);
  return Status::Ok();
}

}  // namespace barge::pipeline
