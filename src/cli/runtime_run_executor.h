// The image builder's RUN steps, executed by the container runtime (src/runtime): the same
// isolation as `barge run` (namespaces, overlay root, Docker's default capabilities,
// no_new_privs, seccomp, no network), with the step's layers as the overlay's lower dirs.
#pragma once

#include <string>

#include "oci/builder.h"

namespace barge::cli {

class RuntimeRunExecutor : public oci::RunStepExecutor {
 public:
  // `root`: the barge root, where each step's mount point lives (see
  // runtime::ContainerStore::MakeStepDir). `quiet`: the command's stdout and stderr go to
  // /dev/null instead of barge's; else barge relays them (the command never gets barge's own
  // descriptors, as with barge run).
  explicit RuntimeRunExecutor(std::string root, bool quiet = false)
      : root_(std::move(root)), quiet_(quiet) {}
  Result<int> Run(const oci::RunStep& step) override;

 private:
  std::string root_;
  bool quiet_;
};

}  // namespace barge::cli
