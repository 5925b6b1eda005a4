// Stateless and keyed record operators. User functions are template parameters: the compiler
// inlines them into one loop per batch.
#pragma once

#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "barge/stream/keyed_table.h"
#include "barge/stream/operator.h"

namespace barge::stream {

// map: Out f(const In&). When Out == In the batch is rewritten in place.
template <class In, class Out, class F>
class MapOperator final : public Operator<In, Out> {
 public:
  MapOperator(std::string name, F f) : Operator<In, Out>(std::move(name)), f_(std::move(f)) {}

  void Push(Batch<In>& in) override {
    this->CountIn(in);
    Guarded(this->name(), [&] {
      if constexpr (std::is_same_v<In, Out>) {
        for (In& r : in.records) r = f_(r);
        this->out_.Push(in, this->metrics());
      } else {
        Batch<Out>& out = this->out_.scratch();
        out.records.resize(in.size());
        Out* dst = out.records.data();
        const In* src = in.records.data();
        for (size_t i = 0, n = in.size(); i < n; ++i) dst[i] = f_(src[i]);
        out.timestamps.swap(in.timestamps);
        this->out_.Flush(this->metrics());
      }
    });
  }

 private:
  F f_;
};

// filter: keeps records for which bool f(const In&) holds; compacts the batch in place.
template <class T, class F>
class FilterOperator final : public Operator<T, T> {
 public:
  FilterOperator(std::string name, F f) : Operator<T, T>(std::move(name)), f_(std::move(f)) {}

  void Push(Batch<T>& in) override {
    this->CountIn(in);
    Guarded(this->name(), [&] {
      T* r = in.records.data();
      size_t n = in.size();
      size_t kept = 0;
      if (in.timestamps.empty()) {
        for (size_t i = 0; i < n; ++i) {
          // Branch-free compaction: always copy, advance only when kept.
          bool keep = f_(r[i]);
          if constexpr (std::is_trivially_copyable_v<T>) {
            r[kept] = r[i];
            kept += keep ? 1 : 0;
          } else {
            if (keep) {
              if (kept != i) r[kept] = std::move(r[i]);
              ++kept;
            }
          }
        }
      } else {
        EventTime* ts = in.timestamps.data();
        for (size_t i = 0; i < n; ++i) {
          if (f_(r[i])) {
            if (kept != i) {
              r[kept] = std::move(r[i]);
              ts[kept] = ts[i];
            }
            ++kept;
          }
        }
        in.timestamps.resize(kept);
      }
      in.records.resize(kept);
      this->out_.Push(in, this->metrics());
    });
  }

 private:
  F f_;
};

// Collects the records a flat_map function emits for one input record.
template <class Out>
class Emitter {
 public:
  void operator()(Out value) { batch_->records.push_back(std::move(value)); }
  void emit(Out value) { (*this)(std::move(value)); }

 private:
  template <class, class, class>
  friend class FlatMapOperator;
  Batch<Out>* batch_ = nullptr;
};

// flat_map: void f(const In&, Emitter<Out>&), zero or more outputs per input. Outputs inherit
// their input's timestamp.
template <class In, class Out, class F>
class FlatMapOperator final : public Operator<In, Out> {
 public:
  FlatMapOperator(std::string name, F f, size_t batch_size)
      : Operator<In, Out>(std::move(name)), f_(std::move(f)), batch_size_(batch_size) {}

  void Push(Batch<In>& in) override {
    this->CountIn(in);
    Guarded(this->name(), [&] {
      Batch<Out>& out = this->out_.scratch();
      emitter_.batch_ = &out;
      bool with_ts = !in.timestamps.empty();
      for (size_t i = 0, n = in.size(); i < n; ++i) {
        f_(in.records[i], emitter_);
        if (with_ts) out.timestamps.resize(out.records.size(), in.timestamps[i]);
        if (out.records.size() >= batch_size_ && i + 1 < n) {
          this->out_.Flush(this->metrics());
        }
      }
      this->out_.Flush(this->metrics());
    });
  }

