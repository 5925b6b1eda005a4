#include "pipeline/text_source.h"

#include <gtest/gtest.h>

#include <cmath>

#include "base/file_util.h"
#include "pipeline/format.h"

namespace barge::pipeline {
namespace {

std::shared_ptr<const Schema> SchemaOf(const std::vector<FieldSpec>& fields) {
  auto s = std::make_shared<Schema>();
  for (const FieldSpec& f : fields) s->fields.push_back(f.field);
  return s;
}

std::vector<bool> OptionalOf(const std::vector<FieldSpec>& fields) {
  std::vector<bool> out;
  for (const FieldSpec& f : fields) out.push_back(f.optional);
  return out;
}

// Reads `text` as a whole input through a TextSource; returns its rows as JSON lines, and the
// bad records as dead letters.
struct ReadResult {
  std::vector<std::string> rows;
  std::vector<std::string> dead;
  std::vector<FieldSpec> fields;
  Status status;
};

ReadResult ReadAll(const std::string& text, TextFormat format,
                   std::optional<std::vector<FieldSpec>> declared = std::nullopt,
                   size_t batch_rows = 3) {
  ReadResult r;
  auto dir = TempDir::Make();
  std::string path = dir->path() + "/in";
  EXPECT_TRUE(WriteFile(path, text).ok());
  if (declared) {
    r.fields = *declared;
  } else {
    Result<std::vector<FieldSpec>> inferred = InferSchema(text, true, format, "in");
    if (!inferred.ok()) {
      r.status = inferred.status();
      return r;
    }
    r.fields = *inferred;
  }
  BatchPool pool;
  OnErrorSpec on_error;
  on_error.mode = OnErrorSpec::Mode::kDeadLetter;
  auto bad = BadRecords::Open(on_error, dir->path() + "/dead", {"in"});
  EXPECT_TRUE(bad.ok());
  TextSource source({.inputs = {{path, "in", 0}},
                     .format = format,
                     .schema = SchemaOf(r.fields),
                     .optional = OptionalOf(r.fields),
                     .batch_rows = batch_rows,
                     .pool = &pool,
                     .bad = bad->get()});
  r.status = source.Open(0, 1);
  while (r.status.ok()) {
    stream::Batch<BatchPtr> out;
    Result<stream::SourceState> st = source.Next(out, 1024);
    if (!st.ok()) {
      r.status = st.status();
      break;
    }
    for (const BatchPtr& b : out.records) {
      EXPECT_EQ(b->CheckShape(), "");
      EXPECT_LE(b->rows, batch_rows);
      for (size_t i = 0; i < b->rows; ++i) {
        std::string line;
        AppendJsonRow(*b, i, line);
        line += " @" + std::to_string(RecordBatch::OriginLine(b->origin[i]));
        r.rows.push_back(line);
      }
    }
    if (*st == stream::SourceState::kEnd) break;
  }
  EXPECT_TRUE((*bad)->Close().ok());
  auto dead = ReadFile(dir->path() + "/dead");
  for (size_t start = 0; dead.ok() && start < dead->size();) {
    size_t nl = dead->find('\n', start);
    r.dead.push_back(dead->substr(start, nl - start));
    start = nl + 1;
  }
  return r;
}

TEST(TextSourceTest, CsvWithQuotesLineBreaksNullsAndBadRows) {
  std::string csv =
      "ts,user,amount,note\n"
      "1,u1,1.5,plain\n"
      "2,\"u,2\",2,\"two\nlines\"\n"
      "3,u3,,\"say \"\"hi\"\"\"\n"
      "4,u4,abc,x\n"
      "5,u5,7\n"
      "\n"
      "6,\"\",8.25,\r\n"
      "7,u7,9.5,z\n";
  ReadResult r = ReadAll(csv, {Format::kCsv, ',', true});
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  ASSERT_EQ(r.fields.size(), 4u);
  EXPECT_EQ(r.fields[0].field.type, Type::kInt64);
  EXPECT_EQ(r.fields[1].field.type, Type::kString);
  EXPECT_EQ(r.fields[2].field.type, Type::kDouble);  // "abc" is one bad value in five
  EXPECT_EQ(r.rows, (std::vector<std::string>{
                        R"({"ts":1,"user":"u1","amount":1.5,"note":"plain"} @2)",
                        R"({"ts":2,"user":"u,2","amount":2.0,"note":"two\nlines"} @3)",
                        R"({"ts":3,"user":"u3","amount":null,"note":"say \"hi\""} @5)",
                        R"({"ts":6,"user":"","amount":8.25,"note":null} @9)",
                        R"({"ts":7,"user":"u7","amount":9.5,"note":"z"} @10)"}));
  ASSERT_EQ(r.dead.size(), 2u);
  EXPECT_EQ(
      r.dead[0],
      R"({"input":"in","line":6,"step":"source","error":"field 'amount': cannot read 'abc' as DOUBLE","raw":"4,u4,abc,x"})");
  EXPECT_EQ(
      r.dead[1],
      R"({"input":"in","line":7,"step":"source","error":"expected 4 fields, found 3","raw":"5,u5,7"})");
}

