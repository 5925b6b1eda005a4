#include "launch/container_options.h"

#include <fmt/core.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "base/file_util.h"
#include "base/size.h"
#include "oci/image_store.h"
#include "runtime/cgroups.h"
#include "runtime/volumes.h"

namespace barge::launch {

namespace {

std::string EnvKey(const std::string& entry) { return entry.substr(0, entry.find('=')); }

// What the image contributes: its layers and its default process.
struct ImageDefaults {
  std::vector<std::string> lower_dirs;
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;
  std::string working_dir;
  std::string user;
};

// The image's layers (unpacked into the layer cache on first use) and its config.
// The image's layers (unpacked into the layer cache on first use) and its config; `resolved` when
// the caller already has the image, else looked up by name.
Result<ImageDefaults> ResolveImage(const std::string& root, const std::string& name,
                                   const std::optional<oci::Image>& resolved) {
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  Result<oci::Image> image = resolved ? Result<oci::Image>(*resolved) : store.Resolve(name);
  if (!image.ok()) {
    if (image.status().code() == StatusCode::kNotFound) {
      return NotFound("unknown image '" + name +
                      "': not in the local repository (see 'barge images', 'barge pull', "
                      "'barge load')");
    }
    return image.status();
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

}  // namespace

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

Result<int64_t> ParseMemory(const std::string& text, std::string_view what) {
  Result<long long> parsed = ParseSize(text);
  if (!parsed.ok()) return parsed.status().Wrap(what);
  if (*parsed < kMinMemoryBytes) {
    return InvalidArgument(fmt::format("{} {} is below the minimum of 6m", what, text));
  }
  return static_cast<int64_t>(*parsed);
}

// Docker's range: a quota below 1% of a CPU is refused by the kernel, and one above the CPUs
// there are limits nothing (and a huge value would overflow the quota in microseconds).
Status CheckCpus(double cpus, std::string_view what) {
  long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus >= 0.01 && cpus <= static_cast<double>(online)) return Status::Ok();
  std::string why =
      cpus > static_cast<double>(online)
          ? fmt::format("more than the {} CPU{} of this machine", online, online == 1 ? "" : "s")
      : cpus < 0.01 ? "below the minimum of 0.01"
                    : "not a number";
  return InvalidArgument(
      fmt::format("invalid {} '{}': {} (the range is 0.01 to {})", what, cpus, why, online));
}

Status CheckEnvName(std::string_view name) {
  if (name.empty()) return InvalidArgument("an environment variable needs a name");
  if (name.find_first_of(std::string_view("=\0", 2)) != std::string_view::npos) {
    return InvalidArgument("invalid environment variable name '" + std::string(name) +
                           "': a name may not contain '='");
  }
  return Status::Ok();
}

Result<runtime::VolumeSpec> ParseVolume(const std::string& spec) {
  ASSIGN_OR_RETURN(runtime::VolumeSpec v, runtime::ParseVolumeSpec(spec));
  struct stat st {};
  if (!v.named && ::stat(v.source.c_str(), &st) != 0) {
    return NotFound("invalid volume '" + spec + "': " + v.source +
                    (PathExists(v.source) ? " is a symbolic link to nothing on the host"
                                          : " does not exist on the host"));
  }
  return v;
}

Status CheckWorkdir(const std::string& dir, std::string_view what) {
  if (dir.empty() || dir[0] != '/') {
    return InvalidArgument(fmt::format("{} must be an absolute path, got '{}'", what, dir));
  }
  return Status::Ok();
}

Result<std::vector<std::string>> ProcessArgv(const std::string& image,
                                             const std::vector<std::string>& image_entrypoint,
                                             const std::vector<std::string>& image_cmd,
                                             const std::vector<std::string>& command,
                                             const std::optional<std::string>& entrypoint) {
  std::vector<std::string> argv = image_entrypoint;
  std::vector<std::string> cmd = image_cmd;
  if (entrypoint) {
    argv = entrypoint->empty() ? std::vector<std::string>{} : std::vector<std::string>{*entrypoint};
    cmd.clear();
  }
  if (!command.empty()) cmd = command;
  argv.insert(argv.end(), cmd.begin(), cmd.end());
  if (argv.empty()) {
    return InvalidArgument("no command given and the image '" + image +
                           "' has no Entrypoint or Cmd");
  }
  return argv;
}

Status MergeEnv(std::vector<std::string>& env, const std::string& entry) {
  std::string value = entry;
  if (entry.empty() || entry[0] == '=')
    return InvalidArgument("invalid environment entry '" + entry + "'");
  if (entry.find('=') == std::string::npos) {
    const char* host = std::getenv(entry.c_str());
    if (host == nullptr) return Status::Ok();  // Docker skips unset variables
    value = entry + "=" + host;
  }
  std::string key = EnvKey(value);
  for (std::string& e : env) {
    if (EnvKey(e) == key) {
      e = value;
      return Status::Ok();
    }
  }
  env.push_back(value);
  return Status::Ok();
}

Status ReadEnvFile(const std::string& path, std::vector<std::string>& env) {
  Result<std::string> read = ReadFileLimited(path, kMaxEnvFileBytes);
  if (!read.ok()) return read.status().Wrap("--env-file");
  const std::string& text = *read;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    RETURN_IF_ERROR(MergeEnv(env, line.substr(start)).Wrap("--env-file " + path));
  }
  return Status::Ok();
}

Result<runtime::ContainerConfig> MakeContainerConfig(const std::string& root,
                                                     const ContainerOptions& args) {
  runtime::ContainerConfig config;
  // rm with detach: Docker allows it; so do we (the monitor removes the container when it exits).
  ImageDefaults image;
  if (args.image.empty()) return InvalidArgument("no image given");
  if (args.rootfs) {
    ASSIGN_OR_RETURN(image, RootfsDefaults(args.image));
    config.image = image.lower_dirs[0];
  } else {
    ASSIGN_OR_RETURN(image, ResolveImage(root, args.image, args.resolved));
    config.image = args.image;
  }
  config.lower_dirs = image.lower_dirs;

  ASSIGN_OR_RETURN(config.process.argv, ProcessArgv(config.image, image.entrypoint, image.cmd,
                                                    args.command, args.entrypoint));

  std::vector<std::string> env;
  for (const std::string& e : image.env) RETURN_IF_ERROR(MergeEnv(env, e));
  for (const std::string& f : args.env_files) RETURN_IF_ERROR(ReadEnvFile(f, env));
  for (const std::string& e : args.env) RETURN_IF_ERROR(MergeEnv(env, e));
  config.process.env = env;
  config.process.cwd = !args.workdir.empty()        ? args.workdir
                       : !image.working_dir.empty() ? image.working_dir
                                                    : "/";
  RETURN_IF_ERROR(CheckWorkdir(config.process.cwd, "working directory"));
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
    ASSIGN_OR_RETURN(config.limits.memory_bytes, ParseMemory(args.memory, "--memory"));
  }
  if (args.cpus != 0) RETURN_IF_ERROR(CheckCpus(args.cpus, "--cpus"));
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
    ASSIGN_OR_RETURN(runtime::VolumeSpec v, ParseVolume(spec));
    runtime::MountSpec m;
    m.destination = v.destination;
    m.read_only = v.read_only;
    if (v.named) {
      ASSIGN_OR_RETURN(runtime::Volume volume, volumes.Create(v.source));
      m.source = volume.mountpoint;
      config.volume_names.push_back(v.source);
    } else {
      m.source = v.source;
    }
    if (!destinations.insert(m.destination).second) {
      return InvalidArgument("invalid volume '" + spec + "': " + m.destination +
                             " is already a mount destination");
    }
    config.mounts.push_back(std::move(m));
  }
  for (const runtime::MountSpec& m : args.mounts) {
    if (!destinations.insert(m.destination).second) {
      return InvalidArgument("mount destination " + m.destination + " is used twice");
    }
    config.mounts.push_back(m);
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

}  // namespace barge::launch
