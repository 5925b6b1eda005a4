// Type checking. The rules, as docs/expressions.md states them for users:
// - BIGINT promotes to DOUBLE wherever both meet (arithmetic, comparison, CASE, coalesce, IN).
// - TIMESTAMP +/- BIGINT (milliseconds) is a TIMESTAMP; TIMESTAMP - TIMESTAMP is BIGINT ms.
// - A VARCHAR constant meeting a TIMESTAMP is parsed as one (an error here if it does not parse).
// - NULL converts to any type. Nothing else converts implicitly, except that || and concat()
//   turn any operand into text.
// - An operator that is NULL when an operand is (strict) and has a NULL constant operand is
//   folded to NULL; a node whose operands are all constants is evaluated here, once.
#include "pipeline/expr_bind.h"

#include <fmt/core.h>

#include <algorithm>
#include <cctype>

#include "pipeline/expr_convert.h"

namespace barge::pipeline::detail {

namespace {

struct FunctionInfo {
  std::string_view name;
  Fn fn;
  int min_args;
  int max_args;  // -1: any number
};

constexpr FunctionInfo kFunctions[] = {
    {"coalesce", Fn::kCoalesce, 1, -1},
    {"ifnull", Fn::kCoalesce, 2, 2},
    {"nullif", Fn::kNullif, 2, 2},
    {"if", Fn::kIf, 3, 3},
    {"upper", Fn::kUpper, 1, 1},
    {"ucase", Fn::kUpper, 1, 1},
    {"lower", Fn::kLower, 1, 1},
    {"lcase", Fn::kLower, 1, 1},
    {"length", Fn::kLength, 1, 1},
    {"char_length", Fn::kLength, 1, 1},
    {"character_length", Fn::kLength, 1, 1},
    {"octet_length", Fn::kOctetLength, 1, 1},
    {"substr", Fn::kSubstr, 2, 3},
    {"substring", Fn::kSubstr, 2, 3},
    {"trim", Fn::kTrim, 1, 2},
    {"btrim", Fn::kTrim, 1, 2},
    {"ltrim", Fn::kLtrim, 1, 2},
    {"rtrim", Fn::kRtrim, 1, 2},
    {"concat", Fn::kConcat, 1, -1},
    {"concat_ws", Fn::kConcatWs, 2, -1},
    {"replace", Fn::kReplace, 3, 3},
    {"left", Fn::kLeft, 2, 2},
    {"right", Fn::kRight, 2, 2},
    {"reverse", Fn::kReverse, 1, 1},
    {"repeat", Fn::kRepeat, 2, 2},
    {"lpad", Fn::kLpad, 2, 3},
    {"rpad", Fn::kRpad, 2, 3},
    {"strpos", Fn::kStrpos, 2, 2},
    {"instr", Fn::kStrpos, 2, 2},
    {"starts_with", Fn::kStartsWith, 2, 2},
    {"ends_with", Fn::kEndsWith, 2, 2},
    {"contains", Fn::kContains, 2, 2},
    {"split_part", Fn::kSplitPart, 3, 3},
    {"abs", Fn::kAbs, 1, 1},
    {"sign", Fn::kSign, 1, 1},
    {"round", Fn::kRound, 1, 2},
    {"floor", Fn::kFloor, 1, 1},
    {"ceil", Fn::kCeil, 1, 1},
    {"ceiling", Fn::kCeil, 1, 1},
    {"trunc", Fn::kTrunc, 1, 1},
    {"sqrt", Fn::kSqrt, 1, 1},
    {"cbrt", Fn::kCbrt, 1, 1},
    {"power", Fn::kPower, 2, 2},
    {"pow", Fn::kPower, 2, 2},
    {"exp", Fn::kExp, 1, 1},
    {"ln", Fn::kLn, 1, 1},
    {"log10", Fn::kLog10, 1, 1},
    {"log2", Fn::kLog2, 1, 1},
    {"log", Fn::kLog, 2, 2},
    {"mod", Fn::kMod, 2, 2},
    {"greatest", Fn::kGreatest, 1, -1},
    {"least", Fn::kLeast, 1, -1},
    {"pi", Fn::kPi, 0, 0},
    {"date_trunc", Fn::kDateTrunc, 2, 2},
    {"time_bucket", Fn::kTimeBucket, 2, 3},
    {"date_part", Fn::kDatePart, 2, 2},
    {"epoch_ms", Fn::kEpochMs, 1, 1},
    {"typeof", Fn::kTypeof, 1, 1},
};

// year(ts), hour(ts), ...: date_part with the part fixed.
constexpr std::pair<std::string_view, TimePart> kPartFunctions[] = {
    {"year", TimePart::kYear},
    {"quarter", TimePart::kQuarter},
    {"month", TimePart::kMonth},
    {"week", TimePart::kWeek},
    {"day", TimePart::kDay},
    {"dayofmonth", TimePart::kDay},
    {"dayofweek", TimePart::kDayOfWeek},
    {"isodow", TimePart::kIsoDayOfWeek},
    {"dayofyear", TimePart::kDayOfYear},
    {"hour", TimePart::kHour},
    {"minute", TimePart::kMinute},
    {"second", TimePart::kSecond},
    {"millisecond", TimePart::kMillisecond},
};

bool IsStrict(const Bound& n) {
  switch (n.kind) {
    case BoundKind::kNeg:
    case BoundKind::kArith:
    case BoundKind::kCompare:
    case BoundKind::kConcat:
    case BoundKind::kLike:
    case BoundKind::kCast:
      return true;
    case BoundKind::kCall:
      switch (n.fn) {
        case Fn::kCoalesce:
        case Fn::kNullif:
        case Fn::kIf:
        case Fn::kConcat:
        case Fn::kConcatWs:
        case Fn::kGreatest:
        case Fn::kLeast:
        case Fn::kTypeof:
          return false;
        default:
          return true;
      }
    default:
      return false;
  }
}

bool IsNullConst(const Bound& n) { return n.kind == BoundKind::kConst && n.value.null; }
bool IsConst(const Bound& n) { return n.kind == BoundKind::kConst; }

// A constant that is a non-zero number (so dividing by it cannot fail).
bool IsNonZeroConst(const Bound& n) {
  if (n.kind != BoundKind::kConst || n.value.null) return false;
  if (n.type == Type::kDouble) return n.value.d != 0;
  return n.value.i != 0;
}

// Whether evaluating `n` itself (its children aside) can fail for some row.
bool OwnCanFail(const Bound& n) {
  switch (n.kind) {
    case BoundKind::kError:
      return true;
    case BoundKind::kNeg:
      return n.type == Type::kInt64;
    case BoundKind::kArith: {
      bool ints = IsInt64Backed(n.args[0]->type);
      if (n.op == Op::kDiv || n.op == Op::kMod) {
        // BIGINT division by -1 overflows for the smallest BIGINT.
        bool safe =
            IsNonZeroConst(*n.args[1]) && !(ints && n.op == Op::kDiv && n.args[1]->value.i == -1);
        return !safe;
      }
      return ints;
    }
    case BoundKind::kCast: {
      if (n.flag) return false;
      Type from = n.args[0]->type;
      return (from == Type::kString && n.type != Type::kString) ||
             (from == Type::kDouble && n.type == Type::kInt64);
    }
    case BoundKind::kCall:
      switch (n.fn) {
        case Fn::kAbs:
          return n.type == Type::kInt64;
        case Fn::kRound:
          return n.type == Type::kInt64 && n.args.size() > 1;
        case Fn::kSqrt:
        case Fn::kLn:
        case Fn::kLog10:
        case Fn::kLog2:
        case Fn::kLog:
        case Fn::kRepeat:
        case Fn::kLpad:
        case Fn::kRpad:
        case Fn::kTimeBucket:
          return true;
        case Fn::kMod:
          return !IsNonZeroConst(*n.args[1]);
        default:
          return false;
      }
    default:
      return false;
  }
}

bool OwnCheap(const Bound& n) {
  switch (n.kind) {
    case BoundKind::kLike:
    case BoundKind::kConcat:
      return false;
    case BoundKind::kCast:
      return n.type != Type::kString && n.args[0]->type != Type::kString;
    case BoundKind::kCall:
      switch (n.fn) {
        case Fn::kCoalesce:
        case Fn::kNullif:
        case Fn::kIf:
        case Fn::kAbs:
        case Fn::kSign:
        case Fn::kRound:
        case Fn::kFloor:
        case Fn::kCeil:
        case Fn::kTrunc:
        case Fn::kMod:
        case Fn::kPi:
        case Fn::kEpochMs:
          return true;
        case Fn::kGreatest:
        case Fn::kLeast:
          return n.type != Type::kString;
        default:
          return false;
      }
    default:
      return true;
  }
}

// The type that a list of values meets at (CASE results, IN operands, coalesce arguments):
// each value added must meet the ones before. Starts as NULL, which meets anything.
class TypeMeet {
 public:
  TypeMeet() {
    probe_.kind = BoundKind::kConst;
    probe_.type = Type::kNull;
  }
  // False when `b` does not meet the values before it.
  bool Add(const Bound& b);
  Type type() const { return probe_.type; }