TEST(TextSourceTest, CsvHeaderMustHaveTheSchemasFields) {
  ReadResult r = ReadAll("a,b\n1,2\n", {Format::kCsv, ',', true},
                         std::vector<FieldSpec>{{{"a", Type::kInt64}}, {{"c", Type::kInt64}}});
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.message(), "in: the header has no field 'c' (it has: a, b)");
}

TEST(TextSourceTest, CsvUnterminatedQuoteAndTextAfterQuote) {
  ReadResult r = ReadAll("a,b\n1,\"x\"y\n2,ok\n3,\"open\n", {Format::kCsv, ',', true},
                         std::vector<FieldSpec>{{{"a", Type::kInt64}}, {{"b", Type::kString}}});
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  EXPECT_EQ(r.rows, (std::vector<std::string>{R"({"a":2,"b":"ok"} @3)"}));
  ASSERT_EQ(r.dead.size(), 2u);
  EXPECT_NE(r.dead[0].find("text after the closing quote of field 2"), std::string::npos);
  EXPECT_NE(r.dead[1].find("unterminated quoted field 2"), std::string::npos);
}

TEST(TextSourceTest, JsonLinesFlattenNestedFieldsAndKeepArraysAsText) {
  std::string jsonl =
      R"({"ts": 1, "user": {"id": 7, "name": "a"}, "tags": [1, {"x": 2}], "ok": true})"
      "\n\n"
      R"({"ts": 2, "user": {"id": 8}, "tags": [], "ok": false, "extra": 1})"
      "\n"
      R"({"ts": "3", "user": {"id": 9, "name": null}, "tags": null, "ok": true})"
      "\n"
      R"({"ts": 4.5, "user": {"id": 1}, "ok": true})"
      "\n"
      R"({"user": {"id": 1}, "ok": true})"
      "\n"
      R"([1,2])"
      "\n"
      R"({"ts": 5, "ts": 6, "user": {"id": 1}, "ok": true})"
      "\n"
      R"({"ts": 7, "user": {"id": 1}, "ok": tru})"
      "\n";
  // Enough good records that the one 4.5 among the ts values is an outlier.
  for (int i = 10; i < 16; ++i) {
    jsonl += R"({"ts": )" + std::to_string(i) +
             R"(, "user": {"id": 2}, "ok": true})"
             "\n";
  }
  ReadResult r = ReadAll(jsonl, {Format::kJsonl, ',', true});
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  ASSERT_EQ(r.fields.size(), 6u);
  EXPECT_EQ(r.fields[0].field.name, "ts");
  EXPECT_EQ(r.fields[0].field.type, Type::kInt64);
  EXPECT_FALSE(r.fields[0].optional);
  EXPECT_EQ(r.fields[1].field.name, "user.id");
  EXPECT_EQ(r.fields[2].field.name, "user.name");
  EXPECT_TRUE(r.fields[2].optional);
  EXPECT_EQ(r.fields[3].field.name, "tags");
  EXPECT_EQ(r.fields[3].field.type, Type::kString);
  EXPECT_EQ(r.fields[4].field.type, Type::kBool);
  EXPECT_EQ(r.fields[5].field.name, "extra");
  EXPECT_TRUE(r.fields[5].optional);
  r.rows.resize(3);
  EXPECT_EQ(
      r.rows,
      (std::vector<std::string>{
          R"({"ts":1,"user.id":7,"user.name":"a","tags":"[1,{\"x\":2}]","ok":true,"extra":null} @1)",
          R"({"ts":2,"user.id":8,"user.name":null,"tags":"[]","ok":false,"extra":1} @3)",
          R"({"ts":3,"user.id":9,"user.name":null,"tags":null,"ok":true,"extra":null} @4)"}));
  ASSERT_EQ(r.dead.size(), 5u);
  EXPECT_NE(r.dead[0].find("field 'ts': cannot read 4.5 as BIGINT"), std::string::npos);
  EXPECT_NE(r.dead[0].find("\"line\":5"), std::string::npos);
  EXPECT_NE(r.dead[1].find("missing field 'ts'"), std::string::npos);
  EXPECT_NE(r.dead[2].find("expected a JSON object, found an array"), std::string::npos);
  EXPECT_NE(r.dead[3].find("field 'ts' appears twice"), std::string::npos);
  EXPECT_NE(r.dead[4].find("invalid JSON"), std::string::npos);
}

