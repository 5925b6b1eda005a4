// Word count over event-time windows: reads "TIMESTAMP_MS text..." lines from a file (or "-"
// for stdin), counts words per 10-second tumbling window, and prints "start end word count".
//
//   build/examples/word_count input.txt
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "barge/stream/io.h"
#include "barge/stream/pipeline.h"

using namespace barge::stream;

struct Word {
  std::string text;
  EventTime time;
};

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: word_count FILE|-\n");
    return 2;
  }
  Pipeline p({.parallelism = 2});
  ReadLines(p, argv[1])
      .flat_map<Word>([](const std::string& line, Emitter<Word>& emit) {
        size_t space = line.find(' ');
        EventTime time = std::strtoll(line.c_str(), nullptr, 10);
        std::string_view rest(line);
        rest.remove_prefix(space == std::string::npos ? line.size() : space + 1);
        while (!rest.empty()) {
          size_t end = rest.find(' ');
          if (end != 0) emit(Word{std::string(rest.substr(0, end)), time});
          if (end == std::string_view::npos) break;
          rest.remove_prefix(end + 1);
        }
      })
      .with_timestamps([](const Word& w) { return w.time; }, /*max_out_of_orderness=*/1000)
      .key_by([](const Word& w) { return w.text; })
      .window(Tumbling{10'000})
      .count()
      .sink([](const WindowResult<std::string, uint64_t>& r) {
        std::printf("%lld %lld %s %llu\n", static_cast<long long>(r.start),
                    static_cast<long long>(r.end), r.key.c_str(),
                    static_cast<unsigned long long>(r.value));
      })
      .parallelism(1);
  barge::Status st = p.Run();
  if (!st.ok()) {
    std::fprintf(stderr, "word_count: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}
