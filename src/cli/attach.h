// The foreground side of `barge run` and `barge exec`: environment options, forwarding barge's
// signals to the container's process, and relaying its terminal.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "barge/status.h"
#include "cli/terminal.h"
#include "runtime/process.h"

namespace barge::cli {

// The options of the process that run and exec start: -i, -t, -e, --env-file, -w, -u.
struct ProcessOptions {
  bool interactive = false;
  bool tty = false;
  std::vector<std::string> env;
  std::vector<std::string> env_files;
  std::string workdir;
  std::string user;
};
void AddProcessOptions(CLI::App& cmd, ProcessOptions& options);

// SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to barge are sent on to the process
// set with SetForwardTarget (0: none yet; signals that arrive then are kept and sent on once a
// target is set).
void InstallForwarding();
void SetForwardTarget(pid_t pid);

// Once `c` runs: forwards signals to it and relays its stdio: with `tty` its terminal to barge's
// (in raw mode, with stdin when `interactive`) until the container's side closes, else `pipes`
// until it exits.
void Attach(runtime::Container& c, bool tty, bool interactive, StdioPipes* pipes);

}  // namespace barge::cli
