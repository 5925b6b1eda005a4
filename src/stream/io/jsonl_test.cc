#include "stream/io/test_util.h"

namespace barge::stream {
namespace {

using iotest::IoTest;
using nlohmann::json;
using ::testing::ElementsAre;

class JsonLinesTest : public IoTest {};

TEST_F(JsonLinesTest, RoundTripThroughAPipeline) {
  std::string in = Write("in.jsonl",
                         "{\"id\":1,\"tags\":[\"a\",\"b\"]}\n"
                         "\n"
                         "{\"id\":2,\"name\":\"x\\ny\"}\r\n"
                         "  \n"
                         "[1,2,3]\n"
                         "\"text\"");  // no trailing newline
  std::string out_path = Path("out.jsonl");
  {
    Pipeline p;
    WriteJsonLines(ReadJsonLines(p, in), out_path);
    Status st = p.Run();
    ASSERT_TRUE(st.ok()) << st.message();
  }
  EXPECT_EQ(Read(out_path),
            "{\"id\":1,\"tags\":[\"a\",\"b\"]}\n"
            "{\"id\":2,\"name\":\"x\\ny\"}\n"
            "[1,2,3]\n"
            "\"text\"\n");
  Pipeline p;
  Collected<json> out;
  ReadJsonLines(p, out_path).collect(out);
  ASSERT_TRUE(p.Run().ok());
  std::vector<json> records = out.records();
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0]["tags"][1], "b");
  EXPECT_EQ(records[1]["name"], "x\ny");
}

TEST_F(JsonLinesTest, MalformedLineFailsNamingFileAndLine) {
  std::string path = Write("events.jsonl", "{\"a\":1}\n{\"a\":2}\n{\"a\":\n{\"a\":4}\n");
  Pipeline p;
  Collected<json> out;
  ReadJsonLines(p, path).collect(out);
  EXPECT_EQ(p.Run().message(),
            "operator 'read_jsonl' failed: " + path +
                ":3: invalid JSON at column 6: syntax error while parsing value - unexpected "
                "end of input; expected '[', '{', or a literal");
}

TEST_F(JsonLinesTest, MalformedLinesAreSkippedAndCounted) {
  std::string path = Write("events.jsonl", "{\"a\":1}\nnot json\n{\"a\":3}\n{\"a\":4} {\"b\":5}\n");
  Pipeline p;
  Collected<json> out;
  ReadJsonLines(p, path, {.on_error = OnError::kSkip}).collect(out);
  ASSERT_TRUE(p.Run().ok());
  EXPECT_THAT(out.records(), ElementsAre(json{{"a", 1}}, json{{"a", 3}}));
  EXPECT_EQ(iotest::Skipped(p), 2u);
}

TEST_F(JsonLinesTest, TrailingGarbageIsMalformed) {
  std::string path = Write("e.jsonl", "{\"a\":4} {\"b\":5}\n");
  Pipeline p;
  ReadJsonLines(p, path).sink([](const json&) {});
  EXPECT_EQ(p.Run().message(),
            "operator 'read_jsonl' failed: " + path +
                ":1: invalid JSON at column 9: syntax error while parsing value - unexpected '{'; "
                "expected end of input");
}

struct Point {
  int x;
  int y;
};
void to_json(json& j, const Point& p) { j = json{{"x", p.x}, {"y", p.y}}; }

TEST_F(JsonLinesTest, WritesAnyTypeWithToJson) {
  Pipeline p;
  WriteJsonLines(p.generate("points", 3,
                            [](uint64_t i) {
                              return Point{int(i), int(i * i)};
                            }),
                 Path("points.jsonl"));
  ASSERT_TRUE(p.Run().ok());
  EXPECT_EQ(Read(Path("points.jsonl")),
            "{\"x\":0,\"y\":0}\n{\"x\":1,\"y\":1}\n{\"x\":2,\"y\":4}\n");
}

}  // namespace
}  // namespace barge::stream
