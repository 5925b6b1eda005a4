// A RunStepExecutor that needs no container runtime: the command runs in new mount, network,
// PID, UTS and IPC namespaces, with the step's layers mounted as an overlay root and entered
// with pivot_root(2) (the host's root is detached), with Docker's default capability bounding
// set, as the step's user, without network (an empty network namespace). It needs root. It is
// what `barge build` uses until the runtime's executor is wired in; it sets no cgroup limits
// and no seccomp filter, so it suits trusted builds.
//
// All mounts live only in the child's mount namespace and vanish when the command exits, so
// nothing is left mounted, even if barge is killed.
#pragma once

#include "oci/builder.h"

namespace barge::oci {

class NamespaceRunExecutor : public RunStepExecutor {
 public:
  // `quiet`: the command's stdout and stderr go to /dev/null instead of barge's.
  explicit NamespaceRunExecutor(bool quiet = false) : quiet_(quiet) {}
  Result<int> Run(const RunStep& step) override;

 private:
  bool quiet_;
};

}  // namespace barge::oci
