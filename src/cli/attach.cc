#include "cli/attach.h"

#include <signal.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <sstream>

#include "base/file_util.h"
#include "cli/terminal.h"

namespace barge::cli {
namespace {

// Signals for the container arrive on barge's only thread, so the handler never runs
// concurrently with SetForwardTarget. One that arrives before the container's pid is known (it
// may already be running) is kept and delivered once it is.
std::atomic<pid_t> g_forward_pid{0};
std::atomic<uint64_t> g_pending_signals{0};

void ForwardSignal(int sig) {
  pid_t pid = g_forward_pid.load();
  if (pid > 0) {
    ::kill(pid, sig);
  } else {
    g_pending_signals.fetch_or(uint64_t{1} << sig);
  }
}

}  // namespace

void SetForwardTarget(pid_t pid) {
  g_forward_pid.store(pid);
  uint64_t pending = g_pending_signals.exchange(0);
  for (int sig = 1; sig < 64 && pid > 0; ++sig) {
    if (pending & (uint64_t{1} << sig)) ::kill(pid, sig);
  }
}

void InstallForwarding() {
  struct sigaction sa {};
  sa.sa_handler = ForwardSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: waitpid returns EINTR and is retried
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2})
    ::sigaction(sig, &sa, nullptr);
}

void AddProcessOptions(CLI::App& cmd, ProcessOptions& o) {
  cmd.add_flag("-i,--interactive", o.interactive, "Keep standard input attached");
  cmd.add_flag("-t,--tty", o.tty, "Give the command a terminal (use with -i)");
  cmd.add_option("-e,--env", o.env, "Set an environment variable K=V (K alone: from barge's)");
  cmd.add_option("--env-file", o.env_files, "Read K=V lines from a file");
  cmd.add_option("-w,--workdir", o.workdir, "Working directory inside the container");
  cmd.add_option("-u,--user", o.user, "UID[:GID] or NAME[:GROUP] to run as");
}

void Attach(runtime::Container& c, bool tty, bool interactive, StdioPipes* pipes) {
  SetForwardTarget(c.pid());
  if (!tty) {
    if (pipes != nullptr) pipes->Relay(c.pid());
    return;
  }
  CopyWindowSize(c.terminal());
  std::optional<RawMode> raw;
  if (interactive) raw.emplace();
  RelayTerminal(c.terminal(), interactive);
}

}  // namespace barge::cli
