// Capabilities: the container's process keeps Docker's default set and nothing else; its
// inheritable set is empty.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "barge/status.h"
#include "runtime/detail/child.h"

namespace barge::runtime {

// Docker's default capability names (CAP_CHOWN, CAP_DAC_OVERRIDE, ..., CAP_MKNOD).
const std::vector<std::string>& DefaultCapabilities();

// A capability set as the kernel's bit mask, with the highest capability the kernel knows.
struct CapabilitySet {
  uint64_t mask = 0;
  int last_cap = 0;  // /proc/sys/kernel/cap_last_cap
};

// Resolves names through libcap (so names the kernel lacks are errors, with the name).
Result<CapabilitySet> MakeCapabilitySet(const std::vector<std::string>& names);

namespace detail {
// Drops every capability outside `set` from the bounding set (needs CAP_SETPCAP, so call before
// changing user) and clears the ambient set.
bool DropBoundingSet(const CapabilitySet& set, ChildFailure* failure);
// Sets permitted, effective and inheritable to `set` (after the user change).
bool ApplyCapabilities(const CapabilitySet& set, ChildFailure* failure);
}  // namespace detail

}  // namespace barge::runtime
