// Keys of keyed steps: hashing a batch's key columns a column at a time, and KeyTable, which
// gives every distinct key a dense entry number. Keys may be of any type and NULL (NULL is a key
// of its own, as in SQL's GROUP BY).
#pragma once

#include <cstdint>
#include <vector>

#include "pipeline/column.h"

namespace barge::pipeline {

// The seed of key tables' hashes: random per process, so keys crafted to collide in one run
// (hash flooding) do not collide in another.
uint64_t TableSeed();
// The seed of partitioning hashes: fixed, so a key goes to the same partition in every run.
inline constexpr uint64_t kPartitionSeed = 0x243F6A8885A308D3ULL;

// hashes[i] = hash of row i's values in `key_columns` of `batch` (resized to batch.rows). Equal
// keys hash equally whatever batch they are in; -0.0 and 0.0, and all NaNs, are one key.
// Tables hash with TableSeed(), partitioning with kPartitionSeed.
void HashKeys(const RecordBatch& batch, const std::vector<int>& key_columns,
              std::vector<uint64_t>& hashes, uint64_t seed = TableSeed());

// The partition of a key hash among `parts` (a multiply-shift, no division).
inline size_t PartitionOf(uint64_t hash, size_t parts) {
  return static_cast<size_t>((static_cast<unsigned __int128>(hash) * parts) >> 64);
}

// Distinct keys, each with an entry number 0, 1, ... in order of first appearance. Keys are
// stored as columns, so emitting results gathers them a column at a time. Owned by one operator
// instance; not thread-safe.
class KeyTable {
 public:
  // `types` are the key columns' types.
  explicit KeyTable(std::vector<Type> types = {});

  // For rows rows[0..n) of `batch`, the entry of each row's key, inserting new keys: entries[k]
  // for rows[k]. `rows` may be null (rows 0..n). `hashes` (HashKeys of the batch, indexed by row)
  // is read only when uses_hashes(); a table of one integer key hashes the key itself.
  void FindOrInsert(const RecordBatch& batch, const std::vector<int>& key_columns,
                    const uint64_t* hashes, const uint32_t* rows, size_t n, uint32_t* entries);
  // One row; `hash` as above.
  uint32_t FindOrInsertRow(const RecordBatch& batch, const std::vector<int>& key_columns,
                           uint64_t hash, size_t row);
  // Whether FindOrInsert reads the batch's key hashes.
  bool uses_hashes() const { return !single_int_; }

  size_t size() const { return hashes_.size(); }
  // The keys, column per key field, row per entry.
  const std::vector<Column>& keys() const { return keys_; }
  // Forgets every key, keeping memory.
  void Clear();

 private:
  bool Equal(uint32_t entry, const RecordBatch& batch, const std::vector<int>& key_columns,
             size_t row) const;
  uint32_t Insert(const RecordBatch& batch, const std::vector<int>& key_columns, uint64_t hash,
                  size_t row, size_t slot);
  void Grow();
  size_t Home(uint64_t placement) const { return static_cast<size_t>(placement >> shift_); }
  // A row's placement hash in a table of one integer key.
  uint64_t IntPlacement(const Column& c, size_t row) const {
    return c.IsValid(row) ? IntPlacement(c.ints()[row]) : 0x5bd1e9955bd1e995ULL;
  }
  uint64_t IntPlacement(int64_t key) const {
    return (static_cast<uint64_t>(key) ^ seed_) * 0x9E3779B97F4A7C15ULL;
  }

  // Open addressing with linear probing from the top bits of a placement hash: the key (xor the
  // table seed) times the golden ratio for a table of one BIGINT or TIMESTAMP key (Fibonacci
  // hashing), else the key's hash. `word` is the key itself in the first case (a probe compares in
  // place, one cache line), else the hash.
  struct Slot {
    uint32_t entry = 0;  // entry + 1; 0 = empty
    int64_t word = 0;
  };
  int64_t WordOf(uint32_t entry) const {
    return single_int_ ? keys_[0].ints()[entry] : static_cast<int64_t>(hashes_[entry]);
  }

  std::vector<Type> types_;
  std::vector<Column> keys_;
  std::vector<uint64_t> hashes_;  // per entry: its placement hash
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  unsigned shift_ = 60;      // 64 - log2(slots)
  bool single_int_ = false;  // one BIGINT or TIMESTAMP key
  uint64_t seed_ = TableSeed();
};

}  // namespace barge::pipeline
