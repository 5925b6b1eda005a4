// Column and RecordBatch: how spec pipelines hold records. Columnar, in Arrow's buffer layout, so
// that expressions run a column at a time and a later stage can hand a column to numpy without
// copying:
//
// - fixed-width values in one contiguous buffer: int64 for BIGINT and TIMESTAMP, double for
//   DOUBLE, one byte (0 or 1) per BOOLEAN (numpy's bool; Arrow packs booleans into bits);
// - VARCHAR as `size() + 1` uint32 offsets into one buffer of UTF-8 bytes (Arrow's utf8), at most
//   kMaxColumnBytes of them per column, so the offsets also read as Arrow's int32;
// - a validity bitmap, least significant bit first, 1 = not NULL, stored as 64-bit words (the
//   same bytes as Arrow's bitmap on a little-endian machine). An empty bitmap means no NULLs.
//   A NULL row's value is unspecified (strings: zero length).
//
// Buffers keep their capacity when cleared, so a batch that is recycled allocates nothing.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "barge/stream/batch.h"
#include "pipeline/types.h"

namespace barge::pipeline {

// A vector whose resize leaves values uninitialized (they are written right after).
template <class T>
using Buffer = stream::RecordVector<T>;

// The most VARCHAR bytes one column of one batch holds; more is an error (std::length_error),
// never offsets that wrap. Sources end batches long before (kMaxBatchBytes).
inline constexpr size_t kMaxColumnBytes = (size_t{1} << 31) - 1;
// What sources read into one batch at most, in bytes of input.
inline constexpr size_t kMaxBatchBytes = size_t{64} << 20;

class Column {
 public:
  explicit Column(Type type = Type::kNull) : type_(type) { ResetOffsets(); }

