// The value types of spec pipelines and the schema that names a batch's columns.
//
// Types are SQL's, as Flink SQL and DuckDB users write them: BIGINT (int64), DOUBLE, BOOLEAN,
// VARCHAR (UTF-8 bytes), TIMESTAMP (int64 milliseconds since the epoch, UTC) and NULL (the type of
// the literal NULL, which converts to any other).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace barge::pipeline {

enum class Type : uint8_t {
  kNull,
  kBool,
  kInt64,
  kDouble,
  kString,
  kTimestamp,
};

// "BIGINT", "DOUBLE", "BOOLEAN", "VARCHAR", "TIMESTAMP", "NULL".
std::string_view TypeName(Type type);

// A type as a user spells it, case-insensitive: BIGINT (also INT, INTEGER, LONG, SMALLINT,
// TINYINT), DOUBLE (also FLOAT, REAL, DOUBLE PRECISION), BOOLEAN (BOOL), VARCHAR (STRING, TEXT,
// CHAR), TIMESTAMP. Empty when unknown.
std::optional<Type> ParseTypeName(std::string_view name);

// BIGINT or DOUBLE.
inline bool IsNumeric(Type t) { return t == Type::kInt64 || t == Type::kDouble; }
// Types stored as int64 values.
inline bool IsInt64Backed(Type t) { return t == Type::kInt64 || t == Type::kTimestamp; }

struct Field {
  std::string name;
  Type type = Type::kNull;
  bool operator==(const Field&) const = default;
};

// The named, typed columns of a batch, in order. Nested JSON fields are flattened to dotted
// names ("user.id"). Immutable once a pipeline runs; batches share one by pointer.
struct Schema {
  std::vector<Field> fields;

  // Index of the field called `name`, or -1.
  int Find(std::string_view name) const;
  size_t size() const { return fields.size(); }
  bool operator==(const Schema&) const = default;
  // "user VARCHAR, amount DOUBLE".
  std::string ToString() const;
};

// The closest of `candidates` to `word` by edit distance, if it is close enough to be a likely
// typo ("uper" -> "upper"); empty otherwise. For "did you mean" hints.
std::optional<std::string> Suggest(std::string_view word,
                                   const std::vector<std::string>& candidates);

}  // namespace barge::pipeline
