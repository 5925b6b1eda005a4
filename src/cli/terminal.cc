#include "cli/terminal.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

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

void RelayTerminal(int master, bool with_stdin) {
  struct sigaction sa {};
  sa.sa_handler = OnWinch;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGWINCH, &sa, nullptr);
  bool stdin_open = with_stdin;
  char buf[1 << 14];
  for (;;) {
    if (g_winch.exchange(false)) CopyWindowSize(master);
    pollfd fds[2] = {{master, POLLIN, 0}, {stdin_open ? 0 : -1, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::read(master, buf, sizeof buf);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        return;  // EIO: every process of the container closed the terminal
      }
      if (!WriteAll(1, std::string_view(buf, static_cast<size_t>(n)), "stdout").ok()) return;
    }
    if (stdin_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = ::read(0, buf, sizeof buf);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        stdin_open = false;
        // End of input: pass it on as the terminal's EOF character.
        (void)!::write(master, "\x04", 1);
        continue;
      }
      if (!WriteAll(master, std::string_view(buf, static_cast<size_t>(n)), "terminal").ok()) return;
    }
  }
}

}  // namespace barge::cli
