// The default seccomp filter: built with libseccomp in the parent, loaded as BPF in the child.
#pragma once

#include <linux/filter.h>

#include <vector>

#include "barge/status.h"
#include "runtime/detail/child.h"

namespace barge::runtime {

// The compiled filter. Calls outside it are allowed; the listed ones fail with EPERM, as does a
// clone that would create a user namespace; clone3 fails with ENOSYS (libc falls back to clone);
// any call made through a non-native ABI (i386 int 0x80, x32) kills the process.
struct SeccompProgram {
  std::vector<sock_filter> instructions;
};

// Docker's default profile refuses these system calls to containers without extra capabilities.
const std::vector<const char*>& DeniedSyscalls();

// Compiles the default filter once per process and returns it.
Result<const SeccompProgram*> DefaultSeccompProgram();

namespace detail {
// Loads `program` into the calling thread (requires no_new_privs). No allocation.
bool LoadSeccomp(const SeccompProgram& program, ChildFailure* failure);
}  // namespace detail

}  // namespace barge::runtime
