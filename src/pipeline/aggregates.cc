#include "pipeline/aggregates.h"

#include <fmt/format.h>

#include <bit>
#include <cmath>
#include <stdexcept>
#include <string_view>
#include <unordered_set>

namespace barge::pipeline {

namespace {

// Typed access to a column's values: int64_t (BIGINT, TIMESTAMP), double, uint8_t (BOOLEAN),
// std::string (VARCHAR; stored as std::string, read as a view).
template <class V>
struct Values;
template <>
struct Values<int64_t> {
  static int64_t Get(const Column& c, size_t i) { return c.ints()[i]; }
  static void Append(Column& c, int64_t v) { c.AppendInt(v); }
};
template <>
struct Values<double> {
  static double Get(const Column& c, size_t i) { return c.doubles()[i]; }
  static void Append(Column& c, double v) { c.AppendDouble(v); }
};
template <>
struct Values<uint8_t> {
  static uint8_t Get(const Column& c, size_t i) { return c.bools()[i]; }
  static void Append(Column& c, uint8_t v) { c.AppendBool(v != 0); }
};
template <>
struct Values<std::string> {
  static std::string_view Get(const Column& c, size_t i) { return c.String(i); }
  static void Append(Column& c, const std::string& v) { c.AppendString(v); }
};

// Checkpointed values: strings with their length, anything else as its bytes.
template <class T>
void PutValue(stream::StateWriter& w, const T& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    w.PutString(v);
  } else {
    w.Put(v);
  }
}
template <class T>
T GetValue(stream::StateReader& r) {
  if constexpr (std::is_same_v<T, std::string>) {
    return r.GetString();
  } else {
    return r.Get<T>();
  }
}

// Appends values[slot] for each slot that has one, NULL for the others.
template <class V, class Stored>
void EmitSet(const std::vector<Stored>& values, const std::vector<uint8_t>& has,
             const uint32_t* slots, size_t n, Column& out) {
  for (size_t k = 0; k < n; ++k) {
    if (has[slots[k]]) {
      Values<V>::Append(out, values[slots[k]]);
    } else {
      out.AppendNull();
    }
  }
}

// count(*) and count(x).
class CountAgg final : public Aggregator {
 public:
  explicit CountAgg(bool star) : star_(star) {}
  void Resize(size_t n) override { n_.resize(n, 0); }
  void Reset(uint32_t s) override { n_[s] = 0; }
  void Update(const uint32_t* slots, const uint32_t* rows, size_t n, const Column* arg,
              const int64_t*) override {
    int64_t* counts = n_.data();
    if (star_ || !arg->has_validity()) {
      for (size_t k = 0; k < n; ++k) ++counts[slots[k]];
      return;
    }
    for (size_t k = 0; k < n; ++k) counts[slots[k]] += arg->IsValid(rows[k]) ? 1 : 0;
  }
  void Merge(uint32_t into, uint32_t from) override { n_[into] += n_[from]; }
  void Emit(const uint32_t* slots, size_t n, Column& out,
            std::vector<std::pair<size_t, std::string>>&) const override {
    for (size_t k = 0; k < n; ++k) out.AppendInt(n_[slots[k]]);
  }
  void Save(uint32_t s, stream::StateWriter& w) const override { w.Put(n_[s]); }
  void Load(uint32_t s, stream::StateReader& r) override { n_[s] = r.Get<int64_t>(); }

