// Event-time windows over keyed streams: tumbling, sliding and session windows, fired by
// watermarks, with allowed lateness and a side output for records that come too late.
//
// Semantics follow Flink's event-time WindowOperator:
// - A window [start, end) fires when the watermark reaches end - 1 (its max timestamp).
// - A window is late when end - 1 + allowed_lateness <= the current watermark: it takes no more
//   records, and its state is dropped.
// - A record that no window took (each of its windows was late, or a sliding assigner with
//   slide > size put it in none) goes to the late-records port, or is counted and dropped
//   (OperatorMetrics::late_records), when it is itself late: ts + allowed_lateness <= watermark.
//   A record some window took is never late, and a record in a gap between sliding windows that
//   is not late vanishes uncounted, as in Flink.
// - A record that lands in a window whose end - 1 <= watermark but within the lateness fires
//   that window again for its key at once (a late firing with the updated result).
// - End of input fires every open window.
//
// Exact over the whole int64 range: window starts are computed in 128 bits and never wrap. A
// window that begins before INT64_MIN reports start INT64_MIN, one that ends after INT64_MAX
// reports end INT64_MAX; either way it holds exactly the records it would without the clamp,
// because event time INT64_MAX itself is refused at with_timestamps (it is the watermark that
// means end of input).
#pragma once

#include <algorithm>
#include <compare>
#include <cstdint>
#include <map>
#include <queue>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "barge/stream/keyed_table.h"
#include "barge/stream/operator.h"

namespace barge::stream {

// A window's bounds, clamped into the int64 range (see WindowGrid).
struct TimeWindow {
  EventTime start = 0;
  EventTime end = 0;  // exclusive
  EventTime max_timestamp() const { return end - 1; }
  bool operator==(const TimeWindow&) const = default;
};

// Assigners, as users name them.
struct Tumbling {
  EventTime size;
  EventTime offset = 0;
};
struct Sliding {
  EventTime size;
  EventTime slide;
  EventTime offset = 0;
};
struct Session {
  EventTime gap;
};

// The value a window aggregation emits when the user gives no result function.
template <class K, class V>
struct WindowResult {
  K key{};
  EventTime start = 0;
  EventTime end = 0;
  V value{};
  auto operator<=>(const WindowResult&) const = default;
};

// a mod b in [0, b), for b > 0.
inline EventTime FloorMod(EventTime a, EventTime b) {
  EventTime m = a % b;
  return m < 0 ? m + b : m;
}

// The windows of a tumbling (slide == size) or sliding assigner: [offset + k * slide,
// offset + k * slide + size) for every integer k. Starts are exact 128-bit values, so windows at
// the ends of the int64 range neither wrap nor collide; Bounds() clamps them for reporting.
class WindowGrid {
 public:
  using Start = __int128;

  // size > 0 and slide > 0 (validated when the window is declared); any offset.
  WindowGrid(EventTime size, EventTime slide, EventTime offset)
      : size_(size), slide_(slide), offset_(FloorMod(offset, slide)) {}

  EventTime size() const { return size_; }
  EventTime slide() const { return slide_; }

  // The start of the latest window that holds t (every window holding t starts at
  // LastStart(t) - j * slide for j >= 0 while Holds).
  Start LastStart(EventTime t) const {
    EventTime rem = FloorMod(t, slide_) - offset_;  // both in [0, slide): cannot overflow
    if (rem < 0) rem += slide_;
    return Start{t} - rem;
  }
  // Whether the window starting at `start` (<= t) still holds t.
  bool Holds(Start start, EventTime t) const { return start + size_ > t; }

  // The window's bounds as users see them: clamped into [kMinTime, kMaxTime]. Records are below
  // kMaxTime, so end - 1 is the last timestamp any record of the window can have.
  TimeWindow Bounds(Start start) const { return {Clamp(start), Clamp(start + size_)}; }

  static EventTime Clamp(Start v) {
    if (v < Start{kMinTime}) return kMinTime;
    if (v > Start{kMaxTime}) return kMaxTime;
    return static_cast<EventTime>(v);
  }

