// Review of issue 8 (branch review-8): tests that demonstrate bugs found by the review. Each test
// names the bug it demonstrates; they fail until the bug is fixed.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "pipeline/format.h"
#include "pipeline/planner.h"
#include "pipeline/spec_testing.h"
#include "pipeline/text_source.h"

namespace barge::pipeline {
namespace {

using Dir = testing::Workdir;
using Ran = testing::Outcome;

Ran RunIt(Dir& d, const std::string& spec_text, LoadOptions load = {}) {
  return testing::RunCollecting(LoadSpec(d.Write("s.yaml", spec_text), load), {});
}

// Bug 1: avg() of BIGINTs whose sum passes 2^63 is wrong (even negative): AvgAgg::Add keeps the
// wrapped result __builtin_add_overflow stored, then adds the value again.
TEST(Review8Test, Bug1_AvgOfLargeBigintsIsNotGarbage) {
  Dir d;
  d.Write("in.jsonl",
          "{\"ts\":1,\"v\":5000000000000000000}\n"
          "{\"ts\":2,\"v\":5000000000000000000}\n");
  Ran r = RunIt(d,
                "source: {file: in.jsonl, event_time: {field: ts}}\n"
                "steps:\n"
                "  - window: {tumbling: 1s}\n"
                "    aggregate: {mean: avg(v)}\n");
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0], R"({"window_start":0,"window_end":1000,"mean":5e+18})");

  // The same in a rolling aggregate: nanosecond timestamps (1.7e18) overflow after 6 records.
  std::string lines;
  for (int i = 0; i < 6; ++i) {
    lines +=
        "{\"ts\":" + std::to_string(i) + ",\"v\":170000000000000000" + std::to_string(i) + "}\n";
  }
  d.Write("ns.jsonl", lines);
  r = RunIt(d, "source: {file: ns.jsonl}\nsteps:\n  - aggregate: {mean: avg(v), n: count(*)}\n");
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  ASSERT_EQ(r.rows.size(), 6u);
  // The mean after all six: 1700000000000000002.5, as a DOUBLE.
  EXPECT_NE(std::find(r.rows.begin(), r.rows.end(), R"({"mean":1.7e+18,"n":6})"), r.rows.end())
      << ::testing::PrintToString(r.rows);
}

// Bug 2: under on_error: fail the pipeline names a later bad record (a source error read ahead in
// the same batch) instead of the first one in input order (a select error on line 2).
TEST(Review8Test, Bug2_FailNamesTheFirstBadRecord) {
  Dir d;
  d.Write("orders.csv",
          "ts,user,country,amount\n"
          "1000,a,de,inf\n"        // line 2: CAST(round(inf * 100) AS BIGINT) fails
          "2000,b,de,1,extra\n");  // line 3: wrong number of fields
  Ran r = RunIt(d,
                "source: {file: orders.csv}\n"
                "steps:\n"
                "  - select: {cents: CAST(round(amount * 100) AS BIGINT)}\n"
                "on_error: fail\n");
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.message(),
            "orders.csv:2: step 1 (select): cents: cannot convert Infinity to BIGINT");
}

// Bug 3: docs/pipelines.md said "A bad record never advances event time", but a record that
// fails in a step after the source (here a CAST in select) has already moved the watermark. As in
// Flink (watermarks are made at the source), that is the contract now, and the docs say so: the
// good record after it is late.
TEST(Review8Test, Bug3_ARecordFailingAfterTheSourceHasAdvancedEventTime) {
  Dir d;
  d.Write("orders.csv",
          "ts,country,amount\n"
          "1000,de,5\n"
          "100000,de,inf\n"  // a bad record of the select step, far ahead in event time
          "2000,de,5\n");    // not late unless the bad record moved event time
  Ran r = RunIt(d,
                "source:\n  file: orders.csv\n  event_time: {field: ts, max_delay: 2s}\n"
                "steps:\n"
                "  - select: {country: country, ts: ts, cents: CAST(round(amount * 100) AS "
                "BIGINT)}\n"
                "  - key_by: country\n"
                "  - window: {tumbling: 10s}\n"
                "    aggregate: {orders: count(*)}\n"
                "on_error: skip\n");
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  EXPECT_EQ(r.rows, (std::vector<std::string>{
                        R"({"country":"de","window_start":0,"window_end":10000,"orders":1})"}));
}

