// The compiled form of an expression and the machinery its kernels share.
//
// A Program is a flat list of instructions over registers. A register (Vec) holds one column of
// values for the batch: a field of the input (its buffer, not a copy), a constant (one value for
// every row), or the output of an instruction. Each instruction is a typed kernel: one function
// pointer call per batch that loops over the rows.
//
// Masking. Every kernel runs on a selection: all rows, or an ascending list of row indexes.
// Only selected rows of its output are meaningful; a kernel may write garbage to the others
// (so that its loop can stay dense), and its inputs hold garbage outside the selection they were
// computed on. A kernel never fails, traps or reads out of bounds on garbage input, and
// reports row errors only for selected rows whose inputs are valid. Control instructions (AND,
// OR, CASE, coalesce) run nested blocks of instructions, which follow them in the list, on
// narrower selections: that is how `CASE WHEN b <> 0 THEN a / b END` never divides by zero.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/column.h"
#include "pipeline/expr_ast.h"
#include "pipeline/expr_bind.h"

namespace barge::pipeline::detail {

// The rows an instruction runs on: rows[0..count), ascending, or all rows [0, count) when rows
// is null.
struct Sel {
  const uint32_t* rows = nullptr;
  uint32_t count = 0;

  bool dense() const { return rows == nullptr; }
  uint32_t operator[](uint32_t k) const { return rows ? rows[k] : k; }
};

// Calls f(row) for each selected row; the dense branch is a plain counted loop the compiler can
// vectorize.
template <class F>
inline void ForEachRow(Sel sel, F&& f) {
  if (sel.rows == nullptr) {
    for (uint32_t i = 0; i < sel.count; ++i) f(i);
  } else {
    for (uint32_t k = 0; k < sel.count; ++k) f(sel.rows[k]);
  }
}

// Uninitialized storage that keeps its capacity (register values).
class RawBuffer {
 public:
  RawBuffer() = default;
  RawBuffer(RawBuffer&& o) noexcept : data_(o.data_), capacity_(o.capacity_) {
    o.data_ = nullptr;
    o.capacity_ = 0;
  }
  RawBuffer& operator=(RawBuffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(capacity_, o.capacity_);
    return *this;
  }
  ~RawBuffer() { Free(); }

  template <class T>
  T* Get(size_t n) {
    size_t bytes = n * sizeof(T);
    if (bytes > capacity_) {
      Free();
      capacity_ = std::max<size_t>(bytes, 1024);
      data_ = ::operator new (capacity_, std::align_val_t{64});
    }
    return static_cast<T*>(data_);
  }

 private:
  void Free() {
    if (data_ != nullptr) ::operator delete (data_, std::align_val_t{64});
    data_ = nullptr;
  }
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

// Bytes of the strings a batch produces. Chunks are kept across batches (Reset rewinds), and a
// string never moves once written, so string_views into the arena stay valid for the batch.
class Arena {
 public:
  // n bytes, following the previous allocation in memory when the current chunk has room (so
  // strings built one after another form one run that copies out in one piece).
  char* Allocate(size_t n) {
    if (n <= room_) {
      char* p = next_;
      next_ += n;
      room_ -= n;
      return p;
    }
    return AllocateSlow(n);
  }
  void Reset() {
    chunk_ = 0;
    next_ = chunks_.empty() ? nullptr : chunks_[0].get();
    room_ = chunks_.empty() ? 0 : sizes_[0];
  }

 private:
  char* AllocateSlow(size_t n);

  static constexpr size_t kChunk = 64 * 1024;
  std::vector<std::unique_ptr<char[]>> chunks_;
  std::vector<size_t> sizes_;
  size_t chunk_ = 0;  // the chunk next_ points into
  char* next_ = nullptr;
  size_t room_ = 0;
};

// A register: the values of one expression node for the current batch.
struct Vec {
  Type type = Type::kNull;
  // One value (at index 0) and one validity bit (bit 0) for every row.
  bool constant = false;
  // int64_t (BIGINT, TIMESTAMP), double, uint8_t (BOOLEAN) or std::string_view (VARCHAR).
  const void* data = nullptr;
  // Validity, 1 = not NULL; null when no row is NULL. May point to another register's bitmap.
  const uint64_t* valid = nullptr;

  RawBuffer storage;
  Buffer<uint64_t> bits;
  // Set on the program's result register: kernels write the values straight into the output
  // column's buffer.
  void* external = nullptr;

  template <class T>
  const T* values() const {
    return static_cast<const T*>(data);
  }
  bool IsValid(uint32_t i) const {
    if (valid == nullptr) return true;
    uint32_t r = constant ? 0 : i;
    return ((valid[r >> 6] >> (r & 63)) & 1) != 0;
  }
};

// A row error before ordering: the evaluation order of failures within a row decides which
// message the row reports.
struct PendingError {
  uint32_t row;
  uint32_t sequence;
  std::string message;
};

struct Program;
struct Instr;

// The scratch state of one program on one thread (the ExprState holds one per program).
//
// A kernel writing register r sets r's values (Write) and r's validity (AndValidity, OwnBits
// or valid = nullptr) for the batch before it reports a failing row (Fail), since Fail edits
// the validity in place.
struct Frame {
  const Program* program = nullptr;
  const RecordBatch* input = nullptr;
  uint32_t n = 0;
  std::vector<Vec> regs;
  std::vector<Buffer<uint32_t>> selections;  // Instr::scratch indexes these
  Arena arena;
  std::vector<PendingError> errors;
  // Reused by the string-building kernels.
  std::string text;
  std::string text2;
  std::vector<int32_t> units;  // a LIKE pattern compiled per row