 private:
  bool star_;
  std::vector<int64_t> n_;
};

// BIGINT sums are kept in 128 bits (exact for any count of int64 values that fits memory): a sum
// past the int64 range is found when it is emitted, not mid-way.
template <class V>
class SumAgg final : public Aggregator {
 public:
  using Acc = std::conditional_t<std::is_same_v<V, int64_t>, __int128, double>;
  explicit SumAgg(std::string name) : name_(std::move(name)) {}
  void Resize(size_t n) override {
    sum_.resize(n, 0);
    has_.resize(n, 0);
  }
  void Reset(uint32_t s) override {
    sum_[s] = 0;
    has_[s] = 0;
  }
  void Update(const uint32_t* slots, const uint32_t* rows, size_t n, const Column* arg,
              const int64_t*) override {
    Acc* sum = sum_.data();
    uint8_t* has = has_.data();
    const bool nulls = arg->has_validity();
    for (size_t k = 0; k < n; ++k) {
      size_t row = rows[k];
      if (nulls && !arg->IsValid(row)) continue;
      uint32_t s = slots[k];
      sum[s] += static_cast<Acc>(Values<V>::Get(*arg, row));
      has[s] = 1;
    }
  }
  void Merge(uint32_t into, uint32_t from) override {
    sum_[into] += sum_[from];
    has_[into] |= has_[from];
  }
  void Emit(const uint32_t* slots, size_t n, Column& out,
            std::vector<std::pair<size_t, std::string>>& overflowed) const override {
    for (size_t k = 0; k < n; ++k) {
      uint32_t s = slots[k];
      if (!has_[s]) {
        out.AppendNull();
        continue;
      }
      if constexpr (std::is_same_v<V, int64_t>) {
        __int128 v = sum_[s];
        if (v > INT64_MAX || v < INT64_MIN) {
          out.AppendNull();
          overflowed.emplace_back(k, name_ + " is past the BIGINT range (about " +
                                         fmt::format("{:.4g}", static_cast<double>(v)) + ")");
          continue;
        }
        out.AppendInt(static_cast<int64_t>(v));
      } else {
        out.AppendDouble(sum_[s]);
      }
    }
  }

  void Save(uint32_t s, stream::StateWriter& w) const override {
    w.Put(sum_[s]);
    w.Put(has_[s]);
  }
  void Load(uint32_t s, stream::StateReader& r) override {
    sum_[s] = r.Get<Acc>();
    has_[s] = r.Get<uint8_t>();
  }

 private:
  std::string name_;
  std::vector<Acc> sum_;
  std::vector<uint8_t> has_;
};

// avg: BIGINT sums are kept in 128 bits, so that the mean is the correctly rounded quotient
// whenever the sum fits a double exactly (and close to it otherwise).
template <class V>
class AvgAgg final : public Aggregator {
 public:
  using Acc = std::conditional_t<std::is_same_v<V, int64_t>, __int128, double>;
  void Resize(size_t n) override {
    sum_.resize(n, 0);
    count_.resize(n, 0);
  }
  void Reset(uint32_t s) override {
    sum_[s] = 0;
    count_[s] = 0;
  }
  void Update(const uint32_t* slots, const uint32_t* rows, size_t n, const Column* arg,
              const int64_t*) override {
    const bool nulls = arg->has_validity();
    for (size_t k = 0; k < n; ++k) {
      size_t row = rows[k];
      if (nulls && !arg->IsValid(row)) continue;
      sum_[slots[k]] += static_cast<Acc>(Values<V>::Get(*arg, row));
      ++count_[slots[k]];
    }
  }
  void Merge(uint32_t into, uint32_t from) override {
    sum_[into] += sum_[from];
    count_[into] += count_[from];
  }
  void Emit(const uint32_t* slots, size_t n, Column& out,
            std::vector<std::pair<size_t, std::string>>&) const override {
    for (size_t k = 0; k < n; ++k) {
      uint32_t s = slots[k];
      if (count_[s] == 0) {
        out.AppendNull();
        continue;
      }
      if constexpr (std::is_same_v<V, int64_t>) {
        constexpr __int128 kExact = __int128{1} << 53;
        __int128 v = sum_[s];
        if (v >= -kExact && v <= kExact) {
          out.AppendDouble(static_cast<double>(v) / static_cast<double>(count_[s]));
        } else {
          out.AppendDouble(static_cast<double>(static_cast<long double>(v) /
                                               static_cast<long double>(count_[s])));
        }
      } else {
        out.AppendDouble(sum_[s] / static_cast<double>(count_[s]));
      }
    }
  }