// ...while a record the source cannot read (a bad event time) never advances it.
TEST(Review8Test, Bug3_ARecordTheSourceCannotReadDoesNotAdvanceEventTime) {
  Dir d;
  d.Write("orders.csv",
          "ts,country,amount\n"
          "1000,de,5\n"
          "1e400x,de,5\n"
          "2000,de,5\n");
  Ran r = RunIt(d,
                "source:\n  file: orders.csv\n  event_time: {field: ts, max_delay: 2s}\n"
                "  schema: {ts: BIGINT, country: VARCHAR, amount: DOUBLE}\n"
                "steps:\n"
                "  - key_by: country\n"
                "  - window: {tumbling: 10s}\n"
                "    aggregate: {orders: count(*)}\n"
                "on_error: skip\n");
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  EXPECT_EQ(r.rows, (std::vector<std::string>{
                        R"({"country":"de","window_start":0,"window_end":10000,"orders":2})"}));
}

// Bug 4: a BIGINT sum() that overflows stops the whole pipeline even under on_error: skip, with
// a message that names no input or line ("step 1 (window) window: sum(...) overflowed BIGINT").
TEST(Review8Test, Bug4_SumOverflowFollowsOnError) {
  Dir d;
  d.Write("in.jsonl",
          "{\"ts\":1,\"v\":9000000000000000000}\n"
          "{\"ts\":2,\"v\":9000000000000000000}\n"
          "{\"ts\":3,\"v\":1}\n");
  Ran r = RunIt(d,
                "source: {file: in.jsonl, event_time: {field: ts}}\n"
                "steps:\n"
                "  - window: {tumbling: 1s}\n"
                "    aggregate: {total: sum(v)}\n"
                "on_error: skip\n");
  EXPECT_TRUE(r.status.ok()) << r.status.message();
}

// Bug 5: errors in a --set value are reported at line 1, column 1 of the spec file (which holds
// something else), and an unknown key given by --set names no position at all.
TEST(Review8Test, Bug5_SetErrorsNameTheSetArgument) {
  Dir d;
  d.Write("in.csv", "ts,amount\n1,2\n");
  const std::string spec = "source: {file: in.csv}\nsteps:\n  - filter: amount > 0\n";
  Ran r = RunIt(d, spec, {.sets = {"steps.0.filter=amout > 1"}});
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.message().rfind("--set steps.0.filter=amout > 1: ", 0), 0u)
      << r.status.message();
  r = RunIt(d, spec, {.sets = {"source.file=missing.csv"}});
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.message().rfind("--set source.file=missing.csv: ", 0), 0u)
      << r.status.message();
  r = RunIt(d, spec, {.sets = {"nonsense=1"}});
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.message().rfind("--set nonsense=1: ", 0), 0u) << r.status.message();
}

// Bug 6: a JSON Lines record with deeply nested arrays (100,000 levels, a 200 KB line, well under
// the 16 MiB record limit) crashes the process with a stack overflow in nlohmann's dump() when its
// field is VARCHAR; it should be a bad record (or be read), never a crash.
TEST(Review8DeathTest, Bug6_DeeplyNestedJsonDoesNotCrash) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto parse = [] {
    auto schema = std::make_shared<Schema>();
    schema->fields.push_back({"a", Type::kString});
    auto decoder = RowDecoder::Make({Format::kJsonl, ',', false}, schema, {false});
    if (!decoder.ok()) std::exit(2);
    const int depth = 1000000;
    std::string line = "{\"a\":" + std::string(depth, '[') + std::string(depth, ']') + "}\n";
    RecordBatch b;
    b.Reset(schema);
    std::string error;
    (void)(*decoder)->Parse(line, b, error);
    std::exit(0);
  };
  EXPECT_EXIT(parse(), ::testing::ExitedWithCode(0), "");
}

