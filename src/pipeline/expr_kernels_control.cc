// Control kernels: AND/OR that evaluate their right side only where the left does not decide,
// CASE that evaluates each branch only on the rows that take it, and coalesce that evaluates an
// argument only where the earlier ones are NULL. Each narrows the selection, runs a nested block
// on it, and merges the block's result into its own register row by row. And CaseSelect, the
// CASE whose parts are cheap and cannot fail, computed on every row and chosen per row.
#include "pipeline/expr_kernel_util.h"

namespace barge::pipeline::detail {

namespace {

// Calls f(T{}) with the C++ type of a register of type t (NULL registers hold int64 garbage).
template <class F>
void WithCType(Type t, F&& f) {
  switch (t) {
    case Type::kDouble:
      f(double{});
      break;
    case Type::kBool:
      f(uint8_t{});
      break;
    case Type::kString:
      f(std::string_view{});
      break;
    default:
      f(int64_t{});
      break;
  }
}

// The result register of a control instruction being assembled from several sources.
class Merge {
 public:
  Merge(const Instr& ins, Frame& f, Sel sel) : ins_(ins), f_(f), sel_(sel) {
    WithCType(ins.type, [&](auto tag) { f.Write<decltype(tag)>(ins.out); });
    f.regs[static_cast<size_t>(ins.out)].valid = nullptr;
  }

  // Copies the selected rows of register `src` (values and validity). When `rows` is the whole
  // selection of the instruction, the result just refers to `src` instead.
  void Take(int src, Sel rows) {
    const Vec& s = f_.regs[static_cast<size_t>(src)];
    Vec& o = f_.regs[static_cast<size_t>(ins_.out)];
    if (rows.count == sel_.count && !s.constant && !bits_) {
      o.data = s.data;
      o.valid = s.valid;
      return;
    }
    WithCType(ins_.type, [&](auto tag) {
      using T = decltype(tag);
      T* out = static_cast<T*>(const_cast<void*>(o.data));
      Any<T> v = ReadAny<T>(s);
      ForEachRow(rows, [&](uint32_t i) { out[i] = v[i]; });
    });
    if (s.valid == nullptr) {
      if (bits_ != nullptr) ForEachRow(rows, [&](uint32_t i) { SetBit(bits_, i); });
      return;
    }
    uint64_t* bits = Bits();
    ValidReader valid = ReadValid(s);
    ForEachRow(rows, [&](uint32_t i) { PutBit(bits, i, valid(i)); });
  }

  // The rows get NULL.
  void Null(Sel rows) {
    uint64_t* bits = Bits();
    if (ins_.type == Type::kString) {
      auto* out = static_cast<std::string_view*>(
          const_cast<void*>(f_.regs[static_cast<size_t>(ins_.out)].data));
      ForEachRow(rows, [&](uint32_t i) { out[i] = {}; });
    }
    ForEachRow(rows, [&](uint32_t i) { ClearBit(bits, i); });
  }

 private:
  // The register's own bitmap, created all valid on first use (rows merged before were valid).
  uint64_t* Bits() {
    if (bits_ == nullptr) {
      bits_ = f_.OwnBits(ins_.out, false);
      std::fill(bits_, bits_ + (f_.n + 63) / 64, ~uint64_t{0});
    }
    return bits_;
  }

  const Instr& ins_;
  Frame& f_;
  Sel sel_;
  uint64_t* bits_ = nullptr;
};

// `rows` as a selection, or `whole` itself when it has every row of it (keeps dense loops).
Sel Narrow(Sel whole, const uint32_t* rows, uint32_t count) {
  return count == whole.count ? whole : Sel{rows, count};
}

// The rows of a CASE or coalesce that no branch or argument has settled yet, narrowed step by
// step. Uses the instruction's three selection buffers.
class Unsettled {
 public:
  Unsettled(const Instr& ins, Frame& f, Sel sel)
      : rows_(sel),
        rest_{f.Selection(ins.scratch), f.Selection(ins.scratch + 1)},
        taken_(f.Selection(ins.scratch + 2)) {}