 private:
  // Stands for the values so far: a constant while they all are, so that VARCHAR constants
  // still meet a TIMESTAMP that comes later.
  Bound probe_;
};

class Binder {
 public:
  explicit Binder(const Schema& schema) : schema_(schema) {
    for (const Field& f : schema.fields) field_names_.push_back(f.name);
  }

  BoundPtr Bind(const Ast& a) {
    switch (a.kind) {
      case AstKind::kLiteral:
        return Const(a.value, a.offset);
      case AstKind::kField:
        return BindField(a);
      case AstKind::kUnary:
        return a.op == Op::kNot ? BindNot(a) : BindNeg(a);
      case AstKind::kBinary:
        return BindBinary(a);
      case AstKind::kIsNull: {
        BoundPtr x = Bind(*a.args[0]);
        if (!x) return nullptr;
        BoundPtr n = Node(BoundKind::kIsNull, Type::kBool, a.offset);
        n->negated = a.negated;
        n->args.push_back(std::move(x));
        return Finish(std::move(n));
      }
      case AstKind::kIsBool: {
        BoundPtr x = BindBoolean(*a.args[0], a.flag ? "IS TRUE" : "IS FALSE");
        if (!x) return nullptr;
        BoundPtr n = Node(BoundKind::kIsBool, Type::kBool, a.offset);
        n->negated = a.negated;
        n->flag = a.flag;
        n->args.push_back(std::move(x));
        return Finish(std::move(n));
      }
      case AstKind::kDistinct:
        return BindComparable(a, BoundKind::kDistinct);
      case AstKind::kIn:
        return BindComparable(a, BoundKind::kIn);
      case AstKind::kBetween:
        return BindComparable(a, BoundKind::kBetween);
      case AstKind::kLike:
        return BindLike(a);
      case AstKind::kCase:
        return BindCase(a);
      case AstKind::kCast:
        return BindCast(a);
      case AstKind::kCall:
        return BindCall(a);
      case AstKind::kStar:
        return Fail(a.offset, "'*' is only allowed in count(*)");
    }
    return Fail(a.offset, "unsupported expression");
  }

  const ExprError& error() const { return error_; }

