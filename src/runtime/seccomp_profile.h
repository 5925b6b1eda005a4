// Barge's default seccomp profile and its compilation with libseccomp. This runs when barge is
// built (seccomp_gen.cc writes the program, which barge embeds), not on every container start:
// compiling the allow-list takes libseccomp about 2 ms.
#pragma once

#include <linux/filter.h>

#include <vector>

#include "barge/status.h"

namespace barge::runtime {

// The system calls a container may make (names; those not on this architecture are skipped).
const std::vector<const char*>& AllowedSyscalls();
// Calls refused with EPERM that are named so they count as known even where libseccomp's table
// is older than they are.
const std::vector<const char*>& RefusedSyscalls();

// The filter for the native architecture: the allow-list, the clone and personality rules, EPERM
// for the rest, ENOSYS for calls newer than any named, and death for a foreign ABI.
Result<std::vector<sock_filter>> CompileDefaultProfile();

}  // namespace barge::runtime
