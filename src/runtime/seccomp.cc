#include "runtime/seccomp.h"

#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "base/unique_fd.h"

namespace barge::runtime {

// Among them io_uring (its operations run where the filter cannot see them; Docker refuses it
// since 25.0) and syslog (the host's kernel log, readable without CAP_SYSLOG unless
// kernel.dmesg_restrict is set).
const std::vector<const char*>& DeniedSyscalls() {
  static const std::vector<const char*> kDenied = {"acct",
                                                   "add_key",
                                                   "bpf",
                                                   "clock_adjtime",
                                                   "clock_settime",
                                                   "create_module",
                                                   "delete_module",
                                                   "finit_module",
                                                   "fsconfig",
                                                   "fsmount",
                                                   "fsopen",
                                                   "fspick",
                                                   "get_kernel_syms",
                                                   "get_mempolicy",
                                                   "init_module",
                                                   "io_uring_enter",
                                                   "io_uring_register",
                                                   "io_uring_setup",
                                                   "ioperm",
                                                   "iopl",
                                                   "kcmp",
                                                   "kexec_file_load",
                                                   "kexec_load",
                                                   "keyctl",
                                                   "lookup_dcookie",
                                                   "mbind",
                                                   "mount",
                                                   "mount_setattr",
                                                   "move_mount",
                                                   "move_pages",
                                                   "name_to_handle_at",
                                                   "nfsservctl",
                                                   "open_by_handle_at",
                                                   "open_tree",
                                                   "perf_event_open",
                                                   "pivot_root",
                                                   "process_vm_readv",
                                                   "process_vm_writev",
                                                   "ptrace",
                                                   "query_module",
                                                   "quotactl",
                                                   "quotactl_fd",
                                                   "reboot",
                                                   "request_key",
                                                   "set_mempolicy",
                                                   "setns",
                                                   "settimeofday",
                                                   "stime",
                                                   "swapoff",
                                                   "swapon",
                                                   "sysfs",
                                                   "syslog",
                                                   "_sysctl",
                                                   "umount",
                                                   "umount2",
                                                   "unshare",
                                                   "uselib",
                                                   "userfaultfd",
                                                   "ustat",
                                                   "vm86",
                                                   "vm86old"};
  return kDenied;
}

namespace {

Result<SeccompProgram> Compile() {
  std::unique_ptr<void, void (*)(scmp_filter_ctx)> ctx(seccomp_init(SCMP_ACT_ALLOW),
                                                       seccomp_release);
  if (!ctx) return Internal("seccomp_init failed");
  // Calls from a foreign ABI bypass a filter written for the native one: kill them.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
      rc < 0) {
    return ErrnoError("seccomp: set bad-arch action", -rc);
  }
  for (const char* name : DeniedSyscalls()) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not a system call on this architecture
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), nr, 0); rc < 0) {
      // Pseudo-syscalls that libseccomp cannot place on this architecture are skipped.
      if (rc == -EDOM || rc == -EINVAL) continue;
      return ErrnoError(std::string("seccomp: add rule for ") + name, -rc);
    }
  }
  // New namespaces: unshare is refused above; clone may not create a user namespace (the one kind
  // an unprivileged process may create, and a door to kernel code that assumes root); clone3
  // passes its flags in memory a filter cannot read, so it reports ENOSYS and libc falls back to
  // clone, as with Docker's profile.
  if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
      rc < 0) {
    return ErrnoError("seccomp: add rule for clone", -rc);
  }
  if (int nr = seccomp_syscall_resolve_name("clone3"); nr != __NR_SCMP_ERROR) {
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), nr, 0); rc < 0) {
      return ErrnoError("seccomp: add rule for clone3", -rc);
    }
  }
  int raw = static_cast<int>(::syscall(SYS_memfd_create, "barge-seccomp", MFD_CLOEXEC));
  if (raw < 0) return ErrnoError("memfd_create for seccomp");
  UniqueFd fd(raw);
  if (int rc = seccomp_export_bpf(ctx.get(), fd.get()); rc < 0) {
    return ErrnoError("seccomp: export filter", -rc);
  }
  off_t size = ::lseek(fd.get(), 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0) return Internal("seccomp: bad filter size");
  SeccompProgram program;
  program.instructions.resize(static_cast<size_t>(size) / sizeof(sock_filter));
  if (::pread(fd.get(), program.instructions.data(), static_cast<size_t>(size), 0) != size) {
    return ErrnoError("seccomp: read filter");
  }
  return program;
}

}  // namespace

Result<const SeccompProgram*> DefaultSeccompProgram() {
  static const Result<SeccompProgram> compiled = Compile();  // thread-safe, once per process
  if (!compiled.ok()) return compiled.status();
  return &compiled.value();
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
