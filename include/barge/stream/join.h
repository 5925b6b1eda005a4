// Two-stream joins. An interval join pairs records of two keyed streams whose event times are
// close: a.time + lower <= b.time <= a.time + upper (Flink's IntervalJoin). Both inputs travel
// as one tagged stream, hash-partitioned by key, into one operator.
#pragma once

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
          for (const auto& [tb, b] : buf.right) {
            if (tb >= SatAdd(t, lower_) && tb <= SatAdd(t, upper_)) {
              Emit(f_(r.left(), b), std::max(t, tb));
            }
          }
          buf.left.emplace_back(t, r.left());
        } else {
          for (const auto& [ta, a] : buf.left) {
            if (t >= SatAdd(ta, lower_) && t <= SatAdd(ta, upper_)) {
              Emit(f_(a, r.right()), std::max(t, ta));
            }
          }
          buf.right.emplace_back(t, r.right());
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
  struct Buffers {
    std::vector<std::pair<EventTime, A>> left;
    std::vector<std::pair<EventTime, B>> right;
  };

  void Emit(Out value, EventTime ts) {
    Batch<Out>& b = this->out_.scratch();
    b.records.push_back(std::move(value));
    b.timestamps.push_back(ts);
    if (b.size() >= batch_size_) this->out_.Flush(this->metrics());
  }

  void Cleanup(EventTime w) {
    std::vector<K> empty;
    state_.ForEach([&](const K& key, Buffers& buf) {
      std::erase_if(buf.left, [&](const auto& e) { return SatAdd(e.first, upper_) <= w; });
      std::erase_if(buf.right, [&](const auto& e) { return SatSub(e.first, lower_) <= w; });
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