TEST(TextSourceTest, LinesKeepEveryLineAndALastOneWithoutBreak) {
  ReadResult r = ReadAll("a\n\nb\r\nc", {Format::kLines, ',', true});
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.rows, (std::vector<std::string>{R"({"line":"a"} @1)", R"({"line":""} @2)",
                                              R"({"line":"b"} @3)", R"({"line":"c"} @4)"}));
}

// The limit counts the line break: a last line of exactly kMaxRecordBytes without one is whole.
TEST(TextSourceTest, RecordOfExactlyTheLimitIsAccepted) {
  const std::string big(kMaxRecordBytes, 'x');
  ReadResult r = ReadAll("a\n" + big, {Format::kLines, ',', true});
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  EXPECT_EQ(r.rows.size(), 2u);
  EXPECT_TRUE(r.dead.empty());
  r = ReadAll("a\n" + big + "x", {Format::kLines, ',', true});
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  EXPECT_EQ(r.rows.size(), 1u);
  ASSERT_EQ(r.dead.size(), 1u);
  EXPECT_NE(r.dead[0].find("record longer than 16777216 bytes"), std::string::npos);
}

TEST(TextSourceTest, InferenceReadsTimestampsBooleansAndHeaderlessColumns) {
  auto fields = InferSchema("2024-01-01T00:00:00Z,true,1\n2024-01-02 10:00,false,2\n", true,
                            {Format::kCsv, ',', false}, "x");
  ASSERT_TRUE(fields.ok()) << fields.status().message();
  ASSERT_EQ(fields->size(), 3u);
  EXPECT_EQ((*fields)[0].field.name, "column0");
  EXPECT_EQ((*fields)[0].field.type, Type::kTimestamp);
  EXPECT_EQ((*fields)[1].field.type, Type::kBool);
  EXPECT_EQ((*fields)[2].field.type, Type::kInt64);
  auto dup = InferSchema("a,a\n1,2\n", true, {Format::kCsv, ',', true}, "x");
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().message(), "x: the CSV header names 'a' twice");
}

