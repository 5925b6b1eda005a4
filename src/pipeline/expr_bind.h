// The binder: resolves names and types of a parsed expression against a schema, inserts the
// implicit conversions, folds constants, and produces the typed tree the code generator
// (expr_program.cc) compiles into kernels.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/expr_ast.h"
#include "pipeline/types.h"

namespace barge::pipeline::detail {

// Scalar functions (aliases map to one of these).
enum class Fn : uint8_t {
  kCoalesce,
  kNullif,
  kIf,
  kUpper,
  kLower,
  kLength,
  kOctetLength,
  kSubstr,
  kTrim,
  kLtrim,
  kRtrim,
  kConcat,
  kConcatWs,
  kReplace,
  kLeft,
  kRight,
  kReverse,
  kRepeat,
  kLpad,
  kRpad,
  kStrpos,
  kStartsWith,
  kEndsWith,
  kContains,
  kSplitPart,
  kAbs,
  kSign,
  kRound,
  kFloor,
  kCeil,
  kTrunc,
  kSqrt,
  kCbrt,
  kPower,
  kExp,
  kLn,
  kLog10,
  kLog2,
  kLog,
  kMod,
  kGreatest,
  kLeast,
  kPi,
  kDateTrunc,
  kTimeBucket,
  kDatePart,  // also year(), hour(), ... (the part is the first argument after binding)
  kEpochMs,
  kTypeof,
};

enum class BoundKind : uint8_t {
  kConst,     // value
  kField,     // field: index in the input schema
  kError,     // a constant whose evaluation failed: every row that evaluates it fails with
              // value.s, so masking (CASE, AND, ...) still decides whether the error happens
  kNeg,       // args[0]
  kNot,       // args[0]
  kArith,     // op (+ - * / %) on args[0], args[1], both of the operand type (see below)
  kCompare,   // op (= <> < <= > >=); args of one type
  kAnd,       // args[0], args[1] (BOOLEAN)
  kOr,        // args[0], args[1]
  kIsNull,    // args[0] IS [NOT] NULL (negated)
  kIsBool,    // args[0] IS [NOT] TRUE|FALSE (flag = TRUE)
  kDistinct,  // args[0] IS [NOT] DISTINCT FROM args[1] (negated = NOT DISTINCT)
  kIn,        // args[0] [NOT] IN (args[1..]) (negated); one type
  kBetween,   // args[0] [NOT] BETWEEN args[1] AND args[2]; one type
  kLike,      // args[0] [NOT] LIKE args[1] (flag = ILIKE), escape character in value.s
  kCase,      // (WHEN args[2k], THEN args[2k+1])..., ELSE args.back() when has_else
  kCoalesce,  // coalesce(args...)
  kCast,      // CAST(args[0] AS type); flag = TRY_CAST
  kConcat,    // args[0] || args[1] (VARCHAR, NULL when either is)
  kCall,      // fn(args...)
};

struct Bound;
using BoundPtr = std::unique_ptr<Bound>;

// A typed node. For kArith the result type is `type`; the operands are of the arithmetic's
// operand type: both BIGINT or both DOUBLE, or TIMESTAMP +/- BIGINT (TIMESTAMP - TIMESTAMP
// gives BIGINT).
struct Bound {
  BoundKind kind = BoundKind::kConst;
  Type type = Type::kNull;
  size_t offset = 0;  // where the node was written (for messages)
  Op op = Op::kAdd;
  Fn fn = Fn::kCoalesce;
  bool negated = false;
  bool flag = false;
  bool has_else = false;
  int field = -1;
  Value value;
  std::vector<BoundPtr> args;

  // Evaluation may fail for some row (division, overflow, conversion from text, ...).
  bool can_fail = false;
  // Cheap and without side effects when evaluated on rows whose result is not used (no string
  // building, no calendar or transcendental math): AND and OR evaluate such a right side on
  // every row instead of building a selection.
  bool cheap = true;
};

struct BindResult {
  BoundPtr root;
  std::vector<int> inputs;  // the fields read, ascending, unique
};

// Types and resolves `ast` against `schema`. On failure returns nothing and fills *error.
std::optional<BindResult> Bind(const Ast& ast, const Schema& schema, ExprError* error);

// The function called `name` (lower case, aliases included), if any.
std::optional<Fn> FindFunction(std::string_view name);
// The name a function prints with.
std::string_view FunctionName(Fn fn);

// Evaluates a node whose arguments are all constants (defined by the evaluator, which runs the
// node's kernel on one row). On a row error returns false and sets *message.
bool FoldConstant(const Bound& node, Value* out, std::string* message);

}  // namespace barge::pipeline::detail
