// String kernels: LIKE, ||, and the string functions. Lengths and positions count UTF-8 code
// points; results are written to the batch's arena.
#include <algorithm>
#include <cstring>
#include <limits>

#include "pipeline/expr_kernel_util.h"

namespace barge::pipeline::detail {

namespace {

// Longest string a function may build (repeat, lpad): a batch's bytes are addressed by uint32
// offsets, and a runaway repeat() should fail its row, not the process.
constexpr size_t kMaxBuilt = 16 << 20;

bool IsContinuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Bytes of the code point starting at s[i] (1 for a stray byte).
size_t CodePointBytes(std::string_view s, size_t i) {
  size_t j = i + 1;
  while (j < s.size() && IsContinuation(s[j])) ++j;
  return j - i;
}

size_t CodePointCount(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += IsContinuation(c) ? 0 : 1;
  return n;
}

// Byte offset after skipping `count` code points from `from` (s.size() when it runs out).
size_t SkipCodePoints(std::string_view s, size_t from, int64_t count) {
  size_t i = from;
  while (count > 0 && i < s.size()) {
    i += CodePointBytes(s, i);
    --count;
  }
  return i;
}

bool IsAscii(std::string_view s) {
  unsigned char any = 0;
  for (char c : s) any |= static_cast<unsigned char>(c);
  return any < 0x80;
}

// ---- Case mapping: ASCII, and the two-byte letters of Latin-1, Latin Extended-A, Greek and
// Cyrillic (simple one-to-one mappings, so a string keeps its byte length).

uint32_t UpperCodePoint(uint32_t c) {
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 0x20;
  if (c == 0xFF) return 0x178;
  if (c >= 0x100 && c <= 0x17F) {
    bool pairs_even_upper = (c <= 0x137) || (c >= 0x14A && c <= 0x177);
    bool pairs_odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (pairs_even_upper && (c & 1)) return c - 1;
    if (pairs_odd_upper && !(c & 1)) return c - 1;
    return c;
  }
  if (c >= 0x3B1 && c <= 0x3C9) return c == 0x3C2 ? 0x3A3 : c - 0x20;
  if (c == 0x3AC) return 0x386;
  if (c >= 0x3AD && c <= 0x3AF) return c - 0x25;
  if (c == 0x3CC) return 0x38C;
  if (c == 0x3CD || c == 0x3CE) return c - 0x3F;
  if (c >= 0x430 && c <= 0x44F) return c - 0x20;
  if (c >= 0x450 && c <= 0x45F) return c - 0x50;
  return c;
}

uint32_t LowerCodePoint(uint32_t c) {
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 0x20;
  if (c == 0x178) return 0xFF;
  if (c >= 0x100 && c <= 0x17F) {
    bool pairs_even_upper = (c <= 0x137) || (c >= 0x14A && c <= 0x177);
    bool pairs_odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (pairs_even_upper && !(c & 1) && c != 0x130) return c + 1;
    if (pairs_odd_upper && (c & 1)) return c + 1;
    return c;
  }
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 0x20;
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 0x25;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 0x3F;
  if (c >= 0x410 && c <= 0x42F) return c + 0x20;
  if (c >= 0x400 && c <= 0x40F) return c + 0x50;
  return c;
}

template <bool kUpper>
void MapCase(std::string_view s, char* out) {
  size_t n = s.size();
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (kUpper) {
        out[i] = static_cast<char>(c - ((c >= 'a' && c <= 'z') ? 32 : 0));
      } else {
        out[i] = static_cast<char>(c + ((c >= 'A' && c <= 'Z') ? 32 : 0));
      }
      continue;
    }
    // Two-byte sequences 110xxxxx 10xxxxxx map within two bytes; others are copied.
    if ((c & 0xE0) == 0xC0 && i + 1 < n && IsContinuation(s[i + 1])) {
      uint32_t cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3Fu);
      uint32_t m = kUpper ? UpperCodePoint(cp) : LowerCodePoint(cp);
      if (m < 0x80 || m > 0x7FF) m = cp;
      out[i] = static_cast<char>(0xC0 | (m >> 6));
      out[i + 1] = static_cast<char>(0x80 | (m & 0x3F));
      ++i;
      continue;
    }
    out[i] = static_cast<char>(c);
  }
}

