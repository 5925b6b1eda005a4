// From an image and options to a container: what `barge run` takes on its command line and what a
// pipeline's container stage says, turned into the runtime's ContainerConfig. The image's layers
// are resolved in the local repository (and unpacked into the layer cache on first use); its
// Entrypoint, Cmd, Env, WorkingDir and User are the defaults the options override, as Docker's.
//
//   launch::ContainerOptions o;
//   o.image = "doubler:1";
//   o.memory = "256m";
//   ASSIGN_OR_RETURN(runtime::ContainerConfig config, launch::MakeContainerConfig(root, o));
//   ASSIGN_OR_RETURN(runtime::ContainerRecord record,
//   runtime::ContainerStore(root).Create(config));
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "barge/status.h"
#include "oci/image.h"
#include "runtime/cgroups.h"
#include "runtime/container_store.h"
#include "runtime/spec.h"
#include "runtime/volumes.h"

namespace barge::launch {

struct ContainerOptions {
  std::string image;  // an image of the repository, or with `rootfs` a directory
  bool rootfs = false;
  // The image already resolved (pulled, say) by the caller; else `image` is looked up in the
  // store.
  std::optional<oci::Image> resolved;
  std::vector<std::string> command;       // replaces the image's Cmd when not empty
  std::optional<std::string> entrypoint;  // replaces the image's Entrypoint ("": none)
  std::vector<std::string> env;           // "K=V", or "K": barge's own value (skipped if unset)
  std::vector<std::string> env_files;
  std::string workdir;
  std::string user;
  std::string hostname;
  std::string name;
  std::vector<std::string> volumes;  // NAME:/DST[:ro] or /HOST:/DST[:ro]
  std::vector<std::string> tmpfs;    // DST[:OPTIONS]
  // Extra mounts the caller makes itself (a stage's shared-memory directory), checked like -v.
  std::vector<runtime::MountSpec> mounts;
  std::string memory;            // "256m"; empty: no limit
  double cpus = 0;               // 0: no limit
  int64_t pids_limit = 0;        // 0 or -1: no limit
  std::string network = "none";  // none or host
  bool read_only = false;
  bool init = false;
  std::string cgroup_parent = runtime::kDefaultCgroupParent;
  bool rm = false;
  bool detach = false;
  bool tty = false;
};

// Checks every option and resolves the image; nothing is created but named volumes the options
// name. Errors name the option and value that is wrong.
Result<runtime::ContainerConfig> MakeContainerConfig(const std::string& root,
                                                     const ContainerOptions& options);

// The rules for single options, shared by MakeContainerConfig (for `barge run`, whose errors name
// the flag) and pipeline stages (which check them when the spec is validated, and place errors at
// the spec's value). `what` is how the caller's user calls the option: "--memory" or "memory".

// A memory limit: a size ("256m") of at least 6m, in bytes.
inline constexpr int64_t kMinMemoryBytes = 6 << 20;
Result<int64_t> ParseMemory(const std::string& text, std::string_view what);
// A CPU limit: from 0.01 (a smaller quota is refused by the kernel) to the CPUs online.
Status CheckCpus(double cpus, std::string_view what);
// An environment variable's name: not empty, without '=' or NUL.
Status CheckEnvName(std::string_view name);
// A volume, NAME:/DST[:ro|rw] or /HOST/PATH:/DST[:ro|rw]: its form, and that a host path exists.
// Nothing is created (a named volume is made when the container is).
Result<runtime::VolumeSpec> ParseVolume(const std::string& spec);
// The working directory: an absolute path.
Status CheckWorkdir(const std::string& dir, std::string_view what);
// What a container runs: the image's Entrypoint and Cmd, `entrypoint` replacing the first (and
// dropping the Cmd) and `command` the Cmd, as Docker; an error when that is nothing.
Result<std::vector<std::string>> ProcessArgv(const std::string& image,
                                             const std::vector<std::string>& image_entrypoint,
                                             const std::vector<std::string>& image_cmd,
                                             const std::vector<std::string>& command,
                                             const std::optional<std::string>& entrypoint);

// Adds `entry` ("K=V", or "K": barge's own value, skipped when unset) to `env`, replacing an
// entry with the same key, as -e does.
Status MergeEnv(std::vector<std::string>& env, const std::string& entry);
// Merges the K=V lines of an --env-file (blank lines and # comments skipped): a regular file or a
// pipe (`--env-file <(...)`) of at most kMaxEnvFileBytes; anything else (/dev/zero, a directory)
// is refused at once. An environment beyond a few MiB could not be passed to exec anyway.
inline constexpr size_t kMaxEnvFileBytes = 1 << 20;
Status ReadEnvFile(const std::string& path, std::vector<std::string>& env);

// --tmpfs DST[:OPTIONS], as Podman: rw (or ro), noexec (or exec), always nosuid and nodev, and
// the tmpfs options size, mode, uid, gid and nr_inodes.
Result<runtime::MountSpec> ParseTmpfs(const std::string& text);

}  // namespace barge::launch
