// What a container is made of: the description the runtime turns into namespaces, mounts,
// cgroups and a process. Plain data, filled by the CLI (barge run), the image builder (RUN)
// and pipelines; validated by runtime::Start.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace barge::runtime {

enum class NetworkMode {
  kNone,  // a new network namespace with only loopback, up
  kHost,  // the host's network namespace
};

// A mount the user asked for, inside the container.
struct MountSpec {
  enum class Kind { kBind, kTmpfs };
  Kind kind = Kind::kBind;
  std::string source;       // host path (kBind); unused for kTmpfs
  std::string destination;  // absolute path inside the container
  bool read_only = false;
  // kTmpfs only: mounted noexec (always nosuid and nodev), and tmpfs options such as
  // "size=64m,mode=755" (validated by the caller; mode defaults to 1777).
  bool no_exec = false;
  std::string tmpfs_options;
};

struct Limits {
  int64_t memory_bytes = 0;  // 0: no limit. Swap is limited to the same amount (no extra swap).
  double cpus = 0;           // 0: no limit; 1.5 = one and a half cores (CFS quota)
  int64_t pids = 0;          // 0: no limit
};

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is looked up in the container's PATH when it has no '/'
  std::vector<std::string> env;   // "K=V"; PATH and HOSTNAME get defaults when missing
  std::string cwd = "/";          // created when missing, like Docker's WORKDIR
  // "" (root), "UID", "UID:GID", "NAME" or "NAME:GROUP"; names are looked up in the container's
  // /etc/passwd and /etc/group.
  std::string user;
  // barge run --init: pid 1 is barge's small init (the exec shim), which runs the command as its
  // child, forwards signals to it and reaps orphaned processes, as docker run --init does.
  bool init = false;
};

// The three standard streams of the container's first process. The runtime dups them; the caller
// keeps ownership.
struct Stdio {
  int in = 0;
  int out = 1;
  int err = 2;
};

struct ContainerSpec {
  // Names the cgroup (<cgroup_parent>/<id>) and is the default hostname (its first 12 characters).
  std::string id;
  std::string cgroup_parent = "barge";

  // Root file system: an overlay of `lower_dirs` (lowest first, read-only, never written) under
  // `upper_dir` (receives the container's changes), with `work_dir` on the same file system as
  // `upper_dir`. `rootfs_dir` is an empty directory used as the mount point; the overlay is mounted
  // only inside the container's mount namespace, so nothing is left mounted on the host.
  std::vector<std::string> lower_dirs;
  std::string upper_dir;
  std::string work_dir;
  std::string rootfs_dir;

  // Host files bind-mounted to /etc/hosts, /etc/hostname and /etc/resolv.conf; empty: not mounted.
  std::string hosts_file;
  std::string hostname_file;
  std::string resolv_conf_file;

  ProcessSpec process;
  std::string hostname;  // empty: the first 12 characters of `id`
  NetworkMode network = NetworkMode::kNone;
  bool read_only_root = false;
  std::vector<MountSpec> mounts;
  Limits limits;
  Stdio stdio;
  // A pseudo-terminal from the container's own devpts is its stdin, stdout, stderr and
  // controlling terminal (stdio is then unused); Container::terminal() is the master side.
  bool terminal = false;

  // When barge (the parent) dies, the container is killed, so that nothing runs unwatched.
  bool die_with_parent = true;

  // barge exec: instead of a new container, the process joins the running one whose pid 1 is the
  // host's process `join_pid` (started at `join_pid_start`, /proc/PID/stat, to tell a reused pid
  // apart): its mount, uts, ipc, net and pid namespaces and the cgroups `join_cgroup_dirs`. The
  // root file system, mounts, limits and hostname fields are then unused.
  pid_t join_pid = 0;
  uint64_t join_pid_start = 0;
  std::vector<std::string> join_cgroup_dirs;

  // For image builds (RUN): after the command exits, RunContainer removes from `upper_dir` the
  // mount points the runtime had to create there (/proc, /dev, /sys, /etc/hosts, mount
  // destinations, and their parents) when no lower layer has them and they are still empty, so
  // that the new layer holds only what the command wrote.
  bool remove_created_mount_points = false;
};

// How the container's first process ended.
struct ExitInfo {
  int exit_code = 0;        // the exit status, or 128 + signal when killed (Docker's convention)
  int signal = 0;           // the signal that killed it, else 0
  bool oom_killed = false;  // the memory cgroup killed a process of the container
};

}  // namespace barge::runtime
