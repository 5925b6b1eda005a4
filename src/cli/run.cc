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
#include "cli/registry_flags.h"
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
};

// What the image contributes: its layers and its default process.
struct ImageDefaults {
  std::vector<std::string> lower_dirs;
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;
  std::string working_dir;
  std::string user;
};

// The image's layers (unpacked into the layer cache on first use) and its config; an image
// missing from the store is pulled as --pull says.
Result<ImageDefaults> ResolveImage(const std::string& root, const RunArgs& args) {
  const std::string& name = args.image;
  ASSIGN_OR_RETURN(oci::PullPolicy policy, oci::ParsePullPolicy(args.pull));
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  oci::PullOptions pull;
  pull.platform = args.platform;
  TransferDisplay display(true, "Pulling");
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
  if (pulled) {
    fmt::print(stderr, "Pulled {} ({})\n", image->tags.empty() ? name : image->tags[0],
               image->manifest.digest);
  }
  ImageDefaults d;
  ASSIGN_OR_RETURN(d.lower_dirs, store.LayerDirs(*image));
  if (d.lower_dirs.empty()) return InvalidArgument("image '" + name + "' has no layers");
  d.entrypoint = image->config.entrypoint;
  d.cmd = image->config.cmd;
  d.env = image->config.env;
  d.working_dir = image->config.working_dir;
  d.user = image->config.user;
  return d;
}

Result<ImageDefaults> RootfsDefaults(const std::string& dir) {
  char resolved[PATH_MAX];
  if (::realpath(dir.c_str(), resolved) == nullptr) return ErrnoError("--rootfs " + dir);
  ImageDefaults d;
  d.lower_dirs = {resolved};
  d.cmd = {"/bin/sh"};
  return d;
}

// --tmpfs DST[:OPTIONS], as Podman: rw (or ro), noexec (or exec), always nosuid and nodev, and
// the tmpfs options size, mode, uid, gid and nr_inodes.
Result<runtime::MountSpec> ParseTmpfs(const std::string& text) {
  size_t colon = text.find(':');
  runtime::MountSpec m;
  m.kind = runtime::MountSpec::Kind::kTmpfs;
  m.destination = text.substr(0, colon);
  m.no_exec = true;
  if (m.destination.empty() || m.destination[0] != '/' || m.destination == "/") {
    return InvalidArgument("invalid --tmpfs '" + text + "': expected an absolute path below /");
  }
  std::string options = colon == std::string::npos ? "" : text.substr(colon + 1);
  std::istringstream in(options);
  std::string option;
  while (std::getline(in, option, ',')) {
    if (option.empty() || option == "rw" || option == "nosuid" || option == "nodev") continue;
    if (option == "ro") {
      m.read_only = true;
      continue;
    }
    if (option == "exec" || option == "noexec") {
      m.no_exec = option == "noexec";
      continue;
    }
    size_t eq = option.find('=');
    std::string key = option.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : option.substr(eq + 1);
    bool known =
        key == "size" || key == "mode" || key == "uid" || key == "gid" || key == "nr_inodes";
    bool number = !value.empty() && std::isdigit(static_cast<unsigned char>(value[0])) &&
                  value.find_first_not_of("0123456789kKmMgG%") == std::string::npos;
    if (!known || !number) {
      return InvalidArgument(
          "invalid --tmpfs '" + text + "': unsupported option '" + option +
          "' (use rw, ro, exec, noexec, nosuid, nodev, size=, mode=, uid=, gid=, "
          "nr_inodes=)");
    }
    m.tmpfs_options += (m.tmpfs_options.empty() ? "" : ",") + option;
  }
  return m;
}

