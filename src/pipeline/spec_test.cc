#include "pipeline/spec.h"

#include <gtest/gtest.h>

namespace barge::pipeline {
namespace {

constexpr const char* kOrders = R"(name: orders
parallelism: 2
source:
  file: {path: orders.csv, format: csv}          # csv (header row names the fields), jsonl, lines
  event_time: {field: ts, max_delay: 2s}          # ts in milliseconds since the epoch
steps:
  - filter: amount > 0 AND country <> 'XX'
  - select:
      user: user
      country: upper(country)
      cents: CAST(round(amount * 100) AS BIGINT)
      ts: ts
  - key_by: [country]
  - window: {tumbling: 10s, allowed_lateness: 1s}
    aggregate:
      orders: count(*)
      total_cents: sum(cents)
      biggest: max(cents)
      mean: avg(cents)
sink:
  file: {path: out.jsonl, format: jsonl}
on_error: fail                                    # fail | skip | {dead_letter: PATH}
)";

TEST(SpecTest, ReadsTheIssueExample) {
  Result<Spec> spec = ParseSpec(kOrders, "dir/orders.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ(spec->name, "orders");
  EXPECT_EQ(spec->parallelism, 2);
  ASSERT_EQ(spec->sources.size(), 1u);
  const SourceSpec& src = spec->sources[0];
  EXPECT_EQ(src.kind, SourceSpec::Kind::kFile);
  EXPECT_EQ(src.path.value, "orders.csv");
  EXPECT_EQ(src.format, Format::kCsv);
  ASSERT_TRUE(src.event_time.has_value());
  EXPECT_EQ(src.event_time->field.value, "ts");
  EXPECT_EQ(src.event_time->max_delay_ms, 2000);
  ASSERT_EQ(spec->steps.size(), 4u);
  EXPECT_EQ(spec->steps[0].kind, StepSpec::Kind::kFilter);
  EXPECT_EQ(spec->steps[0].filter.value, "amount > 0 AND country <> 'XX'");
  EXPECT_EQ(spec->steps[0].filter.pos.line, 7);
  EXPECT_EQ(spec->steps[0].filter.pos.col, 13);
  ASSERT_EQ(spec->steps[1].select.size(), 4u);
  EXPECT_EQ(spec->steps[1].select[2].name, "cents");
  EXPECT_EQ(spec->steps[2].keys[0].value, "country");
  ASSERT_TRUE(spec->steps[3].window.has_value());
  EXPECT_EQ(spec->steps[3].window->size_ms, 10000);
  EXPECT_EQ(spec->steps[3].window->lateness_ms, 1000);
  EXPECT_EQ(spec->steps[3].aggregates.size(), 4u);
  EXPECT_EQ(spec->sink.kind, SinkSpec::Kind::kFile);
  EXPECT_EQ(spec->Resolve(spec->sink.path.value), "dir/out.jsonl");
  EXPECT_EQ(spec->on_error.mode, OnErrorSpec::Mode::kFail);
}

TEST(SpecTest, LocatesOffsetsInsideExpressions) {
  Result<Spec> spec = ParseSpec(kOrders, "orders.yaml");
  ASSERT_TRUE(spec.ok());
  // "upper(country)" on line 10: 'country' inside it starts 6 bytes in.
  const Text& e = spec->steps[1].select[1].expr;
  Pos p = spec->Locate(e, 6);
  EXPECT_EQ(p.line, 10);
  EXPECT_EQ(p.col, 22);
  // Quoted and block scalars map through their quoting.
  Result<Spec> q = ParseSpec(
      "source: {stdin: lines}\nsteps:\n  - filter: \"a = 'x'\"\n  - filter: |\n      b >\n"
      "        zz\n",
      "q.yaml");
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->Locate(q->steps[0].filter, 4).col, 18);  // the quote before x, line 3
  Pos zz = q->Locate(q->steps[1].filter, q->steps[1].filter.value.find("zz"));
  EXPECT_EQ(zz.line, 6);
  EXPECT_EQ(zz.col, 9);
}

TEST(SpecTest, SetOverridesValuesBeforeReading) {
  Result<Spec> spec = ParseSpec(
      kOrders, "orders.yaml",
      {.sets = {"parallelism=3", "steps.0.filter=amount > 5", "sink={stdout: {format: csv}}"}});
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ(spec->parallelism, 3);
  EXPECT_EQ(spec->steps[0].filter.value, "amount > 5");
  EXPECT_EQ(spec->sink.kind, SinkSpec::Kind::kStdout);
  EXPECT_EQ(spec->sink.format, Format::kCsv);
  Result<Spec> over = ParseSpec(kOrders, "orders.yaml", {.parallelism = 5});
  ASSERT_TRUE(over.ok());
  EXPECT_EQ(over->parallelism, 5);
}

struct BadSpec {
  const char* name;
  std::string text;
  std::vector<std::string> sets;
  std::string message;
};

TEST(SpecTest, BadSpecsNameFileLineAndColumn) {
  const std::string ok_source = "source:\n  file: {path: a.csv}\n";
  std::vector<BadSpec> cases = {
      {"unknown step",
       ok_source + "steps:\n  - fliter: x > 1\n",
       {},
       "s.yaml:4:5: unknown step 'fliter' (did you mean 'filter'?)"},
      {"bad indentation",
       "source:\n  file: a.csv\n event_time: ts\n",
       {},
       "s.yaml:3:2: invalid YAML: end of map not found (check the indentation: keys of one map "
       "start in the same column)"},
      {"bad duration",
       "source:\n  file: a.csv\n  event_time: {field: ts, max_delay: 2x}\n",
       {},
       "s.yaml:3:38: bad duration '2x' for max_delay (expected a number with a unit: ms, s, m, "
       "h or d, e.g. 10s)"},
      {"unknown key",
       "source:\n  file: a.csv\n  evnt_time: ts\n",
       {},
       "s.yaml:3:3: unknown key 'evnt_time' in source (did you mean 'event_time'?)"},
      {"no source",
       "steps: []\n",
       {},
       "s.yaml:1:1: the spec has no source (add 'source:' with file, stdin, tcp or generate)"},
      {"two kinds",
       ok_source + "steps:\n  - filter: a\n    select: {b: b}\n",
       {},
       "s.yaml:5:5: step has both 'filter' and 'select': give one per step"},
      {"window without aggregate",
       ok_source + "steps:\n  - window: {tumbling: 1s}\n",
       {},
       "s.yaml:4:5: window needs an aggregate in the same step, e.g. 'aggregate: {n: count(*)}'"},
      {"bad format",
       "source:\n  file: {path: a, format: xml}\n",
       {},
       "s.yaml:2:27: unknown format 'xml' (expected csv, jsonl or lines)"},
      {"bad type",
       "source:\n  stdin: csv\n  schema: {a: DECIMAL}\n",
       {},
       "s.yaml:3:15: unknown type 'DECIMAL' for field 'a' (expected BIGINT, DOUBLE, BOOLEAN, "
       "VARCHAR or TIMESTAMP)"},
      {"bad parallelism",
       ok_source + "parallelism: 0\n",
       {},
       "s.yaml:3:14: parallelism must be between 1 and 1024, got 0"},
      {"bad on_error",
       ok_source + "on_error: ignore\n",
       {},
       "s.yaml:3:11: on_error must be fail, skip or {dead_letter: PATH}, got 'ignore'"},
      {"set into a value",
       ok_source,
       {"source.file.path.x=1"},
       "--set source.file.path.x=1: 'path' is a value, not a map"},
      {"bad set value",
       ok_source,
       {"parallelism=many"},
       "--set parallelism=many: parallelism: expected a whole number, got 'many'"},
      {"set index",
       ok_source + "steps:\n  - filter: a\n",
       {"steps.3.filter=b"},
       "--set steps.3.filter=b: index 3 is past the end of a list of 1"},
  };
  for (const BadSpec& c : cases) {
    Result<Spec> spec = ParseSpec(c.text, "s.yaml", {.sets = c.sets});
    ASSERT_FALSE(spec.ok()) << c.name;
    EXPECT_EQ(spec.status().message(), c.message) << c.name;
  }
}

// A stage's options are checked by the launch library's rules (as `barge run` checks its flags)
// when the spec is read, each error at the value; what needs the host (the image, host paths,
// CPUs) is the planner's (stage_test).
TEST(SpecTest, BadStageOptionsNameTheValue) {
  const std::string head = "source:\n  file: {path: a.csv}\nsteps:\n  - stage:\n      image: x:1\n";
  const std::string reserved =
      ": barge mounts the stage's rings at /run/barge/stage and its SDKs at /run/barge/sdk "
      "(mount the volume elsewhere, such as /data)";
  std::vector<BadSpec> cases = {
      {"unknown memory unit",
       head + "      memory: 12q\n",
       {},
       "s.yaml:6:15: memory: invalid size '12q': unknown unit 'q' (use b, k, m or g)"},
      {"memory below the minimum",
       head + "      memory: 1m\n",
       {},
       "s.yaml:6:15: memory 1m is below the minimum of 6m"},
      {"env without a name",
       head + "      env: {\"\": \"1\"}\n",
       {},
       "s.yaml:6:13: env: an environment variable needs a name"},
      {"env name with =",
       head + "      env: {SCALE: \"2\", \"A=B\": \"1\"}\n",
       {},
       "s.yaml:6:25: env: invalid environment variable name 'A=B': a name may not contain '='"},
      {"env barge sets",
       head + "      env: {BARGE_STAGE_DIR: /tmp}\n",
       {},
       "s.yaml:6:13: env: BARGE_STAGE_DIR is set by barge in every replica"},
      {"volume without a source",
       head + "      volumes: [\"::ro\"]\n",
       {},
       "s.yaml:6:17: invalid volume '::ro': empty source"},
      {"volume with four parts",
       head + "      volumes: [\"models:/m:rw:extra\"]\n",
       {},
       "s.yaml:6:17: invalid volume 'models:/m:rw:extra': expected SOURCE:DESTINATION[:ro]"},
      {"volume to a relative path",
       head + "      volumes: [a:/a, \"models:relative\"]\n",
       {},
       "s.yaml:6:23: invalid volume 'models:relative': destination must be an absolute path"},
      {"volume option",
       head + "      volumes:\n        - models:/m:bogus\n",
       {},
       "s.yaml:7:11: invalid volume 'models:/m:bogus': unknown option 'bogus' (use ro or rw)"},
      {"volume over the rings",
       head + "      volumes: [\"models:/run/barge/stage\"]\n",
       {},
       "s.yaml:6:17: invalid volume 'models:/run/barge/stage'" + reserved},
      {"volume inside the sdk",
       head + "      volumes: [\"/tmp:/run/barge/sdk/x\"]\n",
       {},
       "s.yaml:6:17: invalid volume '/tmp:/run/barge/sdk/x'" + reserved},
      {"volume above the rings",
       head + "      volumes: [\"/tmp:/run\"]\n",
       {},
       "s.yaml:6:17: invalid volume '/tmp:/run'" + reserved},
      {"volume twice at one destination",
       head + "      volumes: [a:/m, \"b:/m:ro\"]\n",
       {},
       "s.yaml:6:23: invalid volume 'b:/m:ro': /m is already a volume's destination"},
      {"relative workdir",
       head + "      workdir: app\n",
       {},
       "s.yaml:6:16: workdir must be an absolute path, got 'app'"},
      {"empty program",
       head + "      command: [\"\", x]\n",
       {},
       "s.yaml:6:17: the command's first word must name a program"},
      {"volume by --set",
       head,
       {"steps.0.stage.volumes=[models:relative]"},
       "--set steps.0.stage.volumes=[models:relative]: invalid volume 'models:relative': "
       "destination must be an absolute path"},
  };
  for (const BadSpec& c : cases) {
    Result<Spec> spec = ParseSpec(c.text, "s.yaml", {.sets = c.sets});
    ASSERT_FALSE(spec.ok()) << c.name;
    EXPECT_EQ(spec.status().message(), c.message) << c.name;
  }
  // What is right passes, and the planner learns where cpus and each volume are.
  Result<Spec> spec = ParseSpec(head +
                                    "      memory: 6m\n      cpus: 0.5\n      env: {A: \"=\"}\n"
                                    "      volumes: [models:/models:ro, /tmp:/data]\n",
                                "s.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  const StageSpec& g = *spec->steps[0].stage;
  EXPECT_EQ(g.env, std::vector<std::string>{"A=="});
  EXPECT_EQ(g.cpus_pos.line, 7);
  EXPECT_EQ(g.cpus_pos.col, 13);
  ASSERT_EQ(g.volume_pos.size(), 2u);
  EXPECT_EQ(g.volume_pos[1].line, 9);
  EXPECT_EQ(g.volume_pos[1].col, 36);
}

TEST(SpecTest, DeepNestingIsAnErrorNotACrash) {
  std::string deep = "source: {stdin: lines}\nname: " + std::string(100000, '[') + "\n";
  Result<Spec> spec = ParseSpec(deep, "deep.yaml");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().message(), "deep.yaml:2:71: the spec nests deeper than 64 levels");
  // Brackets in quotes and comments do not count.
  std::string fine = "source: {stdin: lines}  # " + std::string(100, '[') +
                     "\nsteps:\n  - filter: \"x = '" + std::string(100, '{') + "'\"\n";
  EXPECT_TRUE(ParseSpec(fine, "fine.yaml").ok());
}

TEST(SpecTest, Durations) {
  EXPECT_EQ(ParseDurationMs("2s"), 2000);
  EXPECT_EQ(ParseDurationMs("1.5s"), 1500);
  EXPECT_EQ(ParseDurationMs("500ms"), 500);
  EXPECT_EQ(ParseDurationMs("250"), 250);
  EXPECT_EQ(ParseDurationMs("1m"), 60000);
  EXPECT_EQ(ParseDurationMs("2h"), 7200000);
  EXPECT_EQ(ParseDurationMs("1d"), 86400000);
  EXPECT_EQ(ParseDurationMs("2x"), std::nullopt);
  EXPECT_EQ(ParseDurationMs("s"), std::nullopt);
  EXPECT_EQ(ParseDurationMs("0.5ms"), std::nullopt);
}

TEST(SpecTest, RefusesADeviceAsTheSpecFile) {
  Result<Spec> spec = LoadSpec("/dev/zero");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().message(), "/dev/zero is not a regular file or a pipe");
}

}  // namespace
}  // namespace barge::pipeline