  void Save(uint32_t s, stream::StateWriter& w) const override {
    w.Put(sum_[s]);
    w.Put(count_[s]);
  }
  void Load(uint32_t s, stream::StateReader& r) override {
    sum_[s] = r.Get<Acc>();
    count_[s] = r.Get<int64_t>();
  }

 private:
  std::vector<Acc> sum_;
  std::vector<int64_t> count_;
};

// min and max. Strings compare as bytes; doubles as numbers (NaN above everything, as in
// PostgreSQL and DuckDB).
template <class V, bool kMax>
class MinMaxAgg final : public Aggregator {
 public:
  void Resize(size_t n) override {
    value_.resize(n);
    has_.resize(n, 0);
  }
  void Reset(uint32_t s) override { has_[s] = 0; }
  void Update(const uint32_t* slots, const uint32_t* rows, size_t n, const Column* arg,
              const int64_t*) override {
    const bool nulls = arg->has_validity();
    for (size_t k = 0; k < n; ++k) {
      size_t row = rows[k];
      if (nulls && !arg->IsValid(row)) continue;
      Offer(slots[k], Values<V>::Get(*arg, row));
    }
  }
  void Merge(uint32_t into, uint32_t from) override {
    if (has_[from]) Offer(into, value_[from]);
  }
  void Emit(const uint32_t* slots, size_t n, Column& out,
            std::vector<std::pair<size_t, std::string>>&) const override {
    EmitSet<V>(value_, has_, slots, n, out);
  }

  void Save(uint32_t s, stream::StateWriter& w) const override {
    w.Put(has_[s]);
    if (has_[s]) PutValue(w, value_[s]);
  }
  void Load(uint32_t s, stream::StateReader& r) override {
    has_[s] = r.Get<uint8_t>();
    if (has_[s]) value_[s] = GetValue<V>(r);
  }

 private:
  template <class T>
  static bool Less(const T& a, const T& b) {
    if constexpr (std::is_same_v<V, double>) {
      if (std::isnan(a)) return false;
      if (std::isnan(b)) return true;
    }
    return a < b;
  }
  template <class T>
  void Offer(uint32_t s, const T& v) {
    if (!has_[s] || (kMax ? Less(value_[s], V(v)) : Less(V(v), value_[s]))) {
      value_[s] = V(v);
      has_[s] = 1;
    }
  }

  std::vector<V> value_;
  std::vector<uint8_t> has_;
};

// first and last: the value of the first (last) row with a non-NULL value, in input order (by
// `order` when given: rows' origins; else arrival).
template <class V, bool kLast>
class FirstLastAgg final : public Aggregator {
 public:
  void Resize(size_t n) override {
    value_.resize(n);
    order_.resize(n, 0);
    has_.resize(n, 0);
  }
  void Reset(uint32_t s) override { has_[s] = 0; }
  void Update(const uint32_t* slots, const uint32_t* rows, size_t n, const Column* arg,
              const int64_t* order) override {
    const bool nulls = arg->has_validity();
    for (size_t k = 0; k < n; ++k) {
      size_t row = rows[k];
      int64_t rank = order != nullptr ? order[row] : arrival_++;
      if (nulls && !arg->IsValid(row)) continue;
      Offer(slots[k], Values<V>::Get(*arg, row), rank);
    }
  }
  void Merge(uint32_t into, uint32_t from) override {
    if (has_[from]) Offer(into, value_[from], order_[from]);
  }
  void Emit(const uint32_t* slots, size_t n, Column& out,
            std::vector<std::pair<size_t, std::string>>&) const override {
    EmitSet<V>(value_, has_, slots, n, out);
  }

  void Save(uint32_t s, stream::StateWriter& w) const override {
    w.Put(has_[s]);
    if (!has_[s]) return;
    PutValue(w, value_[s]);
    w.Put(order_[s]);
  }
  void Load(uint32_t s, stream::StateReader& r) override {
    has_[s] = r.Get<uint8_t>();
    if (!has_[s]) return;
    value_[s] = GetValue<V>(r);
    order_[s] = r.Get<int64_t>();
  }
  void SaveShared(stream::StateWriter& w) const override { w.Put(arrival_); }
  void LoadShared(stream::StateReader& r) override { arrival_ = r.Get<int64_t>(); }

