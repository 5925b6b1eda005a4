// Kernels of the operators: arithmetic, comparison, logic, NULL tests, IN and CAST.
//
// The hot loops (arithmetic, comparison) compute every selected row without branches and
// collect "something failed" in a flag word; only when the flag is set does a second pass find
// the failing rows and report them. So a batch without errors pays one OR per row.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "pipeline/expr_convert.h"
#include "pipeline/expr_kernel_util.h"

namespace barge::pipeline::detail {

namespace {

constexpr int64_t kMinInt = std::numeric_limits<int64_t>::min();

// ---- Binary operators. Each Op has In/Out types, kCanFail, Apply (branch-free, ORs a non-zero
// value into `flags` when the row fails, and never traps whatever its inputs), and, when it can
// fail, Fails and Message for the reporting pass.

std::string OverflowMessage(const Instr& ins, int64_t a, std::string_view op, int64_t b) {
  return fmt::format("{} overflow in {} {} {}", TypeName(ins.type), a, op, b);
}

struct AddInt {
  using In = int64_t;
  using Out = int64_t;
  static constexpr bool kCanFail = true;
  static int64_t Apply(int64_t a, int64_t b, uint64_t& flags) {
    int64_t r = static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
    flags |= static_cast<uint64_t>((a ^ r) & (b ^ r)) >> 63;
    return r;
  }
  static bool Fails(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_add_overflow(a, b, &r);
  }
  static std::string Message(const Instr& ins, int64_t a, int64_t b) {
    return OverflowMessage(ins, a, "+", b);
  }
};

struct SubInt {
  using In = int64_t;
  using Out = int64_t;
  static constexpr bool kCanFail = true;
  static int64_t Apply(int64_t a, int64_t b, uint64_t& flags) {
    int64_t r = static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
    flags |= static_cast<uint64_t>((a ^ b) & (a ^ r)) >> 63;
    return r;
  }
  static bool Fails(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_sub_overflow(a, b, &r);
  }
  static std::string Message(const Instr& ins, int64_t a, int64_t b) {
    return OverflowMessage(ins, a, "-", b);
  }
};

struct MulInt {
  using In = int64_t;
  using Out = int64_t;
  static constexpr bool kCanFail = true;
  static int64_t Apply(int64_t a, int64_t b, uint64_t& flags) {
    int64_t r;
    flags |= __builtin_mul_overflow(a, b, &r) ? 1 : 0;
    return r;
  }
  static bool Fails(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_mul_overflow(a, b, &r);
  }
  static std::string Message(const Instr& ins, int64_t a, int64_t b) {
    return OverflowMessage(ins, a, "*", b);
  }
};

// Integer division truncates toward zero (as Flink SQL, PostgreSQL and C).
struct DivInt {
  using In = int64_t;
  using Out = int64_t;
  static constexpr bool kCanFail = true;
  static int64_t Apply(int64_t a, int64_t b, uint64_t& flags) {
    bool overflow = (a == kMinInt) & (b == -1);
    bool zero = b == 0;
    flags |= static_cast<uint64_t>(overflow | zero);
    return a / ((zero | overflow) ? 1 : b);
  }
  static bool Fails(int64_t a, int64_t b) { return b == 0 || (a == kMinInt && b == -1); }
  static std::string Message(const Instr& ins, int64_t a, int64_t b) {
    if (b == 0) return "division by zero";
    return OverflowMessage(ins, a, "/", b);
  }
};

// The remainder has the sign of the dividend.
struct ModInt {
  using In = int64_t;
  using Out = int64_t;
  static constexpr bool kCanFail = true;
  static int64_t Apply(int64_t a, int64_t b, uint64_t& flags) {
    bool zero = b == 0;
    bool minus_one = b == -1;  // a % -1 is 0, but traps in hardware for the smallest a
    flags |= static_cast<uint64_t>(zero);
    int64_t r = a % ((zero | minus_one) ? 1 : b);
    return minus_one ? 0 : r;
  }
  static bool Fails(int64_t, int64_t b) { return b == 0; }
  static std::string Message(const Instr&, int64_t, int64_t) { return "division by zero"; }
};

template <class F>
struct DoubleOp {
  using In = double;
  using Out = double;
  static constexpr bool kCanFail = false;
  static double Apply(double a, double b, uint64_t&) { return F()(a, b); }
  static bool Fails(double, double) { return false; }
  static std::string Message(const Instr&, double, double) { return {}; }
};

struct DivDouble {
  using In = double;
  using Out = double;
  static constexpr bool kCanFail = true;
  static double Apply(double a, double b, uint64_t& flags) {
    flags |= static_cast<uint64_t>(b == 0);
    return a / b;
  }
  static bool Fails(double, double b) { return b == 0; }
  static std::string Message(const Instr&, double, double) { return "division by zero"; }
};

struct ModDouble {
  using In = double;
  using Out = double;
  static constexpr bool kCanFail = true;
  static double Apply(double a, double b, uint64_t& flags) {
    flags |= static_cast<uint64_t>(b == 0);
    return std::fmod(a, b);
  }
  static bool Fails(double, double b) { return b == 0; }
  static std::string Message(const Instr&, double, double) { return "division by zero"; }
};

template <class T, class F>
struct CompareOp {
  using In = T;
  using Out = uint8_t;
  static constexpr bool kCanFail = false;
  static uint8_t Apply(const T& a, const T& b, uint64_t&) { return F()(a, b) ? 1 : 0; }
  static bool Fails(const T&, const T&) { return false; }
  static std::string Message(const Instr&, const T&, const T&) { return {}; }
};

template <class Op, class L, class R>
void BinaryKernel(const Instr& ins, Frame& f, Sel sel) {
  using Out = typename Op::Out;
  const Vec& a = f.regs[static_cast<size_t>(ins.in[0])];
  const Vec& b = f.regs[static_cast<size_t>(ins.in[1])];
  L l = MakeArg<L>(a);
  R r = MakeArg<R>(b);
  Out* out = f.Write<Out>(ins.out);
  f.AndValidity(ins.out, ins.in[0], ins.in[1]);
  uint64_t flags = 0;
  if (sel.dense()) {
    for (uint32_t i = 0; i < sel.count; ++i) out[i] = Op::Apply(l[i], r[i], flags);
  } else {
    for (uint32_t k = 0; k < sel.count; ++k) {
      uint32_t i = sel.rows[k];
      out[i] = Op::Apply(l[i], r[i], flags);
    }
  }
  if constexpr (Op::kCanFail) {
    if (flags == 0) return;
    ValidReader va = ReadValid(a), vb = ReadValid(b);
    ForEachRow(sel, [&](uint32_t i) {
      if (va(i) && vb(i) && Op::Fails(l[i], r[i])) f.Fail(i, ins.out, Op::Message(ins, l[i], r[i]));
    });
  }
}

// Two constants meet where the generator compares shared operands (BETWEEN, IN, simple CASE)
// with constants.
template <class Op, bool kConstLeft = true>
Kernel PickShapes(Shape l, Shape r) {
  using T = typename Op::In;
  if (l == Shape::kColumn && r == Shape::kColumn) return &BinaryKernel<Op, Col<T>, Col<T>>;
  if (l == Shape::kColumn && r == Shape::kConst) return &BinaryKernel<Op, Col<T>, Konst<T>>;
  if (l == Shape::kConst && r == Shape::kConst) return &BinaryKernel<Op, Konst<T>, Konst<T>>;
  if constexpr (kConstLeft) {
    if (l == Shape::kConst && r == Shape::kColumn) return &BinaryKernel<Op, Konst<T>, Col<T>>;
  }
  return nullptr;
}

template <class T>
Kernel PickCompare(Op op, Shape l, Shape r) {
  // The generator puts constants on the right of comparisons.
  switch (op) {
    case Op::kEq:
      return PickShapes<CompareOp<T, std::equal_to<T>>, false>(l, r);
    case Op::kNe:
      return PickShapes<CompareOp<T, std::not_equal_to<T>>, false>(l, r);
    case Op::kLt:
      return PickShapes<CompareOp<T, std::less<T>>, false>(l, r);
    case Op::kLe:
      return PickShapes<CompareOp<T, std::less_equal<T>>, false>(l, r);
    case Op::kGt:
      return PickShapes<CompareOp<T, std::greater<T>>, false>(l, r);
    case Op::kGe:
      return PickShapes<CompareOp<T, std::greater_equal<T>>, false>(l, r);
    default:
      return nullptr;
  }
}

// ---- Division by a constant: q = mulhi(n, magic) adjusted, as in Hacker's Delight (10-1),
// so that `value % 3` costs a multiplication instead of a 40-cycle division.

struct DivMagic : Aux {
  int64_t divisor = 0;
  int64_t magic = 0;
  int shift = 0;
};

DivMagic ComputeMagic(int64_t d) {
  // Requires |d| >= 2.
  const uint64_t two63 = uint64_t{1} << 63;
  uint64_t ad = d < 0 ? uint64_t{0} - static_cast<uint64_t>(d) : static_cast<uint64_t>(d);
  uint64_t t = two63 + (static_cast<uint64_t>(d) >> 63);
  uint64_t anc = t - 1 - t % ad;  // |nc|, the largest multiple-of-d-minus-one below 2^63
  int p = 63;
  uint64_t q1 = two63 / anc, r1 = two63 - q1 * anc;
  uint64_t q2 = two63 / ad, r2 = two63 - q2 * ad;
  uint64_t delta;
  do {
    ++p;
    q1 *= 2;
    r1 *= 2;
    if (r1 >= anc) {
      ++q1;
      r1 -= anc;
    }
    q2 *= 2;
    r2 *= 2;
    if (r2 >= ad) {
      ++q2;
      r2 -= ad;
    }
    delta = ad - r2;
  } while (q1 < delta || (q1 == delta && r1 == 0));
  DivMagic m;
  m.divisor = d;
  m.magic = static_cast<int64_t>(q2 + 1);
  if (d < 0) m.magic = -m.magic;
  m.shift = p - 64;
  return m;
}

inline int64_t MagicDivide(int64_t n, int64_t d, int64_t magic, int shift) {
  int64_t q = static_cast<int64_t>((static_cast<__int128>(magic) * n) >> 64);
  if (d > 0 && magic < 0) q += n;
  if (d < 0 && magic > 0) q -= n;
  q >>= shift;
  return q + static_cast<int64_t>(static_cast<uint64_t>(q) >> 63);
}

template <bool kMod>
void IntDivConst(const Instr& ins, Frame& f, Sel sel) {
  const auto& m = static_cast<const DivMagic&>(*ins.aux);
  const int64_t* a = f.regs[static_cast<size_t>(ins.in[0])].values<int64_t>();
  int64_t* out = f.Write<int64_t>(ins.out);
  f.AndValidity(ins.out, ins.in[0]);
  const int64_t d = m.divisor, magic = m.magic;
  const int shift = m.shift;
  ForEachRow(sel, [&](uint32_t i) {
    int64_t q = MagicDivide(a[i], d, magic, shift);
    out[i] = kMod ? a[i] - q * d : q;
  });
}

// ---- Divisibility: n % d == 0 without dividing. For d = m * 2^s with m odd, n is a multiple
// of d when its low s bits are zero and n >> s is a multiple of m; the multiples of m in int64
// are exactly the n whose product with m's inverse modulo 2^64 falls in [kmin, kmax], the range
// of n / m (Granlund and Montgomery).

struct Divisibility : Aux {
  uint64_t low_mask = 0;  // 2^s - 1
  int shift = 0;          // s
  uint64_t inverse = 1;   // m^-1 mod 2^64
  uint64_t kmin = 0;      // -floor(2^63 / m), as unsigned
  uint64_t span = 0;      // kmax - kmin
};

enum class DivisorShape { kOdd, kPowerOfTwo, kMixed };

// kOdd: no power-of-two part, so no shift or mask per row; kPowerOfTwo: only the mask.
template <DivisorShape kShape>
void Divisible(const Instr& ins, Frame& f, Sel sel) {
  const auto& t = static_cast<const Divisibility&>(*ins.aux);
  const int64_t* a = f.regs[static_cast<size_t>(ins.in[0])].values<int64_t>();
  uint8_t* out = f.Write<uint8_t>(ins.out);
  f.AndValidity(ins.out, ins.in[0]);
  const uint64_t low_mask = t.low_mask, inverse = t.inverse, kmin = t.kmin, span = t.span;
  const int shift = t.shift;
  const uint8_t flip = ins.negated ? 1 : 0;
  ForEachRow(sel, [&](uint32_t i) {
    int64_t n = a[i];
    if constexpr (kShape == DivisorShape::kOdd) {
      uint64_t k = static_cast<uint64_t>(n) * inverse - kmin;
      out[i] = static_cast<uint8_t>((k <= span) ^ flip);
    } else if constexpr (kShape == DivisorShape::kPowerOfTwo) {
      out[i] = static_cast<uint8_t>(((static_cast<uint64_t>(n) & low_mask) == 0) ^ flip);
    } else {
      bool low = (static_cast<uint64_t>(n) & low_mask) == 0;
      uint64_t k = static_cast<uint64_t>(n >> shift) * inverse - kmin;
      out[i] = static_cast<uint8_t>((low & (k <= span)) ^ flip);
    }
  });
}

// ---- Unary.

void NegInt(const Instr& ins, Frame& f, Sel sel) {
  const Vec& a = f.regs[static_cast<size_t>(ins.in[0])];
  Any<int64_t> x = ReadAny<int64_t>(a);
  int64_t* out = f.Write<int64_t>(ins.out);
  f.AndValidity(ins.out, ins.in[0]);
  uint64_t flags = 0;
  ForEachRow(sel, [&](uint32_t i) {
    flags |= static_cast<uint64_t>(x[i] == kMinInt);
    out[i] = static_cast<int64_t>(uint64_t{0} - static_cast<uint64_t>(x[i]));
  });
  if (flags == 0) return;
  ValidReader valid = ReadValid(a);
  ForEachRow(sel, [&](uint32_t i) {
    if (valid(i) && x[i] == kMinInt) {
      f.Fail(i, ins.out, fmt::format("BIGINT overflow in -({})", x[i]));
    }
  });
}

void NegDouble(const Instr& ins, Frame& f, Sel sel) {
  Any<double> x = ReadAny<double>(f.regs[static_cast<size_t>(ins.in[0])]);
  double* out = f.Write<double>(ins.out);
  f.AndValidity(ins.out, ins.in[0]);
  ForEachRow(sel, [&](uint32_t i) { out[i] = -x[i]; });
}

void Not(const Instr& ins, Frame& f, Sel sel) {
  Any<uint8_t> x = ReadAny<uint8_t>(f.regs[static_cast<size_t>(ins.in[0])]);
  uint8_t* out = f.Write<uint8_t>(ins.out);
  f.AndValidity(ins.out, ins.in[0]);
  if (sel.dense() && x.mask != 0) {
    for (uint32_t i = 0; i < sel.count; ++i) out[i] = (x.p[i] & 1) ^ 1;
    return;
  }
  ForEachRow(sel, [&](uint32_t i) { out[i] = (x[i] & 1) ^ 1; });
}

// A constant that failed to fold: every selected row fails with its message.
void Error(const Instr& ins, Frame& f, Sel sel) {
  // Values are unspecified but readable; strings are empty.
  if (ins.type == Type::kString) {
    std::string_view* out = f.Write<std::string_view>(ins.out);
    ForEachRow(sel, [&](uint32_t i) { out[i] = {}; });
  } else {
    f.Write<int64_t>(ins.out);
  }
  f.SetAllNull(ins.out);
  ForEachRow(sel, [&](uint32_t i) { f.Fail(i, ins.out, ins.value.s); });
}

// ---- Three-valued logic.

// AND/OR of two BOOLEAN registers over the selected rows.
//   AND: FALSE if either is FALSE; else NULL if either is NULL; else TRUE.
//   OR:  TRUE if either is TRUE; else NULL if either is NULL; else FALSE.
// Values: for rows where the result is not NULL, AND = a & b and OR = a | b hold whatever the
// value byte of a NULL operand is, so the value loop ignores validity.
template <bool kAnd>
void AndOrDense(const Instr& ins, Frame& f, Sel sel) {
  const Vec& a = f.regs[static_cast<size_t>(ins.in[0])];
  const Vec& b = f.regs[static_cast<size_t>(ins.in[1])];
  uint8_t* out = f.Write<uint8_t>(ins.out);
  if (!a.constant && !b.constant) {
    const uint8_t* x = a.values<uint8_t>();
    const uint8_t* y = b.values<uint8_t>();
    if (sel.dense()) {
      for (uint32_t i = 0; i < sel.count; ++i) out[i] = kAnd ? (x[i] & y[i]) : ((x[i] | y[i]) & 1);
    } else {
      ForEachRow(sel, [&](uint32_t i) { out[i] = kAnd ? (x[i] & y[i]) : ((x[i] | y[i]) & 1); });
    }
    if (a.valid == nullptr && b.valid == nullptr) {
      f.regs[static_cast<size_t>(ins.out)].valid = nullptr;
      return;
    }
    // Validity word by word, over every row (rows outside the selection are don't-care).
    uint64_t* bits = f.OwnBits(ins.out, false);
    uint32_t n = f.n;
    for (uint32_t w = 0; w * 64 < n; ++w) {
      uint32_t count = std::min<uint32_t>(64, n - w * 64);
      uint64_t av = a.valid ? a.valid[w] : ~uint64_t{0};
      uint64_t bv = b.valid ? b.valid[w] : ~uint64_t{0};
      uint64_t ax = PackBytes(x + w * 64, count);
      uint64_t bx = PackBytes(y + w * 64, count);
      bits[w] = kAnd ? (av & ~ax) | (bv & ~bx) | (av & bv) : (av & ax) | (bv & bx) | (av & bv);
    }
    return;
  }
  // A constant operand: row by row.
  Any<uint8_t> x = ReadAny<uint8_t>(a), y = ReadAny<uint8_t>(b);
  ValidReader va = ReadValid(a), vb = ReadValid(b);
  uint64_t* bits = f.OwnBits(ins.out, false);
  ForEachRow(sel, [&](uint32_t i) {
    bool an = !va(i), bn = !vb(i);
    bool av = (x[i] & 1) != 0, bv = (y[i] & 1) != 0;
    bool decided = kAnd ? ((!an && !av) || (!bn && !bv)) : ((!an && av) || (!bn && bv));
    bool null = !decided && (an || bn);
    out[i] = kAnd ? (av && bv) : (av || bv);
    if (decided) out[i] = kAnd ? 0 : 1;
    PutBit(bits, i, !null);
  });
}

void IsNull(const Instr& ins, Frame& f, Sel sel) {
  const Vec& a = f.regs[static_cast<size_t>(ins.in[0])];
  uint8_t* out = f.Write<uint8_t>(ins.out);
  f.regs[static_cast<size_t>(ins.out)].valid = nullptr;
  uint8_t when_valid = ins.negated ? 1 : 0;
  if (a.valid == nullptr) {
    ForEachRow(sel, [&](uint32_t i) { out[i] = when_valid; });
    return;
  }
  ValidReader valid = ReadValid(a);
  ForEachRow(sel, [&](uint32_t i) { out[i] = valid(i) ? when_valid : 1 - when_valid; });
}

// x IS [NOT] TRUE|FALSE: never NULL.
void IsBool(const Instr& ins, Frame& f, Sel sel) {
  const Vec& a = f.regs[static_cast<size_t>(ins.in[0])];
  Any<uint8_t> x = ReadAny<uint8_t>(a);
  ValidReader valid = ReadValid(a);
  uint8_t* out = f.Write<uint8_t>(ins.out);
  f.regs[static_cast<size_t>(ins.out)].valid = nullptr;
  uint8_t want = ins.flag ? 1 : 0;
  ForEachRow(sel, [&](uint32_t i) {
    bool is = valid(i) && (x[i] & 1) == want;
    out[i] = (is != ins.negated) ? 1 : 0;
  });
}

// a IS DISTINCT FROM b: NULLs compare equal to each other and unequal to any value.
template <class T>
void Distinct(const Instr& ins, Frame& f, Sel sel) {
  const Vec& a = f.regs[static_cast<size_t>(ins.in[0])];
  const Vec& b = f.regs[static_cast<size_t>(ins.in[1])];
  Any<T> x = ReadAny<T>(a), y = ReadAny<T>(b);
  ValidReader va = ReadValid(a), vb = ReadValid(b);
  uint8_t* out = f.Write<uint8_t>(ins.out);
  f.regs[static_cast<size_t>(ins.out)].valid = nullptr;
  ForEachRow(sel, [&](uint32_t i) {
    bool an = !va(i), bn = !vb(i);
    bool distinct = (an || bn) ? an != bn : !(x[i] == y[i]);
    out[i] = (distinct != ins.negated) ? 1 : 0;
  });
}

// x IN (constants): TRUE when x equals one; else NULL when the list holds a NULL; else FALSE.
template <class T>
struct InList : Aux {
  std::vector<T> sorted;             // distinct non-NULL values
  std::vector<std::string> strings;  // owns the bytes of string values
  bool has_null = false;
};

template <class T>
void InConst(const Instr& ins, Frame& f, Sel sel) {
  const auto& list = static_cast<const InList<T>&>(*ins.aux);
  const Vec& a = f.regs[static_cast<size_t>(ins.in[0])];
  Any<T> x = ReadAny<T>(a);
  uint8_t* out = f.Write<uint8_t>(ins.out);
  f.AndValidity(ins.out, ins.in[0]);
  const T* begin = list.sorted.data();
  const T* end = begin + list.sorted.size();
  uint8_t found_value = ins.negated ? 0 : 1;
  auto contains = [&](const T& v) {
    if (list.sorted.size() <= 8) {
      for (const T* p = begin; p != end; ++p) {
        if (*p == v) return true;
      }
      return false;
    }
    return std::binary_search(begin, end, v);
  };
  if (!list.has_null) {
    ForEachRow(sel, [&](uint32_t i) { out[i] = contains(x[i]) ? found_value : 1 - found_value; });
    return;
  }
  // Not found with a NULL in the list: NULL.
  uint64_t* bits = f.OwnBits(ins.out, true);
  ForEachRow(sel, [&](uint32_t i) {
    bool found = contains(x[i]);
    out[i] = found ? found_value : 1 - found_value;
    if (!found) ClearBit(bits, i);
  });
}

template <class T>
Kernel MakeInConst(const std::vector<Value>& list, Instr& ins) {
  auto aux = std::make_shared<InList<T>>();
  for (const Value& v : list) {
    if (v.null) {
      aux->has_null = true;
      continue;
    }
    if constexpr (std::is_same_v<T, std::string_view>) {
      aux->strings.push_back(v.s);
    } else if constexpr (std::is_same_v<T, double>) {
      aux->sorted.push_back(v.d);
    } else if constexpr (std::is_same_v<T, uint8_t>) {
      aux->sorted.push_back(v.i != 0 ? 1 : 0);
    } else {
      aux->sorted.push_back(v.i);
    }
  }
  if constexpr (std::is_same_v<T, std::string_view>) {
    for (const std::string& s : aux->strings) aux->sorted.push_back(s);
  }
  std::sort(aux->sorted.begin(), aux->sorted.end());
  aux->sorted.erase(std::unique(aux->sorted.begin(), aux->sorted.end()), aux->sorted.end());
  ins.aux = aux;
  return &InConst<T>;
}

// OR of several BOOLEAN registers (x = item for each item of a non-constant IN list).
void AnyTrue(const Instr& ins, Frame& f, Sel sel) {
  uint8_t* out = f.Write<uint8_t>(ins.out);
  uint64_t* bits = f.OwnBits(ins.out, false);
  uint8_t found_value = ins.negated ? 0 : 1;
  ForEachRow(sel, [&](uint32_t i) {
    bool any_true = false, any_null = false;
    for (int r : ins.ins) {
      const Vec& v = f.regs[static_cast<size_t>(r)];
      if (!v.IsValid(i)) {
        any_null = true;
      } else if (v.values<uint8_t>()[v.constant ? 0 : i] & 1) {
        any_true = true;
      }
    }
    out[i] = any_true ? found_value : 1 - found_value;
    PutBit(bits, i, any_true || !any_null);
  });
}

// ---- CAST.

// Fits in int64 after rounding: [-2^63, 2^63).
inline bool FitsInt64(double r) { return r >= -9223372036854775808.0 && r < 9223372036854775808.0; }

// A cast whose every row succeeds: out = convert(x).
template <class From, class To, class F>
void CastRows(const Instr& ins, Frame& f, Sel sel, F convert) {
  Any<From> x = ReadAny<From>(f.regs[static_cast<size_t>(ins.in[0])]);
  To* out = f.Write<To>(ins.out);
  f.AndValidity(ins.out, ins.in[0]);
  if (sel.dense() && x.mask != 0) {
    for (uint32_t i = 0; i < sel.count; ++i) out[i] = convert(x.p[i]);
    return;
  }
  ForEachRow(sel, [&](uint32_t i) { out[i] = convert(x[i]); });
}

void IntToDouble(const Instr& ins, Frame& f, Sel sel) {
  CastRows<int64_t, double>(ins, f, sel, [](int64_t v) { return static_cast<double>(v); });
}
void IntToBool(const Instr& ins, Frame& f, Sel sel) {
  CastRows<int64_t, uint8_t>(ins, f, sel, [](int64_t v) -> uint8_t { return v != 0; });
}
void DoubleToBool(const Instr& ins, Frame& f, Sel sel) {
  CastRows<double, uint8_t>(ins, f, sel, [](double v) -> uint8_t { return v != 0; });
}
void BoolToInt(const Instr& ins, Frame& f, Sel sel) {
  CastRows<uint8_t, int64_t>(ins, f, sel, [](uint8_t v) -> int64_t { return v & 1; });
}
void BoolToDouble(const Instr& ins, Frame& f, Sel sel) {
  CastRows<uint8_t, double>(ins, f, sel, [](uint8_t v) -> double { return v & 1; });
}

template <bool kTry>
void DoubleToInt(const Instr& ins, Frame& f, Sel sel) {
  const Vec& a = f.regs[static_cast<size_t>(ins.in[0])];
  Any<double> x = ReadAny<double>(a);
  int64_t* out = f.Write<int64_t>(ins.out);
  f.AndValidity(ins.out, ins.in[0]);
  uint64_t flags = 0;
  // Branch-free: a value out of range converts 0 instead (and fails below).
  auto convert = [&](double v) {
    double r = RoundHalfAway(v);
    bool fits = FitsInt64(r);
    flags |= static_cast<uint64_t>(!fits);
    return static_cast<int64_t>(fits ? r : 0.0);
  };
  if (sel.dense() && x.mask != 0) {
    for (uint32_t i = 0; i < sel.count; ++i) out[i] = convert(x.p[i]);
  } else {
    ForEachRow(sel, [&](uint32_t i) { out[i] = convert(x[i]); });
  }
  if (flags == 0) return;
  ValidReader valid = ReadValid(a);
  ForEachRow(sel, [&](uint32_t i) {
    if (!valid(i) || FitsInt64(RoundHalfAway(x[i]))) return;
    if (kTry) {
      ClearBit(f.OwnBits(ins.out, true), i);
    } else {
      f.Fail(i, ins.out, fmt::format("cannot convert {} to BIGINT", FormatDouble(x[i])));
    }
  });
}

// Same bits, another type (BIGINT <-> TIMESTAMP): the register shares the input's buffer.
void Reinterpret(const Instr& ins, Frame& f, Sel sel) {
  const Vec& a = f.regs[static_cast<size_t>(ins.in[0])];
  if (a.constant) {
    CastRows<int64_t, int64_t>(ins, f, sel, [](int64_t v) { return v; });
    return;
  }
  Vec& o = f.regs[static_cast<size_t>(ins.out)];
  o.data = a.data;
  o.valid = a.valid;
  o.constant = false;
}

// NULL (the type) to anything: every row NULL.
void FromNull(const Instr& ins, Frame& f, Sel sel) {
  if (ins.type == Type::kString) {
    std::string_view* out = f.Write<std::string_view>(ins.out);
    ForEachRow(sel, [&](uint32_t i) { out[i] = {}; });
  } else {
    f.Write<int64_t>(ins.out);
  }
  f.SetAllNull(ins.out);
}

template <class From>
void ToText(const Instr& ins, Frame& f, Sel sel) {
  Any<From> x = ReadAny<From>(f.regs[static_cast<size_t>(ins.in[0])]);
  std::string_view* out = f.Write<std::string_view>(ins.out);
  Type from = f.regs[static_cast<size_t>(ins.in[0])].type;
  StrictRows(
      ins, f, sel, 1,
      [&](uint32_t i, std::string&) {
        if constexpr (std::is_same_v<From, uint8_t>) {
          out[i] = (x[i] & 1) ? std::string_view("true") : std::string_view("false");
        } else {
          char buf[kMaxFormatted];
          size_t len;
          if constexpr (std::is_same_v<From, double>) {
            len = FormatDouble(x[i], buf);
          } else {
            len = from == Type::kTimestamp ? FormatTimestamp(x[i], buf) : FormatInt64(x[i], buf);
          }
          out[i] = Store(f, std::string_view(buf, len));
        }
        return true;
      },
      [&](uint32_t i) { out[i] = {}; });
}

template <class To, bool kTry>
void FromText(const Instr& ins, Frame& f, Sel sel) {
  Any<std::string_view> x = ReadAny<std::string_view>(f.regs[static_cast<size_t>(ins.in[0])]);
  To* out = f.Write<To>(ins.out);
  Type to = ins.type;
  auto parse = [&](std::string_view s, To* v) {
    if constexpr (std::is_same_v<To, double>) {
      return ParseDouble(s, v);
    } else if constexpr (std::is_same_v<To, uint8_t>) {
      bool b;
      if (!ParseBool(s, &b)) return false;
      *v = b ? 1 : 0;
      return true;
    } else {
      return to == Type::kTimestamp ? ParseTimestamp(s, v) : ParseInt64(s, v);
    }
  };
  if (kTry) {
    f.AndValidity(ins.out, ins.in[0]);
    ValidReader valid = ReadValid(f.regs[static_cast<size_t>(ins.out)]);
    uint64_t* bits = nullptr;
    ForEachRow(sel, [&](uint32_t i) {
      if (!valid(i) || parse(x[i], &out[i])) return;
      if (bits == nullptr) bits = f.OwnBits(ins.out, true);
      ClearBit(bits, i);
    });
    return;
  }
  StrictRows(
      ins, f, sel, 1,
      [&](uint32_t i, std::string& message) {
        if (parse(x[i], &out[i])) return true;
        message = fmt::format("cannot convert {} to {}", Quote(x[i]), TypeName(to));
        return false;
      },
      [](uint32_t) {});
}

// ---- VARCHAR = constant.

// kLength: the constant's length when it is short (the comparison of bytes then compiles to a
// few loads), or 0 for any length.
template <class Strings, size_t kLength>
void StringEqualsConst(const Instr& ins, Frame& f, Sel sel) {
  Strings x = ReadStrings<Strings>(ins, f, 0);
  std::string_view k = f.regs[static_cast<size_t>(ins.in[1])].values<std::string_view>()[0];
  uint8_t* out = f.Write<uint8_t>(ins.out);
  f.AndValidity(ins.out, ins.in[0]);
  const uint8_t when_equal = ins.op == Op::kEq ? 1 : 0;
  ForEachRow(sel, [&](uint32_t i) {
    std::string_view s = x[i];
    bool equal;
    if constexpr (kLength == 0) {
      equal = s == k;
    } else {
      equal = s.size() == kLength && std::memcmp(s.data(), k.data(), kLength) == 0;
    }
    out[i] = equal ? when_equal : 1 - when_equal;
  });
}

template <class Strings>
Kernel PickStringEquals(size_t length) {
  switch (length) {
    case 1:
      return &StringEqualsConst<Strings, 1>;
    case 2:
      return &StringEqualsConst<Strings, 2>;
    case 3:
      return &StringEqualsConst<Strings, 3>;
    case 4:
      return &StringEqualsConst<Strings, 4>;
    case 8:
      return &StringEqualsConst<Strings, 8>;
    default:
      return &StringEqualsConst<Strings, 0>;
  }
}

}  // namespace

Kernel ArithKernel(Op op, Type operand, Shape l, Shape r) {
  if (operand == Type::kInt64) {
    switch (op) {
      case Op::kAdd:
        return PickShapes<AddInt>(l, r);
      case Op::kSub:
        return PickShapes<SubInt>(l, r);
      case Op::kMul:
        return PickShapes<MulInt>(l, r);
      case Op::kDiv:
        return PickShapes<DivInt>(l, r);
      case Op::kMod:
        return PickShapes<ModInt>(l, r);
      default:
        return nullptr;
    }
  }
  switch (op) {
    case Op::kAdd:
      return PickShapes<DoubleOp<std::plus<double>>>(l, r);
    case Op::kSub:
      return PickShapes<DoubleOp<std::minus<double>>>(l, r);
    case Op::kMul:
      return PickShapes<DoubleOp<std::multiplies<double>>>(l, r);
    case Op::kDiv:
      return PickShapes<DivDouble>(l, r);
    case Op::kMod:
      return PickShapes<ModDouble>(l, r);
    default:
      return nullptr;
  }
}

Kernel IntDivByConstKernel(Op op, int64_t divisor, Instr& ins) {
  ins.aux = std::make_shared<DivMagic>(ComputeMagic(divisor));
  return op == Op::kMod ? &IntDivConst<true> : &IntDivConst<false>;
}

Kernel DivisibleKernel(int64_t divisor, Instr& ins) {
  auto t = std::make_shared<Divisibility>();
  uint64_t d =
      divisor < 0 ? uint64_t{0} - static_cast<uint64_t>(divisor) : static_cast<uint64_t>(divisor);
  t->shift = __builtin_ctzll(d);
  t->low_mask = (uint64_t{1} << t->shift) - 1;
  uint64_t m = d >> t->shift;
  // Newton's iteration doubles the correct low bits each step; m * m == 1 mod 8 to start.
  uint64_t inv = m;
  for (int k = 0; k < 5; ++k) inv *= 2 - m * inv;
  t->inverse = inv;
  uint64_t kmax = (uint64_t{1} << 63) / m - ((uint64_t{1} << 63) % m == 0 ? 1 : 0);
  uint64_t kmin_abs = (uint64_t{1} << 63) / m;
  t->kmin = uint64_t{0} - kmin_abs;
  t->span = kmax + kmin_abs;
  bool odd = t->shift == 0, power_of_two = m == 1;
  ins.aux = t;
  if (odd) return &Divisible<DivisorShape::kOdd>;
  if (power_of_two) return &Divisible<DivisorShape::kPowerOfTwo>;
  return &Divisible<DivisorShape::kMixed>;
}

Kernel NegKernel(Type t) { return t == Type::kDouble ? &NegDouble : &NegInt; }

Kernel CompareKernel(Op op, Type t, Shape l, Shape r) {
  switch (t) {
    case Type::kInt64:
    case Type::kTimestamp:
      return PickCompare<int64_t>(op, l, r);
    case Type::kDouble:
      return PickCompare<double>(op, l, r);
    case Type::kBool:
      return PickCompare<uint8_t>(op, l, r);
    case Type::kString:
      return PickCompare<std::string_view>(op, l, r);
    case Type::kNull:
      break;
  }
  return nullptr;
}

Kernel StringEqualsConstKernel(std::string_view constant, bool field) {
  return field ? PickStringEquals<ColumnStrings>(constant.size())
               : PickStringEquals<Col<std::string_view>>(constant.size());
}

Kernel CastKernel(Type from, Type to, bool try_cast) {
  if (from == Type::kNull) return &FromNull;
  if (to == Type::kString) {
    switch (from) {
      case Type::kInt64:
      case Type::kTimestamp:
        return &ToText<int64_t>;
      case Type::kDouble:
        return &ToText<double>;
      case Type::kBool:
        return &ToText<uint8_t>;
      default:
        return nullptr;
    }
  }
  if (from == Type::kString) {
    switch (to) {
      case Type::kInt64:
      case Type::kTimestamp:
        return try_cast ? &FromText<int64_t, true> : &FromText<int64_t, false>;
      case Type::kDouble:
        return try_cast ? &FromText<double, true> : &FromText<double, false>;
      case Type::kBool:
        return try_cast ? &FromText<uint8_t, true> : &FromText<uint8_t, false>;
      default:
        return nullptr;
    }
  }
  if (IsInt64Backed(from) && IsInt64Backed(to)) return &Reinterpret;
  if (from == Type::kInt64 && to == Type::kDouble) return &IntToDouble;
  if (from == Type::kInt64 && to == Type::kBool) return &IntToBool;
  if (from == Type::kDouble && to == Type::kInt64) {
    return try_cast ? &DoubleToInt<true> : &DoubleToInt<false>;
  }
  if (from == Type::kDouble && to == Type::kBool) return &DoubleToBool;
  if (from == Type::kBool && to == Type::kInt64) return &BoolToInt;
  if (from == Type::kBool && to == Type::kDouble) return &BoolToDouble;
  return nullptr;
}

Kernel ErrorKernel() { return &Error; }
Kernel NotKernel() { return &Not; }
Kernel AndOrDenseKernel(bool is_and) { return is_and ? &AndOrDense<true> : &AndOrDense<false>; }
Kernel IsNullKernel() { return &IsNull; }
Kernel IsBoolKernel() { return &IsBool; }

Kernel DistinctKernel(Type t) {
  switch (t) {
    case Type::kInt64:
    case Type::kTimestamp:
      return &Distinct<int64_t>;
    case Type::kDouble:
      return &Distinct<double>;
    case Type::kBool:
      return &Distinct<uint8_t>;
    case Type::kString:
      return &Distinct<std::string_view>;
    case Type::kNull:
      break;
  }
  return nullptr;
}

Kernel InConstKernel(Type t, const std::vector<Value>& list, Instr& ins) {
  switch (t) {
    case Type::kInt64:
    case Type::kTimestamp:
      return MakeInConst<int64_t>(list, ins);
    case Type::kDouble:
      return MakeInConst<double>(list, ins);
    case Type::kBool:
      return MakeInConst<uint8_t>(list, ins);
    case Type::kString:
      return MakeInConst<std::string_view>(list, ins);
    case Type::kNull:
      break;
  }
  return nullptr;
}

Kernel AnyKernel() { return &AnyTrue; }

}  // namespace barge::pipeline::detail
