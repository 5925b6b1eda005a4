#include "cli/terminal.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "base/unique_fd.h"

namespace barge::cli {
namespace {

std::atomic<bool> g_winch{false};

void OnWinch(int) { g_winch.store(true); }

}  // namespace

void CopyWindowSize(int master) {
  winsize ws{};
  if (::ioctl(0, TIOCGWINSZ, &ws) == 0) ::ioctl(master, TIOCSWINSZ, &ws);
}

RawMode::RawMode() {
  if (!::isatty(0)) return;
  if (::tcgetattr(0, &saved_) != 0) return;
  termios raw = saved_;
  ::cfmakeraw(&raw);
  active_ = ::tcsetattr(0, TCSANOW, &raw) == 0;
}

RawMode::~RawMode() {
  if (active_) ::tcsetattr(0, TCSANOW, &saved_);
}

void Relay(const RelayStreams& streams) {
  struct sigaction sa {};
  sa.sa_handler = OnWinch;
  sigemptyset(&sa.sa_mask);
  if (streams.terminal >= 0) ::sigaction(SIGWINCH, &sa, nullptr);
  // A pipe as input is written without blocking, through `pending`: a process that does not read
  // its input while it writes output must not stop barge from relaying that output.
  const bool input_is_pipe = streams.input >= 0 && streams.terminal < 0;
  if (input_is_pipe) {
    int flags = ::fcntl(streams.input, F_GETFL);
    if (flags >= 0) ::fcntl(streams.input, F_SETFL, flags | O_NONBLOCK);
  }
  std::string pending;
  bool reading_input = streams.input >= 0;
  bool input_ended = false;  // stdin ended: close the input once `pending` is written
  auto end_input = [&] {
    reading_input = false;
    input_ended = false;
    pending.clear();
    if (streams.terminal >= 0) {
      (void)!::write(streams.terminal, "\x04", 1);  // the terminal's EOF character
    } else if (streams.on_input_end) {
      streams.on_input_end();
    }
  };
  auto flush = [&] {
    while (!pending.empty()) {
      ssize_t n = ::write(streams.input, pending.data(), pending.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n < 0) {  // the process closed its input: drop the rest
        pending.clear();
        reading_input = false;
        input_ended = false;
        if (streams.on_input_end) streams.on_input_end();
        return;
      }
      pending.erase(0, static_cast<size_t>(n));
    }
    if (input_ended) end_input();
  };
  std::vector<pollfd> fds;
  for (const auto& [from, to] : streams.outputs) fds.push_back({from, POLLIN, 0});
  const size_t input_slot = fds.size();
  fds.push_back({-1, POLLIN, 0});
  const size_t input_out_slot = fds.size();
  fds.push_back({-1, POLLOUT, 0});
  const size_t exit_slot = fds.size();
  fds.push_back({streams.exited, POLLIN, 0});
  size_t open_outputs = streams.outputs.size();
  bool draining = false;  // the process exited: copy what is left, then stop
  char buf[1 << 14];
  while (open_outputs > 0) {
    if (streams.terminal >= 0 && g_winch.exchange(false)) CopyWindowSize(streams.terminal);
    fds[input_slot].fd = reading_input && !input_ended && pending.empty() && !draining ? 0 : -1;
    fds[input_out_slot].fd = !pending.empty() && !draining ? streams.input : -1;
    int ready = ::poll(fds.data(), fds.size(), draining ? 0 : -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (ready == 0) return;  // drained
    for (size_t i = 0; i < streams.outputs.size(); ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {  // EOF, or EIO once every process closed the terminal
        fds[i].fd = -1;
        --open_outputs;
        continue;
      }
      if (!WriteAll(streams.outputs[i].second, std::string_view(buf, static_cast<size_t>(n)),
                    "output")
               .ok()) {
        if (!streams.on_output_error) return;
        fds[i].fd = -1;
        --open_outputs;
        streams.on_output_error(i);
      }
    }
    if (fds[input_out_slot].fd >= 0 && fds[input_out_slot].revents != 0) flush();
    if (fds[input_slot].fd >= 0 && (fds[input_slot].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = ::read(0, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        input_ended = true;
        flush();
      } else if (input_is_pipe) {
        pending.assign(buf, static_cast<size_t>(n));
        flush();
      } else if (!WriteAll(streams.input, std::string_view(buf, static_cast<size_t>(n)), "input")
                      .ok()) {
        reading_input = false;
      }
    }
    if (fds[exit_slot].fd >= 0 && (fds[exit_slot].revents & POLLIN)) {
      fds[exit_slot].fd = -1;
      draining = true;
    }
  }
}

void RelayTerminal(int master, bool with_stdin) {
  Relay({.input = with_stdin ? master : -1, .terminal = master, .outputs = {{master, 1}}});
}

Result<StdioPipes> StdioPipes::Make(bool input) {
  StdioPipes p;
  ASSIGN_OR_RETURN(p.null_, OpenFile("/dev/null", O_RDONLY));
  int fds[2];
  auto make = [&](UniqueFd& read_end, UniqueFd& write_end) -> Status {
    if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("pipe for the container's stdio");
    read_end.Reset(fds[0]);
    write_end.Reset(fds[1]);
    return Status::Ok();
  };
  if (input) RETURN_IF_ERROR(make(p.in_read_, p.in_write_));
  RETURN_IF_ERROR(make(p.out_read_, p.out_write_));
  RETURN_IF_ERROR(make(p.err_read_, p.err_write_));
  return p;
}

runtime::Stdio StdioPipes::ProcessEnds() const {
  return {in_read_ ? in_read_.get() : null_.get(), out_write_.get(), err_write_.get()};
}

void StdioPipes::Relay(pid_t pid) {
  in_read_.Reset();
  out_write_.Reset();
  err_write_.Reset();
  null_.Reset();
  ::signal(SIGPIPE, SIG_IGN);
  UniqueFd exited(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  RelayStreams streams;
  streams.exited = exited.get();  // -1 without pidfds: until both outputs end
  streams.input = in_write_ ? in_write_.get() : -1;
  streams.on_input_end = [this] { in_write_.Reset(); };
  streams.outputs = {{out_read_.get(), 1}, {err_read_.get(), 2}};
  streams.on_output_error = [this](size_t i) { (i == 0 ? out_read_ : err_read_).Reset(); };
  cli::Relay(streams);
  in_write_.Reset();
}

}  // namespace barge::cli
