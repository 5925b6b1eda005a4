#include "pipeline/aggregates.h"

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

// Appends values[slot] for each slot that has one, NULL for the others.
template <class V>
void EmitSet(const std::vector<V>& values, const std::vector<uint8_t>& has, const uint32_t* slots,
             size_t n, Column& out) {
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
  void Emit(const uint32_t* slots, size_t n, Column& out) const override {
    for (size_t k = 0; k < n; ++k) out.AppendInt(n_[slots[k]]);
  }

 private:
  bool star_;
  std::vector<int64_t> n_;
};

template <class V>
class SumAgg final : public Aggregator {
 public:
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
    V* sum = sum_.data();
    uint8_t* has = has_.data();
    bool overflow = false;
    const bool nulls = arg->has_validity();
    for (size_t k = 0; k < n; ++k) {
      size_t row = rows[k];
      if (nulls && !arg->IsValid(row)) continue;
      uint32_t s = slots[k];
      V v = Values<V>::Get(*arg, row);
      if constexpr (std::is_same_v<V, int64_t>) {
        overflow |= __builtin_add_overflow(sum[s], v, &sum[s]);
      } else {
        sum[s] += v;
      }
      has[s] = 1;
    }
    if (overflow) throw std::overflow_error(name_ + " overflowed BIGINT");
  }
  void Merge(uint32_t into, uint32_t from) override {
    if constexpr (std::is_same_v<V, int64_t>) {
      if (__builtin_add_overflow(sum_[into], sum_[from], &sum_[into])) {
        throw std::overflow_error(name_ + " overflowed BIGINT");
      }
    } else {
      sum_[into] += sum_[from];
    }
    has_[into] |= has_[from];
  }
  void Emit(const uint32_t* slots, size_t n, Column& out) const override {
    EmitSet<V>(sum_, has_, slots, n, out);
  }

 private:
  std::string name_;
  std::vector<V> sum_;
  std::vector<uint8_t> has_;
};

// avg: BIGINT sums are kept exactly (a wider sum takes over on overflow), so that the mean is
// the correctly rounded quotient whenever the sum fits a double exactly.
template <class V>
class AvgAgg final : public Aggregator {
 public:
  void Resize(size_t n) override {
    sum_.resize(n, 0);
    wide_.resize(n, 0);
    count_.resize(n, 0);
  }
  void Reset(uint32_t s) override {
    sum_[s] = 0;
    wide_[s] = 0;
    count_[s] = 0;
  }
  void Update(const uint32_t* slots, const uint32_t* rows, size_t n, const Column* arg,
              const int64_t*) override {
    const bool nulls = arg->has_validity();
    for (size_t k = 0; k < n; ++k) {
      size_t row = rows[k];
      if (nulls && !arg->IsValid(row)) continue;
      Add(slots[k], Values<V>::Get(*arg, row), 1);
    }
  }
  void Merge(uint32_t into, uint32_t from) override {
    if constexpr (std::is_same_v<V, int64_t>) {
      wide_[into] += wide_[from];
      if (wide_[from] != 0 || __builtin_add_overflow(sum_[into], sum_[from], &sum_[into])) {
        Widen(into);
        wide_[into] += static_cast<long double>(sum_[from]);
      }
    } else {
      sum_[into] += sum_[from];
    }
    count_[into] += count_[from];
  }
  void Emit(const uint32_t* slots, size_t n, Column& out) const override {
    for (size_t k = 0; k < n; ++k) {
      uint32_t s = slots[k];
      if (count_[s] == 0) {
        out.AppendNull();
      } else if constexpr (std::is_same_v<V, int64_t>) {
        if (wide_[s] != 0) {
          out.AppendDouble(static_cast<double>((wide_[s] + static_cast<long double>(sum_[s])) /
                                               static_cast<long double>(count_[s])));
        } else {
          out.AppendDouble(static_cast<double>(sum_[s]) / static_cast<double>(count_[s]));
        }
      } else {
        out.AppendDouble(sum_[s] / static_cast<double>(count_[s]));
      }
    }
  }

 private:
  void Add(uint32_t s, V v, int64_t c) {
    if constexpr (std::is_same_v<V, int64_t>) {
      if (__builtin_add_overflow(sum_[s], v, &sum_[s])) {
        Widen(s);
        wide_[s] += static_cast<long double>(v);
      }
    } else {
      sum_[s] += v;
    }
    count_[s] += c;
  }
  // Moves the exact part of the sum into the wide one.
  void Widen(uint32_t s) {
    wide_[s] += static_cast<long double>(sum_[s]);
    sum_[s] = 0;
  }

  std::vector<V> sum_;
  std::vector<long double> wide_;  // BIGINT only: the part of the sum past int64
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
  void Emit(const uint32_t* slots, size_t n, Column& out) const override {
    EmitSet<V>(value_, has_, slots, n, out);
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
  void Emit(const uint32_t* slots, size_t n, Column& out) const override {
    EmitSet<V>(value_, has_, slots, n, out);
  }

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
  void Emit(const uint32_t* slots, size_t n, Column& out) const override {
    for (size_t k = 0; k < n; ++k) {
      const auto& set = sets_[slots[k]];
      out.AppendInt(set ? static_cast<int64_t>(set->size()) : 0);
    }
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

void AggStates::Merge(uint32_t into, uint32_t from) {
  for (auto& a : aggregators_) a->Merge(into, from);
}

void AggStates::Emit(const uint32_t* slots, size_t n, std::vector<Column>& out,
                     size_t first) const {
  for (size_t a = 0; a < aggregators_.size(); ++a) aggregators_[a]->Emit(slots, n, out[first + a]);
}

}  // namespace barge::pipeline
