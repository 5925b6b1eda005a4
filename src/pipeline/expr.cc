// The public face of the expression compiler: parse (expr_parse.cc), bind (expr_bind.cc),
// generate (expr_program.cc), evaluate (expr_kernels*.cc).
#include "pipeline/expr.h"

#include <fmt/core.h>

#include <algorithm>

#include "pipeline/expr_ast.h"
#include "pipeline/expr_bind.h"
#include "pipeline/expr_program.h"

namespace barge::pipeline {

struct Expr::Program {
  std::unique_ptr<detail::Program> code;
};

// Frames are kept per program (by id), so one state can serve every expression of a step.
struct ExprState::Impl {
  struct Entry {
    uint64_t id;
    std::unique_ptr<detail::Frame> frame;
  };
  std::vector<Entry> entries;
  size_t last = 0;

  // Enough for the expressions of any step; beyond it the least recently added frame goes.
  static constexpr size_t kMaxFrames = 64;

  detail::Frame& FrameFor(const detail::Program& p) {
    if (last < entries.size() && entries[last].id == p.id) return *entries[last].frame;
    for (size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].id == p.id) {
        last = i;
        return *entries[i].frame;
      }
    }
    if (entries.size() >= kMaxFrames) entries.erase(entries.begin());
    entries.push_back({p.id, std::make_unique<detail::Frame>()});
    last = entries.size() - 1;
    return *entries.back().frame;
  }
};

ExprState::ExprState() : impl_(std::make_unique<Impl>()) {}
ExprState::~ExprState() = default;
ExprState::ExprState(ExprState&&) noexcept = default;
ExprState& ExprState::operator=(ExprState&&) noexcept = default;

namespace {

// Parses, binds and generates; a predicate must be BOOLEAN (or NULL).
std::optional<std::unique_ptr<detail::Program>> CompileProgram(std::string_view text,
                                                               const Schema& input, bool predicate,
                                                               ExprError* error) {
  detail::AstPtr ast = detail::ParseAst(text, error);
  if (!ast) return std::nullopt;
  std::optional<detail::BindResult> bound = detail::Bind(*ast, input, error);
  if (!bound) return std::nullopt;
  Type t = bound->root->type;
  if (predicate && t != Type::kBool && t != Type::kNull) {
    error->offset = ast->begin;
    error->message = fmt::format("expected a BOOLEAN condition, found {}", TypeName(t));
    return std::nullopt;
  }
  std::unique_ptr<detail::Program> program = detail::Generate(*bound->root);
  program->inputs = std::move(bound->inputs);
  program->text = detail::AstToString(*ast);
  return program;
}

}  // namespace

std::optional<Expr> Expr::Compile(std::string_view text, const Schema& input, ExprError* error) {
  ExprError ignored;
  std::optional<std::unique_ptr<detail::Program>> code =
      CompileProgram(text, input, false, error != nullptr ? error : &ignored);
  if (!code) return std::nullopt;
  auto program = std::make_shared<Program>();
  program->code = std::move(*code);
  return Expr(std::move(program));
}

std::optional<Expr> Expr::CompilePredicate(std::string_view text, const Schema& input,
                                           ExprError* error) {
  ExprError ignored;
  std::optional<std::unique_ptr<detail::Program>> code =
      CompileProgram(text, input, true, error != nullptr ? error : &ignored);
  if (!code) return std::nullopt;
  auto program = std::make_shared<Program>();
  program->code = std::move(*code);
  return Expr(std::move(program));
}

Type Expr::type() const { return program_->code->type; }
bool Expr::can_fail() const { return program_->code->can_fail; }
const std::vector<int>& Expr::inputs() const { return program_->code->inputs; }
int Expr::field_ref() const { return program_->code->field_ref; }
bool Expr::is_constant() const { return program_->code->inputs.empty(); }
std::string Expr::ToString() const { return program_->code->text; }

void Expr::Evaluate(const RecordBatch& in, ExprState& state, Column& out,
                    std::vector<RowError>& errors) const {
  const detail::Program& p = *program_->code;
  detail::EvaluateProgram(p, state.impl().FrameFor(p), in, out, errors);
}

// ---- Aggregates.

namespace {

struct AggregateName {
  std::string_view name;
  AggregateKind kind;
};

constexpr AggregateName kAggregateNames[] = {
    {"count", AggregateKind::kCount}, {"sum", AggregateKind::kSum},
    {"min", AggregateKind::kMin},     {"max", AggregateKind::kMax},
    {"avg", AggregateKind::kAvg},     {"first", AggregateKind::kFirst},
    {"last", AggregateKind::kLast},   {"count_distinct", AggregateKind::kCountDistinct},
};

std::string_view KindName(AggregateKind kind) {
  if (kind == AggregateKind::kCountStar) return "count";
  for (const AggregateName& a : kAggregateNames) {
    if (a.kind == kind) return a.name;
  }
  return "?";
}

std::optional<AggregateCall> AggregateFail(ExprError* error, size_t offset, std::string message) {
  error->offset = offset;
  error->message = std::move(message);
  return std::nullopt;
}

}  // namespace