  // Storage for n values of register r, which this kernel now writes.
  template <class T>
  T* Write(int r) {
    Vec& v = regs[r];
    T* p = v.external != nullptr ? static_cast<T*>(v.external) : v.storage.Get<T>(n);
    v.data = p;
    v.constant = false;
    return p;
  }
  // Register r's own bitmap, sized for the batch, which it now uses. Its bits are garbage
  // unless `keep` copies the current validity into it.
  uint64_t* OwnBits(int r, bool keep);
  // Register `out` is valid where every register of `in` is (by words; may alias a bitmap).
  void AndValidity(int out, const int* in, size_t count);
  void AndValidity(int out, int a) { AndValidity(out, &a, 1); }
  void AndValidity(int out, int a, int b) {
    int in[2] = {a, b};
    AndValidity(out, in, 2);
  }
  // Every selected row of `out` is NULL.
  void SetAllNull(int out);
  // Row `row` fails with `message`; its value in `out` becomes NULL.
  void Fail(uint32_t row, int out, std::string message);

  uint32_t* Selection(int index) { return selections[static_cast<size_t>(index)].data(); }
};

using Kernel = void (*)(const Instr&, Frame&, Sel);

// Auxiliary data of an instruction (a LIKE pattern, an IN list, a divisor's magic numbers).
struct Aux {
  virtual ~Aux() = default;
};

struct Instr {
  Kernel kernel = nullptr;
  int out = -1;
  int in[4] = {-1, -1, -1, -1};
  std::vector<int> ins;  // for variadic kernels (concat, greatest, IN)
  // Control instructions: the nested blocks [first, second) in the program.
  std::vector<std::pair<uint32_t, uint32_t>> blocks;
  uint32_t next = 0;        // the instruction after this one and its blocks
  int scratch = -1;         // first Frame::selections buffer it uses
  Type type = Type::kNull;  // result type
  Op op = Op::kAdd;
  Fn fn = Fn::kCoalesce;
  bool negated = false;
  bool flag = false;
  // in[0] is a VARCHAR field the kernel reads from the input column (offsets and bytes), not
  // through the register's views.
  bool reads_column = false;
  Value value;
  std::shared_ptr<const Aux> aux;
};

enum class RegKind : uint8_t { kTemp, kConst, kField };

struct RegInfo {
  RegKind kind = RegKind::kTemp;
  Type type = Type::kNull;
  int field = -1;
  Value value;
  // A VARCHAR field whose views some kernel reads (they are built per batch).
  bool needs_views = true;
};

struct Program {
  std::vector<Instr> code;
  std::vector<RegInfo> regs;
  int root = -1;
  int selections = 0;
  Type type = Type::kNull;
  bool can_fail = false;
  std::vector<int> inputs;
  int field_ref = -1;
  std::string text;  // normalized
  uint64_t id = 0;   // unique per program (ExprState keys its frames by it)
};

// Builds the program for a bound tree.
std::unique_ptr<Program> Generate(const Bound& root);
// Runs instructions [begin, end) on `sel`.
void RunBlock(const Program& p, Frame& f, uint32_t begin, uint32_t end, Sel sel);
// Evaluates a program over a batch (Expr::Evaluate).
void EvaluateProgram(const Program& p, Frame& f, const RecordBatch& in, Column& out,
                     std::vector<RowError>& errors);

// ---- Kernel selection (expr_kernels*.cc). Each returns null when no kernel fits, which the
// binder's rules rule out (a bug).

// How an operand reaches a binary kernel.
enum class Shape : uint8_t { kColumn, kConst };

Kernel ArithKernel(Op op, Type operand, Shape l, Shape r);
// Division or modulo of BIGINT by a constant (not 0, -1 or 1), by multiplying with a
// precomputed reciprocal. Sets ins.aux.
Kernel IntDivByConstKernel(Op op, int64_t divisor, Instr& ins);
Kernel NegKernel(Type t);
Kernel CompareKernel(Op op, Type t, Shape l, Shape r);
// VARCHAR = / <> a constant (ins.op), from views or (field) straight from the input column.
Kernel StringEqualsConstKernel(std::string_view constant, bool field);
// x % d = 0 (x % d <> 0 when ins.negated) for a constant d != 0. Sets ins.aux.
Kernel DivisibleKernel(int64_t divisor, Instr& ins);
Kernel CastKernel(Type from, Type to, bool try_cast);
Kernel ErrorKernel();
Kernel NotKernel();
Kernel AndOrDenseKernel(bool is_and);
Kernel IsNullKernel();
Kernel IsBoolKernel();
Kernel DistinctKernel(Type t);
// x IN (constants): sets ins.aux from the list.
Kernel InConstKernel(Type t, const std::vector<Value>& list, Instr& ins);
// OR over ins.ins (BOOLEAN registers) with three-valued logic, negated when ins.negated.
Kernel AnyKernel();
// LIKE/ILIKE with a constant pattern (sets ins.aux) or a per-row pattern.
Kernel LikeConstKernel(std::string_view pattern, std::string_view escape, bool ilike, Instr& ins);
Kernel LikeKernel();
Kernel ConcatKernel();
Kernel FunctionKernel(Fn fn, const std::vector<Type>& args, Type result);
// The string functions (upper, substr, ...); null for other functions.
Kernel StringFunctionKernel(Fn fn);
// Control instructions.
Kernel AndOrKernel();  // ins.flag: AND
Kernel CaseKernel();
Kernel CoalesceKernel();
// CASE over results computed on every row: ins.ins lists (condition, result) per WHEN, then
// the ELSE result when ins.flag.
Kernel CaseSelectKernel(Type t);

// The number of Frame::selections buffers each control kernel uses.
inline constexpr int kAndOrSelections = 1;
inline constexpr int kCaseSelections = 3;
inline constexpr int kCoalesceSelections = 3;

}  // namespace barge::pipeline::detail