template <bool kUpper>
inline char MapAscii(char ch) {
  unsigned char c = static_cast<unsigned char>(ch);
  if (kUpper) return static_cast<char>(c - ((c >= 'a' && c <= 'z') ? 32 : 0));
  return static_cast<char>(c + ((c >= 'A' && c <= 'Z') ? 32 : 0));
}

template <bool kUpper, class Strings>
void CaseRows(const Instr& ins, Frame& f, Sel sel, Strings x, std::string_view* out) {
  StrictRows(
      ins, f, sel, 1,
      [&](uint32_t i, std::string&) {
        std::string_view s = x[i];
        char* p = f.arena.Allocate(s.size());
        if (IsAscii(s)) {
          for (size_t j = 0; j < s.size(); ++j) p[j] = MapAscii<kUpper>(s[j]);
        } else {
          MapCase<kUpper>(s, p);
        }
        out[i] = {p, s.size()};
        return true;
      },
      [&](uint32_t i) { out[i] = {}; });
}

// upper/lower. On a field whose bytes are all ASCII, the column's bytes are mapped in one pass
// (strings keep their lengths, so the offsets carry over).
template <bool kUpper>
void CaseKernel(const Instr& ins, Frame& f, Sel sel) {
  std::string_view* out = f.Write<std::string_view>(ins.out);
  if (!ins.reads_column) {
    CaseRows<kUpper>(ins, f, sel, ReadStrings<Col<std::string_view>>(ins, f, 0), out);
    return;
  }
  const Column& c = InputColumn(f, ins.in[0]);
  std::string_view all(c.bytes(), c.byte_size());
  if (uint64_t{sel.count} * 2 < f.n || !IsAscii(all)) {
    CaseRows<kUpper>(ins, f, sel, ReadStrings<ColumnStrings>(ins, f, 0), out);
    return;
  }
  char* p = f.arena.Allocate(all.size());
  for (size_t j = 0; j < all.size(); ++j) p[j] = MapAscii<kUpper>(all[j]);
  f.AndValidity(ins.out, ins.in[0]);
  const uint32_t* offsets = c.offsets();
  ForEachRow(sel, [&](uint32_t i) { out[i] = {p + offsets[i], offsets[i + 1] - offsets[i]}; });
}

// ---- LIKE. A pattern compiles to units: a literal byte, '_' (one code point) or '%' (any run).

constexpr int32_t kOne = -1;
constexpr int32_t kMany = -2;

void CompileLike(std::string_view pattern, std::string_view escape, std::vector<int32_t>* units) {
  units->clear();
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (!escape.empty() && c == escape[0] && i + 1 < pattern.size()) {
      units->push_back(static_cast<unsigned char>(pattern[++i]));
    } else if (c == '%') {
      if (units->empty() || units->back() != kMany) units->push_back(kMany);
    } else if (c == '_') {
      units->push_back(kOne);
    } else {
      units->push_back(static_cast<unsigned char>(c));
    }
  }
}

// Wildcard matching with backtracking to the last '%' (linear for patterns with one '%').
bool MatchUnits(std::string_view s, const int32_t* p, size_t np) {
  size_t si = 0, pi = 0;
  size_t star = SIZE_MAX, star_s = 0;
  while (si < s.size()) {
    if (pi < np && (p[pi] == kOne || p[pi] == static_cast<unsigned char>(s[si]))) {
      si += p[pi] == kOne ? CodePointBytes(s, si) : 1;
      ++pi;
    } else if (pi < np && p[pi] == kMany) {
      star = pi++;
      star_s = si;
    } else if (star != SIZE_MAX) {
      pi = star + 1;
      star_s += CodePointBytes(s, star_s);
      si = star_s;
    } else {
      return false;
    }
  }
  while (pi < np && p[pi] == kMany) ++pi;
  return pi == np;
}