 private:
  // ---- Construction.

  BoundPtr Fail(size_t offset, std::string message) {
    if (!failed_) {
      failed_ = true;
      error_.offset = offset;
      error_.message = std::move(message);
    }
    return nullptr;
  }

  static BoundPtr Node(BoundKind kind, Type type, size_t offset) {
    auto n = std::make_unique<Bound>();
    n->kind = kind;
    n->type = type;
    n->offset = offset;
    return n;
  }

  static BoundPtr Const(Value v, size_t offset) {
    BoundPtr n = Node(BoundKind::kConst, v.type, offset);
    n->value = std::move(v);
    return n;
  }

  // Computes the node's properties, folds NULL operands of strict operators, and evaluates a
  // node whose operands are all constants.
  BoundPtr Finish(BoundPtr n) {
    n->can_fail = OwnCanFail(*n);
    n->cheap = OwnCheap(*n);
    bool all_const = true;
    for (const BoundPtr& a : n->args) {
      n->can_fail |= a->can_fail;
      n->cheap &= a->cheap;
      all_const &= IsConst(*a);
    }
    if (n->kind == BoundKind::kConst || n->kind == BoundKind::kField ||
        n->kind == BoundKind::kError) {
      return n;
    }
    if (IsStrict(*n)) {
      for (const BoundPtr& a : n->args) {
        if (IsNullConst(*a)) return Const(Value::Null(n->type), n->offset);
      }
    }
    if (!all_const) return n;
    Value v;
    std::string message;
    if (FoldConstant(*n, &v, &message)) {
      v.type = n->type;
      return Const(std::move(v), n->offset);
    }
    BoundPtr e = Node(BoundKind::kError, n->type, n->offset);
    e->value = Value::String(std::move(message));
    e->can_fail = true;
    return e;
  }

  // `e` converted to `to`, which the caller checked is allowed implicitly: NULL to anything,
  // BIGINT to DOUBLE, a VARCHAR constant to TIMESTAMP.
  BoundPtr Coerce(BoundPtr e, Type to) {
    if (!e || e->type == to) return e;
    if (e->type == Type::kString && to == Type::kTimestamp && IsConst(*e)) {
      if (e->value.null) return Const(Value::Null(to), e->offset);
      int64_t ms;
      if (!ParseTimestamp(e->value.s, &ms)) {
        return Fail(e->offset, fmt::format("invalid TIMESTAMP '{}' (expected "
                                           "YYYY-MM-DD[ HH:MM:SS[.fff]])",
                                           e->value.s));
      }
      return Const(Value::Timestamp(ms), e->offset);
    }
    size_t offset = e->offset;
    BoundPtr n = Node(BoundKind::kCast, to, offset);
    n->args.push_back(std::move(e));
    return Finish(std::move(n));
  }

  // The type two values meet at to be compared (or to be results of one CASE), if any.
  static std::optional<Type> Unify(const Bound& a, const Bound& b) {
    if (a.type == b.type) return a.type;
    if (a.type == Type::kNull) return b.type;
    if (b.type == Type::kNull) return a.type;
    if (IsNumeric(a.type) && IsNumeric(b.type)) return Type::kDouble;
    if (a.type == Type::kTimestamp && b.type == Type::kString && IsConst(b)) {
      return Type::kTimestamp;
    }
    if (b.type == Type::kTimestamp && a.type == Type::kString && IsConst(a)) {
      return Type::kTimestamp;
    }
    return std::nullopt;
  }

  friend class TypeMeet;

  // ---- Leaves.

  BoundPtr BindField(const Ast& a) {
    int index = schema_.Find(a.name);
    if (index < 0) {
      // Names are case-sensitive; a name that differs only in case is the likeliest fix.
      std::optional<std::string> hint;
      for (const std::string& name : field_names_) {
        if (name.size() == a.name.size() &&
            std::equal(name.begin(), name.end(), a.name.begin(), [](char x, char y) {
              return std::tolower(static_cast<unsigned char>(x)) ==
                     std::tolower(static_cast<unsigned char>(y));
            })) {
          hint = name;
        }
      }
      if (!hint) hint = Suggest(a.name, field_names_);
      if (hint) {
        return Fail(a.offset,
                    fmt::format("unknown field '{}' (did you mean '{}'?)", a.name, *hint));
      }
      return Fail(a.offset, fmt::format("unknown field '{}'", a.name));
    }
    BoundPtr n = Node(BoundKind::kField, schema_.fields[index].type, a.offset);
    n->field = index;
    return n;
  }

  // ---- Operators.

  BoundPtr BindBoolean(const Ast& a, std::string_view context) {
    BoundPtr x = Bind(a);
    if (!x) return nullptr;
    if (x->type != Type::kBool && x->type != Type::kNull) {
      return Fail(a.offset, fmt::format("{} expects a BOOLEAN operand, found {}", context,
                                        TypeName(x->type)));
    }
    return Coerce(std::move(x), Type::kBool);
  }

  BoundPtr BindNot(const Ast& a) {
    BoundPtr x = BindBoolean(*a.args[0], "NOT");
    if (!x) return nullptr;
    BoundPtr n = Node(BoundKind::kNot, Type::kBool, a.offset);
    n->args.push_back(std::move(x));
    return Finish(std::move(n));
  }

  BoundPtr BindNeg(const Ast& a) {
    BoundPtr x = Bind(*a.args[0]);
    if (!x) return nullptr;
    if (x->type == Type::kNull) x = Coerce(std::move(x), Type::kInt64);
    if (!IsNumeric(x->type)) {
      return Fail(a.offset, fmt::format("operator '-' cannot be applied to {}", TypeName(x->type)));
    }
    BoundPtr n = Node(BoundKind::kNeg, x->type, a.offset);
    n->args.push_back(std::move(x));
    return Finish(std::move(n));
  }

