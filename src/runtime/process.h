// A running container: its first process (pid 1 of its pid namespace) and its cgroup. This is the
// core every caller uses: barge run, the image builder's RUN step and pipeline stages.
#pragma once

#include <sys/types.h>

#include <functional>

#include "barge/status.h"
#include "runtime/cgroups.h"
#include "runtime/spec.h"

namespace barge::runtime {

// Where a start failed, which is what Docker's exit codes tell apart (the values are those codes).
// The stage decides, not the errno: a missing bind source is kSetUp although it is an ENOENT.
enum class StartFailure {
  kSetUp = 125,         // barge could not create the container: its cgroup, mounts, user, ...
  kCannotInvoke = 126,  // the command was found but could not be executed
  kNotFound = 127,      // the command does not exist
};

class Container {
 public:
  // Creates the cgroup, clones the first process directly into new namespaces, sets up its root
  // and execs spec.process.argv. Returns once the command was exec'd: a failure anywhere before
  // (a mount, an unknown user, a missing executable) is returned here with what failed, and
  // `*failure` (when given) says at which stage.
  static Result<Container> Start(const ContainerSpec& spec, StartFailure* failure = nullptr);

  Container() = default;
  // Kills a container still running (SIGKILL to pid 1 ends its whole pid namespace), reaps it
  // and removes its cgroup.
  ~Container();
  Container(Container&& other) noexcept;
  Container& operator=(Container&& other) noexcept;
  Container(const Container&) = delete;
  Container& operator=(const Container&) = delete;

  pid_t pid() const { return pid_; }
  const Cgroup& cgroup() const { return cgroup_; }
  // With spec.terminal: the master side of the container's terminal (read its output, write its
  // input); its slave lives in the container's own /dev/pts.
  int terminal() const { return terminal_.get(); }

  // Sends `signal` to the container's first process.
  Status Signal(int signal);

  // Waits for the first process to exit (retrying after EINTR, so signal handlers may forward
  // signals meanwhile), then removes the cgroup. Call once.
  Result<ExitInfo> Wait();

 private:
  void Destroy();
  pid_t pid_ = -1;
  Cgroup cgroup_;
  UniqueFd terminal_;
};

// Start + Wait: runs a container to completion (then tidies the upper directory when
// spec.remove_created_mount_points), calling `on_start` once it runs (e.g. to relay its output).
// What the image builder's RUN step calls.
Result<ExitInfo> RunContainer(const ContainerSpec& spec,
                              const std::function<void(Container&)>& on_start = nullptr);

}  // namespace barge::runtime
