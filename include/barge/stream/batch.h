// Batch<T>: the unit records travel in. Operators are called once per batch, never per record.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

namespace barge::stream {

// Event time, in the unit the pipeline's timestamps use (milliseconds by convention).
using EventTime = int64_t;
inline constexpr EventTime kMinTime = std::numeric_limits<EventTime>::min();
inline constexpr EventTime kMaxTime = std::numeric_limits<EventTime>::max();

// Event-time arithmetic that saturates at kMinTime/kMaxTime instead of overflowing, for
// timestamps near the ends of the range (sentinels such as Long.MAX are common in real data).
inline EventTime SatAdd(EventTime a, EventTime b) {
  EventTime r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? kMaxTime : kMinTime;
  return r;
}
inline EventTime SatSub(EventTime a, EventTime b) {
  EventTime r;
  if (__builtin_sub_overflow(a, b, &r)) return b < 0 ? kMaxTime : kMinTime;
  return r;
}

// An allocator whose resize() leaves trivial elements uninitialized instead of zeroing them:
// batches are resized and then overwritten, and zeroing first costs a pass over memory.
template <class T>
class DefaultInitAllocator : public std::allocator<T> {
 public:
  template <class U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  using std::allocator<T>::allocator;

  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

// The record storage of a batch: a std::vector whose resize does not zero trivial records.
template <class T>
using RecordVector = std::vector<T, DefaultInitAllocator<T>>;

// Records and, when the stream carries event time, their timestamps in a parallel array.
// `timestamps` is either empty (no event time) or exactly as long as `records`.
//
// Ownership contract of Input<T>::Push(Batch<T>& b): the callee may reorder, shrink or swap out
// b's vectors; after Push returns the caller clears b and reuses its capacity. Nobody keeps a
// reference into a batch after Push returns. Buffers are recycled, so the steady state allocates
// nothing.
template <class T>
struct Batch {
  RecordVector<T> records;
  RecordVector<EventTime> timestamps;

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

// Records that are themselves batches of rows (a columnar batch handle, say) say so with
// `size_t row_count() const`; the engine then counts rows, not records, in its metrics and
// flushes by rows.
template <class T>
concept RowBatch = requires(const T& t) {
  { t.row_count() } -> std::convertible_to<size_t>;
};

// How many records `b` holds for metrics and batching: its size, or the rows of its records.
template <class T>
size_t RecordCount(const Batch<T>& b) {
  if constexpr (RowBatch<T>) {
    size_t rows = 0;
    for (const T& r : b.records) rows += r.row_count();
    return rows;
  } else {
    return b.size();
  }
}

}  // namespace barge::stream