  BoundPtr BindBinary(const Ast& a) {
    if (a.op == Op::kAnd || a.op == Op::kOr) {
      std::string_view name = a.op == Op::kAnd ? "AND" : "OR";
      BoundPtr l = BindBoolean(*a.args[0], name);
      if (!l) return nullptr;
      BoundPtr r = BindBoolean(*a.args[1], name);
      if (!r) return nullptr;
      BoundPtr n = Node(a.op == Op::kAnd ? BoundKind::kAnd : BoundKind::kOr, Type::kBool, a.offset);
      n->args.push_back(std::move(l));
      n->args.push_back(std::move(r));
      return Finish(std::move(n));
    }
    BoundPtr l = Bind(*a.args[0]);
    if (!l) return nullptr;
    BoundPtr r = Bind(*a.args[1]);
    if (!r) return nullptr;
    switch (a.op) {
      case Op::kConcat: {
        l = Coerce(ToText(std::move(l)), Type::kString);
        r = Coerce(ToText(std::move(r)), Type::kString);
        BoundPtr n = Node(BoundKind::kConcat, Type::kString, a.offset);
        n->args.push_back(std::move(l));
        n->args.push_back(std::move(r));
        return Finish(std::move(n));
      }
      case Op::kEq:
      case Op::kNe:
      case Op::kLt:
      case Op::kLe:
      case Op::kGt:
      case Op::kGe: {
        std::optional<Type> t = Unify(*l, *r);
        if (!t) {
          return Fail(a.offset, fmt::format("cannot compare {} with {}", TypeName(l->type),
                                            TypeName(r->type)));
        }
        if (*t == Type::kNull) *t = Type::kBool;
        BoundPtr n = Node(BoundKind::kCompare, Type::kBool, a.offset);
        n->op = a.op;
        n->args.push_back(Coerce(std::move(l), *t));
        if (failed_) return nullptr;
        n->args.push_back(Coerce(std::move(r), *t));
        if (failed_) return nullptr;
        return Finish(std::move(n));
      }
      default:
        return BindArithmetic(a, std::move(l), std::move(r));
    }
  }

  BoundPtr BindArithmetic(const Ast& a, BoundPtr l, BoundPtr r) {
    Type lt = l->type, rt = r->type;
    // NULL takes the type of the other side (BIGINT when both are NULL).
    if (lt == Type::kNull) lt = rt == Type::kNull || rt == Type::kTimestamp ? Type::kInt64 : rt;
    if (rt == Type::kNull) rt = lt == Type::kTimestamp ? Type::kInt64 : lt;
    Type operand = Type::kNull, result = Type::kNull;
    if (IsNumeric(lt) && IsNumeric(rt)) {
      operand = result =
          (lt == Type::kDouble || rt == Type::kDouble) ? Type::kDouble : Type::kInt64;
    } else if (a.op == Op::kAdd && lt == Type::kTimestamp && rt == Type::kInt64) {
      operand = result = Type::kTimestamp;
    } else if (a.op == Op::kAdd && lt == Type::kInt64 && rt == Type::kTimestamp) {
      operand = result = Type::kTimestamp;
    } else if (a.op == Op::kSub && lt == Type::kTimestamp && rt == Type::kInt64) {
      operand = result = Type::kTimestamp;
    } else if (a.op == Op::kSub && lt == Type::kTimestamp && rt == Type::kTimestamp) {
      operand = Type::kTimestamp;
      result = Type::kInt64;
    } else {
      std::string hint;
      if (a.op == Op::kAdd && (lt == Type::kString || rt == Type::kString)) {
        hint = " (use || to concatenate strings)";
      }
      return Fail(a.offset, fmt::format("operator '{}' cannot be applied to {} and {}{}",
                                        OpText(a.op), TypeName(lt), TypeName(rt), hint));
    }
    // TIMESTAMP arithmetic keeps each side's own type (both are int64 milliseconds).
    if (operand == Type::kTimestamp) {
      l = Coerce(std::move(l), lt);
      r = Coerce(std::move(r), rt);
    } else {
      l = Coerce(std::move(l), operand);
      r = Coerce(std::move(r), operand);
    }
    BoundPtr n = Node(BoundKind::kArith, result, a.offset);
    n->op = a.op;
    n->args.push_back(std::move(l));
    n->args.push_back(std::move(r));
    return Finish(std::move(n));
  }

  // Any value as text, for || and concat(): a CAST to VARCHAR unless it is text already.
  BoundPtr ToText(BoundPtr e) {
    if (e->type == Type::kString || e->type == Type::kNull) return e;
    size_t offset = e->offset;
    BoundPtr n = Node(BoundKind::kCast, Type::kString, offset);
    n->args.push_back(std::move(e));
    return Finish(std::move(n));
  }

  // IN, BETWEEN and IS DISTINCT FROM: every operand meets the first at one type.
  BoundPtr BindComparable(const Ast& a, BoundKind kind) {
    std::vector<BoundPtr> args;
    for (const AstPtr& arg : a.args) {
      BoundPtr b = Bind(*arg);
      if (!b) return nullptr;
      args.push_back(std::move(b));
    }
    // The common type, then every operand converted to it (so that a DOUBLE item promotes the
    // BIGINT items before it too).
    TypeMeet meet;
    for (const BoundPtr& b : args) {
      if (!meet.Add(*b)) {
        return Fail(b->offset, fmt::format("cannot compare {} with {}", TypeName(args[0]->type),
                                           TypeName(b->type)));
      }
    }
    Type t = meet.type() == Type::kNull ? Type::kBool : meet.type();
    for (BoundPtr& b : args) {
      b = Coerce(std::move(b), t);
      if (failed_) return nullptr;
    }
    BoundPtr n = Node(kind, Type::kBool, a.offset);
    n->negated = a.negated;
    n->args = std::move(args);
    return Finish(std::move(n));
  }

