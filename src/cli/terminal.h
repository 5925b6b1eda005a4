// `barge run -t`: relays the container's terminal (a pty in its own devpts, see
// runtime::ContainerSpec::terminal) to barge's own terminal.
#pragma once

#include <termios.h>

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

// Copies `master` to stdout (and, with `with_stdin`, stdin to `master`) until every process of
// the container closed its terminal. Follows barge's window size (SIGWINCH).
void RelayTerminal(int master, bool with_stdin);

}  // namespace barge::cli