// Bug 10: the issue's spec fails on a CSV file that has only its header (an hour without orders):
// columns with no sampled value are inferred VARCHAR, so validation stops with "event_time field
// 'ts' must be BIGINT ... but it is VARCHAR". Such an input should give no windows and succeed.
TEST(Review8Test, Bug10_HeaderOnlyCsvRunsTheIssueSpec) {
  Dir d;
  d.Write("orders.csv", "ts,user,country,amount\n");
  Ran r = RunIt(d,
                "source:\n  file: {path: orders.csv, format: csv}\n"
                "  event_time: {field: ts, max_delay: 2s}\n"
                "steps:\n"
                "  - filter: amount > 0 AND country <> 'XX'\n"
                "  - select:\n      user: user\n      country: upper(country)\n"
                "      cents: CAST(round(amount * 100) AS BIGINT)\n      ts: ts\n"
                "  - key_by: [country]\n"
                "  - window: {tumbling: 10s, allowed_lateness: 1s}\n"
                "    aggregate:\n      orders: count(*)\n      total_cents: sum(cents)\n"
                "      biggest: max(cents)\n      mean: avg(cents)\n");
  EXPECT_TRUE(r.status.ok()) << r.status.message();
  EXPECT_TRUE(r.rows.empty());
}

// A glob whose first files hold only a header is typed by the first file with records; a value
// in a field no sampled input typed is a bad record that says to declare the schema.
TEST(Review8Test, Bug10_GlobsAreTypedByTheirFirstFileWithRecords) {
  Dir d;
  d.Write("a1.csv", "ts,amount\n");
  d.Write("a2.csv", "ts,amount\n1000,2.5\n");
  Ran r = RunIt(d,
                "source: {file: 'a*.csv', event_time: {field: ts}}\n"
                "steps:\n  - filter: amount > 1\n");
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  EXPECT_EQ(r.rows, (std::vector<std::string>{R"({"ts":1000,"amount":2.5})"}));

  Dir e;
  for (int i = 0; i < 16; ++i) e.Write("b" + std::to_string(10 + i) + ".csv", "ts,v\n");
  e.Write("b99.csv", "ts,v\n1,x\n");
  r = RunIt(e, "source: {file: 'b*.csv'}\non_error: fail\n");
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.message(),
            "b99.csv:2: source: field 'ts' has a value, but the sampled inputs had none to infer "
            "its type from (declare schema: in the source)");
}

// Bug 11: a generate source makes only the fields some step reads, but the `late:` file writes
// every input field: late records of a generator all have "id":0 (never written).
TEST(Review8Test, Bug11_LateRecordsOfAGeneratorKeepTheirFields) {
  Dir d;
  Ran r = RunIt(d,
                "source:\n  generate: {records: 2000, keys: 3, max_disorder: 5s}\n"
                "  event_time: {field: ts, max_delay: 0}\n"
                "steps:\n"
                "  - key_by: key\n"
                "  - window: {tumbling: 1s, late: late.jsonl}\n"
                "    aggregate: {s: sum(value)}\n");
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  std::string late = d.Read("late.jsonl");
  ASSERT_NE(late, "<missing>");
  size_t lines = static_cast<size_t>(std::count(late.begin(), late.end(), '\n'));
  ASSERT_GT(lines, 10u);
  size_t zero_ids = 0;
  for (size_t at = late.find("{\"id\":0,"); at != std::string::npos;
       at = late.find("{\"id\":0,", at + 1)) {
    ++zero_ids;
  }
  // Record 0 is the only one whose id is 0.
  EXPECT_LE(zero_ids, 1u) << late.substr(0, 300);
}

// Bug 13: a .tsv file is read as csv (docs: ".csv and .tsv mean csv") but with a comma as
// delimiter: the header "a<TAB>b" is one field, and a value holding a comma is a bad record.
TEST(Review8Test, Bug13_TsvFilesAreTabSeparated) {
  Dir d;
  d.Write("t.tsv", "a\tb\n1\t2,5\n");
  Ran r = RunIt(d, "source: {file: t.tsv}\n");
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  EXPECT_EQ(r.rows, (std::vector<std::string>{R"({"a":1,"b":"2,5"})"}));
}