void AsciiLower(std::string_view s, std::string* out) {
  out->resize(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    (*out)[i] = static_cast<char>(c + ((c >= 'A' && c <= 'Z') ? 32 : 0));
  }
}

// A constant pattern, classified so that the common shapes avoid the general matcher.
struct LikePattern : Aux {
  enum Kind { kExact, kPrefix, kSuffix, kContains, kGeneral } kind = kGeneral;
  std::string literal;         // kExact .. kContains
  std::vector<int32_t> units;  // kGeneral
  bool ilike = false;
};

bool MatchConst(const LikePattern& p, std::string_view s) {
  switch (p.kind) {
    case LikePattern::kExact:
      return s == p.literal;
    case LikePattern::kPrefix:
      return s.size() >= p.literal.size() && s.compare(0, p.literal.size(), p.literal) == 0;
    case LikePattern::kSuffix:
      return s.size() >= p.literal.size() &&
             s.compare(s.size() - p.literal.size(), p.literal.size(), p.literal) == 0;
    case LikePattern::kContains:
      return s.find(p.literal) != std::string_view::npos;
    case LikePattern::kGeneral:
      return MatchUnits(s, p.units.data(), p.units.size());
  }
  return false;
}

void LikeConst(const Instr& ins, Frame& f, Sel sel) {
  const auto& p = static_cast<const LikePattern&>(*ins.aux);
  Any<std::string_view> x = ReadAny<std::string_view>(f.regs[static_cast<size_t>(ins.in[0])]);
  uint8_t* out = f.Write<uint8_t>(ins.out);
  f.AndValidity(ins.out, ins.in[0]);
  ValidReader valid = ReadValid(f.regs[static_cast<size_t>(ins.out)]);
  uint8_t match = ins.negated ? 0 : 1;
  ForEachRow(sel, [&](uint32_t i) {
    if (!valid(i)) return;
    std::string_view s = x[i];
    if (p.ilike) {
      AsciiLower(s, &f.text);
      s = f.text;
    }
    out[i] = MatchConst(p, s) ? match : 1 - match;
  });
}

// LIKE with a pattern that differs per row.
void LikeRows(const Instr& ins, Frame& f, Sel sel) {
  Any<std::string_view> x = ReadAny<std::string_view>(f.regs[static_cast<size_t>(ins.in[0])]);
  Any<std::string_view> pattern = ReadAny<std::string_view>(f.regs[static_cast<size_t>(ins.in[1])]);
  uint8_t* out = f.Write<uint8_t>(ins.out);
  uint8_t match = ins.negated ? 0 : 1;
  StrictRows(
      ins, f, sel, 2,
      [&](uint32_t i, std::string&) {
        std::string_view s = x[i], p = pattern[i];
        if (ins.flag) {
          AsciiLower(p, &f.text2);
          p = f.text2;
          AsciiLower(s, &f.text);
          s = f.text;
        }
        CompileLike(p, ins.value.s, &f.units);
        out[i] = MatchUnits(s, f.units.data(), f.units.size()) ? match : 1 - match;
        return true;
      },
      [](uint32_t) {});
}

// ---- ||: NULL when either side is.

void Concat2(const Instr& ins, Frame& f, Sel sel) {
  Any<std::string_view> a = ReadAny<std::string_view>(f.regs[static_cast<size_t>(ins.in[0])]);
  Any<std::string_view> b = ReadAny<std::string_view>(f.regs[static_cast<size_t>(ins.in[1])]);
  std::string_view* out = f.Write<std::string_view>(ins.out);
  StrictRows(
      ins, f, sel, 2,
      [&](uint32_t i, std::string&) {
        std::string_view x = a[i], y = b[i];
        char* p = f.arena.Allocate(x.size() + y.size());
        if (!x.empty()) std::memcpy(p, x.data(), x.size());
        if (!y.empty()) std::memcpy(p + x.size(), y.data(), y.size());
        out[i] = {p, x.size() + y.size()};
        return true;
      },
      [&](uint32_t i) { out[i] = {}; });
}

