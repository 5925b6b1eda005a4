#include "runtime/exec_shim.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

#include "base/file_util.h"
#include "base/unique_fd.h"

namespace barge::runtime {
namespace detail {
extern const unsigned char kExecShim[];
extern const size_t kExecShim_size;
}  // namespace detail

namespace {

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U  // Linux 6.3: executable even where vm.memfd_noexec defaults otherwise
#endif

Result<UniqueFd> MakeExecShimFd() {
  int fd = ::memfd_create("barge-exec-shim", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (fd < 0 && errno == EINVAL) {  // before 6.3, where every memfd is executable
    fd = ::memfd_create("barge-exec-shim", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  }
  if (fd < 0) return ErrnoError("memfd_create for the exec shim");
  UniqueFd owned(fd);
  std::string_view bytes(reinterpret_cast<const char*>(detail::kExecShim), detail::kExecShim_size);
  RETURN_IF_ERROR(WriteAll(fd, bytes, "the exec shim"));
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0) {
    return ErrnoError("seal the exec shim");
  }
  return owned;
}

}  // namespace

Result<int> ExecShimFd() {
  static const Result<UniqueFd> fd = MakeExecShimFd();  // thread-safe, once per process
  if (!fd.ok()) return fd.status();
  return fd->get();
}

}  // namespace barge::runtime
