#include "runtime/exec_shim.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <mutex>

#include "base/file_util.h"
#include "base/unique_fd.h"

namespace barge::runtime {
namespace detail {
extern const unsigned char kExecShim[];
extern const size_t kExecShim_size;
}  // namespace detail

namespace {

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U  // Linux 6.3: executable even where vm.memfd_noexec says otherwise
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020  // Linux 6.3: the mode's exec bits can no longer change
#endif

// An empty fd where the system forbids executable memfds.
Result<UniqueFd> MakeExecShimFd() {
  int fd = ::memfd_create("barge-exec-shim", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (fd < 0 && errno == EINVAL) {  // before 6.3, where every memfd is executable
    fd = ::memfd_create("barge-exec-shim", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  }
  if (fd < 0 && errno == EACCES) return UniqueFd();  // vm.memfd_noexec=2
  if (fd < 0) return ErrnoError("memfd_create for the exec shim");
  UniqueFd created(fd);
  // Never 0, 1 or 2, which the child replaces with the container's stdio before it execs this.
  UniqueFd owned(::fcntl(created.get(), F_DUPFD_CLOEXEC, 3));
  if (!owned) return ErrnoError("dup the exec shim");
  std::string_view bytes(reinterpret_cast<const char*>(detail::kExecShim), detail::kExecShim_size);
  RETURN_IF_ERROR(WriteAll(owned.get(), bytes, "the exec shim"));
  // Sealed against every change, the mode included: a container that gets hold of it through
  // /proc/<pid>/exe could otherwise chmod it and make later containers fail to start.
  constexpr int kSeals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
  if (::fcntl(owned.get(), F_ADD_SEALS, kSeals | F_SEAL_EXEC) != 0 &&
      (errno != EINVAL || ::fcntl(owned.get(), F_ADD_SEALS, kSeals) != 0)) {
    return ErrnoError("seal the exec shim");
  }
  return owned;
}

}  // namespace

Result<int> ExecShimFd() {
  // Made once per process; a failure is not remembered, so a transient one (EMFILE) does not
  // disable the shim for the rest of a long-lived process.
  static std::mutex mutex;
  static UniqueFd fd;
  std::lock_guard<std::mutex> lock(mutex);
  if (!fd) {
    ASSIGN_OR_RETURN(UniqueFd made, MakeExecShimFd());
    if (!made) return -1;
    fd = std::move(made);
  }
  return fd.get();
}

}  // namespace barge::runtime
