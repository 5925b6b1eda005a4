// Expression evaluation over 1024-row batches: the expressions of the spec pipelines of issue 8
// (p1: `value * 2`, `value % 3 <> 0`; the orders example: its filter and select) and a CASE,
// each beside a hand-written C++ loop computing the same column in the same run. Prints ns/row for
// both and their ratio. Columns without NULLs unless the name says "nulls" (every 10th row NULL).
#include <benchmark/benchmark.h>
#include <fmt/core.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "pipeline/expr.h"

namespace barge::pipeline {
namespace {

constexpr size_t kRows = 1024;

const std::shared_ptr<const Schema>& BenchSchema() {
  static const auto schema = std::make_shared<const Schema>(
      Schema{{{"value", Type::kInt64}, {"amount", Type::kDouble}, {"country", Type::kString}}});
  return schema;
}

RecordBatch MakeBatch(bool nulls) {
  std::mt19937_64 rng(42);
  static const char* kCountries[] = {"de", "fr", "us", "XX", "jp", "br", "in", "gb", "it", "es"};
  RecordBatch b;
  b.Reset(BenchSchema());
  for (size_t i = 0; i < kRows; ++i) {
    bool null = nulls && i % 10 == 7;
    if (null) {
      b.columns[0].AppendNull();
      b.columns[1].AppendNull();
      b.columns[2].AppendNull();
      continue;
    }
    b.columns[0].AppendInt(static_cast<int64_t>(rng() % 1000000));
    b.columns[1].AppendDouble(static_cast<double>(rng() % 20000) / 100.0 - 10.0);
    b.columns[2].AppendString(kCountries[rng() % 10]);
  }
  b.rows = kRows;
  return b;
}

void ReportPerRow(benchmark::State& state) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kRows));
}

void BM_Expr(benchmark::State& state, std::string text, bool nulls) {
  RecordBatch batch = MakeBatch(nulls);
  ExprError err;
  std::optional<Expr> e = Expr::Compile(text, *BenchSchema(), &err);
  if (!e) {
    state.SkipWithError(err.message.c_str());
    return;
  }
  ExprState expr_state;
  Column out;
  std::vector<RowError> errors;
  for (auto _ : state) {
    e->Evaluate(batch, expr_state, out, errors);
    benchmark::DoNotOptimize(out.size());
    benchmark::ClobberMemory();
  }
  if (!errors.empty()) state.SkipWithError("row errors");
  ReportPerRow(state);
}

// ---- The same columns computed by hand, as a typed C++ pipeline would (no NULL handling: the
// batch has none).

// Per iteration: `out` reset to `type` and kRows rows, then fill(batch, out).
template <class Fill>
void HandLoop(benchmark::State& state, Type type, Fill fill) {
  RecordBatch batch = MakeBatch(false);
  Column out(type);
  for (auto _ : state) {
    out.Reset(type);
    out.Resize(kRows);
    fill(batch, out);
    benchmark::DoNotOptimize(out.size());
    benchmark::ClobberMemory();
  }
  ReportPerRow(state);
}

void BM_Hand_Mul(benchmark::State& state) {
  HandLoop(state, Type::kInt64, [](const RecordBatch& b, Column& out) {
    const int64_t* v = b.columns[0].ints();
    int64_t* o = out.ints();
    for (size_t i = 0; i < kRows; ++i) o[i] = v[i] * 2;
  });
}

void BM_Hand_ModFilter(benchmark::State& state) {
  HandLoop(state, Type::kBool, [](const RecordBatch& b, Column& out) {
    const int64_t* v = b.columns[0].ints();
    uint8_t* o = out.bools();
    for (size_t i = 0; i < kRows; ++i) o[i] = v[i] % 3 != 0;
  });
}

void BM_Hand_Filter(benchmark::State& state) {
  HandLoop(state, Type::kBool, [](const RecordBatch& b, Column& out) {
    const double* a = b.columns[1].doubles();
    const Column& c = b.columns[2];
    uint8_t* o = out.bools();
    for (size_t i = 0; i < kRows; ++i) o[i] = a[i] > 0 && c.String(i) != "XX";
  });
}

