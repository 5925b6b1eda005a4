#include <sys/resource.h>

#include <fstream>

#include "stream/io/test_util.h"

namespace barge::stream {
namespace {

using iotest::IoTest;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

class LinesTest : public IoTest {};

std::vector<std::string> ReadAll(const std::string& path, ReadOptions options = {}) {
  Pipeline p;
  Collected<std::string> out;
  ReadLines(p, path, options).collect(out);
  Status st = p.Run();
  EXPECT_TRUE(st.ok()) << st.message();
  return out.records();
}

TEST_F(LinesTest, ReadsLinesWithAndWithoutTrailingNewline) {
  EXPECT_THAT(ReadAll(Write("a.txt", "one\ntwo\nthree\n")), ElementsAre("one", "two", "three"));
  EXPECT_THAT(ReadAll(Write("b.txt", "one\ntwo\nthree")), ElementsAre("one", "two", "three"));
}

TEST_F(LinesTest, KeepsEmptyLinesAndStripsCarriageReturns) {
  EXPECT_THAT(ReadAll(Write("a.txt", "one\r\n\r\n\ntwo\r\n")), ElementsAre("one", "", "", "two"));
}

TEST_F(LinesTest, EmptyFileHasNoRecords) { EXPECT_THAT(ReadAll(Write("e.txt", "")), IsEmpty()); }

TEST_F(LinesTest, MissingFileNamesThePath) {
  Pipeline p;
  Collected<std::string> out;
  ReadLines(p, Path("missing.txt")).collect(out);
  Status st = p.Run();
  EXPECT_EQ(st.message(),
            "source 'read_lines': open " + Path("missing.txt") + ": No such file or directory");
}

TEST_F(LinesTest, OverlongLineFailsOrIsSkipped) {
  std::string path = Write("long.txt", "short\n" + std::string(100, 'x') + "\nafter\n");
  {
    Pipeline p;
    Collected<std::string> out;
    ReadLines(p, path, {.max_record_bytes = 64}).collect(out);
    EXPECT_EQ(p.Run().message(),
              "operator 'read_lines' failed: " + path + ":2: line longer than 64 bytes");
  }
  {
    Pipeline p;
    Collected<std::string> out;
    ReadLines(p, path, {.on_error = OnError::kSkip, .max_record_bytes = 64}).collect(out);
    ASSERT_TRUE(p.Run().ok());
    EXPECT_THAT(out.records(), ElementsAre("short", "after"));
    EXPECT_EQ(iotest::Skipped(p), 1u);
  }
}

// The limit counts the line break: 1000 bytes of text fit without one (a final line) and need
// 999 with one; only longer lines are malformed.
TEST_F(LinesTest, LineOfExactlyTheLimitIsAccepted) {
  const std::string k1000(1000, 'k'), k999(999, 'k');
  EXPECT_THAT(ReadAll(Write("last.txt", "a\n" + k1000), {.max_record_bytes = 1000}),
              ElementsAre("a", k1000));
  EXPECT_THAT(ReadAll(Write("only.txt", k1000), {.max_record_bytes = 1000}), ElementsAre(k1000));
  EXPECT_THAT(ReadAll(Write("nl.txt", k999 + "\n" + k999 + "\n"), {.max_record_bytes = 1000}),
              ElementsAre(k999, k999));
  for (const std::string& text : {k1000 + "\n", std::string(1001, 'k')}) {
    Pipeline p;
    Collected<std::string> out;
    std::string path = Write("over.txt", text);
    ReadLines(p, path, {.max_record_bytes = 1000}).collect(out);
    EXPECT_EQ(p.Run().message(),
              "operator 'read_lines' failed: " + path + ":1: line longer than 1000 bytes");
  }
}

TEST_F(LinesTest, LinesLongerThanABlockAreWhole) {
  std::string big(3 << 20, 'y');
  EXPECT_THAT(ReadAll(Write("big.txt", "a\n" + big + "\nb")), ElementsAre("a", big, "b"));
}

TEST_F(LinesTest, RoundTripThroughAPipeline) {
  std::string out_path = Path("out.txt");
  {
    Pipeline p;
    auto numbers = p.generate("n", 5000, [](uint64_t i) { return i; });
    WriteLines(numbers, out_path, [](uint64_t i, std::string& out) { out += std::to_string(i); });
    ASSERT_TRUE(p.Run().ok());
  }
  Pipeline p({.parallelism = 2});
  Collected<std::string> out;
  auto doubled = ReadLines(p, out_path).map([](const std::string& s) {
    return std::to_string(std::stoull(s) * 2);
  });
  WriteLines(doubled, Path("doubled.txt"));
  ReadLines(p, out_path).collect(out).parallelism(1);
  Status st = p.Run();
  ASSERT_TRUE(st.ok()) << st.message();
  std::vector<std::string> lines = out.records();
  ASSERT_EQ(lines.size(), 5000u);
  for (size_t i = 0; i < lines.size(); ++i) ASSERT_EQ(lines[i], std::to_string(i));
  // Two map instances feed two sink instances: one file each, together every record.
  std::string all = Read(Path("doubled.txt.0")) + Read(Path("doubled.txt.1"));
  EXPECT_EQ(std::count(all.begin(), all.end(), '\n'), 5000);
  EXPECT_FALSE(PathExists(Path("doubled.txt")));
}

TEST_F(LinesTest, SinkWritesEmptyFileForEmptyStream) {
  Pipeline p;
  WriteLines(ReadLines(p, Write("empty.txt", "")), Path("copy.txt"));
  ASSERT_TRUE(p.Run().ok());
  EXPECT_TRUE(PathExists(Path("copy.txt")));
  EXPECT_EQ(Read(Path("copy.txt")), "");
}

TEST_F(LinesTest, SinkWriteErrorNamesThePath) {
  Pipeline p;
  WriteLines(ReadLines(p, Write("a.txt", "x\n")), Path("no/such/dir/out.txt"));
  EXPECT_EQ(p.Run().message(), "operator 'write_lines' failed: open " +
                                   Path("no/such/dir/out.txt") + ": No such file or directory");
}

TEST_F(LinesTest, WriteErrorOnFullDeviceFailsThePipeline) {
  if (!PathExists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  Pipeline p;
  auto lines = p.generate("n", 10, [](uint64_t i) { return std::to_string(i); });
  WriteLines(lines, "/dev/full");
  EXPECT_EQ(p.Run().message(),
            "operator 'write_lines' failed: write /dev/full: No space left on device");
}

long PeakRssKb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// A million 64-byte lines (64 MB) stream through in blocks: peak memory grows far less than
// the file.
TEST_F(LinesTest, LargeFileStreamsInBoundedMemory) {
  constexpr uint64_t kLines = 1'000'000;
  std::string path = Path("large.txt");
  {
    std::ofstream f(path);
    std::string line(63, 'z');
    for (uint64_t i = 0; i < kLines; ++i) {
      std::string n = std::to_string(i);
      f.write(n.data(), static_cast<std::streamsize>(n.size()));
      f.write(line.data(), static_cast<std::streamsize>(line.size() - n.size()));
      f.put('\n');
    }
  }
  [[maybe_unused]] long before = PeakRssKb();
  Pipeline p;
  uint64_t count = 0;
  uint64_t bytes = 0;
  ReadLines(p, path).sink([&](const std::string& s) {
    ++count;
    bytes += s.size();
  });
  ASSERT_TRUE(p.Run().ok());
  EXPECT_EQ(count, kLines);
  EXPECT_EQ(bytes, kLines * 63);
#ifndef __SANITIZE_ADDRESS__  // AddressSanitizer keeps freed memory in quarantine
  long growth_kb = PeakRssKb() - before;
  EXPECT_LT(growth_kb, 24 * 1024) << "peak RSS grew by " << growth_kb << " KiB";
#endif
}

}  // namespace
}  // namespace barge::stream

namespace barge::stream {
namespace {

class SplitTest : public iotest::IoTest {};

// Reads `path` with `parallelism` source instances, each taking one byte range.
std::vector<std::string> ReadSplit(const std::string& path, int parallelism) {
  Pipeline p;
  Collected<std::string> out;
  ReadLines(p, path).parallelism(parallelism).collect(out);
  Status st = p.Run();
  EXPECT_TRUE(st.ok()) << st.message();
  std::vector<std::string> lines = out.records();
  std::sort(lines.begin(), lines.end());
  return lines;
}

TEST_F(SplitTest, ByteRangesTogetherReadEveryLineOnce) {
  std::vector<std::string> contents = {"", "a", "a\n", "\n", "\n\n\n", "ab\ncd", "a\nb\nc\nd\ne\n"};
  // Lines of irregular lengths, some empty, some longer than a whole range.
  std::string mixed;
  for (int i = 0; i < 3000; ++i) {
    mixed += std::string(static_cast<size_t>((i * 7919) % 61), static_cast<char>('a' + i % 26));
    mixed += std::to_string(i) + (i % 100 == 0 ? "\r\n" : "\n");
  }
  contents.push_back(mixed);
  contents.push_back(mixed.substr(0, mixed.size() - 1));  // no final line break
  for (size_t c = 0; c < contents.size(); ++c) {
    std::string path = Write("split" + std::to_string(c) + ".txt", contents[c]);
    std::vector<std::string> whole = ReadSplit(path, 1);
    for (int parallelism : {2, 3, 7}) {
      EXPECT_EQ(ReadSplit(path, parallelism), whole)
          << "file " << c << " (" << contents[c].size() << " bytes), parallelism " << parallelism;
    }
  }
}

TEST_F(SplitTest, ErrorsInALaterRangeNameTheRightLine) {
  std::string content;
  for (int i = 1; i <= 1000; ++i)
    content += i == 900 ? "{oops\n" : "{\"n\":" + std::to_string(i) + "}\n";
  std::string path = Write("big.jsonl", content);
  Pipeline p;
  ReadJsonLines(p, path).parallelism(3).sink([](const nlohmann::json&) {});
  EXPECT_EQ(p.Run().message(),
            "operator 'read_jsonl' failed: " + path +
                ":900: invalid JSON at column 2: syntax error while parsing object key - invalid "
                "literal; last read: '{o'; expected string literal");
}

TEST_F(SplitTest, CsvIsReadWholeByInstanceZero) {
  std::string path = Write("q.csv", "a,\"x\ny\"\nb,c\n");
  Pipeline p;
  Collected<CsvRow> out;
  ReadCsv(p, path).parallelism(3).collect(out);
  ASSERT_TRUE(p.Run().ok());
  ASSERT_EQ(out.records().size(), 2u);
}

}  // namespace
}  // namespace barge::stream
