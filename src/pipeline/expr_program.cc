// Code generation (bound tree -> Program) and the per-batch driver around the kernels.
#include "pipeline/expr_program.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <stdexcept>

#include "pipeline/expr_convert.h"

namespace barge::pipeline::detail {

namespace {

// The validity word of a constant NULL register.
const uint64_t kNullWord = 0;

std::atomic<uint64_t> next_program_id{1};

class Generator {
 public:
  explicit Generator(Program& p) : p_(p) {}

  int Emit(const Bound& n) {
    switch (n.kind) {
      case BoundKind::kConst:
        return ConstReg(n.value, n.type);
      case BoundKind::kField:
        return FieldReg(n.field, n.type);
      case BoundKind::kError: {
        Instr& ins = Add(ErrorKernel(), n.type);
        ins.value = n.value;
        return ins.out;
      }
      case BoundKind::kNeg: {
        int a = Emit(*n.args[0]);
        Instr& ins = Add(NegKernel(n.type), n.type);
        ins.in[0] = a;
        return ins.out;
      }
      case BoundKind::kNot: {
        int a = Emit(*n.args[0]);
        return Unary(NotKernel(), Type::kBool, a);
      }
      case BoundKind::kArith:
        return EmitArith(n);
      case BoundKind::kCompare: {
        if (int r = EmitDivisible(n); r >= 0) return r;
        int l = Emit(*n.args[0]);
        int r = Emit(*n.args[1]);
        return EmitCompare(n.op, n.args[0]->type, l, r);
      }
      case BoundKind::kAnd:
      case BoundKind::kOr:
        return EmitAndOr(n);
      case BoundKind::kIsNull: {
        int a = Emit(*n.args[0]);
        Instr& ins = Add(IsNullKernel(), Type::kBool);
        ins.in[0] = a;
        ins.negated = n.negated;
        return ins.out;
      }
      case BoundKind::kIsBool: {
        int a = Emit(*n.args[0]);
        Instr& ins = Add(IsBoolKernel(), Type::kBool);
        ins.in[0] = a;
        ins.negated = n.negated;
        ins.flag = n.flag;
        return ins.out;
      }
      case BoundKind::kDistinct: {
        int l = Emit(*n.args[0]);
        int r = Emit(*n.args[1]);
        Instr& ins = Add(DistinctKernel(n.args[0]->type), Type::kBool);
        ins.in[0] = l;
        ins.in[1] = r;
        ins.negated = n.negated;
        return ins.out;
      }
      case BoundKind::kIn:
        return EmitIn(n);
      case BoundKind::kBetween: {
        int x = Emit(*n.args[0]);
        int low = Emit(*n.args[1]);
        int high = Emit(*n.args[2]);
        Type t = n.args[0]->type;
        int ge = EmitCompare(Op::kGe, t, x, low);
        int le = EmitCompare(Op::kLe, t, x, high);
        Instr& ins = Add(AndOrDenseKernel(true), Type::kBool);
        ins.in[0] = ge;
        ins.in[1] = le;
        int out = ins.out;
        return n.negated ? Unary(NotKernel(), Type::kBool, out) : out;
      }
      case BoundKind::kLike:
        return EmitLike(n);
      case BoundKind::kCase:
        return EmitCase(n);
      case BoundKind::kCoalesce:
        return EmitCoalesce(n);
      case BoundKind::kCast: {
        int a = Emit(*n.args[0]);
        return Unary(CastKernel(n.args[0]->type, n.type, n.flag), n.type, a);
      }
      case BoundKind::kConcat: {
        int l = Emit(*n.args[0]);
        int r = Emit(*n.args[1]);
        Instr& ins = Add(ConcatKernel(), Type::kString);
        ins.in[0] = l;
        ins.in[1] = r;
        return ins.out;
      }
      case BoundKind::kCall:
        return EmitCall(n);
    }
    assert(false && "unknown bound node");
    return -1;
  }

