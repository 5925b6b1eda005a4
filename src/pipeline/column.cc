#include "pipeline/column.h"

#include <fmt/core.h>

#include <algorithm>
#include <bit>
#include <stdexcept>

namespace barge::pipeline {

void Column::Clear() {
  size_ = 0;
  validity_.clear();
  ints_.clear();
  doubles_.clear();
  bools_.clear();
  bytes_.clear();
  ResetOffsets();
}

Buffer<uint64_t>& Column::MutableValidity() {
  // At least one word, so that a bitmap that exists is never empty.
  size_t words = std::max<size_t>((size_ + 63) / 64, 1);
  if (validity_.size() < words) validity_.resize(words, ~uint64_t{0});
  return validity_;
}

size_t Column::NullCount() const {
  if (validity_.empty()) return 0;
  size_t valid = 0;
  size_t full = size_ / 64;
  for (size_t w = 0; w < full; ++w) valid += static_cast<size_t>(std::popcount(validity_[w]));
  if (size_t rest = size_ % 64; rest != 0) {
    valid += static_cast<size_t>(std::popcount(validity_[full] & ((uint64_t{1} << rest) - 1)));
  }
  return size_ - valid;
}

void Column::Resize(size_t n) {
  switch (type_) {
    case Type::kInt64:
    case Type::kTimestamp:
      ints_.resize(n);
      break;
    case Type::kDouble:
      doubles_.resize(n);
      break;
    case Type::kBool:
      bools_.resize(n);
      break;
    case Type::kString: {
      // Strings are built by appending; a resize pads with empty strings.
      uint32_t end = offsets_[std::min(n, size_)];
      offsets_.resize(n + 1, end);
      bytes_.resize(end);
      break;
    }
    case Type::kNull:
      break;
  }
  size_t old = size_;
  size_ = n;
  if (!validity_.empty()) {
    MutableValidity();
    // Rows that come back after a shrink are valid (new words start all valid).
    for (size_t i = old; i < n && (i & 63) != 0; ++i) SetValid(i);
  }
}

void Column::AppendNull() {
  switch (type_) {
    case Type::kInt64:
    case Type::kTimestamp:
      ints_.push_back(0);
      break;
    case Type::kDouble:
      doubles_.push_back(0);
      break;
    case Type::kBool:
      bools_.push_back(0);
      break;
    case Type::kString:
      offsets_.push_back(offsets_.back());
      break;
    case Type::kNull:
      break;
  }
  ++size_;
  SetNull(size_ - 1);
}

namespace {

// Copies validity bits of `src` rows into `dst` starting at row `at`, row by row (`row(k)` is
// the source row of the k-th copied row).
template <class RowOf>
void CopyValidity(Column& dst, size_t at, const Column& src, size_t n, RowOf row) {
  if (!src.has_validity() && !dst.has_validity()) return;
  Buffer<uint64_t>& bits = dst.MutableValidity();
  for (size_t k = 0; k < n; ++k) {
    size_t d = at + k;
    uint64_t mask = uint64_t{1} << (d & 63);
    if (src.IsValid(row(k))) {
      bits[d >> 6] |= mask;
    } else {
      bits[d >> 6] &= ~mask;
    }
  }
}

}  // namespace

void Column::AppendRange(const Column& src, size_t begin, size_t end) {
  size_t n = end - begin;
  size_t at = size_;
  switch (type_) {
    case Type::kInt64:
    case Type::kTimestamp:
      ints_.insert(ints_.end(), src.ints_.begin() + begin, src.ints_.begin() + end);
      break;
    case Type::kDouble:
      doubles_.insert(doubles_.end(), src.doubles_.begin() + begin, src.doubles_.begin() + end);
      break;
    case Type::kBool:
      bools_.insert(bools_.end(), src.bools_.begin() + begin, src.bools_.begin() + end);
      break;
    case Type::kString: {
      uint32_t first = src.offsets_[begin];
      uint32_t base = offsets_.back();
      if (size_t{base} + (src.offsets_[end] - first) > kMaxColumnBytes) TooManyBytes();
      bytes_.insert(bytes_.end(), src.bytes_.begin() + first,
                    src.bytes_.begin() + src.offsets_[end]);
      for (size_t i = begin + 1; i <= end; ++i)
        offsets_.push_back(base + (src.offsets_[i] - first));
      break;
    }
    case Type::kNull:
      break;
  }
  size_ = at + n;
  if (src.has_validity() || has_validity()) MutableValidity();
  CopyValidity(*this, at, src, n, [begin](size_t k) { return begin + k; });
}

void Column::TooManyBytes() {
  throw std::length_error("more than 2 GiB of text in one column of one batch");
}

void Column::AppendRows(const Column& src, const uint32_t* rows, size_t n) {
  size_t at = size_;
  switch (type_) {
    case Type::kInt64:
    case Type::kTimestamp: {
      ints_.resize(at + n);
      int64_t* d = ints_.data() + at;
      const int64_t* s = src.ints_.data();
      for (size_t k = 0; k < n; ++k) d[k] = s[rows[k]];
      break;
    }
    case Type::kDouble: {
      doubles_.resize(at + n);
      double* d = doubles_.data() + at;
      const double* s = src.doubles_.data();
      for (size_t k = 0; k < n; ++k) d[k] = s[rows[k]];
      break;
    }
    case Type::kBool: {
      bools_.resize(at + n);
      uint8_t* d = bools_.data() + at;
      const uint8_t* s = src.bools_.data();
      for (size_t k = 0; k < n; ++k) d[k] = s[rows[k]];
      break;
    }
    case Type::kString:
      for (size_t k = 0; k < n; ++k) {
        std::string_view v = src.String(rows[k]);
        if (bytes_.size() + v.size() > kMaxColumnBytes) TooManyBytes();
        bytes_.insert(bytes_.end(), v.begin(), v.end());
        offsets_.push_back(static_cast<uint32_t>(bytes_.size()));
      }
      break;
    case Type::kNull:
      break;
  }
  size_ = at + n;
  if (src.has_validity() || has_validity()) MutableValidity();
  CopyValidity(*this, at, src, n, [rows](size_t k) { return rows[k]; });
}

size_t Column::Compact(const uint8_t* keep) {
  size_t n = size_;
  size_t kept = 0;
  auto compact = [&](auto* v) {
    size_t k = 0;
    // Branch-free: always copy, advance only when kept.
    for (size_t i = 0; i < n; ++i) {
      v[k] = v[i];
      k += keep[i] != 0;
    }
    return k;
  };
  switch (type_) {
    case Type::kInt64:
    case Type::kTimestamp:
      kept = compact(ints_.data());
      ints_.resize(kept);
      break;
    case Type::kDouble:
      kept = compact(doubles_.data());
      doubles_.resize(kept);
      break;
    case Type::kBool:
      kept = compact(bools_.data());
      bools_.resize(kept);
      break;
    case Type::kString: {
      uint32_t out = 0;
      for (size_t i = 0; i < n; ++i) {
        if (keep[i] == 0) continue;
        uint32_t b = offsets_[i], e = offsets_[i + 1];
        if (out != b) std::memmove(bytes_.data() + out, bytes_.data() + b, e - b);
        offsets_[kept] = out;
        out += e - b;
        ++kept;
      }
      offsets_[kept] = out;
      offsets_.resize(kept + 1);
      bytes_.resize(out);
      break;
    }
    case Type::kNull:
      for (size_t i = 0; i < n; ++i) kept += keep[i] != 0;
      break;
  }
  if (!validity_.empty()) {
    size_t k = 0;
    for (size_t i = 0; i < n; ++i) {
      if (keep[i] == 0) continue;
      uint64_t mask = uint64_t{1} << (k & 63);
      if (IsValid(i)) {
        validity_[k >> 6] |= mask;
      } else {
        validity_[k >> 6] &= ~mask;
      }
      ++k;
    }
    validity_.resize(std::max<size_t>((kept + 63) / 64, 1));
  }
  size_ = kept;
  return kept;
}

size_t Column::ValueBytes() const {
  switch (type_) {
    case Type::kInt64:
    case Type::kTimestamp:
    case Type::kDouble:
      return size_ * 8;
    case Type::kBool:
      return size_;
    case Type::kString:
      return offsets_[size_] + size_ * 4;
    case Type::kNull:
      break;
  }
  return 0;
}

void Column::swap(Column& other) noexcept {
  std::swap(type_, other.type_);
  std::swap(size_, other.size_);
  validity_.swap(other.validity_);
  ints_.swap(other.ints_);
  doubles_.swap(other.doubles_);
  bools_.swap(other.bools_);
  offsets_.swap(other.offsets_);
  bytes_.swap(other.bytes_);
}

// ---- RecordBatch

void RecordBatch::Reset(std::shared_ptr<const Schema> s) {
  schema = std::move(s);
  rows = 0;
  columns.resize(schema->fields.size());
  for (size_t i = 0; i < columns.size(); ++i) columns[i].Reset(schema->fields[i].type);
  time.clear();
  watermark.clear();
  origin.clear();
}

void RecordBatch::Clear() {
  rows = 0;
  for (Column& c : columns) c.Clear();
  time.clear();
  watermark.clear();
  origin.clear();
}

namespace {

void CompactVector(Buffer<int64_t>& v, const uint8_t* keep, size_t n) {
  if (v.empty()) return;
  size_t k = 0;
  int64_t* d = v.data();
  for (size_t i = 0; i < n; ++i) {
    d[k] = d[i];
    k += keep[i] != 0;
  }
  v.resize(k);
}

void GatherVector(Buffer<int64_t>& dst, const Buffer<int64_t>& src, const uint32_t* rows,
                  size_t n) {
  if (src.empty()) return;
  size_t at = dst.size();
  dst.resize(at + n);
  for (size_t k = 0; k < n; ++k) dst[at + k] = src[rows[k]];
}

}  // namespace

void RecordBatch::Compact(const uint8_t* keep) {
  size_t kept = rows;
  for (Column& c : columns) kept = c.Compact(keep);
  if (columns.empty()) {
    kept = 0;
    for (size_t i = 0; i < rows; ++i) kept += keep[i] != 0;
  }
  CompactVector(time, keep, rows);
  CompactVector(watermark, keep, rows);
  CompactVector(origin, keep, rows);
  rows = kept;
}

void RecordBatch::AppendRows(const RecordBatch& src, const uint32_t* r, size_t n) {
  for (size_t i = 0; i < columns.size(); ++i) columns[i].AppendRows(src.columns[i], r, n);
  GatherVector(time, src.time, r, n);
  GatherVector(watermark, src.watermark, r, n);
  GatherVector(origin, src.origin, r, n);
  rows += n;
}

void RecordBatch::AppendRange(const RecordBatch& src, size_t begin, size_t end) {
  for (size_t i = 0; i < columns.size(); ++i) columns[i].AppendRange(src.columns[i], begin, end);
  auto append = [&](Buffer<int64_t>& d, const Buffer<int64_t>& s) {
    if (!s.empty()) d.insert(d.end(), s.begin() + begin, s.begin() + end);
  };
  append(time, src.time);
  append(watermark, src.watermark);
  append(origin, src.origin);
  rows += end - begin;
}

size_t RecordBatch::ByteSize() const {
  size_t bytes = (time.size() + watermark.size() + origin.size()) * 8;
  for (const Column& c : columns) bytes += c.ValueBytes();
  return bytes;
}

std::string RecordBatch::CheckShape() const {
  if (!schema) return "no schema";
  if (columns.size() != schema->fields.size()) {
    return fmt::format("{} columns for {} fields", columns.size(), schema->fields.size());
  }
  for (size_t i = 0; i < columns.size(); ++i) {
    const Column& c = columns[i];
    if (c.type() != schema->fields[i].type) {
      return fmt::format("column {} is {}, field '{}' is {}", i, TypeName(c.type()),
                         schema->fields[i].name, TypeName(schema->fields[i].type));
    }
    if (c.size() != rows) {
      return fmt::format("column '{}' has {} rows, batch {}", schema->fields[i].name, c.size(),
                         rows);
    }
    if (c.has_validity() && c.validity().size() < (rows + 63) / 64) {
      return fmt::format("column '{}' has a short validity bitmap", schema->fields[i].name);
    }
  }
  for (const Buffer<int64_t>* v : {&time, &watermark, &origin}) {
    if (!v->empty() && v->size() != rows) return "bookkeeping vector of the wrong length";
  }
  return {};
}

}  // namespace barge::pipeline
