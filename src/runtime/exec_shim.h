// The exec shim's sealed copy, from which the container's child execs its command (see
// detail/exec_shim.h for why).
#pragma once

#include "barge/status.h"

namespace barge::runtime {

// A close-on-exec memfd (never fd 0-2) holding the exec shim, sealed against every change, made
// once per process; the child execs it with execveat(fd, "", ..., AT_EMPTY_PATH). -1 where the
// system forbids executable memfds (vm.memfd_noexec=2): the child then execs the command itself.
// Any other failure is an error, so that a container never starts without the shim by accident.
Result<int> ExecShimFd();

}  // namespace barge::runtime