 private:
  int NewReg(RegKind kind, Type t) {
    RegInfo r;
    r.kind = kind;
    r.type = t;
    p_.regs.push_back(std::move(r));
    return static_cast<int>(p_.regs.size() - 1);
  }
  int ConstReg(const Value& v, Type t) {
    int r = NewReg(RegKind::kConst, t);
    p_.regs[static_cast<size_t>(r)].value = v;
    p_.regs[static_cast<size_t>(r)].value.type = t;
    return r;
  }
  int FieldReg(int field, Type t) {
    for (size_t i = 0; i < p_.regs.size(); ++i) {
      if (p_.regs[i].kind == RegKind::kField && p_.regs[i].field == field) {
        return static_cast<int>(i);
      }
    }
    int r = NewReg(RegKind::kField, t);
    p_.regs[static_cast<size_t>(r)].field = field;
    return r;
  }
  bool IsConstReg(int r) const { return p_.regs[static_cast<size_t>(r)].kind == RegKind::kConst; }
  const Value& ConstValue(int r) const { return p_.regs[static_cast<size_t>(r)].value; }

  // Appends an instruction writing a new register of type t. The reference is valid until the
  // next Add.
  Instr& Add(Kernel k, Type t) {
    Instr ins;
    ins.kernel = k;
    ins.type = t;
    ins.out = NewReg(RegKind::kTemp, t);
    ins.next = static_cast<uint32_t>(p_.code.size() + 1);
    p_.code.push_back(std::move(ins));
    return p_.code.back();
  }
  int Unary(Kernel k, Type t, int a) {
    Instr& ins = Add(k, t);
    ins.in[0] = a;
    return ins.out;
  }
  // A control instruction: its blocks are emitted after it (by Block), then Close sets `next`.
  size_t OpenControl(Kernel k, Type t, int selections) {
    Instr& ins = Add(k, t);
    ins.scratch = p_.selections;
    p_.selections += selections;
    return p_.code.size() - 1;
  }
  // Emits `n` as a nested block of control instruction `c`; returns its result register.
  int Block(size_t c, const Bound& n) {
    uint32_t begin = static_cast<uint32_t>(p_.code.size());
    int r = Emit(n);
    p_.code[c].blocks.emplace_back(begin, static_cast<uint32_t>(p_.code.size()));
    return r;
  }
  void Close(size_t c) { p_.code[c].next = static_cast<uint32_t>(p_.code.size()); }

  static Shape ShapeOf(bool is_const) { return is_const ? Shape::kConst : Shape::kColumn; }

  int EmitArith(const Bound& n) {
    const Bound& lb = *n.args[0];
    const Bound& rb = *n.args[1];
    // TIMESTAMP arithmetic is int64 arithmetic.
    Type operand = IsInt64Backed(lb.type) ? Type::kInt64 : Type::kDouble;
    int l = Emit(lb);
    int r = Emit(rb);
    bool lc = IsConstReg(l), rc = IsConstReg(r);
    if (operand == Type::kInt64 && (n.op == Op::kDiv || n.op == Op::kMod) && rc && !lc) {
      int64_t d = ConstValue(r).i;
      if (d != 0 && d != 1 && d != -1) {
        Instr& ins = Add(nullptr, n.type);
        ins.kernel = IntDivByConstKernel(n.op, d, ins);
        ins.in[0] = l;
        return ins.out;
      }
    }
    Op op = n.op;
    // Constants go on the right of commutative operators.
    if (lc && !rc && (op == Op::kAdd || op == Op::kMul)) {
      std::swap(l, r);
      std::swap(lc, rc);
    }
    Instr& ins = Add(ArithKernel(op, operand, ShapeOf(lc), ShapeOf(rc)), n.type);
    ins.op = op;
    ins.in[0] = l;
    ins.in[1] = r;
    return ins.out;
  }

  int EmitCompare(Op op, Type t, int l, int r) {
    bool lc = IsConstReg(l), rc = IsConstReg(r);
    if (lc && !rc) {
      // k < x is x > k.
      std::swap(l, r);
      std::swap(lc, rc);
      switch (op) {
        case Op::kLt:
          op = Op::kGt;
          break;
        case Op::kLe:
          op = Op::kGe;
          break;
        case Op::kGt:
          op = Op::kLt;
          break;
        case Op::kGe:
          op = Op::kLe;
          break;
        default:
          break;
      }
    }
    if (t == Type::kString && (op == Op::kEq || op == Op::kNe) && rc && !lc) {
      // A string against a constant; read straight from the column when it is a field.
      const RegInfo& left = p_.regs[static_cast<size_t>(l)];
      bool field = left.kind == RegKind::kField;
      Instr& ins = Add(nullptr, Type::kBool);
      ins.kernel = StringEqualsConstKernel(ConstValue(r).s, field);
      ins.op = op;
      ins.in[0] = l;
      ins.in[1] = r;
      ins.reads_column = field;
      return ins.out;
    }
    Type kernel_type = t == Type::kTimestamp ? Type::kInt64 : t;
    Instr& ins = Add(CompareKernel(op, kernel_type, ShapeOf(lc), ShapeOf(rc)), Type::kBool);
    ins.op = op;
    ins.in[0] = l;
    ins.in[1] = r;
    return ins.out;
  }

