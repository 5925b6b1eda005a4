// Two-stream joins. An interval join pairs records of two keyed streams whose event times are
// close: a.time + lower <= b.time <= a.time + upper (Flink's IntervalJoin). Both inputs travel
// as one tagged stream, hash-partitioned by key, into one operator.
#pragma once

#include <algorithm>
#include <cassert>
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

template <class A, class B, class K, class KeyFn, class F, class Out>
class IntervalJoinOperator final : public Operator<JoinInput<A, B>, Out> {
 public:
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
        if (watermark_ != kMinTime && t <= watermark_) {
          OperatorMetrics::Add(this->metrics().late_records, 1);  // as Flink: late is dropped
          continue;
        }
        Buffers& buf = *state_.FindOrInsert(key_fn_(r)).first;
        if (r.is_left()) {
          // Partners b have t + lower <= b.time <= t + upper.
          EventTime hi = SatAdd(t, upper_);
          for (auto it = FirstAtOrAfter(buf.right, SatAdd(t, lower_));
               it != buf.right.end() && it->first <= hi; ++it) {
            Emit(f_(r.left(), it->second), std::max(t, it->first));
          }
          InsertSorted(buf.left, t, r.left());
        } else {
          // Partners a have t - upper <= a.time <= t - lower.
          EventTime hi = SatSub(t, lower_);
          for (auto it = FirstAtOrAfter(buf.left, SatSub(t, upper_));
               it != buf.left.end() && it->first <= hi; ++it) {
            Emit(f_(it->second, r.right()), std::max(t, it->first));
          }
          InsertSorted(buf.right, t, r.right());
        }
      }
      this->out_.Flush(this->metrics());
    });
  }

  void Watermark(EventTime w) override {
    if (w <= watermark_) return;
    watermark_ = w;
    // Drop what no future record can match; amortized over watermarks.
    EventTime width = std::max<EventTime>(1, SatSub(upper_, lower_));
    if (last_cleanup_ == kMinTime || SatSub(w, last_cleanup_) >= width) {
      last_cleanup_ = w;
      Cleanup(w);
    }
    this->out_.target().Watermark(w);
  }

 private:
  // Per key, each side's records sorted by time: matches are a binary search and a scan of
  // exactly the partners; expiry cuts a prefix. Records arrive nearly in time order, so an
  // insertion moves few elements.
  struct Buffers {
    std::vector<std::pair<EventTime, A>> left;
    std::vector<std::pair<EventTime, B>> right;
  };

  template <class V>
  static auto FirstAtOrAfter(std::vector<std::pair<EventTime, V>>& v, EventTime t) {
    return std::lower_bound(v.begin(), v.end(), t,
                            [](const auto& e, EventTime x) { return e.first < x; });
  }
  template <class V>
  static auto FirstAfter(std::vector<std::pair<EventTime, V>>& v, EventTime t) {
    return std::upper_bound(v.begin(), v.end(), t,
                            [](EventTime x, const auto& e) { return x < e.first; });
  }
  template <class V>
  static void InsertSorted(std::vector<std::pair<EventTime, V>>& v, EventTime t, const V& value) {
    if (v.empty() || v.back().first <= t) {
      v.emplace_back(t, value);
    } else {
      v.emplace(FirstAfter(v, t), t, value);
    }
  }

  void Emit(Out value, EventTime ts) {
    Batch<Out>& b = this->out_.scratch();
    b.records.push_back(std::move(value));
    b.timestamps.push_back(ts);
    if (b.size() >= batch_size_) this->out_.Flush(this->metrics());
  }

  void Cleanup(EventTime w) {
    std::vector<K> empty;
    state_.ForEach([&](const K& key, Buffers& buf) {
      // Left a can still match a future b (b.time > w) while a.time + upper > w; right b can
      // match a future a while b.time - lower > w.
      buf.left.erase(buf.left.begin(), FirstAfter(buf.left, SatSub(w, upper_)));
      buf.right.erase(buf.right.begin(), FirstAfter(buf.right, SatAdd(w, lower_)));
      if (buf.left.empty() && buf.right.empty()) empty.push_back(key);
    });
    for (const K& k : empty) state_.Erase(k);
  }

  KeyFn key_fn_;
  EventTime lower_, upper_;
  F f_;
  size_t batch_size_;
  KeyedTable<K, Buffers> state_;
  EventTime watermark_ = kMinTime;
  EventTime last_cleanup_ = kMinTime;
};

}  // namespace barge::stream