// concat(...) skips NULL arguments; concat_ws(sep, ...) too, and is NULL when sep is.
template <bool kSeparator>
void ConcatMany(const Instr& ins, Frame& f, Sel sel) {
  std::string_view* out = f.Write<std::string_view>(ins.out);
  size_t first = kSeparator ? 1 : 0;
  if (kSeparator) {
    f.AndValidity(ins.out, ins.ins[0]);
  } else {
    f.regs[static_cast<size_t>(ins.out)].valid = nullptr;
  }
  ForEachRow(sel, [&](uint32_t i) {
    std::string_view sep;
    if (kSeparator) {
      const Vec& s = f.regs[static_cast<size_t>(ins.ins[0])];
      if (!s.IsValid(i)) {
        out[i] = {};
        return;
      }
      sep = s.values<std::string_view>()[s.constant ? 0 : i];
    }
    size_t total = 0, parts = 0;
    for (size_t k = first; k < ins.ins.size(); ++k) {
      const Vec& v = f.regs[static_cast<size_t>(ins.ins[k])];
      if (!v.IsValid(i)) continue;
      total += v.values<std::string_view>()[v.constant ? 0 : i].size();
      ++parts;
    }
    if (parts > 1) total += sep.size() * (parts - 1);
    char* p = f.arena.Allocate(total);
    size_t at = 0;
    bool any = false;
    for (size_t k = first; k < ins.ins.size(); ++k) {
      const Vec& v = f.regs[static_cast<size_t>(ins.ins[k])];
      if (!v.IsValid(i)) continue;
      if (any && !sep.empty()) {
        std::memcpy(p + at, sep.data(), sep.size());
        at += sep.size();
      }
      std::string_view part = v.values<std::string_view>()[v.constant ? 0 : i];
      if (!part.empty()) std::memcpy(p + at, part.data(), part.size());
      at += part.size();
      any = true;
    }
    out[i] = {p, total};
  });
}

// ---- Functions of one string and up to two more arguments, through StrictRows.

// Runs fn(i, message) -> bool for a function returning VARCHAR; NULL rows get "".
template <class F>
void StringResult(const Instr& ins, Frame& f, Sel sel, size_t arity, F&& fn) {
  std::string_view* out = f.Write<std::string_view>(ins.out);
  StrictRows(
      ins, f, sel, arity, [&](uint32_t i, std::string& message) { return fn(i, out[i], message); },
      [&](uint32_t i) { out[i] = {}; });
}

template <class T>
Any<T> Arg(const Instr& ins, Frame& f, int k) {
  return ReadAny<T>(f.regs[static_cast<size_t>(ins.in[k])]);
}

void Length(const Instr& ins, Frame& f, Sel sel) {
  auto s = Arg<std::string_view>(ins, f, 0);
  int64_t* out = f.Write<int64_t>(ins.out);
  bool bytes = ins.fn == Fn::kOctetLength;
  StrictRows(
      ins, f, sel, 1,
      [&](uint32_t i, std::string&) {
        out[i] = static_cast<int64_t>(bytes ? s[i].size() : CodePointCount(s[i]));
        return true;
      },
      [](uint32_t) {});
}

// substr(s, start, length): 1-based code points; start 0 is the position before the first
// (SQL's window semantics); a negative start counts from the end (as DuckDB and Spark); a
// negative length gives ''.
std::string_view Substring(std::string_view s, int64_t start, int64_t length) {
  if (length <= 0) return {};
  int64_t begin;
  if (start > 0) {
    begin = start - 1;
  } else if (start == 0) {
    begin = -1;
  } else {
    begin = static_cast<int64_t>(CodePointCount(s)) + start;
  }
  int64_t end = begin > std::numeric_limits<int64_t>::max() - length
                    ? std::numeric_limits<int64_t>::max()
                    : begin + length;
  if (begin < 0) begin = 0;
  if (end <= begin) return {};
  size_t b = SkipCodePoints(s, 0, begin);
  size_t e = SkipCodePoints(s, b, end - begin);
  return s.substr(b, e - b);
}