double SecondsToRun(Dir& d, const std::string& spec) {
  auto start = std::chrono::steady_clock::now();
  Ran r = RunIt(d, spec);
  EXPECT_TRUE(r.status.ok()) << r.status.message();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Bug 14 (performance cliff): a window operator walks every window it keeps for allowed
// lateness on each firing (Advance from the map's start, then Recompute over all), so the cost
// per record grows with lateness / size. 10 s tumbling windows with a day of lateness over 100k
// records (one a second) are hundreds of times slower than without lateness (300k: 19.7 s vs
// 0.05 s on the reference machine).
TEST(Review8Test, Bug14_AllowedLatenessDoesNotMakeWindowsQuadratic) {
  Dir d;
  auto spec = [](const char* lateness) {
    return std::string(
               "source:\n  generate: {records: 100000, keys: 10, records_per_second: 1}\n"
               "steps:\n  - key_by: key\n  - window: {tumbling: 10s, allowed_lateness: ") +
           lateness + "}\n    aggregate: {n: count(*)}\n";
  };
  double base = SecondsToRun(d, spec("0"));
  double late = SecondsToRun(d, spec("1d"));
  EXPECT_LT(late, std::max(1.0, 20 * base)) << "without lateness " << base << " s";
}

// Bug 15 (hash flooding): a single BIGINT key is placed by key * 0x9E3779B97F4A7C15 (no
// finalizer, no seed), so keys j * inverse(0x9E3779B97F4A7C15) all land in one probe run: the key
// table degrades to linear scans (240k crafted keys: 48 s; random keys: 0.06 s).
TEST(Review8Test, Bug15_CraftedIntegerKeysDoNotDegradeTheKeyTable) {
  Dir d;
  const uint64_t inverse = [] {  // of the odd multiplier, mod 2^64 (Newton's iteration)
    uint64_t a = 0x9E3779B97F4A7C15ULL, x = a;
    for (int i = 0; i < 6; ++i) x *= 2 - a * x;
    return x;
  }();
  std::string crafted = "k\n", plain = "k\n";
  std::mt19937_64 rng(1);
  for (uint64_t j = 0; j < 60000; ++j) {
    crafted += std::to_string(static_cast<int64_t>(j * inverse)) + "\n";
    plain += std::to_string(static_cast<int64_t>(rng())) + "\n";
  }
  d.Write("crafted.csv", crafted);
  d.Write("plain.csv", plain);
  auto spec = [](const char* file) {
    return std::string("source: {file: ") + file +
           "}\nsteps:\n  - key_by: k\n  - aggregate: {n: count(*)}\n";
  };
  double base = SecondsToRun(d, spec("plain.csv"));
  double attacked = SecondsToRun(d, spec("crafted.csv"));
  EXPECT_LT(attacked, std::max(0.5, 10 * base)) << "random keys " << base << " s";
}

// Bug 16: a batch was bounded only by its row count, so 1024 long lines made one batch of many
// GiB whose 32-bit string offsets wrapped. Sources now end a batch after kMaxBatchBytes of input.
TEST(Review8Test, Bug16_SourcesBoundTheBytesOfABatch) {
  Dir d;
  const size_t line_bytes = size_t{8} << 20;
  const int lines = 10;  // 80 MiB: more than kMaxBatchBytes
  std::string text;
  text.reserve(lines * (line_bytes + 1));
  for (int i = 0; i < lines; ++i) {
    text += std::to_string(i);
    text.append(line_bytes - text.size() % (line_bytes + 1), 'a');
    text += '\n';
  }
  d.Write("long.txt", text);
  text.clear();
  Result<Spec> spec = LoadSpec(d.Write("s.yaml",
                                       "source: {file: long.txt}\n"
                                       "steps:\n  - select: {p: 'substr(line, 1, 1)'}\n"));
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  std::vector<size_t> batch_rows;
  std::string firsts;
  PlanOptions options;
  options.collect = [&](const RecordBatch& b) {
    batch_rows.push_back(b.rows);
    for (size_t i = 0; i < b.rows; ++i) firsts += b.columns[0].String(i);
  };
  Result<std::unique_ptr<SpecPipeline>> p = SpecPipeline::Make(*spec, options);
  ASSERT_TRUE(p.ok()) << p.status().message();
  Status st = (*p)->Run();
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(firsts, "0123456789");
  ASSERT_GE(batch_rows.size(), 2u);

  // Unquoted, the commas split the { } map: the error says to quote.
  spec = LoadSpec(d.Write("t.yaml",
                          "source: {file: long.txt}\n"
                          "steps:\n  - select: {p: substr(line, 1, 1)}\n"));
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("quote a value that holds commas"), std::string::npos)
      << spec.status().message();
  for (size_t rows : batch_rows) {
    EXPECT_LE(rows * line_bytes, kMaxBatchBytes + line_bytes);
  }
}

}  // namespace
}  // namespace barge::pipeline
