// The syntax tree of an expression as written, before types are known. Produced by ParseAst
// (expr_parse.cc), consumed by the binder (expr_bind.cc) and printed by AstToString.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/expr.h"
#include "pipeline/types.h"

namespace barge::pipeline::detail {

// A constant: a literal in the text, or the result of folding constants.
struct Value {
  Type type = Type::kNull;
  bool null = true;  // a NULL of `type` (always true for Type::kNull)
  int64_t i = 0;     // BIGINT, TIMESTAMP, BOOLEAN (0 or 1)
  double d = 0;      // DOUBLE
  std::string s;     // VARCHAR

  static Value Null(Type t = Type::kNull) { return Value{t, true, 0, 0, {}}; }
  static Value Int(int64_t v) { return Value{Type::kInt64, false, v, 0, {}}; }
  static Value Timestamp(int64_t v) { return Value{Type::kTimestamp, false, v, 0, {}}; }
  static Value Double(double v) { return Value{Type::kDouble, false, 0, v, {}}; }
  static Value Bool(bool v) { return Value{Type::kBool, false, v ? 1 : 0, 0, {}}; }
  static Value String(std::string v) { return Value{Type::kString, false, 0, 0, std::move(v)}; }

  // SQL text that reads back as this value: 42, 1.5, 'it''s', TRUE, TIMESTAMP '...', NULL.
  std::string ToSql() const;
};

enum class AstKind : uint8_t {
  kLiteral,
  kField,     // name: the field's full (dotted) name
  kUnary,     // op: kNeg or kNot; args[0]
  kBinary,    // op; args[0], args[1]
  kIsNull,    // args[0] IS [NOT] NULL
  kIsBool,    // args[0] IS [NOT] TRUE|FALSE (flag: TRUE)
  kDistinct,  // args[0] IS [NOT] DISTINCT FROM args[1] (negated: NOT DISTINCT)
  kIn,        // args[0] [NOT] IN (args[1..])
  kBetween,   // args[0] [NOT] BETWEEN args[1] AND args[2]
  kLike,      // args[0] [NOT] LIKE|ILIKE args[1] [ESCAPE args[2]] (flag: ILIKE)
  kCase,      // [operand] (WHEN, THEN)... [ELSE]: see case_operand/case_else
  kCast,      // CAST(args[0] AS cast_type) (flag: TRY_CAST)
  kCall,      // name(args...) (flag: DISTINCT), name lower case
  kStar,      // the * of count(*)
};

enum class Op : uint8_t {
  kNeg,
  kNot,
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMod,
  kConcat,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kAnd,
  kOr,
};

// "+", "AND", "<>", ...
std::string_view OpText(Op op);

// How a literal was written, so that ToString prints it back the same way.
enum class LiteralStyle : uint8_t { kPlain, kTimestamp, kInterval };

struct Ast {
  AstKind kind = AstKind::kLiteral;
  // Where errors about this node point: its operator or keyword, or its first token.
  size_t offset = 0;
  // [begin, end) of the node's text.
  size_t begin = 0;
  size_t end = 0;
  Op op = Op::kAdd;
  bool negated = false;
  bool flag = false;
  bool case_operand = false;  // kCase: args[0] is the operand of a simple CASE
  bool case_else = false;     // kCase: the last arg is the ELSE result
  Value value;
  LiteralStyle style = LiteralStyle::kPlain;
  std::string name;       // field, function; for an INTERVAL literal its unit as written
  std::string type_name;  // kCast: the type as written (upper case)
  Type cast_type = Type::kNull;
  // 1 + the largest height of the args (the passes over a tree recurse this deep).
  uint32_t height = 1;
  std::vector<std::unique_ptr<Ast>> args;
};
using AstPtr = std::unique_ptr<Ast>;

// Parses a whole expression. On failure returns null and fills *error (offset, message).
AstPtr ParseAst(std::string_view text, ExprError* error);

// The normalized text of a tree: keywords upper case, function names lower case, every binary
// operation in parentheses ("CAST(round((amount * 100)) AS BIGINT)").
std::string AstToString(const Ast& ast);

// `name` as it must be written to read back as that field: bare when it is a plain identifier
// (or dotted plain identifiers) that is not a keyword, "double-quoted" otherwise.
std::string QuoteIdentifier(std::string_view name);

// True for the words the parser reserves (AND, CASE, NULL, ...); case-insensitive.
bool IsReservedWord(std::string_view word);

}  // namespace barge::pipeline::detail
