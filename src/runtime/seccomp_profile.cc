#include "runtime/seccomp_profile.h"

#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <string>

#include "base/unique_fd.h"

namespace barge::runtime {

// Docker's default profile, as barge applies it: an allow-list, with Docker's choices for a
// container that has the default capabilities on a kernel >= 4.8 (so ptrace is allowed: the
// kernel checks it, and it no longer bypasses seccomp). Everything not listed fails with EPERM:
// the calls that need capabilities the container lacks (mount, unshare, setns, pivot_root,
// swapon, reboot, kexec_*, *_module, settimeofday, clock_settime, acct, quotactl, iopl, ioperm,
// sethostname, the new mount API, fanotify_init, open_by_handle_at, mbind, set_mempolicy,
// move_pages; kcmp, pidfd_getfd, process_vm_* and process_madvise need CAP_SYS_PTRACE, ...), the
// ones Docker refuses outright (keyctl, add_key, request_key, bpf, perf_event_open, userfaultfd,
// lookup_dcookie, syslog, vhangup, io_uring: its operations run where a filter cannot see them),
// and obsolete ones (uselib, ustat, sysfs, _sysctl, nfsservctl, vm86). A call newer than every call
// named here (the kernel is newer than this list) fails with ENOSYS instead, so that libc falls
// back to an older call, as runc does.
const std::vector<const char*>& AllowedSyscalls() {
  // clang-format off
  static const std::vector<const char*> kAllowed = {
      "_llseek", "_newselect", "accept", "accept4", "access", "adjtimex", "alarm", "arch_prctl",
      "bind", "brk", "cachestat", "capget", "capset", "chdir", "chmod", "chown", "chown32",
      "chroot", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
      "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close",
      "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
      "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait",
      "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group",
      "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark",
      "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl",
      "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr",
      "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
      "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv",
      "futex_wake", "futimesat", "get_robust_list", "get_thread_area", "getcpu", "getcwd",
      "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid",
      "getgid32", "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp",
      "getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid",
      "getresuid32", "getrlimit", "getrusage", "getsid", "getsockname", "getsockopt", "gettid",
      "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init",
      "inotify_init1", "inotify_rm_watch", "io_cancel", "io_destroy", "io_getevents",
      "io_pgetevents", "io_pgetevents_time64", "io_setup", "io_submit", "ioctl", "ioprio_get",
      "ioprio_set", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset",
      "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen",
      "listxattr", "llistxattr", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64",
      "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore",
      "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2",
      "modify_ldt", "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
      "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap",
      "mseal", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
      "name_to_handle_at", "nanosleep", "newfstatat", "open", "openat", "openat2", "pause",
      "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
      "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2",
      "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "ptrace", "pwrite64",
      "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv",
      "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr",
      "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction",
      "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
      "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_get_priority_max",
      "sched_get_priority_min", "sched_getaffinity", "sched_getattr", "sched_getparam",
      "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
      "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield",
      "seccomp", "select", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send",
      "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto", "set_robust_list",
      "set_thread_area", "set_tid_address", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32",
      "setgid", "setgid32", "setgroups", "setgroups32", "setitimer", "setpgid", "setpriority",
      "setregid", "setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid",
      "setreuid32", "setrlimit", "setsid", "setsockopt", "setuid", "setuid32", "setxattr", "shmat",
      "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4",
      "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64", "statfs",
      "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "sync_file_range2",
      "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
      "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
      "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
      "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask",
      "uname", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork",
      "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
  };
  // clang-format on
  return kAllowed;
}

// Named so that they count as known (EPERM, not ENOSYS) even on a libseccomp that knows no
// newer call: the refused calls of the comment above.
const std::vector<const char*>& RefusedSyscalls() {
  // clang-format off
  static const std::vector<const char*> kRefused = {
      "acct", "add_key", "bpf", "clock_settime", "clock_settime64", "create_module",
      "delete_module", "fanotify_init", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick",
      "get_kernel_syms", "get_mempolicy", "init_module", "io_uring_enter", "io_uring_register",
      "io_uring_setup", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl",
      "lookup_dcookie", "mbind", "migrate_pages", "mount", "mount_setattr", "move_mount",
      "move_pages", "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open",
      "pidfd_getfd", "pivot_root", "process_madvise", "process_vm_readv", "process_vm_writev",
      "query_module", "quotactl", "quotactl_fd", "reboot", "request_key", "set_mempolicy",
      "set_mempolicy_home_node", "setdomainname", "sethostname", "setns", "settimeofday", "stime",
      "swapoff", "swapon", "_sysctl", "sysfs", "syslog", "umount", "umount2", "unshare", "uselib",
      "userfaultfd", "ustat", "vhangup", "vm86", "vm86old",
  };
  // clang-format on
  return kRefused;
}

namespace {

// A rule for `name`, if it is a system call of this architecture; returns its number, or -1.
Result<int> AddRule(scmp_filter_ctx ctx, uint32_t action, const char* name,
                    std::initializer_list<scmp_arg_cmp> args = {}) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return -1;
  int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(args.size()),
                                  args.size() == 0 ? nullptr : args.begin());
  // Pseudo-syscalls that libseccomp cannot place on this architecture are skipped.
  if (rc == -EDOM || rc == -EINVAL) return -1;
  if (rc < 0) return ErrnoError(std::string("seccomp: add rule for ") + name, -rc);
  return nr;
}