 private:
  template <class T>
  void Offer(uint32_t s, const T& v, int64_t rank) {
    bool take = !has_[s] || (kLast ? rank >= order_[s] : rank < order_[s]);
    if (take) {
      value_[s] = V(v);
      order_[s] = rank;
      has_[s] = 1;
    }
  }

  std::vector<V> value_;
  std::vector<int64_t> order_;
  std::vector<uint8_t> has_;
  int64_t arrival_ = 0;
};

// count_distinct: the distinct non-NULL values of each slot (doubles by value: -0.0 = 0.0).
template <class V>
class DistinctAgg final : public Aggregator {
 public:
  using Key = std::conditional_t<std::is_same_v<V, std::string>, std::string, uint64_t>;
  void Resize(size_t n) override { sets_.resize(n); }
  void Reset(uint32_t s) override { sets_[s].reset(); }
  void Update(const uint32_t* slots, const uint32_t* rows, size_t n, const Column* arg,
              const int64_t*) override {
    const bool nulls = arg->has_validity();
    for (size_t k = 0; k < n; ++k) {
      size_t row = rows[k];
      if (nulls && !arg->IsValid(row)) continue;
      Set(slots[k]).insert(KeyOf(Values<V>::Get(*arg, row)));
    }
  }
  void Merge(uint32_t into, uint32_t from) override {
    if (!sets_[from]) return;
    Set(into).insert(sets_[from]->begin(), sets_[from]->end());
  }
  void Emit(const uint32_t* slots, size_t n, Column& out,
            std::vector<std::pair<size_t, std::string>>&) const override {
    for (size_t k = 0; k < n; ++k) {
      const auto& set = sets_[slots[k]];
      out.AppendInt(set ? static_cast<int64_t>(set->size()) : 0);
    }
  }

  void Save(uint32_t s, stream::StateWriter& w) const override {
    const auto& set = sets_[s];
    w.Put<uint64_t>(set ? set->size() : 0);
    if (set) {
      for (const Key& k : *set) PutValue(w, k);
    }
  }
  void Load(uint32_t s, stream::StateReader& r) override {
    sets_[s].reset();
    uint64_t n = r.Get<uint64_t>();
    for (uint64_t i = 0; i < n; ++i) Set(s).insert(GetValue<Key>(r));
  }

 private:
  template <class T>
  static Key KeyOf(const T& v) {
    if constexpr (std::is_same_v<V, std::string>) {
      return std::string(v);
    } else if constexpr (std::is_same_v<V, double>) {
      if (v == 0) return 0;
      if (std::isnan(v)) return 0x7ff8000000000000ULL;
      return std::bit_cast<uint64_t>(v);
    } else {
      return static_cast<uint64_t>(v);
    }
  }
  std::unordered_set<Key>& Set(uint32_t s) {
    if (!sets_[s]) sets_[s] = std::make_unique<std::unordered_set<Key>>();
    return *sets_[s];
  }

  std::vector<std::unique_ptr<std::unordered_set<Key>>> sets_;
};

template <template <class> class Agg, class... Args>
std::unique_ptr<Aggregator> ForType(Type t, Args&&... args) {
  switch (t) {
    case Type::kInt64:
    case Type::kTimestamp:
      return std::make_unique<Agg<int64_t>>(std::forward<Args>(args)...);
    case Type::kDouble:
      return std::make_unique<Agg<double>>(std::forward<Args>(args)...);
    case Type::kBool:
      return std::make_unique<Agg<uint8_t>>(std::forward<Args>(args)...);
    case Type::kString:
    case Type::kNull:
      return std::make_unique<Agg<std::string>>(std::forward<Args>(args)...);
  }
  return nullptr;
}

template <class V>
using MinAgg = MinMaxAgg<V, false>;
template <class V>
using MaxAgg = MinMaxAgg<V, true>;
template <class V>
using FirstAgg = FirstLastAgg<V, false>;
template <class V>
using LastAgg = FirstLastAgg<V, true>;

}  // namespace