 private:
  EventTime size_;
  EventTime slide_;
  EventTime offset_;  // in [0, slide)
};

// How a window operator folds records: Acc init(); void add(Acc&, const T&);
// void merge(Acc&, const Acc&) (session windows); Out result(const K&, const TimeWindow&,
// const Acc&).
template <class Init, class Add, class Merge, class Result>
struct Aggregation {
  Init init;
  Add add;
  Merge merge;
  Result result;
};

// Shared machinery: event-time bookkeeping, lateness, emitting results and late records.
template <class T, class Out>
class WindowOperatorBase : public Operator<T, Out> {
 public:
  WindowOperatorBase(std::string name, EventTime allowed_lateness, size_t batch_size)
      : Operator<T, Out>(std::move(name)),
        allowed_lateness_(allowed_lateness),
        batch_size_(batch_size) {}

  OutputBase* Port(int port) override {
    if (port == 0) return &this->out_;
    if (port == 1) return &late_;
    return nullptr;
  }

  // Fires what the watermark completes, then forwards it on both ports.
  void Watermark(EventTime w) override {
    Guarded(this->name(), [&] { Advance(w); });
    ForwardWatermark(w);
  }

  // End of input fires every open window.
  void End() override {
    Guarded(this->name(), [&] { Advance(kMaxTime); });
    ForwardEnd();
  }

  // Late firings and late records do not wait for a full batch when the task goes idle.
  void Idle() override {
    FlushOut();
    FlushLate();
    this->out_.target().Idle();
    if (late_.connected()) late_.target().Idle();
  }

  void MarkIdle() override {
    FlushOut();
    FlushLate();
    this->out_.target().MarkIdle();
    if (late_.connected()) late_.target().MarkIdle();
  }

  // Results and late records held back go out before the barrier, on both ports.
  void Barrier(uint64_t id) override {
    FlushOut();
    FlushLate();
    this->TakeSnapshot(id);
    this->out_.target().Barrier(id);
    if (late_.connected()) late_.target().Barrier(id);
  }

 protected:
  // Moves event time to `w` (> the current watermark, or kMaxTime at the end): emits the windows
  // it completes and purges the ones past their lateness.
  virtual void Advance(EventTime w) = 0;

  // A window is late once the watermark reached its max timestamp plus the allowed lateness.
  bool IsLate(EventTime window_max_timestamp) const {
    // In 128 bits: the sum may pass INT64_MAX (and a saturated difference would be wrong at
    // INT64_MIN).
    return watermark_ != kMinTime &&
           __int128{window_max_timestamp} + allowed_lateness_ <= __int128{watermark_};
  }
  // A record is late on the same terms, by its own timestamp (Flink's isElementLate).
  bool IsLateRecord(EventTime ts) const { return IsLate(ts); }

  void RequireTimestamps(const Batch<T>& in) {
    if (in.timestamps.empty() && !in.records.empty()) {
      throw OperatorFailure(this->name(),
                            "records carry no event time: assign timestamps at the source "
                            "(with_timestamps) before windowing");
    }
  }

  void SendLate(const T& record, EventTime ts) {
    OperatorMetrics::Add(this->metrics().late_records, 1);
    if (!late_.connected()) return;
    Batch<T>& b = late_.scratch();
    b.records.push_back(record);
    b.timestamps.push_back(ts);
    if (b.size() >= batch_size_) late_.Flush(this->metrics());
  }
  void FlushLate() {
    if (late_.connected()) late_.Flush(this->metrics());
  }

  void Emit(Out value, EventTime ts) {
    Batch<Out>& b = this->out_.scratch();
    b.records.push_back(std::move(value));
    b.timestamps.push_back(ts);
    if (b.size() >= batch_size_) this->out_.Flush(this->metrics());
  }
  void FlushOut() { this->out_.Flush(this->metrics()); }

  // Forwards the watermark to both ports after results are out.
  void ForwardWatermark(EventTime w) {
    FlushOut();
    FlushLate();
    this->out_.target().Watermark(w);
    if (late_.connected()) late_.target().Watermark(w);
  }
  void ForwardEnd() {
    FlushOut();
    FlushLate();
    this->out_.target().End();
    if (late_.connected()) late_.target().End();
  }

