// cgroups for containers, on v1, v2 or a hybrid of both: each controller (memory, pids, cpu) is
// used on the hierarchy that has it. A container's cgroup is barge/<id> under each hierarchy's
// root, like Podman's machine slice, so the caller's own cgroup is never touched.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "barge/status.h"
#include "base/unique_fd.h"
#include "runtime/spec.h"

namespace barge::runtime {

enum class CgroupVersion { kV1, kV2 };

// Where one controller lives on this machine.
struct ControllerMount {
  std::string controller;  // "memory", "pids", "cpu"
  CgroupVersion version = CgroupVersion::kV1;
  std::string mount;  // e.g. /sys/fs/cgroup/memory, or the cgroup2 mount
};

inline constexpr const char* kDefaultCgroupParent = "barge";

// A cgroup parent: one or more names of letters, digits, '_', '.' and '-', joined by '/'.
Status ValidateCgroupParent(const std::string& parent);

// Removes <parent> in every hierarchy (it must be empty); a missing one is fine.
Status RemoveCgroupParent(const std::string& parent);

// Finds the hierarchy of each controller from /proc/self/mountinfo and, for v2, the root's
// cgroup.controllers. A controller absent from both is left out.
Result<std::vector<ControllerMount>> DetectControllers();

namespace detail {
// The parts of the above that need no kernel, so that v1, v2 and hybrid hosts can all be tested
// on any one of them.

// The controllers barge uses, from /proc/self/mountinfo text and `read` (which returns a file's
// text, "" if unreadable) of the cgroup2 root's cgroup.controllers. A controller on a v1
// hierarchy is never also listed there.
std::vector<ControllerMount> ParseControllers(
    const std::string& mountinfo, const std::function<std::string(const std::string&)>& read);

struct ControlWrite {
  std::string file;  // in the container's cgroup directory
  std::string value;
  bool only_if_present = false;  // e.g. swap limits, absent without swap accounting
};
// What limits `limits` sets on `controller` ("memory", "pids", "cpu") of that cgroup version.
std::vector<ControlWrite> LimitWrites(const std::string& controller, CgroupVersion version,
                                      const Limits& limits);

// Whether memory.events (v2) or memory.oom_control (v1) text reports an OOM kill.
bool OomKillReported(const std::string& text);
}  // namespace detail

// One container's cgroup across the hierarchies it needs. Move-only; the destructor removes the
// directories (killing any process still in them). Remove() reports failures.
class Cgroup {
 public:
  // Creates <parent>/<id> (parent: "barge" unless the caller chose one, like podman's
  // --cgroup-parent) in the hierarchy of each controller that `limits` limits, and writes the
  // limits. A container without limits gets no cgroup: it stays in its caller's, and its pid
  // namespace still ends all its processes with it. That keeps start fast, because joining a
  // v1 cgroup costs an RCU grace period (5-15 ms on this kind of machine). A limit whose
  // controller no hierarchy has is an error naming it.
  static Result<Cgroup> Create(const std::string& parent, const std::string& id,
                               const Limits& limits);

  // Adopts existing directories (state left by another barge process).
  static Cgroup Adopt(std::vector<std::string> dirs) { return Cgroup(std::move(dirs), {}); }

  // Adopts whatever directories <parent>/<id> exist in any hierarchy: those of a barge process
  // that died before it recorded them.
  static Result<Cgroup> AdoptExisting(const std::string& parent, const std::string& id);

  Cgroup() = default;
  ~Cgroup();
  Cgroup(Cgroup&& other) noexcept = default;
  Cgroup& operator=(Cgroup&& other) noexcept;
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;

  // Open `cgroup.procs` of every directory for writing; a process joins by writing "0" to each.
  Result<std::vector<UniqueFd>> OpenProcsFiles() const;

  // True when the memory controller has OOM-killed a process in this cgroup.
  bool OomKilled() const;

  // Kills what is left inside, then removes the directories (waiting briefly for exiting tasks).
  Status Remove();

  const std::vector<std::string>& dirs() const { return dirs_; }

 private:
  Cgroup(std::vector<std::string> dirs, std::string memory_dir)
      : dirs_(std::move(dirs)), memory_dir_(std::move(memory_dir)) {}
  std::vector<std::string> dirs_;  // unique directories, one per hierarchy used
  std::string memory_dir_;
  bool memory_v2_ = false;
};

}  // namespace barge::runtime