  BoundPtr BindLike(const Ast& a) {
    std::string_view name = a.flag ? "ILIKE" : "LIKE";
    BoundPtr n = Node(BoundKind::kLike, Type::kBool, a.offset);
    n->negated = a.negated;
    n->flag = a.flag;
    for (size_t i = 0; i < 2; ++i) {
      BoundPtr x = Bind(*a.args[i]);
      if (!x) return nullptr;
      if (x->type != Type::kString && x->type != Type::kNull) {
        return Fail(a.args[i]->offset,
                    fmt::format("{} expects VARCHAR operands, found {}", name, TypeName(x->type)));
      }
      n->args.push_back(Coerce(std::move(x), Type::kString));
    }
    if (a.args.size() > 2) {
      BoundPtr e = Bind(*a.args[2]);
      if (!e) return nullptr;
      if (!IsConst(*e) || e->type != Type::kString || e->value.null || e->value.s.size() > 1) {
        return Fail(a.args[2]->offset, "ESCAPE expects a constant string of one character");
      }
      n->value = Value::String(e->value.s);
    }
    return Finish(std::move(n));
  }

  BoundPtr BindCase(const Ast& a) {
    size_t i = 0;
    BoundPtr operand;
    if (a.case_operand) {
      operand = Bind(*a.args[i++]);
      if (!operand) return nullptr;
    }
    size_t pairs_end = a.args.size() - (a.case_else ? 1 : 0);
    std::vector<BoundPtr> conditions, results;
    std::vector<size_t> result_offsets;
    for (; i < pairs_end; i += 2) {
      if (operand) {
        BoundPtr value = Bind(*a.args[i]);
        if (!value) return nullptr;
        std::optional<Type> t = Unify(*operand, *value);
        if (!t) {
          return Fail(a.args[i]->offset,
                      fmt::format("cannot compare {} with {}", TypeName(operand->type),
                                  TypeName(value->type)));
        }
        conditions.push_back(std::move(value));
      } else {
        BoundPtr condition = BindBoolean(*a.args[i], "WHEN");
        if (!condition) return nullptr;
        conditions.push_back(std::move(condition));
      }
      BoundPtr result = Bind(*a.args[i + 1]);
      if (!result) return nullptr;
      results.push_back(std::move(result));
    }
    if (a.case_else) {
      BoundPtr result = Bind(*a.args.back());
      if (!result) return nullptr;
      results.push_back(std::move(result));
    }
    // The result type.
    TypeMeet meet;
    for (const BoundPtr& r : results) {
      Type before = meet.type();
      if (!meet.Add(*r)) {
        return Fail(r->offset, fmt::format("CASE results have incompatible types {} and {}",
                                           TypeName(before), TypeName(r->type)));
      }
    }
    Type t = meet.type();
    for (BoundPtr& r : results) {
      r = Coerce(std::move(r), t);
      if (failed_) return nullptr;
    }
    // A simple CASE compares its operand with each WHEN value: x = v, at one type.
    if (operand) {
      TypeMeet compared;
      compared.Add(*operand);
      for (const BoundPtr& c : conditions) {
        if (!compared.Add(*c)) {
          return Fail(c->offset, fmt::format("cannot compare {} with {}", TypeName(operand->type),
                                             TypeName(c->type)));
        }
      }
      Type ct = compared.type() == Type::kNull ? Type::kBool : compared.type();
      operand = Coerce(std::move(operand), ct);
      if (failed_) return nullptr;
      for (BoundPtr& c : conditions) {
        c = Coerce(std::move(c), ct);
        if (failed_) return nullptr;
      }
    }
    BoundPtr n = Node(BoundKind::kCase, t, a.offset);
    n->has_else = a.case_else;
    // flag: a simple CASE, whose args start with the operand.
    n->flag = operand != nullptr;
    if (operand) n->args.push_back(std::move(operand));
    for (size_t k = 0; k < conditions.size(); ++k) {
      n->args.push_back(std::move(conditions[k]));
      n->args.push_back(std::move(results[k]));
    }
    if (a.case_else) n->args.push_back(std::move(results.back()));
    return Finish(std::move(n));
  }

  static bool CastAllowed(Type from, Type to) {
    if (from == to || from == Type::kNull || from == Type::kString || to == Type::kString) {
      return true;
    }
    switch (to) {
      case Type::kInt64:
        return true;
      case Type::kDouble:
      case Type::kBool:
        return from != Type::kTimestamp;
      case Type::kTimestamp:
        return from == Type::kInt64;
      default:
        return false;
    }
  }

  BoundPtr BindCast(const Ast& a) {
    BoundPtr x = Bind(*a.args[0]);
    if (!x) return nullptr;
    if (!CastAllowed(x->type, a.cast_type)) {
      return Fail(a.offset,
                  fmt::format("cannot cast {} to {}", TypeName(x->type), TypeName(a.cast_type)));
    }
    if (x->type == a.cast_type) return x;
    // CAST(round(d) AS BIGINT) is CAST(d AS BIGINT): the cast rounds half away from zero too.
    if (a.cast_type == Type::kInt64 && x->kind == BoundKind::kCall && x->fn == Fn::kRound &&
        x->type == Type::kDouble && x->args.size() == 1) {
      x = std::move(x->args[0]);
    }
    BoundPtr n = Node(BoundKind::kCast, a.cast_type, a.offset);
    n->flag = a.flag;
    n->args.push_back(std::move(x));
    return Finish(std::move(n));
  }

