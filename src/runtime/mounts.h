// The container's root file system and its mounts: overlay root, pivot_root, /proc, a minimal
// /dev, read-only /sys, volumes, tmpfs, masked /proc paths and a read-only root.
#pragma once

#include <string>
#include <vector>

#include "barge/status.h"
#include "base/unique_fd.h"
#include "runtime/detail/child.h"
#include "runtime/spec.h"

namespace barge::runtime {

// Prepared by the parent before clone; executed by SetUpRootfs in the child.
struct MountPlan {
  std::string rootfs;         // overlay mount point (host path)
  std::string overlay_data;   // lowerdir=...,upperdir=...,workdir=...
  std::string overlay_chdir;  // when set, lowerdirs are relative to this directory (long lists)

  struct Bind {
    std::string source;       // host path, cloned as a detached mount tree before pivot_root
    std::string destination;  // inside the container
    bool is_dir = true;
    bool read_only = false;
  };
  static constexpr size_t kMaxBinds = 64;
  std::vector<Bind> binds;  // volumes, bind mounts and the /etc files, in order
  struct Tmpfs {
    std::string destination;
    unsigned long flags = 0;  // MS_* flags
    std::string data;         // tmpfs options
  };
  std::vector<Tmpfs> tmpfs;
  bool read_only_root = false;
  bool mount_sysfs = true;
};

// Validates the spec's root file system and mounts (every bind source must exist). Errors name
// the offending path.
Result<MountPlan> PlanMounts(const ContainerSpec& spec);

// See ContainerSpec::remove_created_mount_points. Call after the container has exited.
Status RemoveCreatedMountPoints(const ContainerSpec& spec);

namespace detail {
// Child side, in a fresh mount namespace: makes the mounts private, mounts the overlay, pivots
// into it and mounts the rest. Afterwards "/" is the container's root and the host's tree is gone.
bool SetUpRootfs(const MountPlan& plan, ChildFailure* failure);

// Makes the root read-only (after the working directory was created); a no-op unless asked.
bool FinishRootfs(const MountPlan& plan, ChildFailure* failure);

// mkdir -p inside the current root; `path` is absolute.
bool MakeDirsInRoot(const char* path, ChildFailure* failure);
}  // namespace detail

}  // namespace barge::runtime
