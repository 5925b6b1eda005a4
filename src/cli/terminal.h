// `barge run -t`: relays the container's terminal (a pty in its own devpts, see
// runtime::ContainerSpec::terminal) to barge's own terminal.
#pragma once

#include <termios.h>

#include <functional>
#include <utility>
#include <vector>

namespace barge::cli {

// Puts barge's stdin in raw mode (when it is a terminal) until destroyed, so that keys such as
// Ctrl-C reach the container's terminal instead of barge.
class RawMode {
 public:
  RawMode();
  ~RawMode();
  RawMode(const RawMode&) = delete;
  RawMode& operator=(const RawMode&) = delete;

 private:
  bool active_ = false;
  termios saved_{};
};

// Gives the container's terminal the window size of barge's (when stdin is a terminal).
void CopyWindowSize(int master);

// What Relay copies: each output (a descriptor of the container's side) to barge's descriptor,
// and barge's stdin to `input`, until every output is closed or, with `exited` (a pidfd of the
// command), until the command exited and what it wrote has been copied: background processes
// that keep its pipes or terminal open do not hold barge.
struct RelayStreams {
  int input = -1;     // where stdin goes; -1: stdin is not read
  int terminal = -1;  // the container's terminal (master): ^D at end of input, window size
  std::vector<std::pair<int, int>> outputs;
  int exited = -1;
  std::function<void()> on_input_end;  // not a terminal: e.g. close the pipe
};
void Relay(const RelayStreams& streams);

// Copies `master` to stdout (and, with `with_stdin`, stdin to `master`) until every process of
// the container closed its terminal. Follows barge's window size (SIGWINCH).
void RelayTerminal(int master, bool with_stdin);

}  // namespace barge::cli
