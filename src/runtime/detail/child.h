// The child side of container creation: what runs between clone() and execve() inside the new
// namespaces. Everything here is prepared by the parent beforehand and runs without allocating
// (the parent may be multi-threaded, and clone() does not reset allocator locks as fork() does).
// A step that fails fills a ChildFailure and returns false; the caller reports it to the parent
// over a pipe and exits.
#pragma once

#include <sys/types.h>

namespace barge::runtime::detail {

struct ChildFailure {
  const char* what = nullptr;    // the attempted action, e.g. "mount proc on"
  const char* object = nullptr;  // the path or object, may be null
  int err = 0;                   // errno
};

inline bool Fail(ChildFailure* f, const char* what, const char* object, int err) {
  f->what = what;
  f->object = object;
  f->err = err;
  return false;
}

}  // namespace barge::runtime::detail
