// The image builder's RUN steps, executed by the container runtime (src/runtime): the same
// isolation as `barge run` (namespaces, overlay root, Docker's default capabilities,
// no_new_privs, seccomp, no network), with the step's layers as the overlay's lower dirs.
#pragma once

#include "oci/builder.h"

namespace barge::cli {

class RuntimeRunExecutor : public oci::RunStepExecutor {
 public:
  // `quiet`: the command's stdout and stderr go to /dev/null instead of barge's.
  explicit RuntimeRunExecutor(bool quiet = false) : quiet_(quiet) {}
  Result<int> Run(const oci::RunStep& step) override;

 private:
  bool quiet_;
};

}  // namespace barge::cli