  // ---- Function calls.

  BoundPtr BindCall(const Ast& a) {
    const FunctionInfo* info = nullptr;
    for (const FunctionInfo& f : kFunctions) {
      if (f.name == a.name) info = &f;
    }
    std::optional<TimePart> part;
    for (const auto& [name, p] : kPartFunctions) {
      if (name == a.name) part = p;
    }
    if (!info && !part) {
      for (const std::string& agg : AggregateFunctionNames()) {
        if (agg == a.name) {
          return Fail(a.offset, fmt::format("aggregate function '{}' is not allowed in a scalar "
                                            "expression",
                                            a.name));
        }
      }
      const std::vector<std::string>& names = ScalarFunctionNames();
      std::optional<std::string> hint = Suggest(a.name, names);
      if (hint) {
        return Fail(a.offset,
                    fmt::format("unknown function '{}' (did you mean '{}'?)", a.name, *hint));
      }
      return Fail(a.offset, fmt::format("unknown function '{}'", a.name));
    }
    if (a.flag) return Fail(a.offset, "DISTINCT is only allowed in aggregate functions");
    for (const AstPtr& arg : a.args) {
      if (arg->kind == AstKind::kStar) return Fail(arg->offset, "'*' is only allowed in count(*)");
    }
    int min_args = part ? 1 : info->min_args, max_args = part ? 1 : info->max_args;
    int count = static_cast<int>(a.args.size());
    if (info && info->fn == Fn::kLog && count == 1) {
      return Fail(a.offset,
                  "log(x) means ln(x) in some SQL dialects and log10(x) in others: "
                  "write ln(x), log10(x) or log(base, x)");
    }
    if (count < min_args || (max_args >= 0 && count > max_args)) {
      std::string takes;
      if (max_args < 0) {
        takes = fmt::format("at least {} argument{}", min_args, min_args == 1 ? "" : "s");
      } else if (min_args == max_args) {
        takes = fmt::format("{} argument{}", min_args, min_args == 1 ? "" : "s");
      } else {
        takes = fmt::format("{} to {} arguments", min_args, max_args);
      }
      return Fail(a.offset, fmt::format("function '{}' takes {}, found {}", a.name, takes, count));
    }
    std::vector<BoundPtr> args;
    for (const AstPtr& arg : a.args) {
      BoundPtr b = Bind(*arg);
      if (!b) return nullptr;
      args.push_back(std::move(b));
    }
    if (part) {
      if (!WantTime(a, args, 0)) return nullptr;
      args.insert(args.begin(), Const(Value::String(std::string(TimePartName(*part))), a.offset));
      return BindFunction(a, Fn::kDatePart, std::move(args));
    }
    return BindFunction(a, info->fn, std::move(args));
  }

  // Argument checks: each converts args[i] to the type wanted or fails naming the function.
  bool ArgFail(const Ast& call, std::vector<BoundPtr>& args, size_t i, std::string_view wanted) {
    Fail(args[i]->offset, fmt::format("function '{}' expects {} for argument {}, found {}",
                                      call.name, wanted, i + 1, TypeName(args[i]->type)));
    return false;
  }
  bool Want(const Ast& call, std::vector<BoundPtr>& args, size_t i, Type t) {
    if (args[i]->type != t && args[i]->type != Type::kNull &&
        !(t == Type::kDouble && args[i]->type == Type::kInt64)) {
      return ArgFail(call, args, i, TypeName(t));
    }
    args[i] = Coerce(std::move(args[i]), t);
    return !failed_;
  }
  bool WantNumeric(const Ast& call, std::vector<BoundPtr>& args, size_t i) {
    if (args[i]->type == Type::kNull) args[i] = Coerce(std::move(args[i]), Type::kInt64);
    if (!IsNumeric(args[i]->type)) return ArgFail(call, args, i, "BIGINT or DOUBLE");
    return true;
  }
  bool WantTime(const Ast& call, std::vector<BoundPtr>& args, size_t i) {
    if (args[i]->type == Type::kNull) args[i] = Coerce(std::move(args[i]), Type::kTimestamp);
    if (args[i]->type != Type::kTimestamp && args[i]->type != Type::kInt64) {
      return ArgFail(call, args, i, "TIMESTAMP or BIGINT milliseconds");
    }
    return true;
  }
  // A constant string argument naming a unit or part.
  bool WantConstName(const Ast& call, std::vector<BoundPtr>& args, size_t i) {
    if (!IsConst(*args[i]) || args[i]->type != Type::kString || args[i]->value.null) {
      Fail(args[i]->offset, fmt::format("function '{}' expects a constant string for argument {}",
                                        call.name, i + 1));
      return false;
    }
    return true;
  }
  // Every argument at one common type (coalesce, greatest, least, nullif, if's results).
  std::optional<Type> CommonType(const Ast& call, std::vector<BoundPtr>& args, size_t from) {
    TypeMeet meet;
    for (size_t i = from; i < args.size(); ++i) {
      Type before = meet.type();
      if (!meet.Add(*args[i])) {
        Fail(args[i]->offset, fmt::format("function '{}' arguments have incompatible types {} "
                                          "and {}",
                                          call.name, TypeName(before), TypeName(args[i]->type)));
        return std::nullopt;
      }
    }
    Type t = meet.type();
    for (size_t i = from; i < args.size(); ++i) {
      args[i] = Coerce(std::move(args[i]), t);
      if (failed_) return std::nullopt;
    }
    return t;
  }

  BoundPtr Call(Fn fn, Type type, size_t offset, std::vector<BoundPtr> args) {
    BoundPtr n = Node(BoundKind::kCall, type, offset);
    n->fn = fn;
    n->args = std::move(args);
    return Finish(std::move(n));
  }

