// barge run: creates a container from an image (or a root file system directory) and runs it,
// in the foreground (exit code = the command's) or detached (-d: prints the id).
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <set>
#include <sstream>

#include "base/file_util.h"
#include "cli/attach.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/registry_flags.h"
#include "launch/container_options.h"
#include "oci/image_store.h"
#include "oci/registry.h"
#include "runtime/cgroups.h"
#include "runtime/container_store.h"
#include "runtime/lifecycle.h"
#include "runtime/volumes.h"

namespace barge::cli {
namespace {

struct RunArgs : ProcessOptions {
  bool rm = false;
  bool detach = false;
  std::string name;
  std::string entrypoint;
  bool entrypoint_set = false;
  std::string hostname;
  std::vector<std::string> volumes;
  std::vector<std::string> tmpfs;
  std::string memory;
  double cpus = 0;
  int64_t pids_limit = 0;
  std::string network = "none";
  bool read_only = false;
  bool init = false;
  bool rootfs_flag = false;  // --rootfs: IMAGE names a directory
  std::string rootfs;
  std::string cgroup_parent = runtime::kDefaultCgroupParent;
  std::string image;
  std::string pull = "missing";
  std::string platform;
  bool quiet = false;  // -q: no pull progress or summary
};

// The image, pulled first when it is missing from the store and --pull says so (with progress
// on a terminal); an unknown image under --pull never is an error naming the commands that add one.
Result<oci::Image> ResolveOrPullImage(const std::string& root, const RunArgs& args) {
  const std::string& name = args.image;
  ASSIGN_OR_RETURN(oci::PullPolicy policy, oci::ParsePullPolicy(args.pull));
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  oci::PullOptions pull;
  pull.platform = args.platform;
  TransferDisplay display(!args.quiet, "Pulling");
  pull.progress = display.Callback();
  bool pulled = false;
  Result<oci::Image> image = [&] {
    InterruptTransfers interrupts;
    return oci::ResolveOrPull(store, name, policy, pull, &pulled);
  }();
  display.Finish();
  if (!image.ok()) {
    if (image.status().code() == StatusCode::kNotFound && policy == oci::PullPolicy::kNever) {
      return NotFound("unknown image '" + name +
                      "': not in the local repository (see 'barge images', 'barge pull', "
                      "'barge load')");
    }
    return image.status();
  }
  if (pulled && !args.quiet) {
    fmt::print(stderr, "Pulled {} ({})\n", image->tags.empty() ? name : image->tags[0],
               image->manifest.digest);
  }
  return image;
}

// The container the options describe, as the runtime takes it.
Result<runtime::ContainerConfig> BuildConfig(const RunArgs& args, std::vector<std::string> command,
                                             const std::string& root) {
  launch::ContainerOptions o;
  o.image = args.rootfs_flag ? args.rootfs : args.image;
  o.rootfs = args.rootfs_flag;
  if (!args.rootfs_flag && !args.image.empty()) {
    ASSIGN_OR_RETURN(o.resolved, ResolveOrPullImage(root, args));
  }
  o.command = std::move(command);
  if (args.entrypoint_set) o.entrypoint = args.entrypoint;
  o.env = args.env;
  o.env_files = args.env_files;
  o.workdir = args.workdir;
  o.user = args.user;
  o.hostname = args.hostname;
  o.name = args.name;
  o.volumes = args.volumes;
  o.tmpfs = args.tmpfs;
  o.memory = args.memory;
  o.cpus = args.cpus;
  o.pids_limit = args.pids_limit;
  o.network = args.network;
  o.read_only = args.read_only;
  o.init = args.init;
  o.cgroup_parent = args.cgroup_parent;
  o.rm = args.rm;
  o.detach = args.detach;
  o.tty = args.tty;
  return launch::MakeContainerConfig(root, o);
}

void Run(RunArgs& args, std::vector<std::string> command, Cli& cli) {
  auto fail = [&](const Status& status, int code) {
    cli.Finish(status);
    cli.SetExitCode(code);
  };
  if (args.rootfs_flag) args.rootfs = args.image;
  Result<runtime::ContainerConfig> config = BuildConfig(args, std::move(command), cli.root());
  if (!config.ok()) return fail(config.status(), kExitBargeFailed);
  // The pipes of the container's stdio exist before it does: a failure leaves nothing behind.
  std::optional<StdioPipes> pipes;
  if (!args.detach && !args.tty) {
    Result<StdioPipes> made = StdioPipes::Make(args.interactive);
    if (!made.ok()) return fail(made.status(), kExitBargeFailed);
    pipes.emplace(std::move(made).value());
  }
  runtime::ContainerStore store(cli.root());
  Result<runtime::ContainerRecord> record = store.Create(std::move(config).value());
  if (!record.ok()) return fail(record.status(), kExitBargeFailed);
  runtime::StartFailure failed_at = runtime::StartFailure::kSetUp;
  if (args.detach) {
    Status st = runtime::RunDetached(store, *record, &failed_at);
    if (!st.ok()) return fail(st, static_cast<int>(failed_at));
    fmt::print("{}\n", record->config.id);
    return;
  }
  // With -t the container's own terminal is its stdio instead.
  runtime::Stdio stdio = pipes ? pipes->ProcessEnds() : runtime::Stdio{};
  InstallForwarding();
  std::string name = record->config.name;
  long long memory = record->config.limits.memory_bytes;
  Result<runtime::ExitInfo> exit = runtime::RunAttached(
      store, std::move(record).value(), stdio,
      [&](runtime::Container& c) {
        Attach(c, args.tty, args.interactive, pipes ? &*pipes : nullptr);
      },
      &failed_at);
  SetForwardTarget(0);
  if (!exit.ok()) return fail(exit.status(), static_cast<int>(failed_at));
  if (exit->oom_killed) {
    PrintError(fmt::format("container {} ran out of memory (limit {} MiB) and was OOM-killed", name,
                           memory >> 20));
  }
  cli.SetExitCode(exit->exit_code);
}

const Registration kRun{
    "run", "Run a command in a new container",
    [](CLI::App& cmd, Cli& cli) {
      auto args = std::make_shared<RunArgs>();
      cmd.add_flag("--rm", args->rm, "Remove the container when it exits");
      cmd.add_flag("-d,--detach", args->detach, "Run in the background and print the container id");
      cmd.add_option("--name", args->name, "Name of the container");
      AddProcessOptions(cmd, *args);
      cmd.add_option_function<std::string>(
          "--entrypoint",
          [args](const std::string& e) {
            args->entrypoint = e;
            args->entrypoint_set = true;
          },
          "Override the image's entrypoint");
      cmd.add_option("--hostname", args->hostname, "Hostname (default: the short container id)");
      cmd.add_option("-v,--volume", args->volumes, "Mount NAME:/DST[:ro] or /HOST:/DST[:ro]");
      cmd.add_option(
          "--tmpfs", args->tmpfs,
          "Mount a tmpfs: DST[:OPTIONS] (rw/ro, noexec by default or exec, size=, mode=)");
      cmd.add_option("-m,--memory", args->memory, "Memory limit (e.g. 256m); no swap beyond it");
      cmd.add_option("--cpus", args->cpus, "CPU limit in cores (e.g. 1.5)");
      cmd.add_option("--pids-limit", args->pids_limit, "Maximum number of processes");
      cmd.add_option("--network,--net", args->network, "none (loopback only, default) or host");
      cmd.add_flag("--read-only", args->read_only, "Mount the root file system read-only");
      cmd.add_flag("--init", args->init,
                   "Run a small init as pid 1 that forwards signals and reaps orphans");
      cmd.add_flag("--rootfs", args->rootfs_flag,
                   "IMAGE is a directory to use as the root file system, as podman run --rootfs "
                   "(kept unchanged: writes go to the container's own layer)");
      cmd.add_option("--pull", args->pull,
                     "Pull the image: missing (default: when it is not in the local "
                     "repository), always, never");
      cmd.add_option("--platform", args->platform,
                     "OS/ARCH[/VARIANT] to pull from a multi-platform image");
      cmd.add_flag("-q,--quiet", args->quiet,
                   "Print nothing of a pull the run needs (its progress and summary)");
      cmd.add_option("--cgroup-parent", args->cgroup_parent,
                     "Parent of the container's cgroup in each hierarchy (default barge)");
      // IMAGE and the command are not CLI11 positionals: parsing stops at IMAGE and every word
      // after it reaches the command untouched (options, "--", and "[a,b]", which a positional
      // would split).
      cmd.prefix_command();
      cmd.footer(
          "Arguments: IMAGE [COMMAND [ARG...]]\n  IMAGE is the image to run (a directory with "
          "--rootfs); COMMAND and its arguments replace the image's Cmd. Every word after IMAGE "
          "belongs to the command.");
      cmd.fallthrough(false);
      cmd.callback([args, &cmd, &cli] {
        std::vector<std::string> words = cmd.remaining();
        if (words.empty()) {
          PrintError("barge run needs an IMAGE (see 'barge run --help')");
          cli.SetExitCode(kExitBargeFailed);
          return;
        }
        if (words[0].size() > 1 && words[0][0] == '-') {
          PrintError("barge run: unknown option '" + words[0] + "' (see 'barge run --help')");
          cli.SetExitCode(kExitBargeFailed);
          return;
        }
        args->image = words[0];
        words.erase(words.begin());
        Run(*args, std::move(words), cli);
      });
    },
    kExitBargeFailed};

}  // namespace
}  // namespace barge::cli