  EventTime watermark_ = kMinTime;
  EventTime allowed_lateness_;
  size_t batch_size_;
  Output<T> late_;
};

// Tumbling and sliding windows: each window keeps a KeyedTable of accumulators.
template <class T, class K, class Out, class Acc, class KeyFn, class Agg, class Assigner>
class TimeWindowOperator final : public WindowOperatorBase<T, Out> {
 public:
  TimeWindowOperator(std::string name, KeyFn key_fn, Agg agg, Assigner assigner,
                     EventTime allowed_lateness, size_t batch_size)
      : WindowOperatorBase<T, Out>(std::move(name), allowed_lateness, batch_size),
        key_fn_(std::move(key_fn)),
        agg_(std::move(agg)),
        grid_(MakeGrid(assigner)) {}

  void Push(Batch<T>& in) override {
    this->CountIn(in);
    Guarded(this->name(), [&] {
      this->RequireTimestamps(in);
      const T* r = in.records.data();
      const EventTime* ts = in.timestamps.data();
      for (size_t i = 0, n = in.size(); i < n; ++i) {
        EventTime t = ts[i];
        if constexpr (std::is_same_v<Assigner, Tumbling>) {
          // Fast path: most records fall into the window the previous one did.
          if (cached_ == nullptr || t < cached_->bounds.start || t >= cached_->bounds.end) {
            if (!Locate(grid_.LastStart(t))) {
              // Its one window is late, so the record is too (t <= the window's end - 1).
              this->SendLate(r[i], t);
              continue;
            }
          }
          AddTo(*cached_, r[i]);
        } else {
          bool accepted = false;
          for (WindowGrid::Start s = grid_.LastStart(t); grid_.Holds(s, t); s -= grid_.slide()) {
            if (Locate(s)) {
              AddTo(*cached_, r[i]);
              accepted = true;
            }
          }
          if (!accepted && this->IsLateRecord(t)) this->SendLate(r[i], t);
        }
      }
    });
  }

  size_t open_windows() const { return windows_.size(); }

  // Checkpoints: the watermark and every open window with its accumulators, as bytes
  // (kSavableAsBytes); other types are refused.
  static constexpr bool kSavable = kSavableAsBytes<K, Acc>;
  Status CheckpointSupport() const override {
    return SavableAsBytes<K, Acc>(this->name(), "a window");
  }
  void Snapshot(uint64_t, StateWriter& out) override {
    if constexpr (kSavable) {
      out.Put(this->watermark_);
      out.Put<uint64_t>(windows_.size());
      for (auto& [start, w] : windows_) {
        out.Put(start);
        out.Put(w.bounds);
        out.Put<uint8_t>(w.fired ? 1 : 0);
        SaveTable(w.table, out);
      }
    }
  }
  Status Restore(StateReader& in) override {
    if constexpr (kSavable) {
      this->watermark_ = in.Get<EventTime>();
      windows_.clear();
      cached_ = nullptr;
      for (uint64_t n = in.Get<uint64_t>(); n > 0; --n) {
        const auto start = in.Get<WindowGrid::Start>();
        const TimeWindow bounds = in.Get<TimeWindow>();
        if (bounds.start != grid_.Bounds(start).start || bounds.end != grid_.Bounds(start).end) {
          return InvalidArgument("its windows in the checkpoint are not this operator's (" +
                                 std::to_string(bounds.start) + ".." + std::to_string(bounds.end) +
                                 "): the window changed");
        }
        Window& w = windows_[start];
        w.bounds = bounds;
        w.fired = in.Get<uint8_t>() != 0;
        LoadTable(in, w.table);
      }
    }
    return Status::Ok();
  }

 private:
  struct Window {
    TimeWindow bounds;
    KeyedTable<K, Acc> table;
    bool fired = false;
  };

  static WindowGrid MakeGrid(const Assigner& a) {
    if constexpr (std::is_same_v<Assigner, Tumbling>) {
      return WindowGrid(a.size, a.size, a.offset);
    } else {
      return WindowGrid(a.size, a.slide, a.offset);
    }
  }

  // Points cached_ at the window starting at `start`, creating it; false if it is late.
  bool Locate(WindowGrid::Start start) {
    const TimeWindow bounds = grid_.Bounds(start);
    if (this->IsLate(bounds.max_timestamp())) return false;
    auto it = windows_.find(start);
    if (it == windows_.end()) {
      it = windows_.emplace(start, Window{}).first;
      it->second.bounds = bounds;
      // A window first seen after the watermark passed its end (within the lateness) counts as
      // fired: each record then re-emits its key's result at once.
      it->second.fired = this->watermark_ != kMinTime && bounds.max_timestamp() <= this->watermark_;
    }
    cached_ = &it->second;
    return true;
  }

