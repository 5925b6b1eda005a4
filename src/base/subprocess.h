// Runs a program to completion and captures what it printed. For tests, tools and
// interop (skopeo, umoci, crun); not for container processes, which the runtime owns.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "barge/status.h"

namespace barge {

struct CommandOutput {
  int exit_code = -1;      // the exit status, or 128 + signal number when killed by a signal
  std::string out;         // stdout
  std::string err;         // stderr
  bool timed_out = false;  // killed because CommandOptions::timeout passed
};

struct CommandOptions {
  std::string input;             // written to the child's stdin, which is then closed
  std::vector<std::string> env;  // "K=V" entries added to the inherited environment, replacing
                                 // its K (a later entry replaces an earlier one)
  std::string cwd;               // working directory; empty keeps ours
  // Above zero: the program runs in a process group of its own, killed (SIGKILL, the whole
  // group, so a script's children too) when it has not finished after this long.
  std::chrono::milliseconds timeout{0};
};

// Runs argv[0] (looked up in PATH) with `argv`. The Status is an error only when the program
// could not be started; a non-zero exit is reported in exit_code.
Result<CommandOutput> RunCommand(const std::vector<std::string>& argv,
                                 const CommandOptions& options = {});

}  // namespace barge
