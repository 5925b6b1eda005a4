// The relays between barge and a container's process: its terminal (`barge run -t`, a pty in its
// own devpts, see runtime::ContainerSpec::terminal) to barge's own terminal, or its stdio pipes
// to barge's stdio.
#pragma once

#include <termios.h>

#include <functional>
#include <utility>
#include <vector>

#include "barge/status.h"
#include "base/unique_fd.h"
#include "runtime/spec.h"

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
  // barge's descriptor of output `i` failed (a closed pipe: `barge run ... | head -1`): that
  // output is no longer read, and this should close it, so that the container's writer sees the
  // closed pipe as it would have without barge in between. Unset: the relay stops.
  std::function<void(size_t i)> on_output_error;
};
void Relay(const RelayStreams& streams);

// The standard streams of a container's process without a terminal: pipes that barge relays,
// as Docker and Podman do. The process never holds barge's own descriptors: through them it
// could read the user's terminal, change its modes (stty) or reopen barge's files by
// /proc/<pid>/fd, and keep them after barge returns.
class StdioPipes {
 public:
  // Pipes for stdout and stderr and, with `input`, stdin (else the process reads /dev/null).
  static Result<StdioPipes> Make(bool input);

  // The process's ends, for ContainerSpec::stdio.
  runtime::Stdio ProcessEnds() const;

  // Once the process `pid` (a child of barge) started: closes barge's copies of its ends, then
  // copies its stdout and stderr to barge's (and barge's stdin to it, with input) until it
  // exited and what it wrote was copied; background processes that keep the pipes open do not
  // hold barge. Ignores SIGPIPE from then on: a closed stdout of barge closes the process's.
  void Relay(pid_t pid);

 private:
  UniqueFd null_;
  UniqueFd in_read_, in_write_;
  UniqueFd out_read_, out_write_;
  UniqueFd err_read_, err_write_;
};

// Copies `master` to stdout (and, with `with_stdin`, stdin to `master`) until every process of
// the container closed its terminal. Follows barge's window size (SIGWINCH).
void RelayTerminal(int master, bool with_stdin);

}  // namespace barge::cli
