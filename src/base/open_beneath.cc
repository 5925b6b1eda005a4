#include "base/open_beneath.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace barge {

int OpenBeneathRaw(int root_fd, const std::string& path, int flags) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags) | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  return static_cast<int>(::syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof how));
}

Result<UniqueFd> OpenBeneath(int root_fd, const std::string& path, int flags,
                             const std::string& root_name) {
  int fd = OpenBeneathRaw(root_fd, path, flags);
  if (fd < 0) return ErrnoError("open " + path + " in " + root_name);
  return UniqueFd(fd);
}

}  // namespace barge