void Substr(const Instr& ins, Frame& f, Sel sel) {
  auto s = Arg<std::string_view>(ins, f, 0);
  auto start = Arg<int64_t>(ins, f, 1);
  auto length = Arg<int64_t>(ins, f, 2);
  StringResult(ins, f, sel, 3, [&](uint32_t i, std::string_view& out, std::string&) {
    out = Substring(s[i], start[i], length[i]);
    return true;
  });
}

// trim/ltrim/rtrim(s, characters): removes leading/trailing code points found in characters.
template <bool kLeft, bool kRight>
void Trim(const Instr& ins, Frame& f, Sel sel) {
  auto s = Arg<std::string_view>(ins, f, 0);
  auto chars = Arg<std::string_view>(ins, f, 1);
  StringResult(ins, f, sel, 2, [&](uint32_t i, std::string_view& out, std::string&) {
    std::string_view v = s[i], set = chars[i];
    auto in_set = [&](std::string_view cp) { return set.find(cp) != std::string_view::npos; };
    if (kLeft) {
      while (!v.empty()) {
        size_t len = CodePointBytes(v, 0);
        if (!in_set(v.substr(0, len))) break;
        v.remove_prefix(len);
      }
    }
    if (kRight) {
      while (!v.empty()) {
        size_t start = v.size() - 1;
        while (start > 0 && IsContinuation(v[start])) --start;
        if (!in_set(v.substr(start))) break;
        v.remove_suffix(v.size() - start);
      }
    }
    out = v;
    return true;
  });
}

void Replace(const Instr& ins, Frame& f, Sel sel) {
  auto s = Arg<std::string_view>(ins, f, 0);
  auto from = Arg<std::string_view>(ins, f, 1);
  auto to = Arg<std::string_view>(ins, f, 2);
  StringResult(ins, f, sel, 3, [&](uint32_t i, std::string_view& out, std::string&) {
    std::string_view v = s[i], a = from[i], b = to[i];
    if (a.empty() || v.find(a) == std::string_view::npos) {
      out = v;
      return true;
    }
    f.text.clear();
    size_t at = 0;
    for (size_t hit; (hit = v.find(a, at)) != std::string_view::npos; at = hit + a.size()) {
      f.text.append(v.substr(at, hit - at));
      f.text.append(b);
    }
    f.text.append(v.substr(at));
    out = Store(f, f.text);
    return true;
  });
}

// left(s, n): the first n code points (all but the last -n when negative); right likewise.
template <bool kLeft>
void LeftRight(const Instr& ins, Frame& f, Sel sel) {
  auto s = Arg<std::string_view>(ins, f, 0);
  auto count = Arg<int64_t>(ins, f, 1);
  StringResult(ins, f, sel, 2, [&](uint32_t i, std::string_view& out, std::string&) {
    std::string_view v = s[i];
    int64_t n = count[i];
    int64_t total = static_cast<int64_t>(CodePointCount(v));
    int64_t keep = n >= 0 ? std::min(n, total) : std::max<int64_t>(0, total + std::max(n, -total));
    size_t split = SkipCodePoints(v, 0, kLeft ? keep : total - keep);
    out = kLeft ? v.substr(0, split) : v.substr(split);
    return true;
  });
}

void Reverse(const Instr& ins, Frame& f, Sel sel) {
  auto s = Arg<std::string_view>(ins, f, 0);
  StringResult(ins, f, sel, 1, [&](uint32_t i, std::string_view& out, std::string&) {
    std::string_view v = s[i];
    char* p = f.arena.Allocate(v.size());
    size_t w = v.size();
    for (size_t r = 0; r < v.size();) {
      size_t len = CodePointBytes(v, r);
      w -= len;
      std::memcpy(p + w, v.data() + r, len);
      r += len;
    }
    out = {p, v.size()};
    return true;
  });
}

