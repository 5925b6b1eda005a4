// Container state under the barge root, so that any later barge invocation sees it:
//   <root>/containers/<id>/config.json   what to run (written once)
//   <root>/containers/<id>/state.json    status, pids, exit (rewritten as it changes)
//   <root>/containers/<id>/container.log stdout+stderr of a detached container
//   <root>/containers/<id>/{upper,work,rootfs}, hosts, hostname, resolv.conf
// No barge process stays resident: each command reads the files and checks the recorded pids.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "barge/status.h"
#include "base/file_util.h"
#include "runtime/spec.h"

namespace barge::runtime {

// What `barge run` asked for; with the image's layers this is enough to build a ContainerSpec.
struct ContainerConfig {
  std::string id;                       // 64 hex digits, assigned by Create
  std::string name;                     // unique; defaults to the first 12 digits of the id
  std::string image;                    // as the user named it (or the --rootfs directory)
  std::vector<std::string> lower_dirs;  // lowest first
  ProcessSpec process;
  std::string hostname;
  NetworkMode network = NetworkMode::kNone;
  bool read_only_root = false;
  std::vector<MountSpec> mounts;
  std::vector<std::string> volume_names;  // named volumes among the mounts
  Limits limits;
  std::string cgroup_parent = "barge";
  bool auto_remove = false;  // --rm
  bool detached = false;
  bool terminal = false;  // -t: stdin is a pty slave to become the controlling terminal
  std::string created_at;
};

enum class ContainerStatus { kCreated, kRunning, kExited };

struct ContainerState {
  ContainerStatus status = ContainerStatus::kCreated;
  pid_t pid = 0;           // the container's pid 1, as the host sees it
  uint64_t pid_start = 0;  // its start time (/proc/PID/stat), to tell a reused pid apart
  pid_t monitor_pid = 0;   // the barge process starting it (created), then waiting for it
  uint64_t monitor_start = 0;
  int exit_code = -1;  // -1: unknown (its barge process was killed)
  bool oom_killed = false;
  std::string started_at;
  std::string finished_at;
  std::vector<std::string> cgroup_dirs;
};

struct ContainerRecord {
  ContainerConfig config;
  ContainerState state;
};

const char* StatusName(ContainerStatus status);

// A container as `barge inspect` shows it: {"Id", "Name", "Config", "State"}, with the config and
// state as stored in config.json and state.json.
nlohmann::json RecordToJson(const ContainerRecord& record);

// Start time of a live process in clock ticks since boot, or 0 when it does not exist.
uint64_t ProcessStartTime(pid_t pid);
bool ProcessAlive(pid_t pid, uint64_t start_time);

class ContainerStore {
 public:
  explicit ContainerStore(std::string root) : dir_(std::move(root) + "/containers") {}

  // Assigns the id (and name), creates the directory with upper/work/rootfs and the /etc files,
  // and writes config and state. A name already taken is an error that names it.
  Result<ContainerRecord> Create(ContainerConfig config);

  // By full id, unique id prefix or name. A container whose barge process died is cleaned up
  // first (see Reconcile).
  Result<ContainerRecord> Find(const std::string& id_or_name);
  // All containers, oldest first, each reconciled.
  Result<std::vector<ContainerRecord>> List();

  Status SaveState(const std::string& id, const ContainerState& state);
  // The state of a container still recorded running (or being started) whose barge process is
  // gone is made exited (exit code unknown), its leftover processes killed and its cgroups
  // removed; an --rm container is deleted. Returns false when the container was deleted.
  Result<bool> Reconcile(ContainerRecord& record);

  // Deletes the container's directory, which the container must no longer use. It is hidden at
  // once (renamed to .trash-<pid>-<start>-<id>, naming this process), then removed here, by the
  // caller, as Docker and Podman remove an --rm container before `run` returns: no background
  // process is left for nobody to wait for. Its empty directories and small files go through
  // the heap <root>/containers/.heap (see trash.h), which keeps fewer than kHeapBatch of them.
  // What a deleter killed midway leaves, List removes.
  Status Delete(const std::string& id);

  // A directory for an image build's RUN step to mount the step's root on (only ever inside the
  // step's own mount namespace): <root>/containers/.step-<pid>-<start>-XXXXXX, naming this
  // process, and removed when the TempDir is destroyed. One that a build killed midway leaves is
  // removed by List once that process is gone, as a container of a killed barge is reconciled.
  Result<TempDir> MakeStepDir() const;

  // The runtime's description of the container (its directories, /etc files, process, limits).
  ContainerSpec MakeSpec(const ContainerRecord& record) const;

  std::string Dir(const std::string& id) const { return dir_ + "/" + id; }
  std::string HeapDir() const { return dir_ + "/.heap"; }
  std::string LogPath(const std::string& id) const { return Dir(id) + "/container.log"; }

 private:
  Result<ContainerRecord> Load(const std::string& id) const;
  std::string dir_;
};

}  // namespace barge::runtime
