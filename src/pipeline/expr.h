// SQL expressions over record batches: parsed and type-checked once against the input schema,
// then evaluated a column at a time (vectorized), never per record through a tree of virtual
// calls.
//
//   ExprError error;
//   std::optional<Expr> e = Expr::Compile("CAST(round(amount * 100) AS BIGINT)", schema, &error);
//   if (!e) { /* error.offset into the text, error.message */ }
//   ExprState state;                    // one per evaluating thread
//   Column out;
//   std::vector<RowError> errors;
//   e->Evaluate(batch, state, out, errors);
//
// Syntax and semantics are SQL's as Flink SQL and DuckDB users write them (docs/expressions.md):
// literals, field references (dotted for nested fields, "quoted" for any name), arithmetic,
// comparison, AND/OR/NOT with three-valued NULL logic, IS [NOT] NULL, [NOT] IN (...),
// [NOT] BETWEEN, [NOT] LIKE, CASE, CAST/TRY_CAST, and the scalar functions listed there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/column.h"
#include "pipeline/types.h"

namespace barge::pipeline {

// Why an expression does not compile, and where: a byte offset into its text.
struct ExprError {
  size_t offset = 0;
  std::string message;  // e.g. "unknown function 'uper' (did you mean 'upper'?)"
};

// A row whose evaluation failed (division by zero, a value CAST cannot convert, ...). Its
// result is NULL; the caller decides what happens to the record (on_error).
struct RowError {
  uint32_t row = 0;
  std::string message;  // e.g. "division by zero", "cannot convert 'abc' to BIGINT"
};

// Scratch memory of one evaluating thread, reused across batches (no allocation per batch once
// warm). Not shared between threads. One state may serve any number of expressions: it keeps
// scratch per expression (for the 64 most recently added).
class ExprState {
 public:
  ExprState();
  ~ExprState();
  ExprState(ExprState&&) noexcept;
  ExprState& operator=(ExprState&&) noexcept;

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// A compiled expression. Immutable: copies share the program, and Evaluate may run on many
// threads at once, each with its own ExprState.
class Expr {
 public:
  // Parses and type-checks `text` against the fields of `input`. On failure returns nothing and
  // fills `*error`.
  static std::optional<Expr> Compile(std::string_view text, const Schema& input, ExprError* error);
  // Compile() for a condition (a filter): fails unless the result is BOOLEAN (or always NULL),
  // with "expected a BOOLEAN condition, found BIGINT" at the expression's first character.
  static std::optional<Expr> CompilePredicate(std::string_view text, const Schema& input,
                                              ExprError* error);

  // The result type (kNull only for an expression that is always NULL).
  Type type() const;
  // True when evaluation can fail for some row (division or modulo by a value that may be
  // zero, CAST from VARCHAR, BIGINT overflow, sqrt of a negative, ...).
  bool can_fail() const;
  // Indexes of the input fields it reads, ascending, without duplicates.
  const std::vector<int>& inputs() const;
  // The field's index when the expression is just a field reference; else -1.
  int field_ref() const;
  // True when it reads no field (a constant).
  bool is_constant() const;
  // The expression in a normalized form, for printing plans ("CAST(round((amount * 100)) AS
  // BIGINT)").
  std::string ToString() const;

  // Evaluates every row of `in` (whose schema is the one compiled against, or has the same
  // fields) into `out`, which is reset to type() and gets exactly in.rows values. Rows whose
  // evaluation fails are NULL in `out` and appended to `errors` in row order.
  void Evaluate(const RecordBatch& in, ExprState& state, Column& out,
                std::vector<RowError>& errors) const;

  struct Program;

 private:
  explicit Expr(std::shared_ptr<const Program> program) : program_(std::move(program)) {}
  std::shared_ptr<const Program> program_;  // shared: immutable, read by every instance
};

// The aggregate functions of a window or rolling aggregation.
enum class AggregateKind {
  kCountStar,  // count(*): rows
  kCount,      // count(x): rows where x is not NULL
  kSum,        // BIGINT -> BIGINT (overflow is an error), DOUBLE -> DOUBLE
  kMin,        // any type but BOOLEAN; result of the argument's type
  kMax,
  kAvg,            // numeric -> DOUBLE
  kFirst,          // the first non-NULL value in input order
  kLast,           // the last non-NULL value in input order
  kCountDistinct,  // count_distinct(x) or count(DISTINCT x): distinct non-NULL values
};

// One aggregate call as written in an `aggregate:` entry, e.g. "sum(cents)",
// "count(*)", "max(amount * 2)", "count(DISTINCT user)".
struct AggregateCall {
  AggregateKind kind = AggregateKind::kCountStar;
  std::optional<Expr> argument;  // none for count(*)
  Type type = Type::kInt64;      // result type
  std::string ToString() const;  // normalized, e.g. "sum(cents)"
};

// Parses and type-checks an aggregate call against `input`. Unknown aggregate names get a
// suggestion ("unknown aggregate function 'summ' (did you mean 'sum'?)"); a scalar expression
// that is not an aggregate call is an error saying which aggregates exist.
std::optional<AggregateCall> CompileAggregate(std::string_view text, const Schema& input,
                                              ExprError* error);

// The name of every scalar function (for hints and docs).
const std::vector<std::string>& ScalarFunctionNames();
// The name of every aggregate function.
const std::vector<std::string>& AggregateFunctionNames();

}  // namespace barge::pipeline