void BM_Hand_Cents(benchmark::State& state) {
  HandLoop(state, Type::kInt64, [](const RecordBatch& b, Column& out) {
    const double* a = b.columns[1].doubles();
    int64_t* o = out.ints();
    for (size_t i = 0; i < kRows; ++i) o[i] = static_cast<int64_t>(std::round(a[i] * 100));
  });
}

void BM_Hand_Upper(benchmark::State& state) {
  HandLoop(state, Type::kString, [](const RecordBatch& b, Column& out) {
    const Column& c = b.columns[2];
    Buffer<char>& bytes = out.mutable_bytes();
    bytes.resize(c.byte_size());
    std::memcpy(out.mutable_offsets().data(), c.offsets(), (kRows + 1) * sizeof(uint32_t));
    const char* in = c.bytes();
    for (size_t i = 0; i < c.byte_size(); ++i) {
      char ch = in[i];
      bytes[i] = static_cast<char>(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
    }
  });
}

void BM_Hand_Case(benchmark::State& state) {
  HandLoop(state, Type::kDouble, [](const RecordBatch& b, Column& out) {
    const int64_t* v = b.columns[0].ints();
    const double* a = b.columns[1].doubles();
    double* o = out.doubles();
    for (size_t i = 0; i < kRows; ++i) o[i] = v[i] % 2 == 0 ? a[i] : -a[i];
  });
}

struct Workload {
  std::string name;
  std::string text;
  void (*hand)(benchmark::State&);
};

const std::vector<Workload>& Workloads() {
  static const std::vector<Workload> w = {
      {"mul", "value * 2", &BM_Hand_Mul},
      {"mod_filter", "value % 3 <> 0", &BM_Hand_ModFilter},
      {"filter", "amount > 0 AND country <> 'XX'", &BM_Hand_Filter},
      {"cents", "CAST(round(amount * 100) AS BIGINT)", &BM_Hand_Cents},
      {"upper", "upper(country)", &BM_Hand_Upper},
      // Masked evaluation: each branch runs on the rows that take it.
      {"case", "CASE WHEN value % 2 = 0 THEN amount ELSE -amount END", &BM_Hand_Case},
  };
  return w;
}

// Keeps ns/row per benchmark name for the summary: CPU time per batch over its rows (the
// machine is shared, and CPU time is what other processes disturb least).
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      double ns = r.GetAdjustedCPUTime() *
                  benchmark::GetTimeUnitMultiplier(benchmark::kNanosecond) /
                  benchmark::GetTimeUnitMultiplier(r.time_unit);
      ns_per_row_[r.benchmark_name()] = ns / kRows;
    }
  }
  const std::map<std::string, double>& results() const { return ns_per_row_; }

 private:
  std::map<std::string, double> ns_per_row_;
};

}  // namespace
}  // namespace barge::pipeline

int main(int argc, char** argv) {
  using namespace barge::pipeline;
  for (const Workload& w : Workloads()) {
    benchmark::RegisterBenchmark(("expr/" + w.name).c_str(), BM_Expr, w.text, false);
    benchmark::RegisterBenchmark(("expr_nulls/" + w.name).c_str(), BM_Expr, w.text, true);
    benchmark::RegisterBenchmark(("hand/" + w.name).c_str(), w.hand);
  }
  benchmark::Initialize(&argc, argv);
  SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const auto& r = reporter.results();
  fmt::print("\n{:<40} {:>10} {:>11} {:>10} {:>7}\n", "expression, ns/row (CPU)", "evaluator",
             "with NULLs", "hand loop", "ratio");
  for (const Workload& w : Workloads()) {
    auto get = [&](const std::string& name) {
      auto it = r.find(name);
      return it == r.end() ? 0.0 : it->second;
    };
    double expr = get("expr/" + w.name), nulls = get("expr_nulls/" + w.name),
           hand = get("hand/" + w.name);
    fmt::print("{:<40} {:>10.3f} {:>11.3f} {:>10.3f} {:>7.2f}\n", w.text, expr, nulls, hand,
               hand > 0 ? expr / hand : 0.0);
  }
  benchmark::Shutdown();
  return 0;
}
