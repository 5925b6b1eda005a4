// Building blocks of the kernels: typed operand accessors and validity helpers.
//
// Operands come in two shapes. Col<T> reads row i of a column; Konst<T> returns one value for
// every row. Hot binary kernels are instantiated per shape pair, so a constant is held in a
// register of the loop and never materialized per row. Less critical kernels read through
// Any<T>, which covers both shapes with an index mask.
//
// A register is constant at run time only when it is a literal, or when the program folds
// constants on a single row (then a constant is a one-row column as well).
#pragma once

#include <fmt/core.h>

#include <cstdint>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <string>
#include <string_view>

#include "pipeline/expr_program.h"

namespace barge::pipeline::detail {

template <class T>
struct Col {
  const T* p;
  T operator[](uint32_t i) const { return p[i]; }
};

template <class T>
struct Konst {
  T v;
  T operator[](uint32_t) const { return v; }
};

template <class T>
struct Any {
  const T* p;
  uint32_t mask;  // 0 for a constant
  T operator[](uint32_t i) const { return p[i & mask]; }
};

template <class A>
struct ArgMaker;
template <class T>
struct ArgMaker<Col<T>> {
  static Col<T> Make(const Vec& v) { return {v.values<T>()}; }
};
template <class T>
struct ArgMaker<Konst<T>> {
  static Konst<T> Make(const Vec& v) { return {v.values<T>()[0]}; }
};
template <class A>
A MakeArg(const Vec& v) {
  return ArgMaker<A>::Make(v);
}

template <class T>
Any<T> ReadAny(const Vec& v) {
  return {v.values<T>(), v.constant ? 0u : ~0u};
}

// A VARCHAR field's strings straight from its input column (Instr::reads_column), without the
// views of its register.
struct ColumnStrings {
  const uint32_t* offsets;
  const char* bytes;
  std::string_view operator[](uint32_t i) const {
    return {bytes + offsets[i], static_cast<size_t>(offsets[i + 1] - offsets[i])};
  }
};

// The input column of a field register.
inline const Column& InputColumn(const Frame& f, int reg) {
  return f.input->columns[static_cast<size_t>(f.program->regs[static_cast<size_t>(reg)].field)];
}

// Operand k of `ins` as VARCHAR: ColumnStrings (from the column) or Col<std::string_view>.
template <class Strings>
Strings ReadStrings(const Instr& ins, const Frame& f, int k) {
  if constexpr (std::is_same_v<Strings, ColumnStrings>) {
    const Column& c = InputColumn(f, ins.in[k]);
    return {c.offsets(), c.bytes()};
  } else {
    return {f.regs[static_cast<size_t>(ins.in[k])].values<std::string_view>()};
  }
}

// Row validity of a register, for per-row loops.
struct ValidReader {
  const uint64_t* bits;
  uint32_t mask;
  bool operator()(uint32_t i) const {
    if (bits == nullptr) return true;
    i &= mask;
    return ((bits[i >> 6] >> (i & 63)) & 1) != 0;
  }
};
inline ValidReader ReadValid(const Vec& v) { return {v.valid, v.constant ? 0u : ~0u}; }

inline void ClearBit(uint64_t* bits, uint32_t i) { bits[i >> 6] &= ~(uint64_t{1} << (i & 63)); }
inline void SetBit(uint64_t* bits, uint32_t i) { bits[i >> 6] |= uint64_t{1} << (i & 63); }
inline void PutBit(uint64_t* bits, uint32_t i, bool on) {
  uint64_t m = uint64_t{1} << (i & 63);
  bits[i >> 6] = on ? (bits[i >> 6] | m) : (bits[i >> 6] & ~m);
}

// Bit 0 of bytes p[0..count) (count <= 64) packed into a word, least significant first.
inline uint64_t PackBytes(const uint8_t* p, uint32_t count) {
  uint64_t word = 0;
  uint32_t j = 0;
#ifdef __SSE2__
  // 16 bytes at a time: shift bit 0 of each byte to its top bit, then gather the top bits.
  for (; j + 16 <= count; j += 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + j));
    uint64_t bits = static_cast<uint32_t>(_mm_movemask_epi8(_mm_slli_epi64(v, 7)));
    word |= bits << j;
  }
#endif
  for (; j < count; ++j) word |= uint64_t{p[j] & 1u} << j;
  return word;
}

// The C++ type of a SQL type's values in registers.
template <Type T>
struct CType;
template <>
struct CType<Type::kInt64> {
  using type = int64_t;
};
template <>
struct CType<Type::kTimestamp> {
  using type = int64_t;
};
template <>
struct CType<Type::kDouble> {
  using type = double;
};
template <>
struct CType<Type::kBool> {
  using type = uint8_t;
};
template <>
struct CType<Type::kString> {
  using type = std::string_view;
};

// A value quoted for a row error message: strings in quotes and cut to a readable length.
inline std::string Quote(std::string_view s) {
  if (s.size() > 40) return fmt::format("'{}...'", s.substr(0, 37));
  return fmt::format("'{}'", s);
}

// Writes `s` into the batch's arena and returns the stored view.
inline std::string_view Store(Frame& f, std::string_view s) {
  char* p = f.arena.Allocate(s.size());
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
  return {p, s.size()};
}

// The generic strict kernel loop: for each selected row where every input is valid, calls
// fn(i), which returns false on a row error (having set `message`). Output validity is the AND
// of the inputs'; failing rows become NULL. `on_null(i)` runs for the other rows (string kernels
// store an empty value there so that NULL rows never hold dangling views).
template <class Fn, class OnNull>
inline void StrictRows(const Instr& ins, Frame& f, Sel sel, size_t arity, Fn&& fn,
                       OnNull&& on_null) {
  int in[4];
  size_t k = 0;
  for (size_t j = 0; j < arity && j < 4; ++j) in[k++] = ins.in[j];
  f.AndValidity(ins.out, in, k);
  ValidReader valid = ReadValid(f.regs[static_cast<size_t>(ins.out)]);
  std::string message;
  if (valid.bits == nullptr) {
    ForEachRow(sel, [&](uint32_t i) {
      if (!fn(i, message)) f.Fail(i, ins.out, std::move(message));
    });
    return;
  }
  ForEachRow(sel, [&](uint32_t i) {
    if (!valid(i)) {
      on_null(i);
    } else if (!fn(i, message)) {
      f.Fail(i, ins.out, std::move(message));
      // The bitmap may have been replaced by an owned copy.
      valid = ReadValid(f.regs[static_cast<size_t>(ins.out)]);
    }
  });
}

}  // namespace barge::pipeline::detail
