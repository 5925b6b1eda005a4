// Two-stream joins. An interval join pairs records of two keyed streams whose event times are
// close: a.time + lower <= b.time <= a.time + upper (Flink's IntervalJoin). Both inputs travel
// as one tagged stream, hash-partitioned by key, into one operator.
#pragma once

#include <algorithm>
#include <cassert>
#include <functional>
#include <queue>
#include <stdexcept>
#include <utility>
#include <variant>
#include <vector>

#include "barge/stream/keyed_table.h"
#include "barge/stream/operator.h"

namespace barge::stream {

// A record of either join input.
template <class A, class B>
class JoinInput {
 public:
  JoinInput() = default;
  static JoinInput Left(const A& a) { return JoinInput(std::in_place_index<0>, a); }
  static JoinInput Right(const B& b) { return JoinInput(std::in_place_index<1>, b); }

  bool is_left() const { return v_.index() == 0; }
  const A& left() const { return std::get<0>(v_); }
  const B& right() const { return std::get<1>(v_); }

 private:
  template <size_t I, class X>
  JoinInput(std::in_place_index_t<I> i, const X& x) : v_(i, x) {}
  std::variant<A, B> v_;
};

// Lateness follows Flink's IntervalJoinOperator: a record whose time is below the watermark
// (ts < watermark) is late, counted (OperatorMetrics::late_records) and dropped; every pair of
// records that are not late and fall within the bounds is emitted once, with the larger of the
// two times. A buffered record is dropped once no record that is not late can match it (left a:
// a.time + upper < watermark; right b: b.time - lower < watermark), by a per-key cleanup timer,
// so a watermark costs work only for the keys that have something to drop.
template <class A, class B, class K, class KeyFn, class F, class Out>
class IntervalJoinOperator final : public Operator<JoinInput<A, B>, Out> {
 public:
  // Checkpoints: the watermark, the bounds, and every key's buffered records of both sides, as
  // bytes (keys and records trivially copyable); other types are refused. Cleanup timers are not
  // saved: a restore arms each key's again.
  static constexpr bool kSavable = kSavableAsBytes<K, A, B>;
  Status CheckpointSupport() const override {
    return SavableAsBytes<K, A, B>(this->name(), "an interval join", "records");
  }
  void Snapshot(uint64_t, StateWriter& out) override {
    if constexpr (kSavable) {
      out.Put(watermark_);
      out.Put(lower_);
      out.Put(upper_);
      out.Put<uint64_t>(state_.size());
      state_.ForEach([&](const K& key, Buffers& buf) {
        out.Put(key);
        buf.left.Save(out);
        buf.right.Save(out);
      });
    }
  }
  Status Restore(StateReader& in) override {
    if constexpr (kSavable) {
      watermark_ = in.Get<EventTime>();
      const auto lower = in.Get<EventTime>();
      const auto upper = in.Get<EventTime>();
      if (lower != lower_ || upper != upper_) {
        return InvalidArgument("its bounds in the checkpoint are [" + std::to_string(lower) + ", " +
                               std::to_string(upper) + "], not [" + std::to_string(lower_) + ", " +
                               std::to_string(upper_) + "]: the join changed");
      }
      state_.Clear();
      timers_ = {};
      for (uint64_t keys = in.Get<uint64_t>(); keys > 0; --keys) {
        const K key = in.Get<K>();
        Buffers& buf = *state_.FindOrInsert(key).first;
        buf = Buffers{};
        buf.left.Load(in);
        buf.right.Load(in);
        Arm(key, buf);
      }
    }
    return Status::Ok();
  }
  using In = JoinInput<A, B>;

  IntervalJoinOperator(std::string name, KeyFn key_fn, EventTime lower, EventTime upper, F f,
                       size_t batch_size)
      : Operator<In, Out>(std::move(name)),
        key_fn_(std::move(key_fn)),
        lower_(lower),
        upper_(upper),
        f_(std::move(f)),
        batch_size_(batch_size) {
    assert(lower <= upper && "validated by KeyedStream::interval_join");
  }

  void Push(Batch<In>& in) override {
    this->CountIn(in);
    Guarded(this->name(), [&] {
      if (in.timestamps.empty()) {
        throw std::runtime_error(
            "records carry no event time: assign timestamps (with_timestamps) before joining");
      }
      for (size_t i = 0, n = in.size(); i < n; ++i) {
        const In& r = in.records[i];
        EventTime t = in.timestamps[i];
        if (t < watermark_) {
          OperatorMetrics::Add(this->metrics().late_records, 1);  // as Flink: late is dropped
          continue;
        }
        const K key = key_fn_(r);
        Buffers& buf = *state_.FindOrInsert(key).first;
        if (r.is_left()) {
          // Partners b have t + lower <= b.time <= t + upper.
          EventTime hi = SatAdd(t, upper_);
          for (auto it = buf.right.FirstAtOrAfter(SatAdd(t, lower_));
               it != buf.right.end() && it->first <= hi; ++it) {
            Emit(f_(r.left(), it->second), std::max(t, it->first));
          }
          buf.left.Insert(t, r.left());
        } else {
          // Partners a have t - upper <= a.time <= t - lower.
          EventTime hi = SatSub(t, lower_);
          for (auto it = buf.left.FirstAtOrAfter(SatSub(t, upper_));
               it != buf.left.end() && it->first <= hi; ++it) {
            Emit(f_(it->second, r.right()), std::max(t, it->first));
          }
          buf.right.Insert(t, r.right());
        }
        Arm(key, buf);
      }
      this->out_.Flush(this->metrics());
    });
  }