Result<runtime::ContainerConfig> BuildConfig(const RunArgs& args,
                                             const std::vector<std::string>& command,
                                             const std::string& root) {
  runtime::ContainerConfig config;
  if (args.rm && args.detach) {
    // Docker allows it; so do we: the monitor removes the container when it exits.
  }
  ImageDefaults image;
  if (!args.rootfs.empty()) {
    ASSIGN_OR_RETURN(image, RootfsDefaults(args.rootfs));
    config.image = image.lower_dirs[0];
  } else {
    if (args.image.empty()) return InvalidArgument("no image given");
    ASSIGN_OR_RETURN(image, ResolveImage(root, args));
    config.image = args.image;
  }
  config.lower_dirs = image.lower_dirs;

  std::vector<std::string> entrypoint = image.entrypoint;
  std::vector<std::string> cmd = image.cmd;
  if (args.entrypoint_set) {
    entrypoint = args.entrypoint.empty() ? std::vector<std::string>{}
                                         : std::vector<std::string>{args.entrypoint};
    cmd.clear();
  }
  if (!command.empty()) cmd = command;
  config.process.argv = entrypoint;
  config.process.argv.insert(config.process.argv.end(), cmd.begin(), cmd.end());
  if (config.process.argv.empty()) {
    return InvalidArgument("no command given and the image '" + config.image +
                           "' has no Entrypoint or Cmd");
  }

  std::vector<std::string> env;
  for (const std::string& e : image.env) RETURN_IF_ERROR(MergeEnv(env, e));
  for (const std::string& f : args.env_files) RETURN_IF_ERROR(ReadEnvFile(f, env));
  for (const std::string& e : args.env) RETURN_IF_ERROR(MergeEnv(env, e));
  config.process.env = env;
  config.process.cwd = !args.workdir.empty()        ? args.workdir
                       : !image.working_dir.empty() ? image.working_dir
                                                    : "/";
  if (config.process.cwd[0] != '/') {
    return InvalidArgument("working directory must be an absolute path, got '" +
                           config.process.cwd + "'");
  }
  config.process.user = !args.user.empty() ? args.user : image.user;
  config.hostname = args.hostname;
  config.name = args.name;
  if (!config.name.empty()) {
    if (Status st = runtime::ValidateVolumeName(config.name); !st.ok()) {
      return InvalidArgument("invalid container name '" + config.name +
                             "': use letters, digits, '_', '.' and '-'");
    }
  }

  if (args.network == "none") {
    config.network = runtime::NetworkMode::kNone;
  } else if (args.network == "host") {
    config.network = runtime::NetworkMode::kHost;
  } else {
    return InvalidArgument("unknown network '" + args.network + "' (use none or host)");
  }
  config.read_only_root = args.read_only;
  config.process.init = args.init;

  if (!args.memory.empty()) {
    Result<long long> parsed = ParseSize(args.memory);
    if (!parsed.ok()) return parsed.status().Wrap("--memory");
    long long bytes = *parsed;
    if (bytes < (6 << 20))
      return InvalidArgument("--memory " + args.memory + " is below the minimum of 6m");
    config.limits.memory_bytes = bytes;
  }
  // Docker's range: a quota below 1% of a CPU is refused by the kernel, and one above the CPUs
  // there are limits nothing (and a huge value would overflow the quota in microseconds).
  long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  if (args.cpus != 0 && !(args.cpus >= 0.01 && args.cpus <= static_cast<double>(online))) {
    return InvalidArgument(fmt::format(
        "invalid --cpus '{}': the range is 0.01 to {}, the CPUs available", args.cpus, online));
  }
  config.limits.cpus = args.cpus;
  // As Docker's: 0 and -1 mean no limit.
  if (args.pids_limit < -1) {
    return InvalidArgument(fmt::format(
        "invalid --pids-limit '{}': a number of processes, or -1 for no limit", args.pids_limit));
  }
  config.limits.pids = std::max<int64_t>(args.pids_limit, 0);

  // Volumes are checked before the container exists, so bad input leaves nothing behind.
  runtime::VolumeStore volumes(root);
  std::set<std::string> destinations;
  for (const std::string& spec : args.volumes) {
    ASSIGN_OR_RETURN(runtime::VolumeSpec v, runtime::ParseVolumeSpec(spec));
    runtime::MountSpec m;
    m.destination = v.destination;
    m.read_only = v.read_only;
    if (v.named) {
      ASSIGN_OR_RETURN(runtime::Volume volume, volumes.Create(v.source));
      m.source = volume.mountpoint;
      config.volume_names.push_back(v.source);
    } else {
      struct stat st {};
      if (::stat(v.source.c_str(), &st) != 0) {
        return NotFound("invalid volume '" + spec + "': " + v.source +
                        (PathExists(v.source) ? " is a symbolic link to nothing on the host"
                                              : " does not exist on the host"));
      }
      m.source = v.source;
    }
    if (!destinations.insert(m.destination).second) {
      return InvalidArgument("invalid volume '" + spec + "': " + m.destination +
                             " is already a mount destination");
    }
    config.mounts.push_back(std::move(m));
  }
  for (const std::string& t : args.tmpfs) {
    ASSIGN_OR_RETURN(runtime::MountSpec m, ParseTmpfs(t));
    if (!destinations.insert(m.destination).second) {
      return InvalidArgument("invalid --tmpfs '" + t + "': " + m.destination +
                             " is already a mount destination");
    }
    config.mounts.push_back(std::move(m));
  }
  RETURN_IF_ERROR(runtime::ValidateCgroupParent(args.cgroup_parent));
  config.cgroup_parent = args.cgroup_parent;
  config.auto_remove = args.rm;
  config.detached = args.detach;
  config.terminal = args.tty;
  return config;
}

void Run(RunArgs& args, std::vector<std::string> command, Cli& cli) {
  auto fail = [&](const Status& status, int code) {
    cli.Finish(status);
    cli.SetExitCode(code);
  };
  if (args.rootfs_flag) {
    args.rootfs = args.image;
    args.image.clear();
  }
  Result<runtime::ContainerConfig> config = BuildConfig(args, command, cli.root());
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