  Sel rows() const { return rows_; }
  bool empty() const { return rows_.count == 0; }

  // Settles the rows where pred(i) holds: removes them and returns them (valid until the next
  // call).
  template <class Pred>
  Sel Settle(Pred pred) {
    // Never the buffer being read: the rest is written unconditionally, row by row.
    uint32_t* rest = rows_.rows == rest_[0] ? rest_[1] : rest_[0];
    uint32_t n_taken = 0, n_rest = 0;
    ForEachRow(rows_, [&](uint32_t i) {
      bool p = pred(i);
      taken_[n_taken] = i;
      rest[n_rest] = i;
      n_taken += p ? 1 : 0;
      n_rest += p ? 0 : 1;
    });
    Sel taken = Narrow(rows_, taken_, n_taken);
    rows_ = Narrow(rows_, rest, n_rest);
    return taken;
  }

 private:
  Sel rows_;
  uint32_t* rest_[2];
  uint32_t* taken_;
};

void RunBlock(Frame& f, const std::pair<uint32_t, uint32_t>& block, Sel sel) {
  detail::RunBlock(*f.program, f, block.first, block.second, sel);
}

// AND / OR with the right side in a block: in[0] is the left (computed before), in[1] the
// right. ins.flag: AND.
void AndOrMasked(const Instr& ins, Frame& f, Sel sel) {
  const uint8_t decisive = ins.flag ? 0 : 1;  // FALSE decides AND, TRUE decides OR
  const Vec& a = f.regs[static_cast<size_t>(ins.in[0])];
  Any<uint8_t> x = ReadAny<uint8_t>(a);
  ValidReader va = ReadValid(a);
  auto decides = [&](uint32_t i) { return va(i) && (x[i] & 1) == decisive; };
  uint32_t* rest = f.Selection(ins.scratch);
  uint32_t n_rest = 0;
  ForEachRow(sel, [&](uint32_t i) {
    rest[n_rest] = i;
    n_rest += decides(i) ? 0 : 1;
  });
  Sel rest_sel = Narrow(sel, rest, n_rest);
  if (n_rest > 0) RunBlock(f, ins.blocks[0], rest_sel);

  uint8_t* out = f.Write<uint8_t>(ins.out);
  uint64_t* bits = f.OwnBits(ins.out, false);
  ForEachRow(sel, [&](uint32_t i) {
    out[i] = decisive;
    SetBit(bits, i);
  });
  if (n_rest == 0) return;
  const Vec& b = f.regs[static_cast<size_t>(ins.in[1])];
  Any<uint8_t> y = ReadAny<uint8_t>(b);
  ValidReader vb = ReadValid(b);
  // The left is TRUE or NULL (AND), FALSE or NULL (OR) on these rows.
  ForEachRow(rest_sel, [&](uint32_t i) {
    bool b_null = !vb(i);
    uint8_t bv = y[i] & 1;
    if (!b_null && bv == decisive) return;
    if (b_null || !va(i)) {
      out[i] = 0;
      ClearBit(bits, i);
    } else {
      out[i] = bv;
    }
  });
}

// CASE: ins.blocks and ins.ins list (condition, result) per WHEN, then the ELSE result when
// ins.flag. Conditions are BOOLEAN registers; a row takes the first WHEN that is TRUE.
void Case(const Instr& ins, Frame& f, Sel sel) {
  Merge merge(ins, f, sel);
  Unsettled unsettled(ins, f, sel);
  size_t whens = (ins.blocks.size() - (ins.flag ? 1 : 0)) / 2;
  for (size_t k = 0; k < whens && !unsettled.empty(); ++k) {
    RunBlock(f, ins.blocks[2 * k], unsettled.rows());
    const Vec& c = f.regs[static_cast<size_t>(ins.ins[2 * k])];
    Any<uint8_t> cv = ReadAny<uint8_t>(c);
    ValidReader valid = ReadValid(c);
    Sel taken = unsettled.Settle([&](uint32_t i) { return valid(i) && (cv[i] & 1) != 0; });
    if (taken.count == 0) continue;
    RunBlock(f, ins.blocks[2 * k + 1], taken);
    merge.Take(ins.ins[2 * k + 1], taken);
  }
  if (unsettled.empty()) return;
  if (ins.flag) {
    RunBlock(f, ins.blocks.back(), unsettled.rows());
    merge.Take(ins.ins.back(), unsettled.rows());
  } else {
    merge.Null(unsettled.rows());
  }
}

// coalesce: ins.blocks and ins.ins list the arguments.
void Coalesce(const Instr& ins, Frame& f, Sel sel) {
  Merge merge(ins, f, sel);
  Unsettled unsettled(ins, f, sel);
  for (size_t k = 0; k < ins.blocks.size() && !unsettled.empty(); ++k) {
    RunBlock(f, ins.blocks[k], unsettled.rows());
    int src = ins.ins[k];
    const Vec& v = f.regs[static_cast<size_t>(src)];
    if (k + 1 == ins.blocks.size() || v.valid == nullptr) {
      // The last argument, or one without NULLs, settles every remaining row.
      merge.Take(src, unsettled.rows());
      return;
    }
    Sel taken = unsettled.Settle(ReadValid(v));
    if (taken.count > 0) merge.Take(src, taken);
  }
}

// CASE as a per-row choice among results computed on every row.
template <class T>
void CaseSelect(const Instr& ins, Frame& f, Sel sel) {
  const bool has_else = ins.flag;
  const size_t whens = (ins.ins.size() - (has_else ? 1 : 0)) / 2;
  auto reg = [&](size_t k) -> const Vec& { return f.regs[static_cast<size_t>(ins.ins[k])]; };
  // reg(k) is type-dependent here: its members templates need `template`.
  T* out = f.Write<T>(ins.out);
  bool plain = whens == 1 && has_else;
  for (size_t k = 0; k < ins.ins.size(); ++k) plain &= reg(k).valid == nullptr && !reg(k).constant;
  if (plain) {
    // CASE WHEN c THEN a ELSE b END without NULLs: a select per row, which vectorizes.
    const uint8_t* c = reg(0).template values<uint8_t>();
    const T* a = reg(1).template values<T>();
    const T* b = reg(2).template values<T>();
    f.regs[static_cast<size_t>(ins.out)].valid = nullptr;
    if (sel.dense()) {
      for (uint32_t i = 0; i < sel.count; ++i) out[i] = (c[i] & 1) ? a[i] : b[i];
    } else {
      ForEachRow(sel, [&](uint32_t i) { out[i] = (c[i] & 1) ? a[i] : b[i]; });
    }
    return;
  }
  uint64_t* bits = f.OwnBits(ins.out, false);
  ForEachRow(sel, [&](uint32_t i) {
    size_t chosen = has_else ? ins.ins.size() - 1 : SIZE_MAX;
    for (size_t w = 0; w < whens; ++w) {
      const Vec& c = reg(2 * w);
      if (c.IsValid(i) && (c.template values<uint8_t>()[c.constant ? 0 : i] & 1)) {
        chosen = 2 * w + 1;
        break;
      }
    }
    if (chosen == SIZE_MAX) {
      out[i] = T{};
      ClearBit(bits, i);
      return;
    }
    const Vec& r = reg(chosen);
    bool valid = r.IsValid(i);
    out[i] = valid ? r.template values<T>()[r.constant ? 0 : i] : T{};
    PutBit(bits, i, valid);
  });
}

}  // namespace

Kernel CaseSelectKernel(Type t) {
  switch (t) {
    case Type::kDouble:
      return &CaseSelect<double>;
    case Type::kBool:
      return &CaseSelect<uint8_t>;
    case Type::kString:
      return &CaseSelect<std::string_view>;
    default:
      return &CaseSelect<int64_t>;
  }
}

Kernel AndOrKernel() { return &AndOrMasked; }
Kernel CaseKernel() { return &Case; }
Kernel CoalesceKernel() { return &Coalesce; }

}  // namespace barge::pipeline::detail