std::unique_ptr<Aggregator> MakeAggregator(AggregateKind kind, Type argument, std::string name) {
  switch (kind) {
    case AggregateKind::kCountStar:
      return std::make_unique<CountAgg>(true);
    case AggregateKind::kCount:
      return std::make_unique<CountAgg>(false);
    case AggregateKind::kSum:
      if (argument == Type::kDouble) return std::make_unique<SumAgg<double>>(std::move(name));
      return std::make_unique<SumAgg<int64_t>>(std::move(name));
    case AggregateKind::kAvg:
      if (argument == Type::kDouble) return std::make_unique<AvgAgg<double>>();
      return std::make_unique<AvgAgg<int64_t>>();
    case AggregateKind::kMin:
      return ForType<MinAgg>(argument);
    case AggregateKind::kMax:
      return ForType<MaxAgg>(argument);
    case AggregateKind::kFirst:
      return ForType<FirstAgg>(argument);
    case AggregateKind::kLast:
      return ForType<LastAgg>(argument);
    case AggregateKind::kCountDistinct:
      return ForType<DistinctAgg>(argument);
  }
  return nullptr;
}

AggStates::AggStates(const std::vector<AggregateCall>& calls) {
  for (const AggregateCall& c : calls) {
    Type arg = c.argument ? c.argument->type() : Type::kNull;
    aggregators_.push_back(MakeAggregator(c.kind, arg, c.ToString()));
  }
}

uint32_t AggStates::Allocate() {
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
    for (auto& a : aggregators_) a->Reset(slot);
    return slot;
  }
  slot = next_++;
  if (next_ > capacity_) {
    capacity_ = std::max<size_t>(64, capacity_ * 2);
    for (auto& a : aggregators_) a->Resize(capacity_);
  }
  return slot;
}

void AggStates::Free(uint32_t slot) { free_.push_back(slot); }

void AggStates::ResizeDense(size_t n) {
  if (n <= next_) return;
  if (n > capacity_) {
    capacity_ = std::max(n, capacity_ * 2);
    for (auto& a : aggregators_) a->Resize(capacity_);
  }
  next_ = static_cast<uint32_t>(n);
}

void AggStates::Update(const uint32_t* slots, const uint32_t* rows, size_t n,
                       const std::vector<const Column*>& args, const int64_t* order) {
  for (size_t a = 0; a < aggregators_.size(); ++a) {
    aggregators_[a]->Update(slots, rows, n, args[a], order);
  }
}

void AggStates::SaveSlot(uint32_t slot, stream::StateWriter& out) const {
  for (const auto& a : aggregators_) a->Save(slot, out);
}

uint32_t AggStates::LoadSlot(stream::StateReader& in) {
  uint32_t slot = Allocate();
  LoadSlotAt(slot, in);
  return slot;
}

void AggStates::LoadSlotAt(uint32_t slot, stream::StateReader& in) {
  for (auto& a : aggregators_) a->Load(slot, in);
}

void AggStates::SaveShared(stream::StateWriter& out) const {
  for (const auto& a : aggregators_) a->SaveShared(out);
}

void AggStates::LoadShared(stream::StateReader& in) {
  for (auto& a : aggregators_) a->LoadShared(in);
}

void AggStates::Merge(uint32_t into, uint32_t from) {
  for (auto& a : aggregators_) a->Merge(into, from);
}

void AggStates::Emit(const uint32_t* slots, size_t n, std::vector<Column>& out, size_t first,
                     std::vector<std::pair<size_t, std::string>>& overflowed) const {
  for (size_t a = 0; a < aggregators_.size(); ++a) {
    aggregators_[a]->Emit(slots, n, out[first + a], overflowed);
  }
}

}  // namespace barge::pipeline
