#include "pipeline/key_table.h"

#include <bit>
#include <cmath>
#include <functional>
#include <random>
#include <string_view>

namespace barge::pipeline {

namespace {

constexpr uint64_t kNullHash = 0x5bd1e9955bd1e995ULL;

inline uint64_t Combine(uint64_t h, uint64_t v) {
  return (std::rotl(h, 29) ^ v) * 0x9E3779B97F4A7C15ULL;
}

// murmur3's finalizer: every input bit reaches every output bit, so partitions and table slots
// (which use the high bits) spread evenly.
inline uint64_t Finish(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  return h ^ (h >> 33);
}

inline uint64_t DoubleBits(double d) {
  if (d == 0) return 0;  // -0.0 and 0.0
  if (std::isnan(d)) return 0x7ff8000000000000ULL;
  return std::bit_cast<uint64_t>(d);
}

template <class ValueHash>
void HashColumn(const Column& c, uint64_t* h, size_t n, ValueHash value) {
  if (!c.has_validity()) {
    for (size_t i = 0; i < n; ++i) h[i] = Combine(h[i], value(i));
    return;
  }
  for (size_t i = 0; i < n; ++i) h[i] = Combine(h[i], c.IsValid(i) ? value(i) : kNullHash);
}

}  // namespace

uint64_t TableSeed() {
  static const uint64_t seed = [] {
    std::random_device device;
    return (uint64_t{device()} << 32 | device()) | 1;
  }();
  return seed;
}

void HashKeys(const RecordBatch& batch, const std::vector<int>& key_columns,
              std::vector<uint64_t>& hashes, uint64_t seed) {
  const size_t n = batch.rows;
  hashes.assign(n, seed);
  uint64_t* h = hashes.data();
  for (int k : key_columns) {
    const Column& c = batch.columns[static_cast<size_t>(k)];
    switch (c.type()) {
      case Type::kInt64:
      case Type::kTimestamp: {
        const int64_t* v = c.ints();
        HashColumn(c, h, n, [v](size_t i) { return static_cast<uint64_t>(v[i]); });
        break;
      }
      case Type::kDouble: {
        const double* v = c.doubles();
        HashColumn(c, h, n, [v](size_t i) { return DoubleBits(v[i]); });
        break;
      }
      case Type::kBool: {
        const uint8_t* v = c.bools();
        HashColumn(c, h, n, [v](size_t i) { return uint64_t{v[i]} + 1; });
        break;
      }
      case Type::kString:
        HashColumn(c, h, n, [&c](size_t i) {
          return static_cast<uint64_t>(std::hash<std::string_view>{}(c.String(i)));
        });
        break;
      case Type::kNull:
        for (size_t i = 0; i < n; ++i) h[i] = Combine(h[i], kNullHash);
        break;
    }
  }
  for (size_t i = 0; i < n; ++i) h[i] = Finish(h[i]);
}

KeyTable::KeyTable(std::vector<Type> types) : types_(std::move(types)) {
  for (Type t : types_) keys_.emplace_back(t);
  single_int_ = types_.size() == 1 && IsInt64Backed(types_[0]);
  slots_.assign(16, Slot{});
  mask_ = 15;
  shift_ = 60;
}

void KeyTable::Clear() {
  for (Column& c : keys_) c.Clear();
  hashes_.clear();
  std::fill(slots_.begin(), slots_.end(), Slot{});
}

bool KeyTable::Equal(uint32_t entry, const RecordBatch& batch, const std::vector<int>& key_columns,
                     size_t row) const {
  for (size_t k = 0; k < key_columns.size(); ++k) {
    const Column& stored = keys_[k];
    const Column& in = batch.columns[static_cast<size_t>(key_columns[k])];
    bool a = stored.IsValid(entry), b = in.IsValid(row);
    if (a != b) return false;
    if (!a) continue;
    switch (stored.type()) {
      case Type::kInt64:
      case Type::kTimestamp:
        if (stored.ints()[entry] != in.ints()[row]) return false;
        break;
      case Type::kDouble:
        if (DoubleBits(stored.doubles()[entry]) != DoubleBits(in.doubles()[row])) return false;
        break;
      case Type::kBool:
        if (stored.bools()[entry] != in.bools()[row]) return false;
        break;
      case Type::kString:
        if (stored.String(entry) != in.String(row)) return false;
        break;
      case Type::kNull:
        break;
    }
  }
  return true;
}

uint32_t KeyTable::Insert(const RecordBatch& batch, const std::vector<int>& key_columns,
                          uint64_t hash, size_t row, size_t slot) {
  auto entry = static_cast<uint32_t>(hashes_.size());
  for (size_t k = 0; k < key_columns.size(); ++k) {
    keys_[k].AppendRow(batch.columns[static_cast<size_t>(key_columns[k])], row);
  }
  hashes_.push_back(hash);
  slots_[slot] = {entry + 1, WordOf(entry)};
  if (hashes_.size() * 2 > slots_.size()) Grow();
  return entry;
}

void KeyTable::Grow() {
  slots_.assign(slots_.size() * 2, Slot{});
  mask_ = slots_.size() - 1;
  --shift_;
  for (uint32_t e = 0; e < hashes_.size(); ++e) {
    size_t s = Home(hashes_[e]);
    while (slots_[s].entry != 0) s = (s + 1) & mask_;
    slots_[s] = {e + 1, WordOf(e)};
  }
}

uint32_t KeyTable::FindOrInsertRow(const RecordBatch& batch, const std::vector<int>& key_columns,
                                   uint64_t hash, size_t row) {
  if (single_int_) hash = IntPlacement(batch.columns[static_cast<size_t>(key_columns[0])], row);
  size_t s = Home(hash);
  for (;;) {
    uint32_t e = slots_[s].entry;
    if (e == 0) return Insert(batch, key_columns, hash, row, s);
    if (hashes_[e - 1] == hash && Equal(e - 1, batch, key_columns, row)) return e - 1;
    s = (s + 1) & mask_;
  }
}

void KeyTable::FindOrInsert(const RecordBatch& batch, const std::vector<int>& key_columns,
                            const uint64_t* hashes, const uint32_t* rows, size_t n,
                            uint32_t* entries) {
  if (single_int_ && !batch.columns[static_cast<size_t>(key_columns[0])].has_validity() &&
      !keys_[0].has_validity()) {
    // One non-NULL integer key: Fibonacci-hashed, compared in the slot itself.
    const int64_t* v = batch.columns[static_cast<size_t>(key_columns[0])].ints();
    for (size_t k = 0; k < n; ++k) {
      const size_t row = rows != nullptr ? rows[k] : k;
      const int64_t key = v[row];
      const uint64_t placement = IntPlacement(key);
      size_t s = Home(placement);
      for (;;) {
        const Slot& slot = slots_[s];
        if (slot.word == key && slot.entry != 0) {
          entries[k] = slot.entry - 1;
          break;
        }
        if (slot.entry == 0) {
          entries[k] = Insert(batch, key_columns, placement, row, s);
          break;
        }
        s = (s + 1) & mask_;
      }
    }
    return;
  }
  for (size_t k = 0; k < n; ++k) {
    size_t row = rows != nullptr ? rows[k] : k;
    entries[k] = FindOrInsertRow(batch, key_columns, hashes[row], row);
  }
}

}  // namespace barge::pipeline
