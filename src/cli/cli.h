// The barge command line: global options and the registry of subcommands.
//
// Each subcommand lives in its own file in src/cli/ and registers itself:
//
//   static const barge::cli::Registration kImages{
//       "images", "List images in the local repository", [](CLI::App& cmd, Cli& cli) {
//         cmd.callback([&cli] { cli.Finish(ListImages(cli.root())); });
//       }};
//
// Only this layer prints for the user and chooses exit codes; it calls the libraries for
// everything else.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "barge/status.h"

namespace barge::cli {

// Exit codes shared by all commands.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // the command failed; an error line was printed
inline constexpr int kExitUsage = 2;  // the command line itself was wrong
// run and exec, whose exit code is otherwise the command's, follow Docker: 125 for any error of
// barge itself, a wrong command line included (2 could be the command's own).
inline constexpr int kExitBargeFailed = 125;

class Cli {
 public:
  // The state root: --root, else $BARGE_ROOT, else /var/lib/barge for root and
  // $XDG_DATA_HOME/barge (or ~/.local/share/barge) for others.
  const std::string& root() const { return root_; }

  // Prints "barge: error: MESSAGE" on stderr for a non-OK status and sets the exit code.
  void Finish(const Status& status);
  void SetExitCode(int code) { exit_code_ = code; }
  int exit_code() const { return exit_code_; }

  // Used by main.
  void set_root(std::string root) { root_ = std::move(root); }

 private:
  std::string root_;
  int exit_code_ = kExitOk;
};

// Prints "barge: error: MESSAGE" on stderr.
void PrintError(std::string_view message);

using SetupFn = std::function<void(CLI::App& command, Cli& cli)>;

struct Registration {
  // `usage_exit_code`: the exit code of a wrong command line (kExitBargeFailed for run, exec).
  Registration(std::string name, std::string summary, SetupFn setup,
               int usage_exit_code = kExitUsage);
};

struct CommandInfo {
  std::string name;
  std::string summary;
  SetupFn setup;
  int usage_exit_code = kExitUsage;
};

// All registered commands, sorted by name.
std::vector<CommandInfo>& Commands();

// Makes every repeatable option of `command` (and of its subcommands) take one value per
// occurrence, as Docker's do: `-e A=1 IMAGE CMD` sets A, and IMAGE stays the image (CLI11 would
// let -e swallow every word up to the next option).
void OneValuePerOccurrence(CLI::App& command);

// For the commands over several containers (kill, rm, start, stop, wait): runs `op` on each
// name in turn and prints the line it returns (the name, an exit code), or its error, so that one
// bad name does not stop the rest; the exit code is 1 if any failed.
void ForEachName(Cli& cli, const std::vector<std::string>& names,
                 const std::function<Result<std::string>(const std::string& name)>& op);

// Prints `rows` (the first is the header) as columns as wide as their widest cell, three spaces
// apart, as docker's tables: a long cell widens its column instead of running into the next.
void PrintTable(const std::vector<std::vector<std::string>>& rows);
// The same, as text.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace barge::cli