void Repeat(const Instr& ins, Frame& f, Sel sel) {
  auto s = Arg<std::string_view>(ins, f, 0);
  auto count = Arg<int64_t>(ins, f, 1);
  StringResult(ins, f, sel, 2, [&](uint32_t i, std::string_view& out, std::string& message) {
    std::string_view v = s[i];
    int64_t n = count[i];
    if (n <= 0 || v.empty()) {
      out = {};
      return true;
    }
    if (static_cast<uint64_t>(n) > kMaxBuilt / v.size()) {
      out = {};
      message = "repeat() result is larger than 16 MiB";
      return false;
    }
    char* p = f.arena.Allocate(v.size() * static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) std::memcpy(p + k * v.size(), v.data(), v.size());
    out = {p, v.size() * static_cast<size_t>(n)};
    return true;
  });
}

// lpad/rpad(s, n, fill): s cut or padded with repeats of fill to n code points.
template <bool kLeft>
void Pad(const Instr& ins, Frame& f, Sel sel) {
  auto s = Arg<std::string_view>(ins, f, 0);
  auto width = Arg<int64_t>(ins, f, 1);
  auto fill = Arg<std::string_view>(ins, f, 2);
  StringResult(ins, f, sel, 3, [&](uint32_t i, std::string_view& out, std::string& message) {
    std::string_view v = s[i], pad = fill[i];
    int64_t n = std::max<int64_t>(width[i], 0);
    int64_t have = static_cast<int64_t>(CodePointCount(v));
    if (have >= n || pad.empty()) {
      out = v.substr(0, SkipCodePoints(v, 0, n));
      return true;
    }
    if (static_cast<uint64_t>(n) > kMaxBuilt / 4) {
      out = {};
      message =
          kLeft ? "lpad() result is larger than 16 MiB" : "rpad() result is larger than 16 MiB";
      return false;
    }
    f.text.clear();
    if (!kLeft) f.text.append(v);
    int64_t pad_points = static_cast<int64_t>(CodePointCount(pad));
    for (int64_t missing = n - have; missing > 0; missing -= pad_points) {
      f.text.append(pad.substr(0, SkipCodePoints(pad, 0, missing)));
    }
    if (kLeft) f.text.append(v);
    out = Store(f, f.text);
    return true;
  });
}

void Strpos(const Instr& ins, Frame& f, Sel sel) {
  auto s = Arg<std::string_view>(ins, f, 0);
  auto needle = Arg<std::string_view>(ins, f, 1);
  int64_t* out = f.Write<int64_t>(ins.out);
  StrictRows(
      ins, f, sel, 2,
      [&](uint32_t i, std::string&) {
        size_t at = s[i].find(needle[i]);
        out[i] = at == std::string_view::npos
                     ? 0
                     : static_cast<int64_t>(CodePointCount(s[i].substr(0, at))) + 1;
        return true;
      },
      [](uint32_t) {});
}

void StringTest(const Instr& ins, Frame& f, Sel sel) {
  auto s = Arg<std::string_view>(ins, f, 0);
  auto t = Arg<std::string_view>(ins, f, 1);
  uint8_t* out = f.Write<uint8_t>(ins.out);
  Fn fn = ins.fn;
  StrictRows(
      ins, f, sel, 2,
      [&](uint32_t i, std::string&) {
        std::string_view a = s[i], b = t[i];
        bool r;
        if (fn == Fn::kStartsWith) {
          r = a.substr(0, b.size()) == b;
        } else if (fn == Fn::kEndsWith) {
          r = a.size() >= b.size() && a.substr(a.size() - b.size()) == b;
        } else {
          r = a.find(b) != std::string_view::npos;
        }
        out[i] = r ? 1 : 0;
        return true;
      },
      [](uint32_t) {});
}