  // A call whose result has the type of its first argument.
  BoundPtr CallAsFirst(Fn fn, size_t offset, std::vector<BoundPtr> args) {
    Type t = args[0]->type;
    return Call(fn, t, offset, std::move(args));
  }

  BoundPtr BindFunction(const Ast& a, Fn fn, std::vector<BoundPtr> args) {
    size_t at = a.offset;
    switch (fn) {
      case Fn::kCoalesce: {
        std::optional<Type> t = CommonType(a, args, 0);
        if (!t) return nullptr;
        if (args.size() == 1) return std::move(args[0]);
        BoundPtr n = Node(BoundKind::kCoalesce, *t, at);
        n->args = std::move(args);
        return Finish(std::move(n));
      }
      case Fn::kNullif: {
        std::optional<Type> t = CommonType(a, args, 0);
        if (!t) return nullptr;
        return Call(fn, *t, at, std::move(args));
      }
      case Fn::kIf: {
        if (args[0]->type != Type::kBool && args[0]->type != Type::kNull) {
          ArgFail(a, args, 0, "BOOLEAN");
          return nullptr;
        }
        args[0] = Coerce(std::move(args[0]), Type::kBool);
        std::optional<Type> t = CommonType(a, args, 1);
        if (!t) return nullptr;
        // if(c, x, y) is CASE WHEN c THEN x ELSE y END.
        BoundPtr n = Node(BoundKind::kCase, *t, at);
        n->has_else = true;
        n->args = std::move(args);
        return Finish(std::move(n));
      }
      case Fn::kUpper:
      case Fn::kLower:
      case Fn::kReverse:
        if (!Want(a, args, 0, Type::kString)) return nullptr;
        return Call(fn, Type::kString, at, std::move(args));
      case Fn::kLength:
      case Fn::kOctetLength:
        if (!Want(a, args, 0, Type::kString)) return nullptr;
        return Call(fn, Type::kInt64, at, std::move(args));
      case Fn::kSubstr:
        if (!Want(a, args, 0, Type::kString) || !Want(a, args, 1, Type::kInt64)) return nullptr;
        if (args.size() == 3 && !Want(a, args, 2, Type::kInt64)) return nullptr;
        if (args.size() == 2) {
          args.push_back(Const(Value::Int(std::numeric_limits<int64_t>::max()), at));
        }
        return Call(fn, Type::kString, at, std::move(args));
      case Fn::kTrim:
      case Fn::kLtrim:
      case Fn::kRtrim:
        for (size_t i = 0; i < args.size(); ++i) {
          if (!Want(a, args, i, Type::kString)) return nullptr;
        }
        if (args.size() == 1) args.push_back(Const(Value::String(" "), at));
        return Call(fn, Type::kString, at, std::move(args));
      case Fn::kConcat:
      case Fn::kConcatWs:
        if (fn == Fn::kConcatWs && !Want(a, args, 0, Type::kString)) return nullptr;
        for (BoundPtr& arg : args) {
          arg = Coerce(ToText(std::move(arg)), Type::kString);
          if (failed_) return nullptr;
        }
        return Call(fn, Type::kString, at, std::move(args));
      case Fn::kReplace:
        for (size_t i = 0; i < 3; ++i) {
          if (!Want(a, args, i, Type::kString)) return nullptr;
        }
        return Call(fn, Type::kString, at, std::move(args));
      case Fn::kLeft:
      case Fn::kRight:
      case Fn::kRepeat:
        if (!Want(a, args, 0, Type::kString) || !Want(a, args, 1, Type::kInt64)) return nullptr;
        return Call(fn, Type::kString, at, std::move(args));
      case Fn::kLpad:
      case Fn::kRpad:
        if (!Want(a, args, 0, Type::kString) || !Want(a, args, 1, Type::kInt64)) return nullptr;
        if (args.size() == 3 && !Want(a, args, 2, Type::kString)) return nullptr;
        if (args.size() == 2) args.push_back(Const(Value::String(" "), at));
        return Call(fn, Type::kString, at, std::move(args));
      case Fn::kStrpos:
        if (!Want(a, args, 0, Type::kString) || !Want(a, args, 1, Type::kString)) return nullptr;
        return Call(fn, Type::kInt64, at, std::move(args));
      case Fn::kStartsWith:
      case Fn::kEndsWith:
      case Fn::kContains:
        if (!Want(a, args, 0, Type::kString) || !Want(a, args, 1, Type::kString)) return nullptr;
        return Call(fn, Type::kBool, at, std::move(args));
      case Fn::kSplitPart:
        if (!Want(a, args, 0, Type::kString) || !Want(a, args, 1, Type::kString) ||
            !Want(a, args, 2, Type::kInt64)) {
          return nullptr;
        }
        return Call(fn, Type::kString, at, std::move(args));
      case Fn::kAbs:
      case Fn::kSign:
      case Fn::kFloor:
      case Fn::kCeil:
      case Fn::kTrunc:
        if (!WantNumeric(a, args, 0)) return nullptr;
        return CallAsFirst(fn, at, std::move(args));
      case Fn::kRound:
        if (!WantNumeric(a, args, 0)) return nullptr;
        if (args.size() == 2 && !Want(a, args, 1, Type::kInt64)) return nullptr;
        return CallAsFirst(fn, at, std::move(args));
      case Fn::kSqrt:
      case Fn::kCbrt:
      case Fn::kExp:
      case Fn::kLn:
      case Fn::kLog10:
      case Fn::kLog2:
        if (!Want(a, args, 0, Type::kDouble)) return nullptr;
        return Call(fn, Type::kDouble, at, std::move(args));
      case Fn::kPower:
      case Fn::kLog:
        if (!Want(a, args, 0, Type::kDouble) || !Want(a, args, 1, Type::kDouble)) return nullptr;
        return Call(fn, Type::kDouble, at, std::move(args));
      case Fn::kMod: {
        if (!WantNumeric(a, args, 0) || !WantNumeric(a, args, 1)) return nullptr;
        Type t = args[0]->type == Type::kDouble || args[1]->type == Type::kDouble ? Type::kDouble
                                                                                  : Type::kInt64;
        args[0] = Coerce(std::move(args[0]), t);
        args[1] = Coerce(std::move(args[1]), t);
        // mod(a, b) is a % b.
        BoundPtr n = Node(BoundKind::kArith, t, at);
        n->op = Op::kMod;
        n->args = std::move(args);
        return Finish(std::move(n));
      }
      case Fn::kGreatest:
      case Fn::kLeast: {
        std::optional<Type> t = CommonType(a, args, 0);
        if (!t) return nullptr;
        return Call(fn, *t, at, std::move(args));
      }
      case Fn::kPi:
        return Call(fn, Type::kDouble, at, std::move(args));
      case Fn::kDateTrunc: {
        if (!WantConstName(a, args, 0) || !WantTime(a, args, 1)) return nullptr;
        if (!ParseTimeUnit(args[0]->value.s)) {
          return Fail(args[0]->offset,
                      fmt::format("unknown date_trunc unit '{}' (expected millisecond, second, "
                                  "minute, hour, day, week, month, quarter or year)",
                                  args[0]->value.s));
        }
        Type t = args[1]->type;
        return Call(fn, t, at, std::move(args));
      }
      case Fn::kTimeBucket: {
        if (!Want(a, args, 0, Type::kInt64) || !WantTime(a, args, 1)) return nullptr;
        if (args.size() == 3) {
          if (!Want(a, args, 2, args[1]->type)) return nullptr;
        } else {
          // As DuckDB and TimescaleDB: buckets are aligned to Monday 2000-01-03.
          args.push_back(Const(Value{args[1]->type, false, 946857600000, 0, {}}, at));
        }
        Type t = args[1]->type;
        return Call(fn, t, at, std::move(args));
      }
      case Fn::kDatePart: {
        if (!WantConstName(a, args, 0) || !WantTime(a, args, 1)) return nullptr;
        if (!ParseTimePart(args[0]->value.s)) {
          return Fail(args[0]->offset,
                      fmt::format("unknown date part '{}' (expected year, quarter, month, week, "
                                  "day, dow, isodow, doy, hour, minute, second, millisecond or "
                                  "epoch)",
                                  args[0]->value.s));
        }
        return Call(fn, Type::kInt64, at, std::move(args));
      }
      case Fn::kEpochMs: {
        if (args[0]->type == Type::kNull) args[0] = Coerce(std::move(args[0]), Type::kInt64);
        if (args[0]->type != Type::kTimestamp && args[0]->type != Type::kInt64) {
          ArgFail(a, args, 0, "TIMESTAMP or BIGINT");
          return nullptr;
        }
        // epoch_ms(TIMESTAMP) is its milliseconds; epoch_ms(BIGINT) the TIMESTAMP they name.
        Type to = args[0]->type == Type::kTimestamp ? Type::kInt64 : Type::kTimestamp;
        BoundPtr n = Node(BoundKind::kCast, to, at);
        n->args.push_back(std::move(args[0]));
        return Finish(std::move(n));
      }
      case Fn::kTypeof:
        return Const(Value::String(std::string(TypeName(args[0]->type))), at);
    }
    return Fail(at, fmt::format("unsupported function '{}'", a.name));
  }

