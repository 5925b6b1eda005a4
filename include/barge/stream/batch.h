// Batch<T>: the unit records travel in. Operators are called once per batch, never per record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace barge::stream {

// Event time, in the unit the pipeline's timestamps use (milliseconds by convention).
using EventTime = int64_t;
inline constexpr EventTime kMinTime = std::numeric_limits<EventTime>::min();
inline constexpr EventTime kMaxTime = std::numeric_limits<EventTime>::max();

// Records and, when the stream carries event time, their timestamps in a parallel array.
// `timestamps` is either empty (no event time) or exactly as long as `records`.
//
// Ownership contract of Input<T>::Push(Batch<T>& b): the callee may reorder, shrink or swap out
// b's vectors; after Push returns the caller clears b and reuses its capacity. Nobody keeps a
// reference into a batch after Push returns. Buffers are recycled, so the steady state allocates
// nothing.
template <class T>
struct Batch {
  std::vector<T> records;
  std::vector<EventTime> timestamps;

  size_t size() const { return records.size(); }
  bool empty() const { return records.empty(); }
  bool has_timestamps() const { return !timestamps.empty() || records.empty(); }
  void clear() {
    records.clear();
    timestamps.clear();
  }
  void reserve(size_t n) {
    records.reserve(n);
    timestamps.reserve(n);
  }
  void swap(Batch& other) {
    records.swap(other.records);
    timestamps.swap(other.timestamps);
  }
};

}  // namespace barge::stream