// split_part(s, delimiter, n): the n-th field (1-based; negative counts from the end); '' when
// there is no such field.
void SplitPart(const Instr& ins, Frame& f, Sel sel) {
  auto s = Arg<std::string_view>(ins, f, 0);
  auto delim = Arg<std::string_view>(ins, f, 1);
  auto index = Arg<int64_t>(ins, f, 2);
  StringResult(ins, f, sel, 3, [&](uint32_t i, std::string_view& out, std::string& message) {
    std::string_view v = s[i], d = delim[i];
    int64_t n = index[i];
    out = {};
    if (n == 0) {
      message = "split_part() field position must not be zero";
      return false;
    }
    if (d.empty()) {
      if (n == 1 || n == -1) out = v;
      return true;
    }
    // The fields are numbered from the end when n is negative: count them first.
    int64_t k = n - 1;
    if (n < 0) {
      int64_t count = 1;
      for (size_t at = v.find(d); at != std::string_view::npos; at = v.find(d, at + d.size())) {
        ++count;
      }
      k = count + n;
      if (k < 0) return true;
    }
    size_t at = 0;
    for (; k > 0; --k) {
      size_t hit = v.find(d, at);
      if (hit == std::string_view::npos) return true;
      at = hit + d.size();
    }
    size_t end = v.find(d, at);
    out = v.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    return true;
  });
}

}  // namespace

Kernel LikeConstKernel(std::string_view pattern, std::string_view escape, bool ilike, Instr& ins) {
  auto p = std::make_shared<LikePattern>();
  p->ilike = ilike;
  std::string lowered;
  if (ilike) {
    AsciiLower(pattern, &lowered);
    pattern = lowered;
  }
  CompileLike(pattern, escape, &p->units);
  // Literal units with '%' only at the ends take a fast path.
  size_t first = 0, last = p->units.size();
  bool leading = first < last && p->units[first] == kMany;
  bool trailing = last > first + (leading ? 1 : 0) && p->units[last - 1] == kMany;
  if (leading) ++first;
  if (trailing) --last;
  bool literal = true;
  for (size_t i = first; i < last; ++i) literal &= p->units[i] >= 0;
  if (literal) {
    for (size_t i = first; i < last; ++i) p->literal += static_cast<char>(p->units[i]);
    p->kind = leading && trailing ? LikePattern::kContains
              : leading           ? LikePattern::kSuffix
              : trailing          ? LikePattern::kPrefix
                                  : LikePattern::kExact;
  }
  ins.aux = p;
  return &LikeConst;
}

Kernel LikeKernel() { return &LikeRows; }
Kernel ConcatKernel() { return &Concat2; }

Kernel StringFunctionKernel(Fn fn) {
  switch (fn) {
    case Fn::kUpper:
      return &CaseKernel<true>;
    case Fn::kLower:
      return &CaseKernel<false>;
    case Fn::kLength:
    case Fn::kOctetLength:
      return &Length;
    case Fn::kSubstr:
      return &Substr;
    case Fn::kTrim:
      return &Trim<true, true>;
    case Fn::kLtrim:
      return &Trim<true, false>;
    case Fn::kRtrim:
      return &Trim<false, true>;
    case Fn::kConcat:
      return &ConcatMany<false>;
    case Fn::kConcatWs:
      return &ConcatMany<true>;
    case Fn::kReplace:
      return &Replace;
    case Fn::kLeft:
      return &LeftRight<true>;
    case Fn::kRight:
      return &LeftRight<false>;
    case Fn::kReverse:
      return &Reverse;
    case Fn::kRepeat:
      return &Repeat;
    case Fn::kLpad:
      return &Pad<true>;
    case Fn::kRpad:
      return &Pad<false>;
    case Fn::kStrpos:
      return &Strpos;
    case Fn::kStartsWith:
    case Fn::kEndsWith:
    case Fn::kContains:
      return &StringTest;
    case Fn::kSplitPart:
      return &SplitPart;
    default:
      return nullptr;
  }
}

}  // namespace barge::pipeline::detail
