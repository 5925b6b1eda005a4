// Namespaces: which ones a container gets, and what is set up inside them (hostname, loopback).
#pragma once

#include "runtime/detail/child.h"
#include "runtime/spec.h"

namespace barge::runtime {

// clone(2) flags for a container: mount, pid, uts, ipc, and network unless it is the host's.
unsigned long NamespaceFlags(NetworkMode network);

namespace detail {
// Sets the UTS hostname and, in a new network namespace, brings loopback up.
bool SetUpNamespaces(const char* hostname, NetworkMode network, ChildFailure* failure);
}  // namespace detail

}  // namespace barge::runtime
