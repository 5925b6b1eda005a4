// The default seccomp filter: compiled with libseccomp when barge is built (seccomp_profile.h),
// embedded, and loaded as BPF in the container's child.
#pragma once

#include <linux/filter.h>

#include <vector>

#include "barge/status.h"
#include "runtime/detail/child.h"

namespace barge::runtime {

// The compiled filter: Docker's default profile as an allow-list (see AllowedSyscalls). Other
// calls fail with EPERM, as does a clone that would create a user namespace; calls newer than
// any the list knows, and clone3, fail with ENOSYS (libc falls back); any call made through a
// non-native ABI (i386 int 0x80, x32) kills the process.
struct SeccompProgram {
  std::vector<sock_filter> instructions;
};

// The default filter (seccomp_profile.h), compiled when barge was built.
Result<const SeccompProgram*> DefaultSeccompProgram();

namespace detail {
// Loads `program` into the calling thread (requires no_new_privs). No allocation.
bool LoadSeccomp(const SeccompProgram& program, ChildFailure* failure);
}  // namespace detail

}  // namespace barge::runtime
