#include "stream/io/test_util.h"

namespace barge::stream {
namespace {

using iotest::IoTest;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

class CsvTest : public IoTest {
 protected:
  std::vector<std::vector<std::string>> ReadRows(std::string_view content, CsvOptions options = {},
                                                 Status* status = nullptr) {
    std::string path = Write("data.csv", content);
    Pipeline p;
    Collected<CsvRow> out;
    ReadCsv(p, path, options).collect(out);
    Status st = p.Run();
    if (status != nullptr) {
      *status = st;
    } else {
      EXPECT_TRUE(st.ok()) << st.message();
    }
    skipped_ = iotest::Skipped(p);
    std::vector<std::vector<std::string>> rows;
    for (const CsvRow& r : out.records()) rows.push_back(r.fields);
    return rows;
  }

  // The error of reading `content` with `options`, without the operator prefix.
  std::string ErrorOf(std::string_view content, CsvOptions options = {}) {
    Status st;
    ReadRows(content, options, &st);
    std::string prefix = "operator 'read_csv' failed: " + Path("data.csv") + ":";
    if (st.message().rfind(prefix, 0) != 0) return "unexpected: " + st.message();
    return "data.csv:" + st.message().substr(prefix.size());
  }

  uint64_t skipped_ = 0;
};

using Rows = std::vector<std::vector<std::string>>;

TEST_F(CsvTest, PlainFieldsAndLineEnds) {
  EXPECT_EQ(ReadRows("a,b,c\n1,2,3\r\n4,5,6"),
            (Rows{{"a", "b", "c"}, {"1", "2", "3"}, {"4", "5", "6"}}));
}

TEST_F(CsvTest, QuotedFields) {
  EXPECT_EQ(ReadRows("\"a,1\",\"say \"\"hi\"\"\",\"\"\n"
                     "\"multi\nline\r\nfield\",x,\"\"\"\"\n"),
            (Rows{{"a,1", "say \"hi\"", ""}, {"multi\nline\r\nfield", "x", "\""}}));
}

TEST_F(CsvTest, EmptyFieldsAndEmptyLines) {
  EXPECT_EQ(ReadRows(",,\n\n\r\n,x,\n"), (Rows{{"", "", ""}, {"", "x", ""}}));
}

TEST_F(CsvTest, EmptyFileAndHeaderOnly) {
  EXPECT_THAT(ReadRows(""), IsEmpty());
  EXPECT_THAT(ReadRows("a,b\n", {.header = true}), IsEmpty());
}

TEST_F(CsvTest, BareQuoteInsideUnquotedFieldIsLiteral) {
  EXPECT_EQ(ReadRows("5\" disk,x\n"), (Rows{{"5\" disk", "x"}}));
}

TEST_F(CsvTest, OtherDelimiter) {
  EXPECT_EQ(ReadRows("a;\"b;c\"\n", {.delimiter = ';'}), (Rows{{"a", "b;c"}}));
  EXPECT_EQ(ReadRows("a\tb\n", {.delimiter = '\t'}), (Rows{{"a", "b"}}));
}

TEST_F(CsvTest, HeaderGivesAccessByName) {
  std::string path = Write("people.csv", "name,age\nada,36\n\"lovelace, a\",37\n");
  Pipeline p;
  Collected<std::string> out;
  ReadCsv(p, path, {.header = true})
      .map([](const CsvRow& r) { return r.at("name") + "=" + r.at("age"); })
      .collect(out);
  ASSERT_TRUE(p.Run().ok());
  EXPECT_THAT(out.records(), ElementsAre("ada=36", "lovelace, a=37"));
}

TEST_F(CsvTest, ByteOrderMarkIsNotData) {
  std::string path = Write("bom.csv", "\xEF\xBB\xBFname,age\nada,36\n");
  Pipeline p;
  Collected<std::string> out;
  ReadCsv(p, path, {.header = true}).map([](const CsvRow& r) { return r.at("name"); }).collect(out);
  ASSERT_TRUE(p.Run().ok());
  EXPECT_THAT(out.records(), ElementsAre("ada"));
}

TEST_F(CsvTest, MissingColumnFailsNamingTheOperatorAndColumn) {
  std::string path = Write("people.csv", "name,age\nada,36\n");
  Pipeline p;
  ReadCsv(p, path, {.header = true})
      .map([](const CsvRow& r) { return r.at("height"); })
      .sink([](const std::string&) {});
  EXPECT_EQ(p.Run().message(), "operator 'map' failed: no CSV column 'height'");
}

TEST_F(CsvTest, FieldCountMismatchFails) {
  EXPECT_EQ(ErrorOf("a,b,c\n1,2,3\n4,5,6\n7,8\n"), "data.csv:4: expected 3 fields, got 2");
  // The line of a record is the line it starts on.
  EXPECT_EQ(ErrorOf("a,b\n\"x\ny\",z\n1,2,3\n", {.header = true}),
            "data.csv:4: expected 2 fields, got 3");
}

TEST_F(CsvTest, FieldCountMismatchIsSkipped) {
  EXPECT_EQ(ReadRows("a,b\n1\n2,3\n4,5,6\n7,8\n", {.on_error = OnError::kSkip}),
            (Rows{{"a", "b"}, {"2", "3"}, {"7", "8"}}));
  EXPECT_EQ(skipped_, 2u);
}

TEST_F(CsvTest, UncheckedFieldCounts) {
  EXPECT_EQ(ReadRows("a,b\n1\n", {.check_field_count = false}), (Rows{{"a", "b"}, {"1"}}));
}

TEST_F(CsvTest, UnterminatedQuotedFieldFails) {
  EXPECT_EQ(ErrorOf("a,b\n1,2\n3,\"4\n5,6\n7,8\n"), "data.csv:3: unterminated quoted field");
  // A stray quote pairs with the next one, however far: the error shows where that one is.
  EXPECT_EQ(ErrorOf("a,b\n1,2\n3,\"4\n5,6\n7,8\n12,\"x\n"),
            "data.csv:6: unexpected 'x' after closing quote");
  EXPECT_EQ(ErrorOf("a,b\n1,\"2\n\n"), "data.csv:2: unterminated quoted field");
}

TEST_F(CsvTest, UnterminatedQuotedFieldIsSkippedAndReadingResumesOnTheNextLine) {
  EXPECT_EQ(ReadRows("a,b\n1,\"2\n3,4\n", {.on_error = OnError::kSkip}),
            (Rows{{"a", "b"}, {"3", "4"}}));
  EXPECT_EQ(skipped_, 1u);
}

TEST_F(CsvTest, TextAfterClosingQuoteFails) {
  EXPECT_EQ(ErrorOf("a,b\n\"x\"y,1\n"), "data.csv:2: unexpected 'y' after closing quote");
  EXPECT_EQ(ErrorOf("a,b\n\"x\ny\"z,1\n"), "data.csv:3: unexpected 'z' after closing quote");
  EXPECT_EQ(ReadRows("a,b\n\"x\"y,1\nc,d\n", {.on_error = OnError::kSkip}),
            (Rows{{"a", "b"}, {"c", "d"}}));
}

TEST_F(CsvTest, QuotedFieldsSpanningReadBlocks) {
  // Records that straddle the reader's 1 MiB blocks, with quotes and line breaks near the seams.
  std::string content;
  Rows expected;
  for (int i = 0; content.size() < (3u << 20); ++i) {
    std::string text(static_cast<size_t>(i % 997), 'q');
    std::string quoted = "line\n\"" + std::to_string(i) + "\"," + text;
    content +=
        std::to_string(i) + ",\"" + "line\n\"\"" + std::to_string(i) + "\"\"," + text + "\"\r\n";
    expected.push_back({std::to_string(i), quoted});
  }
  EXPECT_EQ(ReadRows(content), expected);
}

TEST_F(CsvTest, WriteQuotesWhatNeedsIt) {
  Rows rows = {{"plain", "with,comma", "with \"quote\"", "multi\nline", ""}, {""}, {"a", "b"}};
  Pipeline p;
  std::vector<CsvRow> records;
  for (auto& r : rows) records.push_back(CsvRow{r, nullptr});
  WriteCsv(p.generate("rows", records.size(), [records](uint64_t i) { return records[i]; }),
           Path("out.csv"), {.header = {"h1", "h2", "h3", "h4", "h5"}});
  ASSERT_TRUE(p.Run().ok());
  EXPECT_EQ(Read(Path("out.csv")),
            "h1,h2,h3,h4,h5\n"
            "plain,\"with,comma\",\"with \"\"quote\"\"\",\"multi\nline\",\n"
            "\"\"\n"
            "a,b\n");
  EXPECT_EQ(ReadRows(Read(Path("out.csv")), {.header = true, .check_field_count = false}), rows);
}

TEST_F(CsvTest, RoundTripKeepsTheHeader) {
  std::string in = Write("in.csv", "name,note\nada,\"x, y\"\nbob,\"say \"\"hi\"\"\"\n");
  Pipeline p;
  WriteCsv(ReadCsv(p, in, {.header = true}), Path("out.csv"));
  ASSERT_TRUE(p.Run().ok());
  EXPECT_EQ(Read(Path("out.csv")), Read(in));
}

}  // namespace
}  // namespace barge::stream