  // x % d = 0 and x % d <> 0 for BIGINT x and a constant d: a divisibility test, one
  // multiplication per row. Returns -1 when `n` is not of that shape.
  int EmitDivisible(const Bound& n) {
    if (n.op != Op::kEq && n.op != Op::kNe) return -1;
    const Bound* mod = n.args[0].get();
    const Bound* zero = n.args[1].get();
    if (mod->kind == BoundKind::kConst) std::swap(mod, zero);
    auto is_const_int = [](const Bound& b) {
      return b.kind == BoundKind::kConst && !b.value.null && b.type == Type::kInt64;
    };
    if (mod->kind != BoundKind::kArith || mod->op != Op::kMod || mod->type != Type::kInt64 ||
        !is_const_int(*zero) || zero->value.i != 0 || !is_const_int(*mod->args[1]) ||
        mod->args[1]->value.i == 0 || mod->args[0]->kind == BoundKind::kConst) {
      return -1;
    }
    int x = Emit(*mod->args[0]);
    Instr& ins = Add(nullptr, Type::kBool);
    ins.kernel = DivisibleKernel(mod->args[1]->value.i, ins);
    ins.in[0] = x;
    ins.negated = n.op == Op::kNe;
    return ins.out;
  }

  int EmitAndOr(const Bound& n) {
    bool is_and = n.kind == BoundKind::kAnd;
    int l = Emit(*n.args[0]);
    const Bound& right = *n.args[1];
    if (right.cheap && !right.can_fail) {
      // Evaluating a cheap, infallible right side everywhere is faster than selecting rows.
      int r = Emit(right);
      Instr& ins = Add(AndOrDenseKernel(is_and), Type::kBool);
      ins.in[0] = l;
      ins.in[1] = r;
      return ins.out;
    }
    size_t c = OpenControl(AndOrKernel(), Type::kBool, kAndOrSelections);
    p_.code[c].flag = is_and;
    p_.code[c].in[0] = l;
    int r = Block(c, right);
    p_.code[c].in[1] = r;
    Close(c);
    return p_.code[c].out;
  }

  int EmitIn(const Bound& n) {
    int x = Emit(*n.args[0]);
    Type t = n.args[0]->type;
    bool all_const = true;
    for (size_t i = 1; i < n.args.size(); ++i) all_const &= n.args[i]->kind == BoundKind::kConst;
    if (all_const) {
      std::vector<Value> list;
      for (size_t i = 1; i < n.args.size(); ++i) list.push_back(n.args[i]->value);
      Instr& ins = Add(nullptr, Type::kBool);
      ins.kernel = InConstKernel(t == Type::kTimestamp ? Type::kInt64 : t, list, ins);
      ins.in[0] = x;
      ins.negated = n.negated;
      return ins.out;
    }
    std::vector<int> equal;
    for (size_t i = 1; i < n.args.size(); ++i) {
      int item = Emit(*n.args[i]);
      equal.push_back(EmitCompare(Op::kEq, t, x, item));
    }
    Instr& ins = Add(AnyKernel(), Type::kBool);
    ins.ins = std::move(equal);
    ins.negated = n.negated;
    return ins.out;
  }

  int EmitLike(const Bound& n) {
    int x = Emit(*n.args[0]);
    const Bound& pattern = *n.args[1];
    if (pattern.kind == BoundKind::kConst) {
      Instr& ins = Add(nullptr, Type::kBool);
      ins.kernel = LikeConstKernel(pattern.value.s, n.value.s, n.flag, ins);
      ins.in[0] = x;
      ins.negated = n.negated;
      return ins.out;
    }
    int p = Emit(pattern);
    Instr& ins = Add(LikeKernel(), Type::kBool);
    ins.in[0] = x;
    ins.in[1] = p;
    ins.negated = n.negated;
    ins.flag = n.flag;
    ins.value = n.value;
    return ins.out;
  }

