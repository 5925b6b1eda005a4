// Helpers shared by the expression tests: building batches from rows of cells and rendering
// result columns as text.
#pragma once

#include <fmt/core.h>

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "pipeline/column.h"
#include "pipeline/expr.h"

namespace barge::pipeline::testing {

// Counting the heap allocations of this thread (expr_alloc_count.cc replaces operator new):
// CountAllocations(true) resets the count and starts counting.
void CountAllocations(bool on);
size_t CountedAllocations();

// One cell of a test batch: NULL, or a value of the column's type (timestamps as int64 ms).
using Cell = std::variant<std::monostate, int64_t, double, bool, std::string>;
inline const Cell kNull = std::monostate{};

inline void AppendCell(Column& c, const Cell& v) {
  if (std::holds_alternative<std::monostate>(v)) {
    c.AppendNull();
  } else if (const int64_t* i = std::get_if<int64_t>(&v)) {
    c.AppendInt(*i);
  } else if (const double* d = std::get_if<double>(&v)) {
    c.AppendDouble(*d);
  } else if (const bool* b = std::get_if<bool>(&v)) {
    c.AppendBool(*b);
  } else {
    c.AppendString(std::get<std::string>(v));
  }
}

// A batch of `schema` from rows of cells (one per field).
inline RecordBatch MakeBatch(std::shared_ptr<const Schema> schema,
                             const std::vector<std::vector<Cell>>& rows) {
  RecordBatch b;
  b.Reset(std::move(schema));
  for (const std::vector<Cell>& row : rows) {
    for (size_t f = 0; f < row.size(); ++f) AppendCell(b.columns[f], row[f]);
  }
  b.rows = rows.size();
  return b;
}

// A double as the tests write it: shortest form, with ".0" when integral ("3.0", "2.5").
inline std::string RenderDouble(double d) {
  std::string s = fmt::format("{}", d);
  if (s.find_first_of(".eni") == std::string::npos) s += ".0";
  return s;
}

// Row i of a result column: NULL, 42, 2.5, 'text', TRUE, or ts:<milliseconds>.
inline std::string Render(const Column& c, size_t i) {
  if (c.IsNull(i)) return "NULL";
  switch (c.type()) {
    case Type::kInt64:
      return std::to_string(c.ints()[i]);
    case Type::kTimestamp:
      return "ts:" + std::to_string(c.ints()[i]);
    case Type::kDouble:
      return RenderDouble(c.doubles()[i]);
    case Type::kBool:
      return c.bools()[i] ? "TRUE" : "FALSE";
    case Type::kString:
      return fmt::format("'{}'", c.String(i));
    case Type::kNull:
      break;
  }
  return "NULL";
}

}  // namespace barge::pipeline::testing