  Type type() const { return type_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Drops every row and sets the type, keeping buffer capacity.
  void Reset(Type type) {
    type_ = type;
    Clear();
  }
  void Clear();

  // ---- Validity.

  // False when no row is NULL for sure; true when a bitmap exists (some rows may be NULL).
  bool has_validity() const { return !validity_.empty(); }
  bool IsValid(size_t i) const {
    return validity_.empty() || ((validity_[i >> 6] >> (i & 63)) & 1) != 0;
  }
  bool IsNull(size_t i) const { return !IsValid(i); }
  // Bitmap words ((size + 63) / 64 of them), or empty.
  const Buffer<uint64_t>& validity() const { return validity_; }
  // Creates the bitmap (all rows valid) if there is none, and returns it for writing.
  Buffer<uint64_t>& MutableValidity();
  void SetNull(size_t i) { MutableValidity()[i >> 6] &= ~(uint64_t{1} << (i & 63)); }
  void SetValid(size_t i) {
    if (!validity_.empty()) validity_[i >> 6] |= uint64_t{1} << (i & 63);
  }
  // Forgets the bitmap: every row is valid.
  void DropValidity() { validity_.clear(); }
  // Rows that are NULL (counts the bitmap).
  size_t NullCount() const;

  // ---- Fixed-width values. Resize() sets the row count; new values and validity bits are
  // uninitialized (validity: new rows are valid when there is a bitmap).

  void Resize(size_t n);

  int64_t* ints() { return ints_.data(); }
  const int64_t* ints() const { return ints_.data(); }
  double* doubles() { return doubles_.data(); }
  const double* doubles() const { return doubles_.data(); }
  uint8_t* bools() { return bools_.data(); }
  const uint8_t* bools() const { return bools_.data(); }

  // ---- Strings.

  std::string_view String(size_t i) const {
    return {bytes_.data() + offsets_[i], static_cast<size_t>(offsets_[i + 1] - offsets_[i])};
  }
  const uint32_t* offsets() const { return offsets_.data(); }
  const char* bytes() const { return bytes_.data(); }
  size_t byte_size() const { return offsets_[size_]; }
  // For writers that fill offsets and bytes themselves: offsets has size() + 1 entries.
  Buffer<uint32_t>& mutable_offsets() { return offsets_; }
  Buffer<char>& mutable_bytes() { return bytes_; }

  // ---- Appending one row (parsers, builders).

  void AppendInt(int64_t v) {
    ints_.push_back(v);
    Grew();
  }
  void AppendDouble(double v) {
    doubles_.push_back(v);
    Grew();
  }
  void AppendBool(bool v) {
    bools_.push_back(v ? 1 : 0);
    Grew();
  }
  void AppendString(std::string_view s) {
    if (bytes_.size() + s.size() > kMaxColumnBytes) TooManyBytes();
    bytes_.insert(bytes_.end(), s.begin(), s.end());
    offsets_.push_back(static_cast<uint32_t>(bytes_.size()));
    Grew();
  }
  // A NULL of this column's type.
  void AppendNull();

  // Appends rows [begin, end) of `src` (same type).
  void AppendRange(const Column& src, size_t begin, size_t end);
  // Appends the rows `rows[0..n)` of `src` (same type), in that order.
  void AppendRows(const Column& src, const uint32_t* rows, size_t n);
  // Appends row `row` of `src` (same type).
  void AppendRow(const Column& src, size_t row) { AppendRange(src, row, row + 1); }
  // Keeps the rows whose keep[i] is non-zero, in order; returns the new size.
  size_t Compact(const uint8_t* keep);

  // Bytes of values held (for metrics): fixed width x size, or string bytes + offsets.
  size_t ValueBytes() const;

  void swap(Column& other) noexcept;

 private:
  void ResetOffsets() {
    offsets_.clear();
    offsets_.push_back(0);
  }
  // After one value was appended: bumps the size and keeps the bitmap as long.
  void Grew() {
    ++size_;
    if (!validity_.empty()) {
      if ((size_ + 63) / 64 > validity_.size()) validity_.push_back(~uint64_t{0});
      SetValid(size_ - 1);
    }
  }
  // Invariant: an existing bitmap has at least (size_ + 63) / 64 words, and at least one.

  Type type_;
  size_t size_ = 0;
  Buffer<uint64_t> validity_;
  Buffer<int64_t> ints_;
  Buffer<double> doubles_;
  Buffer<uint8_t> bools_;
  Buffer<uint32_t> offsets_;
  [[noreturn]] static void TooManyBytes();
  Buffer<char> bytes_;
};

// Calls f(tag) with a value of the C++ type that holds `type`'s fixed-width values:
// int64_t (BIGINT, TIMESTAMP), double, uint8_t (BOOLEAN); std::string_view for VARCHAR; and
// std::nullptr_t for NULL.
template <class F>
decltype(auto) VisitType(Type type, F&& f) {
  switch (type) {
    case Type::kInt64:
    case Type::kTimestamp:
      return f(int64_t{});
    case Type::kDouble:
      return f(double{});
    case Type::kBool:
      return f(uint8_t{});
    case Type::kString:
      return f(std::string_view{});
    case Type::kNull:
      break;
  }
  return f(nullptr);
}

// A batch of rows: one Column per field of `schema`, plus the engine's per-row bookkeeping.
// `time`, `watermark` and `origin` are each empty (not carried) or exactly `rows` long.
struct RecordBatch {
  // Shared: every batch a step produces points to the step's one immutable output schema.
  std::shared_ptr<const Schema> schema;
  size_t rows = 0;
  std::vector<Column> columns;
  // Event time of each row (milliseconds), once the source assigned it.
  Buffer<int64_t> time;
  // The source's watermark right after it read the row. Windows use it to decide lateness exactly
  // as if every record were processed one by one in source order, whatever the batching.
  Buffer<int64_t> watermark;
  // Where the row came from, for error messages and for ordering first()/last():
  // (input index << kOriginLineBits) | line or record number.
  Buffer<int64_t> origin;

  static constexpr int kOriginLineBits = 40;
  static int64_t MakeOrigin(uint64_t input, uint64_t line) {
    return static_cast<int64_t>((input << kOriginLineBits) | line);
  }
  static uint64_t OriginInput(int64_t origin) {
    return static_cast<uint64_t>(origin) >> kOriginLineBits;
  }
  static uint64_t OriginLine(int64_t origin) {
    return static_cast<uint64_t>(origin) & ((uint64_t{1} << kOriginLineBits) - 1);
  }

  // Empties the batch for `schema` (one column per field, typed), keeping buffer capacity.
  void Reset(std::shared_ptr<const Schema> schema);
  // Drops every row, keeping schema and capacity.
  void Clear();

  // Keeps rows whose keep[i] is non-zero (columns and bookkeeping alike).
  void Compact(const uint8_t* keep);
  // Appends rows `rows[0..n)` of `src`, which has the same schema and bookkeeping.
  void AppendRows(const RecordBatch& src, const uint32_t* rows, size_t n);
  // Appends rows [begin, end) of `src`.
  void AppendRange(const RecordBatch& src, size_t begin, size_t end);

  // Approximate payload bytes, for metrics.
  size_t ByteSize() const;

  // Checks the invariants (column count and types match the schema, every column and bookkeeping
  // vector has `rows` rows); for tests and debug assertions. Empty string when sound.
  std::string CheckShape() const;
};

}  // namespace barge::pipeline
