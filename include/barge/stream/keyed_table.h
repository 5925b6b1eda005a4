// KeyedTable<K, V>: the hash table behind keyed state. Open addressing with linear probing,
// keys and values stored inline, so a lookup of a hot key touches one cache line. Integer keys
// are mixed with a multiplicative hash (std::hash of an integer is the identity).
//
// Not thread-safe: owned by one operator instance. Pointers returned stay valid until the next
// insertion or erase.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "barge/status.h"
#include "barge/stream/checkpoint.h"

namespace barge::stream {

// The key's raw 64-bit hash: integers as they are, anything else through std::hash.
template <class K>
inline uint64_t RawHash(const K& key) {
  if constexpr (std::is_integral_v<K> || std::is_enum_v<K>) {
    return static_cast<uint64_t>(key);
  } else {
    return static_cast<uint64_t>(std::hash<K>{}(key));
  }
}

// A well-mixed hash (murmur3's finalizer), used to pick a key's partition. Tables index with a
// different function of the raw hash, so the keys one partition receives still spread evenly
// over that partition's table.
template <class K>
inline uint64_t HashKey(const K& key) {
  uint64_t h = RawHash(key);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  return h ^ (h >> 33);
}

template <class K, class V>
class KeyedTable {
 public:
  KeyedTable() { Rehash(16); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  V* Find(const K& key) {
    size_t i = Home(key);
    while (used_[i]) {
      if (slots_[i].key == key) return &slots_[i].value;
      i = (i + 1) & mask_;
    }
    return nullptr;
  }

  // Returns the value for `key` and whether it was inserted (value-initialized) just now.
  std::pair<V*, bool> FindOrInsert(const K& key) {
    size_t i = Home(key);
    while (used_[i]) {
      if (slots_[i].key == key) return {&slots_[i].value, false};
      i = (i + 1) & mask_;
    }
    if ((size_ + 1) * 2 > slots_.size()) {
      Rehash(slots_.size() * 2);
      return FindOrInsert(key);
    }
    used_[i] = 1;
    slots_[i].key = key;
    slots_[i].value = V{};
    ++size_;
    return {&slots_[i].value, true};
  }

  // Removes `key` if present (backward-shift deletion: no tombstones).
  bool Erase(const K& key) {
    size_t i = Home(key);
    while (used_[i]) {
      if (slots_[i].key == key) break;
      i = (i + 1) & mask_;
    }
    if (!used_[i]) return false;
    size_t hole = i;
    for (size_t j = (hole + 1) & mask_; used_[j]; j = (j + 1) & mask_) {
      size_t home = Home(slots_[j].key);
      // Move j into the hole when its home is not in (hole, j] cyclically.
      bool between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
      if (!between) {
        slots_[hole] = std::move(slots_[j]);
        hole = j;
      }
    }
    used_[hole] = 0;
    slots_[hole] = Slot{};
    --size_;
    return true;
  }

  // Drops every entry, keeping the allocation.
  void Clear() {
    if (size_ == 0) return;
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (used_[i]) slots_[i] = Slot{};
    }
    std::fill(used_.begin(), used_.end(), 0);
    size_ = 0;
  }

  // fn(const K&, V&) for every entry, in table order.
  template <class Fn>
  void ForEach(Fn&& fn) {
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (used_[i]) fn(std::as_const(slots_[i].key), slots_[i].value);
    }
  }

 private:
  struct Slot {
    K key{};
    V value{};
  };

  // Fibonacci hashing: the top bits of raw hash x golden ratio. Consecutive integer keys land
  // far apart, so hot key ranges probe rarely.
  size_t Home(const K& key) const {
    return static_cast<size_t>((RawHash(key) * 0x9E3779B97F4A7C15ULL) >> shift_);
  }

  void Rehash(size_t capacity) {
    std::vector<Slot> old_slots = std::move(slots_);
    std::vector<uint8_t> old_used = std::move(used_);
    slots_.assign(capacity, Slot{});
    used_.assign(capacity, 0);
    mask_ = capacity - 1;
    shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(capacity));
    size_ = 0;
    for (size_t i = 0; i < old_slots.size(); ++i) {
      if (!old_used[i]) continue;
      size_t j = Home(old_slots[i].key);
      while (used_[j]) j = (j + 1) & mask_;
      used_[j] = 1;
      slots_[j] = std::move(old_slots[i]);
      ++size_;
    }
  }

  std::vector<Slot> slots_;
  std::vector<uint8_t> used_;
  size_t mask_ = 0;
  unsigned shift_ = 64;
  size_t size_ = 0;
};

// Checkpoints of keyed state written as bytes: keys and values must be trivially copyable
// (numbers, PODs; not pointers or views, whose targets a restore cannot bring back).
template <class K, class... V>
inline constexpr bool kSavableAsBytes = std::is_trivially_copyable_v<K> &&
                                        (std::is_trivially_copyable_v<V> && ...);

// An operator's CheckpointSupport for such state, keyed by K and holding Vs (`values`:
// "accumulators"): OK, or why `op` (`what`: "a window") is refused.
template <class K, class... V>
Status SavableAsBytes(const std::string& op, const char* what,
                      const char* values = "accumulators") {
  if constexpr (kSavableAsBytes<K, V...>) {
    return Status::Ok();
  } else {
    return Unsupported("operator '" + op + "' (" + what + ") keeps keys or " + values +
                       " that are not trivially copyable, whose state checkpoints cannot save");
  }
}

// Writes every entry of `table`; LoadTable reads them back into an emptied table.
template <class K, class V>
void SaveTable(KeyedTable<K, V>& table, StateWriter& out) {
  static_assert(kSavableAsBytes<K, V>);
  out.Put<uint64_t>(table.size());
  table.ForEach([&](const K& key, V& value) {
    out.Put(key);
    out.Put(value);
  });
}
template <class K, class V>
void LoadTable(StateReader& in, KeyedTable<K, V>& table) {
  static_assert(kSavableAsBytes<K, V>);
  table.Clear();
  for (uint64_t n = in.Get<uint64_t>(); n > 0; --n) {
    const K key = in.Get<K>();
    *table.FindOrInsert(key).first = in.Get<V>();
  }
}

}  // namespace barge::stream
