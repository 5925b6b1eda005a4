// The running state of a step's aggregates (count, sum, min, max, avg, first, last,
// count_distinct), kept in columns of slots: one slot per (window, key) or per key. Updates run
// an aggregate at a time over many rows (one virtual call per aggregate and batch), never per row
// through a tree of calls.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "barge/stream/checkpoint.h"
#include "pipeline/column.h"
#include "pipeline/expr.h"

namespace barge::pipeline {

// One aggregate's state over all slots.
class Aggregator {
 public:
  virtual ~Aggregator() = default;
  // Makes room for slots [0, n); new slots are empty.
  virtual void Resize(size_t n) = 0;
  // Empties a slot for reuse.
  virtual void Reset(uint32_t slot) = 0;
  // Adds row rows[k] of `arg` (the argument evaluated over the batch; null for count(*)) to
  // slot slots[k], for k < n, in order. `order[row]` ranks rows for first/last (null: arrival
  // order). Throws std::overflow_error when a BIGINT sum overflows.
  virtual void Update(const uint32_t* slots, const uint32_t* rows, size_t n, const Column* arg,
                      const int64_t* order) = 0;
  // Folds slot `from` into slot `into` (merging sessions).
  virtual void Merge(uint32_t into, uint32_t from) = 0;
  // Appends the result of slots[0..n) to `out` (of the aggregate's result type). A result that
  // does not fit its type (a BIGINT sum past 2^63) is NULL, and its k (< n) is added to
  // `overflowed` with what happened.
  virtual void Emit(const uint32_t* slots, size_t n, Column& out,
                    std::vector<std::pair<size_t, std::string>>& overflowed) const = 0;
  // Checkpoints: one slot's state, and state shared by all slots (arrival counters).
  virtual void Save(uint32_t slot, stream::StateWriter& out) const = 0;
  virtual void Load(uint32_t slot, stream::StateReader& in) = 0;
  virtual void SaveShared(stream::StateWriter&) const {}
  virtual void LoadShared(stream::StateReader&) {}
};

std::unique_ptr<Aggregator> MakeAggregator(AggregateKind kind, Type argument, std::string name);

// All aggregates of a step, with a slot allocator.
class AggStates {
 public:
  explicit AggStates(const std::vector<AggregateCall>& calls);

  // A fresh, empty slot (a freed one when there is one).
  uint32_t Allocate();
  // Gives a slot back (its state is reset when reused).
  void Free(uint32_t slot);
  // Slots [0, n) exist and are empty; frees nothing (dense use, e.g. one slot per key).
  void ResizeDense(size_t n);

  // Adds rows to slots; `args[a]` is aggregate a's argument column (null for count(*)).
  void Update(const uint32_t* slots, const uint32_t* rows, size_t n,
              const std::vector<const Column*>& args, const int64_t* order);
  void Merge(uint32_t into, uint32_t from);
  // Appends aggregate a's result for slots[0..n) to out[first + a]. Results that do not fit
  // their type are NULL and listed in `overflowed` (k < n, and why), in no particular order.
  void Emit(const uint32_t* slots, size_t n, std::vector<Column>& out, size_t first,
            std::vector<std::pair<size_t, std::string>>& overflowed) const;

  size_t size() const { return aggregators_.size(); }

  // Checkpoints: a slot's state; a slot allocated and set from what SaveSlot wrote.
  void SaveSlot(uint32_t slot, stream::StateWriter& out) const;
  uint32_t LoadSlot(stream::StateReader& in);
  // Dense use: slot `slot` (< the size set by ResizeDense) set from what SaveSlot wrote.
  void LoadSlotAt(uint32_t slot, stream::StateReader& in);
  void SaveShared(stream::StateWriter& out) const;
  void LoadShared(stream::StateReader& in);

 private:
  std::vector<std::unique_ptr<Aggregator>> aggregators_;
  size_t capacity_ = 0;
  uint32_t next_ = 0;
  std::vector<uint32_t> free_;
};

}  // namespace barge::pipeline