  void AddTo(Window& w, const T& record) {
    const K key = key_fn_(record);
    auto [acc, inserted] = w.table.FindOrInsert(key);
    if (inserted) *acc = agg_.init();
    agg_.add(*acc, record);
    // A window the watermark already passed fires again for this key (late firing).
    if (w.fired) this->Emit(agg_.result(key, w.bounds, *acc), w.bounds.max_timestamp());
  }

  void Advance(EventTime w) override {
    if (w <= this->watermark_) return;
    this->watermark_ = w;
    for (auto it = windows_.begin(); it != windows_.end();) {
      Window& win = it->second;
      EventTime max_ts = win.bounds.max_timestamp();
      if (max_ts > w) break;  // ordered by start, and all windows have one size
      if (!win.fired) {
        win.table.ForEach(
            [&](const K& key, Acc& acc) { this->Emit(agg_.result(key, win.bounds, acc), max_ts); });
        win.fired = true;
      }
      if (this->IsLate(max_ts) || w == kMaxTime) {
        if (cached_ == &win) cached_ = nullptr;
        it = windows_.erase(it);
      } else {
        ++it;
      }
    }
  }

  KeyFn key_fn_;
  Agg agg_;
  WindowGrid grid_;
  std::map<WindowGrid::Start, Window> windows_;  // by exact start
  Window* cached_ = nullptr;
};

// Session windows: per key, a set of disjoint sessions that merge when a record bridges them.
template <class T, class K, class Out, class Acc, class KeyFn, class Agg>
class SessionWindowOperator final : public WindowOperatorBase<T, Out> {
 public:
  SessionWindowOperator(std::string name, KeyFn key_fn, Agg agg, Session assigner,
                        EventTime allowed_lateness, size_t batch_size)
      : WindowOperatorBase<T, Out>(std::move(name), allowed_lateness, batch_size),
        key_fn_(std::move(key_fn)),
        agg_(std::move(agg)),
        gap_(assigner.gap) {}

  // Checkpoints: the watermark, the gap, and every key's sessions (bounds, accumulator, whether
  // fired), as bytes (kSavableAsBytes); other types are refused. Timers are not saved: a restore
  // arms each session's next one again.
  static constexpr bool kSavable = kSavableAsBytes<K, Acc>;
  Status CheckpointSupport() const override {
    return SavableAsBytes<K, Acc>(this->name(), "a session window");
  }
  void Snapshot(uint64_t, StateWriter& out) override {
    if constexpr (kSavable) {
      out.Put(this->watermark_);
      out.Put(gap_);
      out.Put<uint64_t>(state_.size());
      state_.ForEach([&](const K& key, Sessions& sessions) {
        out.Put(key);
        out.Put<uint64_t>(sessions.size());
        for (const SessionState& s : sessions) {
          out.Put(s.bounds);
          out.Put(s.acc);
          out.Put<uint8_t>(s.fired ? 1 : 0);
        }
      });
    }
  }
  Status Restore(StateReader& in) override {
    if constexpr (kSavable) {
      this->watermark_ = in.Get<EventTime>();
      if (const auto gap = in.Get<EventTime>(); gap != gap_) {
        return InvalidArgument("its session gap in the checkpoint is " + std::to_string(gap) +
                               ", not " + std::to_string(gap_) + ": the window changed");
      }
      state_.Clear();
      timers_ = {};
      for (uint64_t keys = in.Get<uint64_t>(); keys > 0; --keys) {
        const K key = in.Get<K>();
        Sessions& sessions = *state_.FindOrInsert(key).first;
        sessions.clear();
        for (uint64_t n = in.Get<uint64_t>(); n > 0; --n) {
          SessionState& s = sessions.emplace_back();
          s.bounds = in.Get<TimeWindow>();
          s.acc = in.Get<Acc>();
          s.fired = in.Get<uint8_t>() != 0;
        }
        for (SessionState& s : sessions) Arm(s, key);
      }
    }
    return Status::Ok();
  }