  const Schema& schema_;
  std::vector<std::string> field_names_;
  bool failed_ = false;
  ExprError error_;
};

bool TypeMeet::Add(const Bound& b) {
  std::optional<Type> u = Binder::Unify(probe_, b);
  if (!u) return false;
  probe_.type = *u;
  if (b.kind != BoundKind::kConst) probe_.kind = BoundKind::kField;
  return true;
}

void CollectInputs(const Bound& n, std::vector<int>& out) {
  if (n.kind == BoundKind::kField) out.push_back(n.field);
  for (const BoundPtr& a : n.args) CollectInputs(*a, out);
}

}  // namespace

std::optional<BindResult> Bind(const Ast& ast, const Schema& schema, ExprError* error) {
  Binder binder(schema);
  BoundPtr root = binder.Bind(ast);
  if (!root) {
    *error = binder.error();
    return std::nullopt;
  }
  BindResult result;
  CollectInputs(*root, result.inputs);
  std::sort(result.inputs.begin(), result.inputs.end());
  result.inputs.erase(std::unique(result.inputs.begin(), result.inputs.end()), result.inputs.end());
  result.root = std::move(root);
  return result;
}

std::optional<Fn> FindFunction(std::string_view name) {
  for (const FunctionInfo& f : kFunctions) {
    if (f.name == name) return f.fn;
  }
  return std::nullopt;
}

std::string_view FunctionName(Fn fn) {
  for (const FunctionInfo& f : kFunctions) {
    if (f.fn == fn) return f.name;
  }
  return "?";
}

}  // namespace barge::pipeline::detail

namespace barge::pipeline {

const std::vector<std::string>& ScalarFunctionNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const detail::FunctionInfo& f : detail::kFunctions) v.emplace_back(f.name);
    for (const auto& [name, part] : detail::kPartFunctions) v.emplace_back(name);
    v.emplace_back("extract");
    v.emplace_back("position");
    std::sort(v.begin(), v.end());
    return v;
  }();
  return names;
}

}  // namespace barge::pipeline