TEST(FormatTest, ValuesParseAndPrint) {
  EXPECT_EQ(ParseTimestamp("1970-01-01T00:00:01.5Z"), 1500);
  EXPECT_EQ(ParseTimestamp("2024-02-29 12:00:00+01:00"), 1709204400000);
  EXPECT_EQ(ParseTimestamp("2023-02-29"), std::nullopt);
  EXPECT_EQ(ParseTimestamp("12345"), 12345);
  std::string out;
  AppendTimestamp(-1, out);
  EXPECT_EQ(out, "1969-12-31T23:59:59.999Z");
  out.clear();
  AppendDouble(1200.0, out, true);
  out += ' ';
  AppendDouble(0.1, out, true);
  out += ' ';
  AppendDouble(1e300 * 1e10, out, true);
  EXPECT_EQ(out, "1200.0 0.1 null");
  out.clear();
  AppendJsonString("a\"\\\x01\xff", out);
  EXPECT_EQ(out, "\"a\\\"\\\\\\u0001\xEF\xBF\xBD\"");
  EXPECT_EQ(ParseBool("Yes"), true);
  EXPECT_EQ(ParseInt64(" +42 "), 42);
  EXPECT_EQ(ParseInt64("4x"), std::nullopt);
  EXPECT_EQ(ParseDouble("1e3"), 1000.0);
}

// The writer's fast path (cached keys, a local row buffer) gives the same text as the plain
// escaping for every type, for values longer than its buffer, and after the schema changes.
TEST(FormatTest, JsonRowWriterMatchesPlainEscaping) {
  const std::string long_name(3000, 'n');
  auto first = std::make_shared<Schema>(Schema{{{"i", Type::kInt64},
                                                {"d", Type::kDouble},
                                                {"b", Type::kBool},
                                                {"s", Type::kString},
                                                {"t", Type::kTimestamp},
                                                {"z", Type::kNull},
                                                {long_name, Type::kString}}});
  RecordBatch b;
  b.Reset(first);
  b.columns[0].AppendInt(INT64_MIN);
  b.columns[1].AppendDouble(3.0);
  b.columns[2].AppendBool(false);
  b.columns[3].AppendString(std::string(5000, 'x') + "\"\xc3\xbc");
  b.columns[4].AppendInt(0);
  b.columns[5].AppendNull();
  b.columns[6].AppendString("tab\there");
  b.columns[0].AppendNull();
  b.columns[1].AppendDouble(std::nan(""));
  b.columns[2].AppendBool(true);
  b.columns[3].AppendString("");
  b.columns[4].AppendNull();
  b.columns[5].AppendNull();
  b.columns[6].AppendNull();
  b.rows = 2;
  ASSERT_EQ(b.CheckShape(), "");
  JsonRowWriter writer;
  std::string out;
  writer.Append(b, 0, out);
  out += '\n';
  writer.Append(b, 1, out);
  const std::string want =
      "{\"i\":-9223372036854775808,\"d\":3.0,\"b\":false,\"s\":\"" + std::string(5000, 'x') +
      "\\\"\xc3\xbc\",\"t\":\"1970-01-01T00:00:00.000Z\",\"z\":null,\"" + long_name +
      "\":\"tab\\there\"}\n{\"i\":null,\"d\":null,\"b\":true,\"s\":\"\",\"t\":null,\"z\":null,\"" +
      long_name + "\":null}";
  EXPECT_EQ(out, want);

  // A second schema with the same number of fields gets its own names.
  auto second = std::make_shared<Schema>(Schema{{{"a\"q", Type::kInt64}}});
  RecordBatch c;
  c.Reset(second);
  c.columns[0].AppendInt(7);
  c.rows = 1;
  out.clear();
  writer.Append(c, 0, out);
  EXPECT_EQ(out, "{\"a\\\"q\":7}");

  RecordBatch empty;
  empty.Reset(std::make_shared<Schema>());
  empty.rows = 1;
  out.clear();
  writer.Append(empty, 0, out);
  EXPECT_EQ(out, "{}");
}

}  // namespace
}  // namespace barge::pipeline