  void Push(Batch<T>& in) override {
    this->CountIn(in);
    Guarded(this->name(), [&] {
      this->RequireTimestamps(in);
      for (size_t i = 0, n = in.size(); i < n; ++i) Add(in.records[i], in.timestamps[i]);
    });
  }

 private:
  struct SessionState {
    TimeWindow bounds;
    Acc acc;
    bool fired = false;
    EventTime armed = kMinTime;  // time of this session's pending timer
  };
  using Sessions = std::vector<SessionState>;  // disjoint, sorted by start

  void Add(const T& record, EventTime ts) {
    const K key = key_fn_(record);
    Sessions& sessions = *state_.FindOrInsert(key).first;
    TimeWindow merged{ts, SatAdd(ts, gap_)};
    // Sessions that intersect [ts, ts + gap) (touching counts, as in Flink) merge with it.
    size_t first = sessions.size(), last = 0;
    for (size_t i = 0; i < sessions.size(); ++i) {
      const TimeWindow& b = sessions[i].bounds;
      if (b.start <= merged.end && b.end >= ts) {
        first = std::min(first, i);
        last = i;
        merged.start = std::min(merged.start, b.start);
        merged.end = std::max(merged.end, b.end);
      }
    }
    if (this->IsLate(merged.max_timestamp())) {
      this->SendLate(record, ts);
      return;
    }
    const bool created = first == sessions.size();
    SessionState* target;
    if (created) {
      auto pos = std::lower_bound(
          sessions.begin(), sessions.end(), merged.start,
          [](const SessionState& s, EventTime start) { return s.bounds.start < start; });
      target = &*sessions.insert(pos, SessionState{merged, agg_.init(), false, kMinTime});
    } else {
      target = &sessions[first];
      for (size_t i = first + 1; i <= last; ++i) {
        agg_.merge(target->acc, sessions[i].acc);
        target->fired = target->fired || sessions[i].fired;
      }
      sessions.erase(sessions.begin() + static_cast<ptrdiff_t>(first) + 1,
                     sessions.begin() + static_cast<ptrdiff_t>(last) + 1);
      target->bounds = merged;
      // The merged session is a new window: if it now ends after the watermark it fires again
      // when the watermark gets there (Flink's trigger onMerge).
      if (merged.max_timestamp() > this->watermark_) target->fired = false;
    }
    agg_.add(target->acc, record);
    if (merged.max_timestamp() <= this->watermark_) {
      // The watermark is already past this session's end: fire now (late firing).
      this->Emit(agg_.result(key, merged, target->acc), merged.max_timestamp());
      target->fired = true;
    }
    Arm(*target, key);
  }

  void Advance(EventTime w) override {
    if (w <= this->watermark_) return;
    this->watermark_ = w;
    while (!timers_.empty() && timers_.top().time <= w) {
      K key = timers_.top().key;
      timers_.pop();
      Sessions* sessions = state_.Find(key);
      if (sessions == nullptr) continue;
      for (auto it = sessions->begin(); it != sessions->end();) {
        EventTime max_ts = it->bounds.max_timestamp();
        if (max_ts <= w && !it->fired) {
          this->Emit(agg_.result(key, it->bounds, it->acc), max_ts);
          it->fired = true;
        }
        if (it->fired && (this->IsLate(max_ts) || w == kMaxTime)) {
          it = sessions->erase(it);
          continue;
        }
        Arm(*it, key);
        ++it;
      }
      if (sessions->empty()) state_.Erase(key);
    }
  }

  // Keeps one pending timer per session at its next due time: its end while open, its end plus
  // the allowed lateness (purge) once fired. Sessions grow and merge without re-arming on every
  // record; a timer that pops early re-arms here.
  void Arm(SessionState& s, const K& key) {
    EventTime max_ts = s.bounds.max_timestamp();
    EventTime due = s.fired ? SatAdd(max_ts, this->allowed_lateness_) : max_ts;
    if (due <= this->watermark_) return;  // already due: Advance handles it in this pass
    if (s.armed <= this->watermark_ || s.armed > due) {
      s.armed = due;
      timers_.push({due, key});
    }
  }

  struct Timer {
    EventTime time;
    K key;
    bool operator>(const Timer& o) const { return time > o.time; }
  };

  KeyFn key_fn_;
  Agg agg_;
  EventTime gap_;
  KeyedTable<K, Sessions> state_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
};

}  // namespace barge::stream