  // CASE: blocks (condition, result) per WHEN, then the ELSE result; ins.ins lists their
  // registers in the same order. A simple CASE's operand is computed first, outside.
  int EmitCase(const Bound& n) {
    size_t i = 0;
    int operand = -1;
    Type operand_type = Type::kNull;
    if (n.flag) {
      operand = Emit(*n.args[0]);
      operand_type = n.args[0]->type;
      i = 1;
    }
    bool dense = true;
    for (size_t k = i; k < n.args.size(); ++k) dense &= n.args[k]->cheap && !n.args[k]->can_fail;
    if (dense) return EmitCaseSelect(n, i, operand, operand_type);
    size_t c = OpenControl(CaseKernel(), n.type, kCaseSelections);
    p_.code[c].flag = n.has_else;
    size_t pairs_end = n.args.size() - (n.has_else ? 1 : 0);
    for (; i < pairs_end; i += 2) {
      int condition;
      if (operand >= 0) {
        uint32_t begin = static_cast<uint32_t>(p_.code.size());
        int value = Emit(*n.args[i]);
        condition = EmitCompare(Op::kEq, operand_type, operand, value);
        p_.code[c].blocks.emplace_back(begin, static_cast<uint32_t>(p_.code.size()));
      } else {
        condition = Block(c, *n.args[i]);
      }
      int result = Block(c, *n.args[i + 1]);
      p_.code[c].ins.push_back(condition);
      p_.code[c].ins.push_back(result);
    }
    if (n.has_else) {
      // Not p_.code[c].ins.push_back(Block(...)): Block grows p_.code.
      int otherwise = Block(c, *n.args.back());
      p_.code[c].ins.push_back(otherwise);
    }
    Close(c);
    return p_.code[c].out;
  }

  // A CASE whose conditions and results are all cheap and cannot fail: everything is computed
  // on every row, then each row picks its result, without narrowing selections.
  int EmitCaseSelect(const Bound& n, size_t first, int operand, Type operand_type) {
    std::vector<int> regs;
    size_t pairs_end = n.args.size() - (n.has_else ? 1 : 0);
    for (size_t k = first; k < pairs_end; k += 2) {
      int condition = Emit(*n.args[k]);
      if (operand >= 0) condition = EmitCompare(Op::kEq, operand_type, operand, condition);
      regs.push_back(condition);
      regs.push_back(Emit(*n.args[k + 1]));
    }
    if (n.has_else) regs.push_back(Emit(*n.args.back()));
    Instr& ins = Add(CaseSelectKernel(n.type), n.type);
    ins.flag = n.has_else;
    ins.ins = std::move(regs);
    return ins.out;
  }

  int EmitCoalesce(const Bound& n) {
    size_t c = OpenControl(CoalesceKernel(), n.type, kCoalesceSelections);
    for (const BoundPtr& a : n.args) {
      int r = Block(c, *a);
      p_.code[c].ins.push_back(r);
    }
    Close(c);
    return p_.code[c].out;
  }

  int EmitCall(const Bound& n) {
    std::vector<int> regs;
    std::vector<Type> types;
    size_t first = 0;
    int64_t unit = 0;
    if (n.fn == Fn::kDateTrunc) {
      unit = static_cast<int64_t>(*ParseTimeUnit(n.args[0]->value.s));
      first = 1;
    } else if (n.fn == Fn::kDatePart) {
      unit = static_cast<int64_t>(*ParseTimePart(n.args[0]->value.s));
      first = 1;
    }
    for (size_t i = first; i < n.args.size(); ++i) {
      regs.push_back(Emit(*n.args[i]));
      types.push_back(n.args[i]->type);
    }
    Instr& ins = Add(FunctionKernel(n.fn, types, n.type), n.type);
    assert(ins.kernel != nullptr);
    ins.fn = n.fn;
    ins.reads_column = (n.fn == Fn::kUpper || n.fn == Fn::kLower) &&
                       p_.regs[static_cast<size_t>(regs[0])].kind == RegKind::kField;
    ins.value = Value::Int(unit);
    for (size_t i = 0; i < regs.size() && i < 4; ++i) ins.in[i] = regs[i];
    // Variadic functions read their arguments from ins.ins.
    bool variadic =
        n.fn == Fn::kConcat || n.fn == Fn::kConcatWs || n.fn == Fn::kGreatest || n.fn == Fn::kLeast;
    if (variadic) ins.ins = std::move(regs);
    return ins.out;
  }