// Prepends to libseccomp's program: on the native ABI, a call numbered above `max_known` fails
// with ENOSYS (the default action would say EPERM, and libc would not fall back).
void PrependEnosysForNewerCalls(std::vector<sock_filter>& program, uint32_t native_arch,
                                int max_known) {
  const sock_filter stub[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, native_arch, 0, 4),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 2, 0),  // x32: libseccomp decides
      BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, static_cast<uint32_t>(max_known), 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
  };
  program.insert(program.begin(), std::begin(stub), std::end(stub));
}

}  // namespace

Result<std::vector<sock_filter>> CompileDefaultProfile() {
  std::unique_ptr<void, void (*)(scmp_filter_ctx)> ctx(seccomp_init(SCMP_ACT_ERRNO(EPERM)),
                                                       seccomp_release);
  if (!ctx) return Internal("seccomp_init failed");
  // Calls from a foreign ABI bypass a filter written for the native one: kill them.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
      rc < 0) {
    return ErrnoError("seccomp: set bad-arch action", -rc);
  }
  // A binary search over the calls rather than a linear scan (libseccomp >= 2.5).
  (void)seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2);
  int max_known = 0;
  for (const char* name : AllowedSyscalls()) {
    ASSIGN_OR_RETURN(int nr, AddRule(ctx.get(), SCMP_ACT_ALLOW, name));
    max_known = std::max(max_known, nr);
  }
  for (const char* name : RefusedSyscalls()) {
    max_known = std::max(max_known, seccomp_syscall_resolve_name(name));
  }
  // clone may not create a user namespace (the one kind an unprivileged process may create, and
  // a door to kernel code that assumes root; unshare and setns are refused outright). clone3
  // passes its flags in memory a filter cannot read, so it reports ENOSYS and libc falls back to
  // clone, as with Docker's profile.
  ASSIGN_OR_RETURN(int clone_nr, AddRule(ctx.get(), SCMP_ACT_ALLOW, "clone",
                                         {SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, 0)}));
  ASSIGN_OR_RETURN(int clone3_nr, AddRule(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), "clone3"));
  max_known = std::max({max_known, clone_nr, clone3_nr});
  // socket: any family but AF_VSOCK, which network namespaces do not separate (the host's and the
  // hypervisor's vsock services would be reachable even with --network none).
  ASSIGN_OR_RETURN(int socket_nr,
                   AddRule(ctx.get(), SCMP_ACT_ALLOW, "socket", {SCMP_A0(SCMP_CMP_NE, AF_VSOCK)}));
  max_known = std::max(max_known, socket_nr);
  // personality: Linux (0), 32-bit Linux (PER_LINUX32), with UNAME26, and the query; not the
  // flags that turn off address randomization or make memory executable.
  for (scmp_datum_t persona : {0x0U, 0x8U, 0x20000U, 0x20008U, 0xffffffffU}) {
    ASSIGN_OR_RETURN(
        int nr, AddRule(ctx.get(), SCMP_ACT_ALLOW, "personality", {SCMP_A0(SCMP_CMP_EQ, persona)}));
    max_known = std::max(max_known, nr);
  }
  int raw = static_cast<int>(::syscall(SYS_memfd_create, "barge-seccomp", MFD_CLOEXEC));
  if (raw < 0) return ErrnoError("memfd_create for seccomp");
  UniqueFd fd(raw);
  if (int rc = seccomp_export_bpf(ctx.get(), fd.get()); rc < 0) {
    return ErrnoError("seccomp: export filter", -rc);
  }
  off_t size = ::lseek(fd.get(), 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0) return Internal("seccomp: bad filter size");
  std::vector<sock_filter> program(static_cast<size_t>(size) / sizeof(sock_filter));
  if (::pread(fd.get(), program.data(), static_cast<size_t>(size), 0) != size) {
    return ErrnoError("seccomp: read filter");
  }
  PrependEnosysForNewerCalls(program, seccomp_arch_native(), max_known);
  return program;
}

}  // namespace barge::runtime