std::optional<AggregateCall> CompileAggregate(std::string_view text, const Schema& input,
                                              ExprError* error) {
  ExprError ignored;
  if (error == nullptr) error = &ignored;
  detail::AstPtr ast = detail::ParseAst(text, error);
  if (!ast) return std::nullopt;
  const std::string list = "count, sum, min, max, avg, first, last or count_distinct";
  if (ast->kind != detail::AstKind::kCall) {
    return AggregateFail(error, ast->begin,
                         fmt::format("expected an aggregate call such as sum(x): {}", list));
  }
  const AggregateName* found = nullptr;
  for (const AggregateName& a : kAggregateNames) {
    if (a.name == ast->name) found = &a;
  }
  if (!found) {
    const std::vector<std::string>& scalars = ScalarFunctionNames();
    if (std::find(scalars.begin(), scalars.end(), ast->name) != scalars.end()) {
      return AggregateFail(
          error, ast->offset,
          fmt::format("'{}' is not an aggregate function (expected {})", ast->name, list));
    }
    std::optional<std::string> hint = Suggest(ast->name, AggregateFunctionNames());
    return AggregateFail(
        error, ast->offset,
        hint ? fmt::format("unknown aggregate function '{}' (did you mean '{}'?)", ast->name, *hint)
             : fmt::format("unknown aggregate function '{}' (expected {})", ast->name, list));
  }
  AggregateCall call;
  call.kind = found->kind;
  bool star = ast->args.size() == 1 && ast->args[0]->kind == detail::AstKind::kStar;
  if (star) {
    if (found->kind != AggregateKind::kCount || ast->flag) {
      return AggregateFail(error, ast->args[0]->offset, "'*' is only allowed in count(*)");
    }
    call.kind = AggregateKind::kCountStar;
    call.type = Type::kInt64;
    return call;
  }
  if (ast->args.size() != 1) {
    return AggregateFail(error, ast->offset,
                         fmt::format("aggregate function '{}' takes 1 argument, found {}",
                                     ast->name, ast->args.size()));
  }
  if (ast->flag) {
    if (found->kind != AggregateKind::kCount && found->kind != AggregateKind::kCountDistinct) {
      return AggregateFail(error, ast->offset,
                           fmt::format("DISTINCT is only supported in count(DISTINCT x), not in "
                                       "'{}'",
                                       ast->name));
    }
    call.kind = AggregateKind::kCountDistinct;
  }
  // The argument is compiled from its own text; its offsets are shifted back into `text`.
  const detail::Ast& arg = *ast->args[0];
  std::string_view arg_text = text.substr(arg.begin, arg.end - arg.begin);
  call.argument = Expr::Compile(arg_text, input, error);
  if (!call.argument) {
    error->offset += arg.begin;
    return std::nullopt;
  }
  Type t = call.argument->type();
  auto wrong = [&](std::string_view wanted) {
    return AggregateFail(error, arg.begin,
                         fmt::format("aggregate function '{}' expects {}, found {}", ast->name,
                                     wanted, TypeName(t)));
  };
  switch (call.kind) {
    case AggregateKind::kCount:
    case AggregateKind::kCountDistinct:
      call.type = Type::kInt64;
      break;
    case AggregateKind::kSum:
      if (t == Type::kNull) t = Type::kInt64;
      if (!IsNumeric(t)) return wrong("BIGINT or DOUBLE");
      call.type = t;
      break;
    case AggregateKind::kAvg:
      if (t != Type::kNull && !IsNumeric(t)) return wrong("BIGINT or DOUBLE");
      call.type = Type::kDouble;
      break;
    case AggregateKind::kMin:
    case AggregateKind::kMax:
      if (t == Type::kBool) return wrong("a BIGINT, DOUBLE, VARCHAR or TIMESTAMP value");
      call.type = t;
      break;
    case AggregateKind::kFirst:
    case AggregateKind::kLast:
      call.type = t;
      break;
    case AggregateKind::kCountStar:
      break;
  }
  return call;
}

std::string AggregateCall::ToString() const {
  if (kind == AggregateKind::kCountStar) return "count(*)";
  std::string arg = argument ? argument->ToString() : "";
  if (kind == AggregateKind::kCountDistinct) return fmt::format("count(DISTINCT {})", arg);
  return fmt::format("{}({})", KindName(kind), arg);
}

const std::vector<std::string>& AggregateFunctionNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const AggregateName& a : kAggregateNames) v.emplace_back(a.name);
    std::sort(v.begin(), v.end());
    return v;
  }();
  return names;
}

}  // namespace barge::pipeline