  Program& p_;
};

// Sets up a frame for `p`: registers typed, constants in place.
void InitFrame(const Program& p, Frame& f) {
  f.program = &p;
  f.regs.clear();
  f.regs.resize(p.regs.size());
  for (size_t r = 0; r < p.regs.size(); ++r) {
    const RegInfo& info = p.regs[r];
    Vec& v = f.regs[r];
    v.type = info.type;
    if (info.kind != RegKind::kConst) continue;
    v.constant = true;
    v.valid = info.value.null || info.type == Type::kNull ? &kNullWord : nullptr;
    switch (info.type) {
      case Type::kInt64:
      case Type::kTimestamp:
        *v.storage.Get<int64_t>(1) = info.value.i;
        v.data = v.storage.Get<int64_t>(1);
        break;
      case Type::kDouble:
        *v.storage.Get<double>(1) = info.value.d;
        v.data = v.storage.Get<double>(1);
        break;
      case Type::kBool:
        *v.storage.Get<uint8_t>(1) = info.value.i != 0 ? 1 : 0;
        v.data = v.storage.Get<uint8_t>(1);
        break;
      case Type::kString:
        *v.storage.Get<std::string_view>(1) = info.value.s;
        v.data = v.storage.Get<std::string_view>(1);
        break;
      case Type::kNull:
        v.data = v.storage.Get<int64_t>(1);
        break;
    }
  }
  f.selections.resize(static_cast<size_t>(p.selections));
}

// Points the field registers at the batch's columns.
void BindInputs(const Program& p, Frame& f, const RecordBatch& in) {
  for (size_t r = 0; r < p.regs.size(); ++r) {
    const RegInfo& info = p.regs[r];
    if (info.kind != RegKind::kField) continue;
    const Column& c = in.columns[static_cast<size_t>(info.field)];
    assert(c.type() == info.type && c.size() == in.rows);
    Vec& v = f.regs[r];
    v.constant = false;
    v.valid = c.has_validity() ? c.validity().data() : nullptr;
    switch (info.type) {
      case Type::kInt64:
      case Type::kTimestamp:
        v.data = c.ints();
        break;
      case Type::kDouble:
        v.data = c.doubles();
        break;
      case Type::kBool:
        v.data = c.bools();
        break;
      case Type::kString: {
        if (!info.needs_views) break;
        std::string_view* views = v.storage.Get<std::string_view>(f.n);
        const uint32_t* offsets = c.offsets();
        const char* bytes = c.bytes();
        for (uint32_t i = 0; i < f.n; ++i) {
          views[i] = std::string_view(bytes + offsets[i], offsets[i + 1] - offsets[i]);
        }
        v.data = views;
        break;
      }
      case Type::kNull:
        v.constant = true;
        v.valid = &kNullWord;
        v.data = v.storage.Get<int64_t>(1);
        break;
    }
  }
}

// Copies the result register into `out` (already Reset to the type), unless the kernels wrote it
// there directly.
void WriteResult(const Program& p, Frame& f, Column& out) {
  Vec& v = f.regs[static_cast<size_t>(p.root)];
  uint32_t n = f.n;
  auto fill = [&](auto* dst) {
    using T = std::remove_pointer_t<decltype(dst)>;
    const T* src = v.values<T>();
    if (v.constant) {
      std::fill(dst, dst + n, src[0]);
    } else if (static_cast<const void*>(src) != static_cast<const void*>(dst)) {
      std::memcpy(dst, src, n * sizeof(T));
    }
  };
  if (p.type != Type::kString) out.Resize(n);
  switch (p.type) {
    case Type::kInt64:
    case Type::kTimestamp:
      fill(out.ints());
      break;
    case Type::kDouble:
      fill(out.doubles());
      break;
    case Type::kBool:
      fill(out.bools());
      break;
    case Type::kString: {
      out.Resize(n);
      const std::string_view* views = v.values<std::string_view>();
      uint32_t* offsets = out.mutable_offsets().data();
      uint32_t step = v.constant ? 0 : 1;
      size_t total = 0;
      for (uint32_t i = 0; i < n; ++i) {
        offsets[i] = static_cast<uint32_t>(total);
        if (v.IsValid(i)) total += views[i * step].size();
      }
      if (total > kMaxColumnBytes) {
        throw std::length_error("more than 2 GiB of text in one column of one batch");
      }
      offsets[n] = static_cast<uint32_t>(total);
      Buffer<char>& bytes = out.mutable_bytes();
      bytes.resize(total);
      // Strings that lie back to back in memory (a field, or results built in row order in the
      // arena) are copied as one run.
      const char* run = nullptr;
      size_t run_length = 0, run_at = 0;
      for (uint32_t i = 0; i < n; ++i) {
        uint32_t len = offsets[i + 1] - offsets[i];
        if (len == 0) continue;
        const char* p = views[i * step].data();
        if (run != nullptr && p == run + run_length) {
          run_length += len;
          continue;
        }
        if (run_length != 0) std::memcpy(bytes.data() + run_at, run, run_length);
        run = p;
        run_length = len;
        run_at = offsets[i];
      }
      if (run_length != 0) std::memcpy(bytes.data() + run_at, run, run_length);
      break;
    }
    case Type::kNull:
      break;
  }
  if (p.type == Type::kNull || (v.constant && v.valid != nullptr)) {
    Buffer<uint64_t>& bits = out.MutableValidity();
    std::fill(bits.begin(), bits.end(), 0);
  } else if (v.valid != nullptr) {
    Buffer<uint64_t>& bits = out.MutableValidity();
    std::memcpy(bits.data(), v.valid, (n + 63) / 64 * sizeof(uint64_t));
  }
}

Value ValueAt(const Column& c, size_t i) {
  if (c.IsNull(i) || c.type() == Type::kNull) return Value::Null(c.type());
  switch (c.type()) {
    case Type::kInt64:
      return Value::Int(c.ints()[i]);
    case Type::kTimestamp:
      return Value::Timestamp(c.ints()[i]);
    case Type::kDouble:
      return Value::Double(c.doubles()[i]);
    case Type::kBool:
      return Value::Bool(c.bools()[i] != 0);
    case Type::kString:
      return Value::String(std::string(c.String(i)));
    case Type::kNull:
      break;
  }
  return Value::Null();
}

}  // namespace

char* Arena::AllocateSlow(size_t n) {
  static char empty;
  if (n == 0) return &empty;
  // The next kept chunk that is large enough, else a new one.
  size_t c = chunks_.empty() ? 0 : chunk_ + 1;
  while (c < chunks_.size() && sizes_[c] < n) ++c;
  if (c == chunks_.size()) {
    size_t size = std::max(kChunk, n);
    chunks_.emplace_back(new char[size]);
    sizes_.push_back(size);
  }
  chunk_ = c;
  next_ = chunks_[c].get() + n;
  room_ = sizes_[c] - n;
  return chunks_[c].get();
}

uint64_t* Frame::OwnBits(int r, bool keep) {
  Vec& v = regs[static_cast<size_t>(r)];
  size_t words = std::max<size_t>((n + 63) / 64, 1);
  if (!v.constant && v.valid != nullptr && v.valid == v.bits.data() && v.bits.size() >= words) {
    return v.bits.data();
  }
  const uint64_t* old = v.valid;
  bool was_constant = v.constant;
  v.bits.resize(words);
  if (keep) {
    if (old == nullptr) {
      std::fill(v.bits.begin(), v.bits.end(), ~uint64_t{0});
    } else if (was_constant) {
      std::fill(v.bits.begin(), v.bits.end(), (old[0] & 1) ? ~uint64_t{0} : 0);
    } else {
      std::memcpy(v.bits.data(), old, words * sizeof(uint64_t));
    }
  }
  v.valid = v.bits.data();
  return v.bits.data();
}

void Frame::AndValidity(int out, const int* in, size_t count) {
  const uint64_t* maps[8];
  size_t k = 0;
  for (size_t j = 0; j < count; ++j) {
    const Vec& v = regs[static_cast<size_t>(in[j])];
    if (v.valid == nullptr) continue;
    if (v.constant) {
      if ((v.valid[0] & 1) == 0) {
        SetAllNull(out);
        return;
      }
      continue;
    }
    if (k < 8) maps[k++] = v.valid;
  }
  Vec& o = regs[static_cast<size_t>(out)];
  if (k == 0) {
    o.valid = nullptr;
    return;
  }
  if (k == 1) {
    o.valid = maps[0];
    return;
  }
  uint64_t* bits = OwnBits(out, false);
  size_t words = (n + 63) / 64;
  for (size_t w = 0; w < words; ++w) {
    uint64_t word = maps[0][w];
    for (size_t j = 1; j < k; ++j) word &= maps[j][w];
    bits[w] = word;
  }
}

void Frame::SetAllNull(int out) {
  uint64_t* bits = OwnBits(out, false);
  std::fill(bits, bits + std::max<size_t>((n + 63) / 64, 1), 0);
}

void Frame::Fail(uint32_t row, int out, std::string message) {
  errors.push_back({row, static_cast<uint32_t>(errors.size()), std::move(message)});
  uint64_t* bits = OwnBits(out, true);
  bits[row >> 6] &= ~(uint64_t{1} << (row & 63));
}

std::unique_ptr<Program> Generate(const Bound& root) {
  auto p = std::make_unique<Program>();
  Generator g(*p);
  p->root = g.Emit(root);
  // String fields read only by kernels that take the column directly need no views.
  for (RegInfo& r : p->regs) r.needs_views = r.kind != RegKind::kField || r.type != Type::kString;
  p->regs[static_cast<size_t>(p->root)].needs_views = true;
  for (const Instr& ins : p->code) {
    for (int k = ins.reads_column ? 1 : 0; k < 4; ++k) {
      if (ins.in[k] >= 0) p->regs[static_cast<size_t>(ins.in[k])].needs_views = true;
    }
    for (int r : ins.ins) p->regs[static_cast<size_t>(r)].needs_views = true;
  }
  p->type = root.type;
  p->can_fail = root.can_fail;
  p->id = next_program_id.fetch_add(1, std::memory_order_relaxed);
  if (root.kind == BoundKind::kField) p->field_ref = root.field;
  return p;
}

void RunBlock(const Program& p, Frame& f, uint32_t begin, uint32_t end, Sel sel) {
  for (uint32_t i = begin; i < end;) {
    const Instr& ins = p.code[i];
    ins.kernel(ins, f, sel);
    i = ins.next;
  }
}

void EvaluateProgram(const Program& p, Frame& f, const RecordBatch& in, Column& out,
                     std::vector<RowError>& errors) {
  if (f.program != &p) InitFrame(p, f);
  out.Reset(p.type);
  f.n = static_cast<uint32_t>(in.rows);
  if (f.n == 0) return;
  f.input = &in;
  f.arena.Reset();
  f.errors.clear();
  for (Buffer<uint32_t>& s : f.selections) s.resize(f.n);
  BindInputs(p, f, in);
  Vec& root = f.regs[static_cast<size_t>(p.root)];
  bool direct = p.regs[static_cast<size_t>(p.root)].kind == RegKind::kTemp &&
                p.type != Type::kString && p.type != Type::kNull;
  if (direct) {
    out.Resize(f.n);
    switch (p.type) {
      case Type::kInt64:
      case Type::kTimestamp:
        root.external = out.ints();
        break;
      case Type::kDouble:
        root.external = out.doubles();
        break;
      default:
        root.external = out.bools();
        break;
    }
  }
  RunBlock(p, f, 0, static_cast<uint32_t>(p.code.size()), Sel{nullptr, f.n});
  WriteResult(p, f, out);
  root.external = nullptr;
  if (f.errors.empty()) return;
  // One error per row, in row order: the first the row met.
  std::sort(f.errors.begin(), f.errors.end(), [](const PendingError& a, const PendingError& b) {
    return a.row != b.row ? a.row < b.row : a.sequence < b.sequence;
  });
  uint32_t last = UINT32_MAX;
  for (PendingError& e : f.errors) {
    if (e.row == last) continue;
    last = e.row;
    out.SetNull(e.row);
    errors.push_back(RowError{e.row, std::move(e.message)});
  }
}

bool FoldConstant(const Bound& node, Value* out, std::string* message) {
  std::unique_ptr<Program> p = Generate(node);
  Frame frame;
  RecordBatch batch;
  batch.rows = 1;
  Column column;
  std::vector<RowError> errors;
  EvaluateProgram(*p, frame, batch, column, errors);
  if (!errors.empty()) {
    *message = errors.front().message;
    return false;
  }
  *out = ValueAt(column, 0);
  return true;
}

}  // namespace barge::pipeline::detail
