// The exec shim's sealed copy, from which the container's child execs its command (see
// detail/exec_shim.h for why).
#pragma once

#include "barge/status.h"

namespace barge::runtime {

// A close-on-exec memfd holding the exec shim, sealed against every change, made once per
// process; the child execs it with execveat(fd, "", ..., AT_EMPTY_PATH).
Result<int> ExecShimFd();

}  // namespace barge::runtime
