// barge: entry point. Parses global options, dispatches to the registered subcommand and
// turns its result into an exit code.
#include <fcntl.h>
#include <fmt/core.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "cli/cli.h"

#ifndef BARGE_VERSION
#define BARGE_VERSION "unknown"
#endif

namespace {

std::string DefaultRoot() {
  if (const char* env = std::getenv("BARGE_ROOT"); env != nullptr && *env != '\0') return env;
  if (::geteuid() == 0) return "/var/lib/barge";
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/barge";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "/tmp") + "/.local/share/barge";
}

// The root as an absolute path: it is handed to the runtime (overlay mounts, RUN steps) and to
// processes that run in other working directories, where a relative one would name another place.
// Lexical only (no symlinks resolved), like `podman --root`.
std::string AbsoluteRoot(const std::string& root) {
  if (root.empty() || root[0] == '/') return root;
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(root, ec);
  if (ec) return root;  // no working directory: the commands report the path they cannot use
  std::string out = abs.lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// One-line errors for command-line mistakes, pointing at the right --help; the exit code is the
// command's usage code (125 for run and exec, as Docker's).
int ReportUsageError(const CLI::App& app, const CLI::Error& e) {
  std::string where = "barge";
  int code = barge::cli::kExitUsage;
  for (const CLI::App* sub : app.get_subcommands()) {
    where += " " + sub->get_name();
    for (const CLI::App* subsub : sub->get_subcommands()) where += " " + subsub->get_name();
    for (const barge::cli::CommandInfo& command : barge::cli::Commands()) {
      if (command.name == sub->get_name()) code = command.usage_exit_code;
    }
  }
  std::string message = e.what();
  while (!message.empty() && message.back() == '\n') message.pop_back();
  barge::cli::PrintError(fmt::format("{} (see '{} --help')", message, where));
  return code;
}

// A descriptor 0, 1 or 2 that barge was started without would be taken by the first file barge
// opens, which would then be handed to a container as its stdin or stdout, or closed under it.
void OpenMissingStandardDescriptors() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) == -1 && ::open("/dev/null", O_RDWR) != fd) std::abort();
  }
}

}  // namespace

int main(int argc, char** argv) {
  OpenMissingStandardDescriptors();
  barge::cli::Cli cli;
  CLI::App app{
      "barge: build and run OCI containers, and run stream pipelines whose stages can be "
      "containers. One binary, no daemon.",
      "barge"};
  app.set_version_flag("--version", std::string("barge ") + BARGE_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  std::string root;
  app.add_option("--root", root, "State directory (default $BARGE_ROOT, else /var/lib/barge)");
  app.footer("Run 'barge COMMAND --help' for a command's options.");

  for (auto& command : barge::cli::Commands()) {
    CLI::App* sub = app.add_subcommand(command.name, command.summary);
    command.setup(*sub, cli);
    barge::cli::OneValuePerOccurrence(*sub);
  }

  // Subcommand callbacks run inside parse, once --root is known.
  app.parse_complete_callback(
      [&] { cli.set_root(AbsoluteRoot(root.empty() ? DefaultRoot() : root)); });
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (argc == 1) {
      fmt::print("{}", app.help());
      return barge::cli::kExitUsage;
    }
    // A first word that is no command deserves a plainer message than CLI11's.
    for (int i = 1; i < argc; ++i) {
      std::string word = argv[i];
      if (word == "--root") {
        ++i;
        continue;
      }
      if (word.rfind("-", 0) == 0) continue;
      bool known = false;
      for (const CLI::App* sub : app.get_subcommands({})) known = known || sub->get_name() == word;
      if (!known) {
        barge::cli::PrintError(fmt::format("unknown command '{}' (see 'barge --help')", word));
        return barge::cli::kExitUsage;
      }
      break;
    }
    return ReportUsageError(app, e);
  }
  return cli.exit_code();
}
