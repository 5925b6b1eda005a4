// barge exec [-i] [-t] [-e K=V] [--env-file F] [-w DIR] [-u USER] CONTAINER COMMAND [ARG...]:
// runs a command in a running container, as docker exec does; the exit code is the command's.
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <optional>

#include "base/file_util.h"
#include "cli/attach.h"
#include "cli/cli.h"
#include "cli/terminal.h"
#include "launch/container_options.h"
#include "runtime/container_store.h"
#include "runtime/lifecycle.h"

namespace barge::cli {
namespace {

// -w and -u default to the container's own working directory and user.
using ExecArgs = ProcessOptions;

Result<runtime::ContainerSpec> MakeSpec(const ExecArgs& args, const std::string& root,
                                        const std::string& container,
                                        std::vector<std::string> command) {
  runtime::ContainerStore store(root);
  ASSIGN_OR_RETURN(runtime::ContainerSpec spec, runtime::ExecSpec(store, container));
  spec.process.argv = std::move(command);
  for (const std::string& file : args.env_files) {
    RETURN_IF_ERROR(launch::ReadEnvFile(file, spec.process.env));
  }
  for (const std::string& entry : args.env)
    RETURN_IF_ERROR(launch::MergeEnv(spec.process.env, entry));
  if (!args.workdir.empty()) {
    if (args.workdir[0] != '/') {
      return InvalidArgument("working directory must be absolute, got '" + args.workdir + "'");
    }
    spec.process.cwd = args.workdir;
  }
  if (!args.user.empty()) spec.process.user = args.user;
  spec.terminal = args.tty;
  return spec;
}

void Exec(const ExecArgs& args, std::vector<std::string> words, Cli& cli) {
  auto fail = [&](const Status& status, int code) {
    cli.Finish(status);
    cli.SetExitCode(code);
  };
  if (words.size() < 2 || words[0].empty() || words[0][0] == '-') {
    PrintError(words.empty() || words[0].empty() || words[0][0] != '-'
                   ? "barge exec needs a CONTAINER and a COMMAND (see 'barge exec --help')"
                   : "barge exec: unknown option '" + words[0] + "' (see 'barge exec --help')");
    cli.SetExitCode(kExitBargeFailed);
    return;
  }
  std::string container = words[0];
  words.erase(words.begin());
  Result<runtime::ContainerSpec> spec = MakeSpec(args, cli.root(), container, std::move(words));
  if (!spec.ok()) return fail(spec.status(), kExitBargeFailed);
  // The command never gets barge's own descriptors (see StdioPipes): its stdio are pipes that
  // barge relays, or with -t its own terminal in the container's devpts, as docker exec does.
  std::optional<StdioPipes> pipes;
  if (!args.tty) {
    Result<StdioPipes> made = StdioPipes::Make(args.interactive);
    if (!made.ok()) return fail(made.status(), kExitBargeFailed);
    pipes.emplace(std::move(made).value());
    spec->stdio = pipes->ProcessEnds();
  }
  InstallForwarding();
  runtime::StartFailure failed_at = runtime::StartFailure::kSetUp;
  Result<runtime::Container> process = runtime::Container::Start(*spec, &failed_at);
  if (!process.ok()) return fail(process.status(), static_cast<int>(failed_at));
  SetForwardTarget(process->pid());
  if (args.tty) {
    // The command's own terminal: barge stops relaying once the command exited, even if a
    // background process it started keeps the terminal open.
    UniqueFd exited(static_cast<int>(::syscall(SYS_pidfd_open, process->pid(), 0)));
    RelayStreams streams;
    streams.exited = exited.get();
    CopyWindowSize(process->terminal());
    streams.terminal = process->terminal();
    streams.input = args.interactive ? process->terminal() : -1;
    streams.outputs = {{process->terminal(), 1}};
    std::optional<RawMode> raw;
    if (args.interactive) raw.emplace();
    Relay(streams);
  } else {
    pipes->Relay(process->pid());
  }
  Result<runtime::ExitInfo> exit = process->Wait();
  SetForwardTarget(0);
  if (!exit.ok()) return fail(exit.status(), kExitBargeFailed);
  cli.SetExitCode(exit->exit_code);
}

const Registration kExec{
    "exec", "Run a command in a running container",
    [](CLI::App& cmd, Cli& cli) {
      auto args = std::make_shared<ExecArgs>();
      AddProcessOptions(cmd, *args);
      // As with run: parsing stops at CONTAINER, and every word after it is the command's.
      cmd.prefix_command();
      cmd.footer(
          "Arguments: CONTAINER COMMAND [ARG...]\n  CONTAINER is a running container's name or "
          "id (or a unique prefix of it). The command joins its namespaces and cgroups with the "
          "container's capabilities, seccomp filter and environment.");
      cmd.fallthrough(false);
      cmd.callback([args, &cmd, &cli] { Exec(*args, cmd.remaining(), cli); });
    },
    kExitBargeFailed};

}  // namespace
}  // namespace barge::cli