 private:
  F f_;
  size_t batch_size_;
  Emitter<Out> emitter_;
};

// Rolling keyed aggregation (Kafka Streams' aggregate, Flink's keyed reduce): per record, the
// key's accumulator is updated with void add(Acc&, const T&) (starting from Acc init()) and
// Out result(const K&, const Acc&) is emitted, with the record's timestamp.
template <class T, class K, class Out, class Acc, class KeyFn, class Init, class Add, class Result>
class KeyedAggregateOperator final : public Operator<T, Out> {
 public:
  // Checkpoints: every key's accumulator, as bytes (kSavableAsBytes); other types are refused.
  Status CheckpointSupport() const override {
    return SavableAsBytes<K, Acc>(this->name(), "a keyed aggregate");
  }
  void Snapshot(uint64_t, StateWriter& out) override {
    if constexpr (kSavableAsBytes<K, Acc>) SaveTable(state_, out);
  }
  Status Restore(StateReader& in) override {
    if constexpr (kSavableAsBytes<K, Acc>) LoadTable(in, state_);
    return Status::Ok();
  }

  KeyedAggregateOperator(std::string name, KeyFn key_fn, Init init, Add add, Result result)
      : Operator<T, Out>(std::move(name)),
        key_fn_(std::move(key_fn)),
        init_(std::move(init)),
        add_(std::move(add)),
        result_(std::move(result)) {}

  void Push(Batch<T>& in) override {
    this->CountIn(in);
    Guarded(this->name(), [&] {
      Batch<Out>& out = this->out_.scratch();
      out.records.resize(in.size());
      for (size_t i = 0, n = in.size(); i < n; ++i) {
        const K key = key_fn_(in.records[i]);
        auto [acc, inserted] = state_.FindOrInsert(key);
        if (inserted) *acc = init_();
        add_(*acc, std::as_const(in.records[i]));
        out.records[i] = result_(key, std::as_const(*acc));
      }
      out.timestamps.swap(in.timestamps);
      this->out_.Flush(this->metrics());
    });
  }

 private:
  KeyFn key_fn_;
  Init init_;
  Add add_;
  Result result_;
  KeyedTable<K, Acc> state_;
};

// A sink calling void f(const T&) per record, or, if f does not take a record,
// void f(const Batch<T>&) per batch.
template <class T, class F>
class SinkOperator final : public OperatorBase, public Input<T> {
 public:
  SinkOperator(std::string name, F f) : OperatorBase(std::move(name)), f_(std::move(f)) {}

  OutputBase* Port(int) override { return nullptr; }

  void Push(Batch<T>& in) override {
    OperatorMetrics::Add(metrics().records_in, RecordCount(in));
    OperatorMetrics::Add(metrics().batches_in, 1);
    Guarded(name(), [&] {
      // Per record first: a generic lambda `[](const auto& r)` is a per-record sink.
      if constexpr (std::is_invocable_v<F&, const T&>) {
        for (const T& r : in.records) f_(r);
      } else {
        f_(std::as_const(in));
      }
    });
  }
  void Watermark(EventTime) override {}
  void Barrier(uint64_t id) override { TakeSnapshot(id); }
  void End() override {}
  void Idle() override {}

 private:
  F f_;
};

// Fans one output out to several inputs (a stream used by more than one downstream operator).
// All but the last receive a copy.
template <class T>
class Tee final : public Input<T> {
 public:
  explicit Tee(std::vector<Input<T>*> targets) : targets_(std::move(targets)) {}

  void Push(Batch<T>& in) override {
    if constexpr (std::is_copy_constructible_v<T>) {
      for (size_t i = 0; i + 1 < targets_.size(); ++i) {
        copy_.records.assign(in.records.begin(), in.records.end());
        copy_.timestamps.assign(in.timestamps.begin(), in.timestamps.end());
        targets_[i]->Push(copy_);
        copy_.clear();
      }
    } else if (targets_.size() > 1) {
      throw std::logic_error("a stream of records that cannot be copied feeds one operator only");
    }
    targets_.back()->Push(in);
  }
  void Watermark(EventTime w) override {
    for (Input<T>* t : targets_) t->Watermark(w);
  }
  void Barrier(uint64_t id) override {
    for (Input<T>* t : targets_) t->Barrier(id);
  }
  void End() override {
    for (Input<T>* t : targets_) t->End();
  }
  void Idle() override {
    for (Input<T>* t : targets_) t->Idle();
  }
  void MarkIdle() override {
    for (Input<T>* t : targets_) t->MarkIdle();
  }

 private:
  std::vector<Input<T>*> targets_;
  Batch<T> copy_;
};

}  // namespace barge::stream
