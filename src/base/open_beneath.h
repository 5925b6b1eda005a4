// Opening a path beneath a directory so that neither '..' nor symlinks (absolute or
// relative) can lead outside it: openat2(2) with RESOLVE_IN_ROOT, which resolves the path as
// if the directory were the root. Used wherever barge reads or writes a tree that came from
// untrusted input (unpacked layers, loaded archives, build contexts).
#pragma once

#include <string>

#include "barge/status.h"
#include "base/unique_fd.h"

namespace barge {

// openat2(root_fd, path, flags | O_CLOEXEC) with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS |
// RESOLVE_NO_XDEV. Returns the fd, or -1 with errno set.
int OpenBeneathRaw(int root_fd, const std::string& path, int flags);

// Same; the error names `path` beneath `root_name`.
Result<UniqueFd> OpenBeneath(int root_fd, const std::string& path, int flags,
                             const std::string& root_name);

}  // namespace barge
