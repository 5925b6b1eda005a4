#include "runtime/namespaces.h"

#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace barge::runtime {

unsigned long NamespaceFlags(NetworkMode network) {
  unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
  if (network == NetworkMode::kNone) flags |= CLONE_NEWNET;
  return flags;
}

namespace detail {

bool SetUpNamespaces(const char* hostname, NetworkMode network, ChildFailure* f) {
  if (::sethostname(hostname, strlen(hostname)) != 0)
    return Fail(f, "sethostname", hostname, errno);
  if (network != NetworkMode::kNone) return true;
  int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return Fail(f, "socket for", "lo", errno);
  ifreq req{};
  strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = ::ioctl(sock, SIOCGIFFLAGS, &req) == 0;
  if (ok) {
    req.ifr_flags |= IFF_UP | IFF_RUNNING;
    ok = ::ioctl(sock, SIOCSIFFLAGS, &req) == 0;
  }
  int err = errno;
  ::close(sock);
  if (!ok) return Fail(f, "bring up", "lo", err);
  return true;
}

}  // namespace detail
}  // namespace barge::runtime
