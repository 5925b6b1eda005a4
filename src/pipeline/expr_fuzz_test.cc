// A randomized differential test: random well-typed expressions over random data with NULLs
// are evaluated by the vectorized evaluator and by a row-at-a-time reference interpreter written
// here from the documented semantics (docs/expressions.md), sharing no code with the compiler.
// Values, NULLs and which rows fail (and why) must agree on every row.
//
// The reference mirrors one rule of the compiler that is visible in results: an operator that
// is NULL whenever an operand is NULL, given an operand that is a constant NULL, is NULL without
// evaluating its other operands (constant folding, as in PostgreSQL).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <random>

#include "pipeline/expr.h"
#include "pipeline/expr_test_util.h"

namespace barge::pipeline {
namespace {

using testing::Cell;
using testing::kNull;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr size_t kRows = 150;  // three bitmap words, the last partial

// A value of the reference interpreter.
struct RVal {
  bool null = true;
  int64_t i = 0;
  double d = 0;
  bool b = false;
  std::string s;

  static RVal Int(int64_t v) { return {false, v, 0, false, {}}; }
  static RVal Dbl(double v) { return {false, 0, v, false, {}}; }
  static RVal Bool(bool v) { return {false, 0, 0, v, {}}; }
  static RVal Str(std::string v) { return {false, 0, 0, false, std::move(v)}; }
};

// A result: a value, or a failure of a kind ("division", "overflow", "convert", "sqrt").
struct RRes {
  std::string failure;
  RVal v;
  bool failed() const { return !failure.empty(); }
  static RRes Fail(std::string kind) { return {std::move(kind), {}}; }
  static RRes Of(RVal v) { return {{}, std::move(v)}; }
  static RRes Null() { return {}; }
};

// The failure kind of an evaluator message.
std::string KindOf(const std::string& message) {
  if (message == "division by zero") return "division";
  if (message.rfind("BIGINT overflow", 0) == 0) return "overflow";
  if (message.rfind("cannot convert", 0) == 0) return "convert";
  if (message.rfind("cannot take the square root", 0) == 0) return "sqrt";
  return "other: " + message;
}

struct Data {
  std::shared_ptr<const Schema> schema;
  std::vector<std::vector<Cell>> rows;
};

enum Field { kI1, kI2, kD1, kD2, kS1, kS2, kB1 };

// A generated expression: its SQL, its type, whether it reads no field, and how the reference
// evaluates it on a row.
struct Node;
using NodePtr = std::shared_ptr<const Node>;
struct Node {
  std::string sql;
  Type type;
  bool constant;
  std::function<RRes(size_t)> eval;
};

// `constant`: the compiler folds the node to a constant, which is when its operands are all
// constants and evaluating it succeeds (a failing constant stays an expression that fails on
// every row that evaluates it).
NodePtr MakeNode(std::string sql, Type type, bool constant, std::function<RRes(size_t)> eval) {
  if (constant && eval(0).failed()) constant = false;
  return std::make_shared<const Node>(Node{std::move(sql), type, constant, std::move(eval)});
}

// ---- Reference semantics.

size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::vector<std::string> SplitCodePoints(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    size_t j = i + 1;
    while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) ++j;
    out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string RefCase(std::string s, bool upper) {
  for (char& c : s) {
    if (upper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    if (!upper && c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  // The non-ASCII letters of the test data.
  const std::pair<std::string, std::string> pairs[] = {{"é", "É"}, {"ö", "Ö"}, {"ä", "Ä"}};
  for (const auto& [lower, up] : pairs) {
    const std::string& from = upper ? lower : up;
    const std::string& to = upper ? up : lower;
    for (size_t at; (at = s.find(from)) != std::string::npos;) s.replace(at, from.size(), to);
  }
  return s;
}

// substr semantics as documented: positions start .. start + length - 1, 1-based, where a
// negative start counts from the end and start 0 is the position before the first.
std::string RefSubstr(const std::string& s, int64_t start, int64_t length) {
  std::vector<std::string> cps = SplitCodePoints(s);
  int64_t n = static_cast<int64_t>(cps.size());
  if (length <= 0) return "";
  __int128 first = start > 0 ? start : (start == 0 ? 0 : n + start + 1);  // 1-based
  __int128 last = first + length - 1;
  std::string out;
  for (int64_t p = 1; p <= n; ++p) {
    if (p >= first && p <= last) out += cps[static_cast<size_t>(p - 1)];
  }
  return out;
}

bool RefLike(const std::vector<std::string>& s, size_t si, const std::string& p, size_t pi,
             char escape) {
  if (pi == p.size()) return si == s.size();
  char c = p[pi];
  if (c == escape && pi + 1 < p.size()) {
    return si < s.size() && s[si] == std::string(1, p[pi + 1]) &&
           RefLike(s, si + 1, p, pi + 2, escape);
  }
  if (c == '%') {
    for (size_t k = si; k <= s.size(); ++k) {
      if (RefLike(s, k, p, pi + 1, escape)) return true;
    }
    return false;
  }
  if (c == '_') return si < s.size() && RefLike(s, si + 1, p, pi + 1, escape);
  // A literal: the pattern's code point starting at pi.
  size_t len = 1;
  while (pi + len < p.size() && (static_cast<unsigned char>(p[pi + len]) & 0xC0) == 0x80) ++len;
  return si < s.size() && s[si] == p.substr(pi, len) && RefLike(s, si + 1, p, pi + len, escape);
}

bool RefParseInt(const std::string& text, int64_t* out) {
  size_t b = text.find_first_not_of(" \t\n\r\f\v");
  if (b == std::string::npos) return false;
  size_t e = text.find_last_not_of(" \t\n\r\f\v");
  std::string t = text.substr(b, e - b + 1);
  if (!t.empty() && t[0] == '+') t = t.substr(1);
  if (t.empty() || t[0] == '+') return false;
  size_t digits_from = t[0] == '-' ? 1 : 0;
  if (digits_from == t.size()) return false;
  for (size_t k = digits_from; k < t.size(); ++k) {
    if (t[k] < '0' || t[k] > '9') return false;
  }
  errno = 0;
  long long v = std::strtoll(t.c_str(), nullptr, 10);
  if (errno == ERANGE) return false;
  *out = v;
  return true;
}

// ---- The generator.

class Generator {
 public:
  Generator(const Data& data, uint64_t seed) : data_(data), rng_(seed) {}

  NodePtr Of(Type t, int depth) {
    switch (t) {
      case Type::kInt64:
        return Int(depth);
      case Type::kDouble:
        return Dbl(depth);
      case Type::kBool:
        return Bool(depth);
      default:
        return Str(depth);
    }
  }

 private:
  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  const Cell& CellAt(size_t row, Field f) const { return data_.rows[row][f]; }

  NodePtr FieldNode(const char* name, Field f, Type t) {
    const Data* data = &data_;
    return MakeNode(name, t, false, [data, f, t](size_t row) {
      const Cell& c = data->rows[row][f];
      if (std::holds_alternative<std::monostate>(c)) return RRes::Null();
      switch (t) {
        case Type::kInt64:
          return RRes::Of(RVal::Int(std::get<int64_t>(c)));
        case Type::kDouble:
          return RRes::Of(RVal::Dbl(std::get<double>(c)));
        case Type::kBool:
          return RRes::Of(RVal::Bool(std::get<bool>(c)));
        default:
          return RRes::Of(RVal::Str(std::get<std::string>(c)));
      }
    });
  }

  static NodePtr Literal(std::string sql, Type t, RVal v) {
    return MakeNode(std::move(sql), t, true, [v](size_t) { return RRes::Of(v); });
  }
  static NodePtr NullOf(Type t) {
    return MakeNode(fmt::format("CAST(NULL AS {})", TypeName(t)), t, true,
                    [](size_t) { return RRes::Null(); });
  }

  // An operator that is NULL when any operand is; fn sees non-NULL values only.
  static NodePtr Strict(std::string sql, Type t, std::vector<NodePtr> args,
                        std::function<RRes(const std::vector<RVal>&)> fn) {
    // Constant when every operand is, or when one is a constant NULL.
    bool all_constant = true, null_operand = false;
    for (const NodePtr& a : args) {
      all_constant &= a->constant;
      null_operand |= a->constant && a->eval(0).v.null;
    }
    bool constant = all_constant || null_operand;
    return MakeNode(std::move(sql), t, constant, [args, fn](size_t row) {
      for (const NodePtr& a : args) {
        if (!a->constant) continue;
        RRes r = a->eval(0);
        if (!r.failed() && r.v.null) return RRes::Null();
      }
      std::vector<RVal> vals;
      bool any_null = false;
      for (const NodePtr& a : args) {
        RRes r = a->eval(row);
        if (r.failed()) return r;
        any_null |= r.v.null;
        vals.push_back(r.v);
      }
      if (any_null) return RRes::Null();
      return fn(vals);
    });
  }

  NodePtr IntLeaf() {
    if (Chance(0.65))
      return Chance(0.5) ? FieldNode("i1", kI1, Type::kInt64) : FieldNode("i2", kI2, Type::kInt64);
    static const std::pair<const char*, int64_t> pool[] = {{"0", 0},
                                                           {"1", 1},
                                                           {"-1", -1},
                                                           {"2", 2},
                                                           {"3", 3},
                                                           {"7", 7},
                                                           {"100", 100},
                                                           {"-100", -100},
                                                           {"9223372036854775807", kMax},
                                                           {"-9223372036854775808", kMin}};
    const auto& [sql, v] = pool[Pick(std::size(pool))];
    return Literal(sql, Type::kInt64, RVal::Int(v));
  }

  NodePtr Int(int depth) {
    if (depth <= 0 || Chance(0.25)) return IntLeaf();
    switch (Pick(12)) {
      case 0:
      case 1: {
        NodePtr a = Int(depth - 1), b = Int(depth - 1);
        static const char* ops[] = {"+", "-", "*", "/", "%"};
        size_t op = Pick(5);
        return Strict(fmt::format("({} {} {})", a->sql, ops[op], b->sql), Type::kInt64, {a, b},
                      [op](const std::vector<RVal>& v) {
                        int64_t x = v[0].i, y = v[1].i, r = 0;
                        switch (op) {
                          case 0:
                            if (__builtin_add_overflow(x, y, &r)) return RRes::Fail("overflow");
                            break;
                          case 1:
                            if (__builtin_sub_overflow(x, y, &r)) return RRes::Fail("overflow");
                            break;
                          case 2:
                            if (__builtin_mul_overflow(x, y, &r)) return RRes::Fail("overflow");
                            break;
                          case 3:
                            if (y == 0) return RRes::Fail("division");
                            if (x == kMin && y == -1) return RRes::Fail("overflow");
                            r = x / y;
                            break;
                          default:
                            if (y == 0) return RRes::Fail("division");
                            r = y == -1 ? 0 : x % y;
                            break;
                        }
                        return RRes::Of(RVal::Int(r));
                      });
      }
      case 2: {
        NodePtr a = Int(depth - 1);
        bool abs = Chance(0.5);
        return Strict(abs ? fmt::format("abs({})", a->sql) : fmt::format("(- {})", a->sql),
                      Type::kInt64, {a}, [abs](const std::vector<RVal>& v) {
                        if (v[0].i == kMin) return RRes::Fail("overflow");
                        return RRes::Of(RVal::Int(abs && v[0].i >= 0 ? v[0].i : -v[0].i));
                      });
      }
      case 3:
        return Case(Type::kInt64, depth);
      case 4:
        return SimpleCase(depth);
      case 5:
        return Coalesce(Type::kInt64, depth);
      case 6: {
        NodePtr a = Int(depth - 1), b = Int(depth - 1);
        return MakeNode(fmt::format("nullif({}, {})", a->sql, b->sql), Type::kInt64,
                        a->constant && b->constant, [a, b](size_t row) {
                          RRes x = a->eval(row);
                          if (x.failed()) return x;
                          RRes y = b->eval(row);
                          if (y.failed()) return y;
                          if (!x.v.null && !y.v.null && x.v.i == y.v.i) return RRes::Null();
                          return x;
                        });
      }
      case 7: {
        NodePtr s = Str(depth - 1);
        return Strict(fmt::format("length({})", s->sql), Type::kInt64, {s},
                      [](const std::vector<RVal>& v) {
                        return RRes::Of(RVal::Int(static_cast<int64_t>(CodePoints(v[0].s))));
                      });
      }
      case 8: {
        NodePtr d = Dbl(depth - 1);
        return Strict(fmt::format("CAST({} AS BIGINT)", d->sql), Type::kInt64, {d},
                      [](const std::vector<RVal>& v) {
                        double r = std::round(v[0].d);
                        if (!(r >= -9223372036854775808.0 && r < 9223372036854775808.0)) {
                          return RRes::Fail("convert");
                        }
                        return RRes::Of(RVal::Int(static_cast<int64_t>(r)));
                      });
      }
      case 9: {
        NodePtr s = Str(depth - 1);
        return Strict(fmt::format("TRY_CAST({} AS BIGINT)", s->sql), Type::kInt64, {s},
                      [](const std::vector<RVal>& v) {
                        int64_t r;
                        if (!RefParseInt(v[0].s, &r)) return RRes::Null();
                        return RRes::Of(RVal::Int(r));
                      });
      }
      default: {
        bool greatest = Chance(0.5);
        std::vector<NodePtr> args = {Int(depth - 1), Int(depth - 1)};
        if (Chance(0.3)) args.push_back(Int(depth - 1));
        std::string sql = greatest ? "greatest(" : "least(";
        bool constant = true;
        for (size_t k = 0; k < args.size(); ++k) {
          sql += (k ? ", " : "") + args[k]->sql;
          constant &= args[k]->constant;
        }
        sql += ")";
        return MakeNode(sql, Type::kInt64, constant, [args, greatest](size_t row) {
          RRes best = RRes::Null();
          for (const NodePtr& a : args) {
            RRes r = a->eval(row);
            if (r.failed()) return r;
            if (r.v.null) continue;
            if (best.v.null || (greatest ? r.v.i > best.v.i : r.v.i < best.v.i)) best = r;
          }
          return best;
        });
      }
    }
  }

  NodePtr Dbl(int depth) {
    if (depth <= 0 || Chance(0.25)) {
      if (Chance(0.65))
        return Chance(0.5) ? FieldNode("d1", kD1, Type::kDouble)
                           : FieldNode("d2", kD2, Type::kDouble);
      static const std::pair<const char*, double> pool[] = {
          {"0.0", 0.0},   {"0.5", 0.5},     {"-0.5", -0.5}, {"2.5", 2.5},
          {"-2.5", -2.5}, {"1e300", 1e300}, {"3.75", 3.75}, {"-1e-3", -1e-3}};
      const auto& [sql, v] = pool[Pick(std::size(pool))];
      return Literal(sql, Type::kDouble, RVal::Dbl(v));
    }
    switch (Pick(8)) {
      case 0:
      case 1: {
        NodePtr a = Dbl(depth - 1), b = Dbl(depth - 1);
        static const char* ops[] = {"+", "-", "*", "/", "%"};
        size_t op = Pick(5);
        return Strict(fmt::format("({} {} {})", a->sql, ops[op], b->sql), Type::kDouble, {a, b},
                      [op](const std::vector<RVal>& v) {
                        double x = v[0].d, y = v[1].d;
                        if (op >= 3 && y == 0) return RRes::Fail("division");
                        double r = op == 0   ? x + y
                                   : op == 1 ? x - y
                                   : op == 2 ? x * y
                                   : op == 3 ? x / y
                                             : std::fmod(x, y);
                        return RRes::Of(RVal::Dbl(r));
                      });
      }
      case 2: {
        // BIGINT promoted to DOUBLE.
        NodePtr a = Int(depth - 1), b = Dbl(depth - 1);
        return Strict(fmt::format("({} + {})", a->sql, b->sql), Type::kDouble, {a, b},
                      [](const std::vector<RVal>& v) {
                        return RRes::Of(RVal::Dbl(static_cast<double>(v[0].i) + v[1].d));
                      });
      }
      case 3: {
        NodePtr a = Dbl(depth - 1);
        static const char* fns[] = {"round", "floor", "ceil", "abs", "sqrt", "-"};
        size_t fn = Pick(6);
        std::string sql =
            fn == 5 ? fmt::format("(- {})", a->sql) : fmt::format("{}({})", fns[fn], a->sql);
        return Strict(sql, Type::kDouble, {a}, [fn](const std::vector<RVal>& v) {
          double x = v[0].d;
          switch (fn) {
            case 0:
              return RRes::Of(RVal::Dbl(std::round(x)));
            case 1:
              return RRes::Of(RVal::Dbl(std::floor(x)));
            case 2:
              return RRes::Of(RVal::Dbl(std::ceil(x)));
            case 3:
              return RRes::Of(RVal::Dbl(std::fabs(x)));
            case 4:
              if (x < 0) return RRes::Fail("sqrt");
              return RRes::Of(RVal::Dbl(std::sqrt(x)));
            default:
              return RRes::Of(RVal::Dbl(-x));
          }
        });
      }
      case 4:
        return Case(Type::kDouble, depth);
      case 5:
        return Coalesce(Type::kDouble, depth);
      default: {
        NodePtr a = Int(depth - 1);
        return Strict(fmt::format("CAST({} AS DOUBLE)", a->sql), Type::kDouble, {a},
                      [](const std::vector<RVal>& v) {
                        return RRes::Of(RVal::Dbl(static_cast<double>(v[0].i)));
                      });
      }
    }
  }

  // A comparison of two values of one type.
  NodePtr Compare(NodePtr a, NodePtr b, Type t) {
    static const char* ops[] = {"=", "<>", "<", "<=", ">", ">="};
    size_t op = Pick(6);
    return Strict(fmt::format("({} {} {})", a->sql, ops[op], b->sql), Type::kBool, {a, b},
                  [op, t](const std::vector<RVal>& v) {
                    int c;
                    if (t == Type::kString) {
                      c = v[0].s < v[1].s ? -1 : v[0].s > v[1].s ? 1 : 0;
                    } else if (t == Type::kDouble) {
                      double x = v[0].d, y = v[1].d;
                      // NaN: every comparison but <> is false, as in IEEE.
                      if (std::isnan(x) || std::isnan(y)) return RRes::Of(RVal::Bool(op == 1));
                      c = x < y ? -1 : x > y ? 1 : 0;
                    } else {
                      c = v[0].i < v[1].i ? -1 : v[0].i > v[1].i ? 1 : 0;
                    }
                    bool r = op == 0   ? c == 0
                             : op == 1 ? c != 0
                             : op == 2 ? c < 0
                             : op == 3 ? c <= 0
                             : op == 4 ? c > 0
                                       : c >= 0;
                    return RRes::Of(RVal::Bool(r));
                  });
  }

  static NodePtr IntAsDouble(NodePtr a) {
    return MakeNode(a->sql, Type::kDouble, a->constant, [a](size_t row) {
      RRes r = a->eval(row);
      if (r.failed() || r.v.null) return r;
      return RRes::Of(RVal::Dbl(static_cast<double>(r.v.i)));
    });
  }

  NodePtr Bool(int depth) {
    if (depth <= 0 || Chance(0.2)) {
      if (Chance(0.8)) return FieldNode("b1", kB1, Type::kBool);
      return Chance(0.5) ? Literal("TRUE", Type::kBool, RVal::Bool(true))
                         : Literal("FALSE", Type::kBool, RVal::Bool(false));
    }
    switch (Pick(12)) {
      case 0:
        return Compare(Int(depth - 1), Int(depth - 1), Type::kInt64);
      case 1:
        return Compare(Dbl(depth - 1), Dbl(depth - 1), Type::kDouble);
      case 2:
        return Compare(IntAsDouble(Int(depth - 1)), Dbl(depth - 1), Type::kDouble);
      case 3:
        return Compare(Str(depth - 1), Str(depth - 1), Type::kString);
      case 4:
      case 5: {
        bool is_and = Chance(0.5);
        NodePtr a = Bool(depth - 1), b = Bool(depth - 1);
        return MakeNode(fmt::format("({} {} {})", a->sql, is_and ? "AND" : "OR", b->sql),
                        Type::kBool, a->constant && b->constant, [a, b, is_and](size_t row) {
                          RRes x = a->eval(row);
                          if (x.failed()) return x;
                          if (!x.v.null && x.v.b != is_and) return x;  // decided by the left
                          RRes y = b->eval(row);
                          if (y.failed()) return y;
                          if (!y.v.null && y.v.b != is_and) return y;
                          if (x.v.null || y.v.null) return RRes::Null();
                          return RRes::Of(RVal::Bool(is_and));
                        });
      }
      case 6: {
        NodePtr a = Bool(depth - 1);
        return MakeNode(fmt::format("(NOT {})", a->sql), Type::kBool, a->constant, [a](size_t row) {
          RRes x = a->eval(row);
          if (x.failed() || x.v.null) return x;
          return RRes::Of(RVal::Bool(!x.v.b));
        });
      }
      case 7: {
        static const Type types[] = {Type::kInt64, Type::kDouble, Type::kString, Type::kBool};
        NodePtr a = Of(types[Pick(4)], depth - 1);
        bool negated = Chance(0.5);
        return MakeNode(fmt::format("({} IS {}NULL)", a->sql, negated ? "NOT " : ""), Type::kBool,
                        a->constant, [a, negated](size_t row) {
                          RRes x = a->eval(row);
                          if (x.failed()) return x;
                          return RRes::Of(RVal::Bool(x.v.null != negated));
                        });
      }
      case 8:
        return In(depth);
      case 9: {
        NodePtr x = Int(depth - 1), lo = Int(depth - 1), hi = Int(depth - 1);
        bool negated = Chance(0.3);
        return MakeNode(fmt::format("({} {}BETWEEN {} AND {})", x->sql, negated ? "NOT " : "",
                                    lo->sql, hi->sql),
                        Type::kBool, x->constant && lo->constant && hi->constant,
                        [x, lo, hi, negated](size_t row) {
                          RRes rx = x->eval(row);
                          if (rx.failed()) return rx;
                          RRes rl = lo->eval(row);
                          if (rl.failed()) return rl;
                          RRes rh = hi->eval(row);
                          if (rh.failed()) return rh;
                          // (x >= lo) AND (x <= hi), three-valued.
                          bool ge_null = rx.v.null || rl.v.null, le_null = rx.v.null || rh.v.null;
                          bool ge = !ge_null && rx.v.i >= rl.v.i, le = !le_null && rx.v.i <= rh.v.i;
                          RRes r;
                          if ((!ge_null && !ge) || (!le_null && !le)) {
                            r = RRes::Of(RVal::Bool(false));
                          } else if (ge_null || le_null) {
                            return RRes::Null();
                          } else {
                            r = RRes::Of(RVal::Bool(true));
                          }
                          if (negated) r.v.b = !r.v.b;
                          return r;
                        });
      }
      default: {
        static const std::pair<const char*, char> patterns[] = {
            {"'a%'", 0},  {"'%c'", 0},    {"'%b%'", 0},
            {"'_bc'", 0}, {"'h_llo'", 0}, {"'%'", 0},
            {"''", 0},    {"'%l%o'", 0},  {"'x!%%' ESCAPE '!'", '!'},
            {"'%é%'", 0}, {"'__'", 0}};
        const auto& [pattern, escape] = patterns[Pick(std::size(patterns))];
        NodePtr s = Str(depth - 1);
        bool negated = Chance(0.3);
        // The pattern text between the quotes.
        std::string p = pattern;
        p = p.substr(1, p.find('\'', 1) - 1);
        char esc = escape;
        return Strict(fmt::format("({} {}LIKE {})", s->sql, negated ? "NOT " : "", pattern),
                      Type::kBool, {s}, [p, esc, negated](const std::vector<RVal>& v) {
                        bool m = RefLike(SplitCodePoints(v[0].s), 0, p, 0, esc);
                        return RRes::Of(RVal::Bool(m != negated));
                      });
      }
    }
  }

  NodePtr In(int depth) {
    NodePtr x = Int(depth - 1);
    std::vector<NodePtr> items;
    size_t count = 1 + Pick(4);
    for (size_t k = 0; k < count; ++k) {
      if (Chance(0.15)) {
        items.push_back(Literal("NULL", Type::kInt64, RVal{}));
      } else {
        items.push_back(Chance(0.6) ? IntLeaf() : Int(depth - 1));
      }
    }
    bool negated = Chance(0.4);
    std::string sql = fmt::format("({} {}IN (", x->sql, negated ? "NOT " : "");
    bool constant = x->constant;
    for (size_t k = 0; k < items.size(); ++k) {
      sql += (k ? ", " : "") + items[k]->sql;
      constant &= items[k]->constant;
    }
    sql += "))";
    return MakeNode(sql, Type::kBool, constant, [x, items, negated](size_t row) {
      RRes rx = x->eval(row);
      if (rx.failed()) return rx;
      bool found = false, any_null = false;
      for (const NodePtr& item : items) {
        RRes r = item->eval(row);
        if (r.failed()) return r;
        if (r.v.null) {
          any_null = true;
        } else if (!rx.v.null && r.v.i == rx.v.i) {
          found = true;
        }
      }
      if (rx.v.null) return RRes::Null();
      if (found) return RRes::Of(RVal::Bool(!negated));
      if (any_null) return RRes::Null();
      return RRes::Of(RVal::Bool(negated));
    });
  }

  NodePtr Str(int depth) {
    if (depth <= 0 || Chance(0.25)) {
      if (Chance(0.65))
        return Chance(0.5) ? FieldNode("s1", kS1, Type::kString)
                           : FieldNode("s2", kS2, Type::kString);
      static const std::pair<const char*, const char*> pool[] = {
          {"''", ""}, {"'a'", "a"}, {"'abc'", "abc"}, {"'héllo'", "héllo"}, {"'x%y'", "x%y"}};
      const auto& [sql, v] = pool[Pick(std::size(pool))];
      return Literal(sql, Type::kString, RVal::Str(v));
    }
    switch (Pick(10)) {
      case 0: {
        bool upper = Chance(0.5);
        NodePtr s = Str(depth - 1);
        return Strict(fmt::format("{}({})", upper ? "upper" : "lower", s->sql), Type::kString, {s},
                      [upper](const std::vector<RVal>& v) {
                        return RRes::Of(RVal::Str(RefCase(v[0].s, upper)));
                      });
      }
      case 1: {
        NodePtr a = Str(depth - 1), b = Str(depth - 1);
        return Strict(
            fmt::format("({} || {})", a->sql, b->sql), Type::kString, {a, b},
            [](const std::vector<RVal>& v) { return RRes::Of(RVal::Str(v[0].s + v[1].s)); });
      }
      case 2: {
        NodePtr a = Str(depth - 1), b = Str(depth - 1);
        return MakeNode(
            fmt::format("concat({}, {})", a->sql, b->sql), Type::kString,
            a->constant && b->constant, [a, b](size_t row) {
              RRes x = a->eval(row);
              if (x.failed()) return x;
              RRes y = b->eval(row);
              if (y.failed()) return y;
              return RRes::Of(RVal::Str((x.v.null ? "" : x.v.s) + (y.v.null ? "" : y.v.s)));
            });
      }
      case 3: {
        NodePtr s = Str(depth - 1);
        int64_t start = static_cast<int64_t>(Pick(10)) - 3;
        bool with_length = Chance(0.6);
        int64_t length = static_cast<int64_t>(Pick(6)) - 1;
        std::string sql = with_length ? fmt::format("substr({}, {}, {})", s->sql, start, length)
                                      : fmt::format("substr({}, {})", s->sql, start);
        if (!with_length) length = kMax;
        return Strict(sql, Type::kString, {s}, [start, length](const std::vector<RVal>& v) {
          return RRes::Of(RVal::Str(RefSubstr(v[0].s, start, length)));
        });
      }
      case 4: {
        NodePtr s = Str(depth - 1);
        return Strict(fmt::format("trim({})", s->sql), Type::kString, {s},
                      [](const std::vector<RVal>& v) {
                        size_t b = v[0].s.find_first_not_of(' ');
                        if (b == std::string::npos) return RRes::Of(RVal::Str(""));
                        size_t e = v[0].s.find_last_not_of(' ');
                        return RRes::Of(RVal::Str(v[0].s.substr(b, e - b + 1)));
                      });
      }
      case 5: {
        NodePtr s = Str(depth - 1);
        return Strict(fmt::format("replace({}, 'l', 'LL')", s->sql), Type::kString, {s},
                      [](const std::vector<RVal>& v) {
                        std::string out;
                        for (char c : v[0].s)
                          out += c == 'l' ? std::string("LL") : std::string(1, c);
                        return RRes::Of(RVal::Str(out));
                      });
      }
      case 6:
        return Case(Type::kString, depth);
      case 7:
        return Coalesce(Type::kString, depth);
      default: {
        NodePtr a = Int(depth - 1);
        return Strict(
            fmt::format("CAST({} AS VARCHAR)", a->sql), Type::kString, {a},
            [](const std::vector<RVal>& v) { return RRes::Of(RVal::Str(std::to_string(v[0].i))); });
      }
    }
  }

  // A result of type t for CASE and coalesce: sometimes a NULL constant.
  NodePtr ResultOf(Type t, int depth) {
    if (Chance(0.1)) return NullOf(t);
    return Of(t, depth);
  }

  NodePtr Case(Type t, int depth) {
    size_t whens = 1 + Pick(3);
    std::vector<std::pair<NodePtr, NodePtr>> branches;
    std::string sql = "CASE";
    bool constant = true;
    for (size_t k = 0; k < whens; ++k) {
      NodePtr c = Bool(depth - 1), r = ResultOf(t, depth - 1);
      sql += fmt::format(" WHEN {} THEN {}", c->sql, r->sql);
      constant &= c->constant && r->constant;
      branches.emplace_back(c, r);
    }
    NodePtr otherwise;
    if (Chance(0.7)) {
      otherwise = ResultOf(t, depth - 1);
      sql += " ELSE " + otherwise->sql;
      constant &= otherwise->constant;
    }
    sql += " END";
    return MakeNode(sql, t, constant, [branches, otherwise](size_t row) {
      for (const auto& [c, r] : branches) {
        RRes rc = c->eval(row);
        if (rc.failed()) return rc;
        if (!rc.v.null && rc.v.b) return r->eval(row);
      }
      return otherwise ? otherwise->eval(row) : RRes::Null();
    });
  }

  // CASE x WHEN v THEN r ...: x = v for each WHEN.
  NodePtr SimpleCase(int depth) {
    NodePtr x = Int(depth - 1);
    size_t whens = 1 + Pick(3);
    std::vector<std::pair<NodePtr, NodePtr>> branches;
    std::string sql = "CASE " + x->sql;
    bool constant = x->constant;
    for (size_t k = 0; k < whens; ++k) {
      NodePtr v = Chance(0.7) ? IntLeaf() : Int(depth - 1);
      NodePtr r = ResultOf(Type::kInt64, depth - 1);
      sql += fmt::format(" WHEN {} THEN {}", v->sql, r->sql);
      constant &= v->constant && r->constant;
      branches.emplace_back(v, r);
    }
    NodePtr otherwise = ResultOf(Type::kInt64, depth - 1);
    sql += " ELSE " + otherwise->sql + " END";
    constant &= otherwise->constant;
    return MakeNode(sql, Type::kInt64, constant, [x, branches, otherwise](size_t row) {
      RRes rx = x->eval(row);
      if (rx.failed()) return rx;
      for (const auto& [v, r] : branches) {
        RRes rv = v->eval(row);
        if (rv.failed()) return rv;
        if (!rx.v.null && !rv.v.null && rx.v.i == rv.v.i) return r->eval(row);
      }
      return otherwise->eval(row);
    });
  }

  NodePtr Coalesce(Type t, int depth) {
    std::vector<NodePtr> args = {ResultOf(t, depth - 1), Of(t, depth - 1)};
    if (Chance(0.4)) args.push_back(Of(t, depth - 1));
    std::string sql = "coalesce(";
    bool constant = true;
    for (size_t k = 0; k < args.size(); ++k) {
      sql += (k ? ", " : "") + args[k]->sql;
      constant &= args[k]->constant;
    }
    sql += ")";
    return MakeNode(sql, t, constant, [args](size_t row) {
      for (const NodePtr& a : args) {
        RRes r = a->eval(row);
        if (r.failed() || !r.v.null) return r;
      }
      return RRes::Null();
    });
  }

  const Data& data_;
  std::mt19937_64 rng_;
};

Data RandomData(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  auto null = [&] { return pick(5) == 0; };
  const int64_t ints[] = {0, 1, -1, 2, 3, 7, -7, 100, kMax, kMin, int64_t{1} << 62, -12345};
  const double doubles[] = {0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 3.7, 1e300, -1e300, 100.25, -0.0};
  const char* strings[] = {"",   "a",     "abc",   "Hello", "héllo", "ab%c", " x ", "42",
                           "-7", "1e300", "hällo", "bc",    "xé",    " 12 ", "x%"};
  Data d;
  d.schema = std::make_shared<const Schema>(Schema{{{"i1", Type::kInt64},
                                                    {"i2", Type::kInt64},
                                                    {"d1", Type::kDouble},
                                                    {"d2", Type::kDouble},
                                                    {"s1", Type::kString},
                                                    {"s2", Type::kString},
                                                    {"b1", Type::kBool}}});
  for (size_t r = 0; r < kRows; ++r) {
    std::vector<Cell> row;
    for (int k = 0; k < 2; ++k) row.push_back(null() ? kNull : Cell{ints[pick(std::size(ints))]});
    for (int k = 0; k < 2; ++k) {
      row.push_back(null() ? kNull : Cell{doubles[pick(std::size(doubles))]});
    }
    for (int k = 0; k < 2; ++k) {
      row.push_back(null() ? kNull : Cell{std::string(strings[pick(std::size(strings))])});
    }
    row.push_back(null() ? kNull : Cell{pick(2) == 0});
    d.rows.push_back(std::move(row));
  }
  return d;
}

bool SameDouble(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return a == b;
}

std::string Show(const RRes& r, Type t) {
  if (r.failed()) return "fails: " + r.failure;
  if (r.v.null) return "NULL";
  switch (t) {
    case Type::kInt64:
      return std::to_string(r.v.i);
    case Type::kDouble:
      return testing::RenderDouble(r.v.d);
    case Type::kBool:
      return r.v.b ? "TRUE" : "FALSE";
    default:
      return "'" + r.v.s + "'";
  }
}

class ExprDifferential : public ::testing::TestWithParam<uint64_t> {};

TEST_P(ExprDifferential, RandomExpressionsMatchTheReference) {
  const uint64_t seed = GetParam();
  Data data = RandomData(seed);
  RecordBatch batch = testing::MakeBatch(data.schema, data.rows);
  Generator gen(data, seed + 1);
  ExprState state;  // shared by every expression, as a step's expressions share one
  const Type types[] = {Type::kInt64, Type::kDouble, Type::kBool, Type::kString};
  size_t failed_rows = 0, null_rows = 0, compared = 0;
  for (int n = 0; n < 3000; ++n) {
    NodePtr node = gen.Of(types[n % 4], 1 + n % 5);
    ExprError err;
    std::optional<Expr> e = Expr::Compile(node->sql, *data.schema, &err);
    ASSERT_TRUE(e) << node->sql << "\n" << err.offset << ": " << err.message;
    ASSERT_EQ(e->type(), node->type) << node->sql;
    Column out;
    std::vector<RowError> errors;
    e->Evaluate(batch, state, out, errors);
    ASSERT_EQ(out.size(), kRows) << node->sql;
    size_t next_error = 0;
    int mismatches = 0;
    for (size_t r = 0; r < kRows && mismatches < 3; ++r) {
      RRes want = node->eval(r);
      RRes got;
      if (next_error < errors.size() && errors[next_error].row == r) {
        got = RRes::Fail(KindOf(errors[next_error].message));
        ++next_error;
        EXPECT_TRUE(out.IsNull(r)) << node->sql << " row " << r;
      } else if (!out.IsNull(r)) {
        switch (node->type) {
          case Type::kInt64:
            got = RRes::Of(RVal::Int(out.ints()[r]));
            break;
          case Type::kDouble:
            got = RRes::Of(RVal::Dbl(out.doubles()[r]));
            break;
          case Type::kBool:
            got = RRes::Of(RVal::Bool(out.bools()[r] != 0));
            break;
          default:
            got = RRes::Of(RVal::Str(std::string(out.String(r))));
            break;
        }
      }
      bool same =
          want.failed() == got.failed() && want.failure == got.failure &&
          want.v.null == got.v.null &&
          (want.v.null || want.failed() || (node->type == Type::kInt64 && want.v.i == got.v.i) ||
           (node->type == Type::kDouble && SameDouble(want.v.d, got.v.d)) ||
           (node->type == Type::kBool && want.v.b == got.v.b) ||
           (node->type == Type::kString && want.v.s == got.v.s));
      if (!same) {
        ++mismatches;
        ADD_FAILURE() << node->sql << "\nrow " << r << ": evaluator " << Show(got, node->type)
                      << ", reference " << Show(want, node->type);
      }
      failed_rows += want.failed();
      null_rows += !want.failed() && want.v.null;
      ++compared;
    }
    EXPECT_EQ(next_error, errors.size()) << node->sql << ": errors out of row order";
    if (mismatches > 0) break;
  }
  // The data must exercise failures and NULLs, or the comparison proves little.
  EXPECT_GT(failed_rows, compared / 100);
  EXPECT_GT(null_rows, compared / 20);
}

INSTANTIATE_TEST_SUITE_P(Seeds, ExprDifferential, ::testing::Values(20240601, 7, 1234567));

}  // namespace
}  // namespace barge::pipeline
