// Kernels of the numeric, time and comparison functions, and FunctionKernel, which picks the
// kernel of any scalar function.
#include <cmath>
#include <limits>

#include "pipeline/expr_convert.h"
#include "pipeline/expr_kernel_util.h"

namespace barge::pipeline::detail {

namespace {

constexpr int64_t kMinInt = std::numeric_limits<int64_t>::min();
constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();

double RoundDigits(double x, int64_t digits) {
  if (digits == 0) return RoundHalfAway(x);
  if (digits > 0) {
    if (digits > 308) return x;
    double m = std::pow(10.0, static_cast<double>(digits));
    double y = x * m;
    if (!std::isfinite(y)) return x;
    return RoundHalfAway(y) / m;
  }
  if (digits < -308) return 0 * x;
  double m = std::pow(10.0, static_cast<double>(-digits));
  return RoundHalfAway(x / m) * m;
}

// round(BIGINT, digits): digits >= 0 keeps x; negative digits round to tens, hundreds, ...
bool RoundIntDigits(int64_t x, int64_t digits, int64_t* out) {
  if (digits >= 0) {
    *out = x;
    return true;
  }
  if (digits < -18) {
    *out = 0;
    return true;
  }
  int64_t m = 1;
  for (int64_t k = 0; k < -digits; ++k) m *= 10;
  int64_t q = x / m, r = x % m;
  if (r >= (m + 1) / 2) ++q;
  if (r <= -(m + 1) / 2) --q;
  return !__builtin_mul_overflow(q, m, out);
}

// One DOUBLE in, one DOUBLE out, with an optional domain check. The loop has no branches; rows
// outside the domain are found in a second pass.
template <class F, class Bad>
void DoubleMath(const Instr& ins, Frame& f, Sel sel, F fn, Bad bad, std::string_view message) {
  const Vec& a = f.regs[static_cast<size_t>(ins.in[0])];
  Any<double> x = ReadAny<double>(a);
  double* out = f.Write<double>(ins.out);
  f.AndValidity(ins.out, ins.in[0]);
  uint64_t flags = 0;
  if (sel.dense() && x.mask != 0) {
    for (uint32_t i = 0; i < sel.count; ++i) {
      flags |= static_cast<uint64_t>(bad(x.p[i]));
      out[i] = fn(x.p[i]);
    }
  } else {
    ForEachRow(sel, [&](uint32_t i) {
      flags |= static_cast<uint64_t>(bad(x[i]));
      out[i] = fn(x[i]);
    });
  }
  if (flags == 0) return;
  ValidReader valid = ReadValid(a);
  ForEachRow(sel, [&](uint32_t i) {
    if (valid(i) && bad(x[i])) {
      f.Fail(i, ins.out, fmt::format("{}: {}", message, FormatDouble(x[i])));
    }
  });
}

constexpr auto kNever = [](double) { return false; };

void MathDouble(const Instr& ins, Frame& f, Sel sel) {
  switch (ins.fn) {
    case Fn::kAbs:
      return DoubleMath(
          ins, f, sel, [](double v) { return std::fabs(v); }, kNever, "");
    case Fn::kSign:
      return DoubleMath(
          ins, f, sel, [](double v) { return v > 0   ? 1.0
                                             : v < 0 ? -1.0
                                                     : v; }, kNever, "");
    case Fn::kRound:
      return DoubleMath(
          ins, f, sel, [](double v) { return RoundHalfAway(v); }, kNever, "");
    case Fn::kFloor:
      return DoubleMath(
          ins, f, sel, [](double v) { return std::floor(v); }, kNever, "");
    case Fn::kCeil:
      return DoubleMath(
          ins, f, sel, [](double v) { return std::ceil(v); }, kNever, "");
    case Fn::kTrunc:
      return DoubleMath(
          ins, f, sel, [](double v) { return std::trunc(v); }, kNever, "");
    case Fn::kSqrt:
      return DoubleMath(
          ins, f, sel, [](double v) { return v < 0 ? 0.0 : std::sqrt(v); },
          [](double v) { return v < 0; }, "cannot take the square root of a negative number");
    case Fn::kCbrt:
      return DoubleMath(
          ins, f, sel, [](double v) { return std::cbrt(v); }, kNever, "");
    case Fn::kExp:
      return DoubleMath(
          ins, f, sel, [](double v) { return std::exp(v); }, kNever, "");
    case Fn::kLn:
      return DoubleMath(
          ins, f, sel, [](double v) { return v <= 0 ? 0.0 : std::log(v); },
          [](double v) { return v <= 0; }, "cannot take the logarithm of a non-positive number");
    case Fn::kLog10:
      return DoubleMath(
          ins, f, sel, [](double v) { return v <= 0 ? 0.0 : std::log10(v); },
          [](double v) { return v <= 0; }, "cannot take the logarithm of a non-positive number");
    case Fn::kLog2:
      return DoubleMath(
          ins, f, sel, [](double v) { return v <= 0 ? 0.0 : std::log2(v); },
          [](double v) { return v <= 0; }, "cannot take the logarithm of a non-positive number");
    default:
      return;
  }
}

// abs, sign, round, floor, ceil, trunc of a BIGINT.
void MathInt(const Instr& ins, Frame& f, Sel sel) {
  Any<int64_t> x = ReadAny<int64_t>(f.regs[static_cast<size_t>(ins.in[0])]);
  int64_t* out = f.Write<int64_t>(ins.out);
  Fn fn = ins.fn;
  StrictRows(
      ins, f, sel, 1,
      [&](uint32_t i, std::string& message) {
        int64_t v = x[i];
        if (fn == Fn::kAbs) {
          if (v == kMinInt) {
            message = fmt::format("BIGINT overflow in abs({})", v);
            return false;
          }
          out[i] = v < 0 ? -v : v;
        } else if (fn == Fn::kSign) {
          out[i] = v > 0 ? 1 : v < 0 ? -1 : 0;
        } else {
          out[i] = v;
        }
        return true;
      },
      [](uint32_t) {});
}

void RoundWithDigits(const Instr& ins, Frame& f, Sel sel) {
  const Vec& a = f.regs[static_cast<size_t>(ins.in[0])];
  Any<int64_t> digits = ReadAny<int64_t>(f.regs[static_cast<size_t>(ins.in[1])]);
  if (ins.type == Type::kDouble) {
    Any<double> x = ReadAny<double>(a);
    double* out = f.Write<double>(ins.out);
    StrictRows(
        ins, f, sel, 2,
        [&](uint32_t i, std::string&) {
          out[i] = RoundDigits(x[i], digits[i]);
          return true;
        },
        [](uint32_t) {});
    return;
  }
  Any<int64_t> x = ReadAny<int64_t>(a);
  int64_t* out = f.Write<int64_t>(ins.out);
  StrictRows(
      ins, f, sel, 2,
      [&](uint32_t i, std::string& message) {
        if (RoundIntDigits(x[i], digits[i], &out[i])) return true;
        message = fmt::format("BIGINT overflow in round({}, {})", x[i], digits[i]);
        return false;
      },
      [](uint32_t) {});
}

void Binary2Double(const Instr& ins, Frame& f, Sel sel) {
  Any<double> x = ReadAny<double>(f.regs[static_cast<size_t>(ins.in[0])]);
  Any<double> y = ReadAny<double>(f.regs[static_cast<size_t>(ins.in[1])]);
  double* out = f.Write<double>(ins.out);
  bool log = ins.fn == Fn::kLog;
  StrictRows(
      ins, f, sel, 2,
      [&](uint32_t i, std::string& message) {
        double a = x[i], b = y[i];
        if (!log) {
          out[i] = std::pow(a, b);
          return true;
        }
        // log(base, x)
        if (a <= 0 || a == 1 || b <= 0) {
          out[i] = 0;
          message = fmt::format("cannot take the logarithm of {} in base {}", FormatDouble(b),
                                FormatDouble(a));
          return false;
        }
        out[i] = std::log(b) / std::log(a);
        return true;
      },
      [](uint32_t) {});
}

void Pi(const Instr& ins, Frame& f, Sel sel) {
  double* out = f.Write<double>(ins.out);
  f.regs[static_cast<size_t>(ins.out)].valid = nullptr;
  ForEachRow(sel, [&](uint32_t i) { out[i] = 3.14159265358979323846; });
}

// nullif(a, b): NULL when a = b, else a.
template <class T>
void Nullif(const Instr& ins, Frame& f, Sel sel) {
  const Vec& a = f.regs[static_cast<size_t>(ins.in[0])];
  const Vec& b = f.regs[static_cast<size_t>(ins.in[1])];
  Any<T> x = ReadAny<T>(a), y = ReadAny<T>(b);
  ValidReader vb = ReadValid(b);
  T* out = f.Write<T>(ins.out);
  f.AndValidity(ins.out, ins.in[0]);
  ValidReader va = ReadValid(f.regs[static_cast<size_t>(ins.out)]);
  uint64_t* bits = nullptr;
  ForEachRow(sel, [&](uint32_t i) {
    out[i] = x[i];
    if (va(i) && vb(i) && x[i] == y[i]) {
      if (bits == nullptr) bits = f.OwnBits(ins.out, true);
      ClearBit(bits, i);
      if constexpr (std::is_same_v<T, std::string_view>) out[i] = {};
    }
  });
  if constexpr (std::is_same_v<T, std::string_view>) {
    ForEachRow(sel, [&](uint32_t i) {
      if (!va(i)) out[i] = {};
    });
  }
}

// greatest/least: the largest/smallest non-NULL argument; NULL when all are (as PostgreSQL and
// DuckDB; Flink returns NULL when any is).
template <class T, bool kGreatest>
void Extreme(const Instr& ins, Frame& f, Sel sel) {
  T* out = f.Write<T>(ins.out);
  uint64_t* bits = f.OwnBits(ins.out, false);
  ForEachRow(sel, [&](uint32_t i) {
    bool any = false;
    T best{};
    for (int r : ins.ins) {
      const Vec& v = f.regs[static_cast<size_t>(r)];
      if (!v.IsValid(i)) continue;
      T x = v.values<T>()[v.constant ? 0 : i];
      if (!any || (kGreatest ? best < x : x < best)) best = x;
      any = true;
    }
    out[i] = best;
    PutBit(bits, i, any);
  });
}

template <bool kGreatest>
Kernel PickExtreme(Type t) {
  switch (t) {
    case Type::kDouble:
      return &Extreme<double, kGreatest>;
    case Type::kBool:
      return &Extreme<uint8_t, kGreatest>;
    case Type::kString:
      return &Extreme<std::string_view, kGreatest>;
    default:
      return &Extreme<int64_t, kGreatest>;
  }
}

// date_trunc(unit, ts) with the unit in ins.value.i; TIMESTAMP or BIGINT milliseconds.
void DateTrunc(const Instr& ins, Frame& f, Sel sel) {
  Any<int64_t> x = ReadAny<int64_t>(f.regs[static_cast<size_t>(ins.in[0])]);
  int64_t* out = f.Write<int64_t>(ins.out);
  f.AndValidity(ins.out, ins.in[0]);
  auto unit = static_cast<TimeUnit>(ins.value.i);
  int64_t step = 0;
  switch (unit) {
    case TimeUnit::kMillisecond:
      step = 1;
      break;
    case TimeUnit::kSecond:
      step = kMsPerSecond;
      break;
    case TimeUnit::kMinute:
      step = kMsPerMinute;
      break;
    case TimeUnit::kHour:
      step = kMsPerHour;
      break;
    case TimeUnit::kDay:
      step = kMsPerDay;
      break;
    default:
      break;
  }
  if (step != 0) {
    // Fixed-length units: a floor division.
    ForEachRow(sel, [&](uint32_t i) { out[i] = FloorDiv(x[i], step) * step; });
    return;
  }
  ForEachRow(sel, [&](uint32_t i) { out[i] = TruncateTime(unit, x[i]); });
}

void DatePart(const Instr& ins, Frame& f, Sel sel) {
  Any<int64_t> x = ReadAny<int64_t>(f.regs[static_cast<size_t>(ins.in[0])]);
  int64_t* out = f.Write<int64_t>(ins.out);
  f.AndValidity(ins.out, ins.in[0]);
  auto part = static_cast<TimePart>(ins.value.i);
  ForEachRow(sel, [&](uint32_t i) { out[i] = ExtractTimePart(part, x[i]); });
}

// time_bucket(width, ts, origin): the start of the width-long bucket holding ts, buckets
// aligned to origin.
void TimeBucket(const Instr& ins, Frame& f, Sel sel) {
  Any<int64_t> width = ReadAny<int64_t>(f.regs[static_cast<size_t>(ins.in[0])]);
  Any<int64_t> x = ReadAny<int64_t>(f.regs[static_cast<size_t>(ins.in[1])]);
  Any<int64_t> origin = ReadAny<int64_t>(f.regs[static_cast<size_t>(ins.in[2])]);
  int64_t* out = f.Write<int64_t>(ins.out);
  StrictRows(
      ins, f, sel, 3,
      [&](uint32_t i, std::string& message) {
        int64_t w = width[i];
        if (w <= 0) {
          message = fmt::format("time_bucket() width must be positive, found {}", w);
          return false;
        }
        __int128 offset = static_cast<__int128>(x[i]) - origin[i];
        __int128 q = offset / w;
        if (offset % w != 0 && offset < 0) --q;
        __int128 r = static_cast<__int128>(origin[i]) + q * w;
        if (r < kMinInt || r > kMaxInt) {
          message = "time_bucket() result is out of range";
          return false;
        }
        out[i] = static_cast<int64_t>(r);
        return true;
      },
      [](uint32_t) {});
}

}  // namespace

Kernel FunctionKernel(Fn fn, const std::vector<Type>& args, Type result) {
  if (Kernel k = StringFunctionKernel(fn)) return k;
  switch (fn) {
    case Fn::kAbs:
    case Fn::kSign:
    case Fn::kFloor:
    case Fn::kCeil:
    case Fn::kTrunc:
      return result == Type::kDouble ? &MathDouble : &MathInt;
    case Fn::kRound:
      if (args.size() == 2) return &RoundWithDigits;
      return result == Type::kDouble ? &MathDouble : &MathInt;
    case Fn::kSqrt:
    case Fn::kCbrt:
    case Fn::kExp:
    case Fn::kLn:
    case Fn::kLog10:
    case Fn::kLog2:
      return &MathDouble;
    case Fn::kPower:
    case Fn::kLog:
      return &Binary2Double;
    case Fn::kPi:
      return &Pi;
    case Fn::kNullif:
      switch (result) {
        case Type::kDouble:
          return &Nullif<double>;
        case Type::kBool:
          return &Nullif<uint8_t>;
        case Type::kString:
          return &Nullif<std::string_view>;
        default:
          return &Nullif<int64_t>;
      }
    case Fn::kGreatest:
      return PickExtreme<true>(result);
    case Fn::kLeast:
      return PickExtreme<false>(result);
    case Fn::kDateTrunc:
      return &DateTrunc;
    case Fn::kDatePart:
      return &DatePart;
    case Fn::kTimeBucket:
      return &TimeBucket;
    default:
      return nullptr;
  }
}

}  // namespace barge::pipeline::detail
