#include "runtime/seccomp.h"

#include <linux/seccomp.h>
#include <sys/prctl.h>

#include <cstring>

namespace barge::runtime {
namespace detail {
// The default profile (seccomp_profile.cc), compiled when barge was built.
extern const unsigned char kSeccompFilter[];
extern const size_t kSeccompFilter_size;
}  // namespace detail

Result<const SeccompProgram*> DefaultSeccompProgram() {
  static const SeccompProgram program = [] {
    SeccompProgram p;
    p.instructions.resize(detail::kSeccompFilter_size / sizeof(sock_filter));
    std::memcpy(p.instructions.data(), detail::kSeccompFilter,
                p.instructions.size() * sizeof(sock_filter));
    return p;
  }();
  if (program.instructions.empty()) return Internal("barge was built without a seccomp filter");
  return &program;
}

namespace detail {

bool LoadSeccomp(const SeccompProgram& program, ChildFailure* f) {
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(program.instructions.size());
  prog.filter = const_cast<sock_filter*>(program.instructions.data());
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
    return Fail(f, "load seccomp filter", nullptr, errno);
  }
  return true;
}

}  // namespace detail
}  // namespace barge::runtime
