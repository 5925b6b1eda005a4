// Container lifecycle over the ContainerStore: start attached or detached, stop, kill, remove.
// The process that started a container (the `barge run` command, or for -d a small monitor
// process forked from it) waits for it and records its exit; any other barge command only reads
// the state and signals recorded pids.
#pragma once

#include <chrono>
#include <functional>

#include "barge/status.h"
#include "base/unique_fd.h"
#include "runtime/container_store.h"
#include "runtime/process.h"

namespace barge::runtime {

// Runs a created container with `stdio`, in the foreground: records it running, calls
// `on_start` (e.g. to forward signals to it), waits, records the exit, removes its cgroup, and
// deletes it when it was created with auto_remove. A start failure is recorded as an exit with
// the code of its StartFailure (125, 126 or 127) and returned as the error; `*failure` (when
// given) says where it failed, kSetUp for any error but the command's own.
Result<ExitInfo> RunAttached(ContainerStore& store, ContainerRecord record, const Stdio& stdio,
                             const std::function<void(Container&)>& on_start = nullptr,
                             StartFailure* failure = nullptr);

// A created container started by this process, which owns it (a pipeline stage's replica): it is
// recorded running (so `barge ps` shows it, and a later barge cleans up if this one dies), and
// Finish waits for it and records its exit (deleting it when auto_remove). Destroying one that was
// not finished kills it and records that. Move-only.
class OwnedContainer {
 public:
  static Result<OwnedContainer> Start(ContainerStore& store, ContainerRecord record,
                                      const Stdio& stdio, StartFailure* failure = nullptr);
  OwnedContainer() = default;
  ~OwnedContainer();
  OwnedContainer(OwnedContainer&&) noexcept = default;
  OwnedContainer& operator=(OwnedContainer&& other) noexcept;

  bool running() const { return container_.pid() > 0 && !finished_; }
  pid_t pid() const { return container_.pid(); }
  const Cgroup& cgroup() const { return container_.cgroup(); }
  // True once the first process has exited (never blocks).
  bool Exited() const;
  Status Signal(int signal) { return container_.Signal(signal); }
  // Waits for the exit and records it. Call once.
  Result<ExitInfo> Finish();

 private:
  ContainerStore* store_ = nullptr;
  ContainerRecord record_;
  Container container_;
  UniqueFd pidfd_;
  bool finished_ = false;
};

// Runs a created container in the background: forks a monitor process (its own session, no
// terminal) that starts the container with stdout and stderr appended to its log file (with -t,
// the container's terminal, which the monitor keeps open and copies to the log), then waits for
// it as RunAttached does. Returns once the container's command was exec'd; on failure `*failure`
// says where, as with RunAttached.
Status RunDetached(ContainerStore& store, const ContainerRecord& record,
                   StartFailure* failure = nullptr);

// barge start: runs a created or exited container again, in the background (its layer, with what
// it wrote before, and its config are kept; its cgroup is made anew; a terminal (-t) is kept open
// with its output in the log). A running one is left as it is. Returns its name.
Result<std::string> StartContainer(ContainerStore& store, const std::string& id_or_name);

// Sends SIGTERM, waits up to `timeout`, then SIGKILL; returns once its exit is recorded.
Status StopContainer(ContainerStore& store, const std::string& id_or_name,
                     std::chrono::milliseconds timeout);
// Sends `signal` to the container's first process.
Status KillContainer(ContainerStore& store, const std::string& id_or_name, int signal);
// Deletes a stopped container; `force` kills a running one first.
Status RemoveContainer(ContainerStore& store, const std::string& id_or_name, bool force);

// For `barge exec`: the spec of a process that joins the running container `id_or_name` (see
// ContainerSpec::join_pid), with the container's own environment, working directory and user,
// which the caller may change, and no command yet. A container that is not running is an error.
Result<ContainerSpec> ExecSpec(ContainerStore& store, const std::string& id_or_name);

// barge wait: blocks until the container has exited (without polling while it runs: a pidfd of
// its first process) and returns its final record. NotFound when it was removed (--rm).
Result<ContainerRecord> WaitContainer(ContainerStore& store, const std::string& id_or_name);

// Waits until the container is recorded exited (or deleted); returns its final record, or
// NotFound when it was deleted (--rm).
Result<ContainerRecord> WaitForExit(ContainerStore& store, const std::string& id,
                                    std::chrono::milliseconds timeout);

}  // namespace barge::runtime