  void Watermark(EventTime w) override {
    if (w <= watermark_) return;
    watermark_ = w;
    Guarded(this->name(), [&] { Cleanup(w); });
    this->out_.target().Watermark(w);
  }

  // Keys with buffered records, and the records buffered (both sides).
  size_t buffered_keys() const { return state_.size(); }
  size_t buffered_records() {
    size_t n = 0;
    state_.ForEach([&](const K&, Buffers& b) { n += b.left.size() + b.right.size(); });
    return n;
  }

 private:
  // One side's records of one key, sorted by time. Matches are a binary search and a scan of
  // exactly the partners. Expiry drops a prefix by moving `head_`, and the vector is compacted
  // once the dropped prefix outweighs the rest, so dropping is amortized O(1) per record.
  // Records arrive nearly in time order, so an insertion moves few elements.
  template <class V>
  class TimeOrdered {
   public:
    using Item = std::pair<EventTime, V>;
    using Iterator = typename std::vector<Item>::const_iterator;

    bool empty() const { return head_ == items_.size(); }
    size_t size() const { return items_.size() - head_; }
    EventTime front_time() const { return items_[head_].first; }
    Iterator end() const { return items_.end(); }

    Iterator FirstAtOrAfter(EventTime t) const {
      return std::lower_bound(items_.begin() + static_cast<ptrdiff_t>(head_), items_.end(), t,
                              [](const Item& e, EventTime x) { return e.first < x; });
    }
    void Insert(EventTime t, const V& value) {
      if (items_.size() == head_ || items_.back().first <= t) {
        items_.emplace_back(t, value);
      } else {
        auto at = std::upper_bound(items_.begin() + static_cast<ptrdiff_t>(head_), items_.end(), t,
                                   [](EventTime x, const Item& e) { return x < e.first; });
        items_.emplace(at, t, value);
      }
    }
    // Checkpoints (V trivially copyable): the records not dropped, in time order.
    void Save(StateWriter& out) const {
      out.Put<uint64_t>(size());
      for (size_t i = head_; i < items_.size(); ++i) {
        out.Put(items_[i].first);
        out.Put(items_[i].second);
      }
    }
    void Load(StateReader& in) {
      items_.clear();
      head_ = 0;
      for (uint64_t n = in.Get<uint64_t>(); n > 0; --n) {
        const auto t = in.Get<EventTime>();
        items_.emplace_back(t, in.Get<V>());
      }
    }
    // Drops the records whose time is below `t`.
    void DropBefore(EventTime t) {
      head_ = static_cast<size_t>(FirstAtOrAfter(t) - items_.begin());
      if (head_ == items_.size()) {
        items_.clear();
        head_ = 0;
      } else if (head_ * 2 > items_.size()) {
        items_.erase(items_.begin(), items_.begin() + static_cast<ptrdiff_t>(head_));
        head_ = 0;
      }
    }

   private:
    std::vector<Item> items_;
    size_t head_ = 0;  // items_[0, head_) are dropped
  };

  struct Buffers {
    TimeOrdered<A> left;
    TimeOrdered<B> right;
    EventTime armed = kMinTime;  // time of this key's pending cleanup timer; kMinTime: none
  };

  // The first watermark at which something of `buf` can be dropped: the oldest left a once
  // a.time + upper < watermark, the oldest right b once b.time - lower < watermark.
  EventTime Due(const Buffers& buf) const {
    __int128 due = kMaxTime;
    if (!buf.left.empty()) due = std::min(due, __int128{buf.left.front_time()} + upper_ + 1);
    if (!buf.right.empty()) due = std::min(due, __int128{buf.right.front_time()} - lower_ + 1);
    return static_cast<EventTime>(std::clamp(due, __int128{kMinTime}, __int128{kMaxTime}));
  }

  // Keeps one pending timer per key, at its due time (or the next watermark, if that is
  // later). A timer made stale by an earlier one is skipped when it pops.
  void Arm(const K& key, Buffers& buf) {
    EventTime due = std::max(Due(buf), SatAdd(watermark_, 1));
    if (due == kMaxTime) return;  // nothing can expire before the end of input
    if (buf.armed == kMinTime || due < buf.armed) {
      buf.armed = due;
      timers_.push({due, key});
    }
  }

  void Cleanup(EventTime w) {
    while (!timers_.empty() && timers_.top().time <= w) {
      const Timer timer = timers_.top();
      timers_.pop();
      Buffers* buf = state_.Find(timer.key);
      if (buf == nullptr || buf->armed != timer.time) continue;  // stale
      buf->armed = kMinTime;
      // Keep left a while a.time + upper >= w, right b while b.time - lower >= w.
      buf->left.DropBefore(
          static_cast<EventTime>(std::max(__int128{w} - upper_, __int128{kMinTime})));
      buf->right.DropBefore(
          static_cast<EventTime>(std::min(__int128{w} + lower_, __int128{kMaxTime})));
      if (buf->left.empty() && buf->right.empty()) {
        state_.Erase(timer.key);
      } else {
        Arm(timer.key, *buf);
      }
    }
  }

  void Emit(Out value, EventTime ts) {
    Batch<Out>& b = this->out_.scratch();
    b.records.push_back(std::move(value));
    b.timestamps.push_back(ts);
    if (b.size() >= batch_size_) this->out_.Flush(this->metrics());
  }

  struct Timer {
    EventTime time;
    K key;
    bool operator>(const Timer& o) const { return time > o.time; }
  };

  KeyFn key_fn_;
  EventTime lower_, upper_;
  F f_;
  size_t batch_size_;
  KeyedTable<K, Buffers> state_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  EventTime watermark_ = kMinTime;
};

}  // namespace barge::stream
