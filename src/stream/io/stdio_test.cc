#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "stream/io/test_util.h"

namespace barge::stream {
namespace {

using iotest::IoTest;
using ::testing::ElementsAre;

// Points `target_fd` (0 or 1) at `fd` until destroyed, then restores the original.
class Redirect {
 public:
  Redirect(int target_fd, int fd) : target_(target_fd), saved_(::dup(target_fd)) {
    EXPECT_GE(saved_.get(), 0);
    EXPECT_EQ(::dup2(fd, target_fd), target_fd);
  }
  ~Redirect() { ::dup2(saved_.get(), target_); }

 private:
  int target_;
  UniqueFd saved_;
};

struct Pipe {
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    read_end.Reset(fds[0]);
    write_end.Reset(fds[1]);
  }
  UniqueFd read_end;
  UniqueFd write_end;
};

class StdioTest : public IoTest {};

TEST_F(StdioTest, ReadsStdinFromAPipeAsItArrives) {
  Pipe pipe;
  Redirect stdin_from_pipe(STDIN_FILENO, pipe.read_end.get());
  pipe.read_end.Reset();
  // The writer pauses mid-line, longer than the source's wait, so the source idles in between.
  std::jthread writer([fd = std::move(pipe.write_end)] {
    ASSERT_TRUE(WriteAll(fd.get(), "first\nsec", "pipe").ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    ASSERT_TRUE(WriteAll(fd.get(), "ond\r\nthird", "pipe").ok());
  });  // closing the write end ends the input
  Pipeline p;
  Collected<std::string> out;
  ReadStdin(p).collect(out);
  Status st = p.Run();
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_THAT(out.records(), ElementsAre("first", "second", "third"));
}

TEST_F(StdioTest, CancelStopsAWaitingStdinSourcePromptly) {
  Pipe pipe;
  Redirect stdin_from_pipe(STDIN_FILENO, pipe.read_end.get());
  Pipeline p;
  Collected<std::string> out;
  ReadStdin(p).collect(out);
  std::jthread canceller([&p] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    p.Cancel();
  });
  auto start = std::chrono::steady_clock::now();
  Status st = p.Run();
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(st.code(), StatusCode::kCancelled);
  EXPECT_LT(elapsed, std::chrono::seconds(2));
}

TEST_F(StdioTest, JsonLinesFromStdinNameItInErrors) {
  Pipe pipe;
  Redirect stdin_from_pipe(STDIN_FILENO, pipe.read_end.get());
  pipe.read_end.Reset();
  ASSERT_TRUE(WriteAll(pipe.write_end.get(), "{}\n{\n", "pipe").ok());
  pipe.write_end.Reset();
  Pipeline p;
  ReadJsonLines(p, "-").sink([](const nlohmann::json&) {});
  EXPECT_EQ(p.Run().message(),
            "operator 'read_jsonl' failed: <stdin>:2: invalid JSON at column 2: syntax error while "
            "parsing object key - unexpected end of input; expected string literal");
}

TEST_F(StdioTest, WritesStdout) {
  Result<UniqueFd> file = OpenFile(Path("stdout.txt"), O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(file.ok());
  {
    Pipeline p({.parallelism = 2});
    auto squares = p.generate("n", 1000, [](uint64_t i) { return i * i; });
    Redirect stdout_to_file(STDOUT_FILENO, file->get());
    WriteStdout(squares, [](uint64_t v, std::string& out) { out += std::to_string(v); });
    Status st = p.Run();
    ASSERT_TRUE(st.ok()) << st.message();
  }
  std::string text = Read(Path("stdout.txt"));
  // Two instances share stdout: each line whole, all lines present.
  std::vector<uint64_t> values;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    values.push_back(std::stoull(text.substr(start, nl - start)));
  }
  EXPECT_EQ(start, text.size());
  std::sort(values.begin(), values.end());
  ASSERT_EQ(values.size(), 1000u);
  for (uint64_t i = 0; i < 1000; ++i) ASSERT_EQ(values[i], i * i);
}

}  // namespace
}  // namespace barge::stream
