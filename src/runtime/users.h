// The container's user: "UID[:GID]" or "NAME[:GROUP]", resolved against the container's own
// /etc/passwd and /etc/group (after pivot_root), never the host's.
#pragma once

#include <sys/types.h>

#include "runtime/detail/child.h"

namespace barge::runtime::detail {

struct ResolvedUser {
  uid_t uid = 0;
  gid_t gid = 0;
  gid_t groups[64];  // supplementary groups from /etc/group
  int group_count = 0;
  char home[256] = "/";
};

// Resolves `spec` ("" means root). No allocation.
bool ResolveUser(const char* spec, ResolvedUser* out, ChildFailure* failure);

// setgroups, setresgid, setresuid, keeping capabilities across the change (PR_SET_KEEPCAPS) so
// that they can be set afterwards.
bool SwitchUser(const ResolvedUser& user, ChildFailure* failure);

}  // namespace barge::runtime::detail
