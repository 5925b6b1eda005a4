#include "oci/namespace_executor.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/file_util.h"

extern char** environ;

namespace barge::oci {
namespace {

// Reports a failed setup step from the child through the pipe and exits. Only
// async-signal-safe calls: the child of a fork must not allocate.
[[noreturn]] void ChildFail(int fd, const char* what) {
  int err = errno;
  const char* msg = ::strerror(err);
  (void)!::write(fd, what, ::strlen(what));
  (void)!::write(fd, ": ", 2);
  (void)!::write(fd, msg, ::strlen(msg));
  ::_exit(127);
}

// Docker's default set without CAP_MKNOD: Docker keeps MKNOD only because its device cgroup
// refuses access to the nodes made with it; here no cgroup does, so a RUN could make a node for
// the host's disk and write to it.
constexpr int kKeptCapabilities[] = {
    CAP_CHOWN,      CAP_DAC_OVERRIDE, CAP_FSETID,     CAP_FOWNER,  CAP_NET_RAW,
    CAP_SETGID,     CAP_SETUID,       CAP_SETFCAP,    CAP_SETPCAP, CAP_NET_BIND_SERVICE,
    CAP_SYS_CHROOT, CAP_KILL,         CAP_AUDIT_WRITE};

// What runc masks and makes read-only in /proc (runc's default spec): kernel memory, keys and
// timers leak host state; /proc/sys holds global knobs (kernel.core_pattern runs a program as
// host root), /proc/sysrq-trigger reboots the host. Masking binds /dev/null over a file, or an
// empty read-only tmpfs over a directory.
constexpr const char* kMaskedProcPaths[] = {
    "acpi",          "asound",     "interrupts",  "kcore",       "keys",
    "latency_stats", "timer_list", "timer_stats", "sched_debug", "scsi"};
constexpr const char* kReadOnlyProcPaths[] = {"bus", "fs", "irq", "sys", "sysrq-trigger"};

// `/proc/self/fd/<fd>` into `buf`, without allocating (the child of a fork).
void FdPath(int fd, char (&buf)[32]) {
  char digits[12];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + fd % 10);
    fd /= 10;
  } while (fd > 0 && n < 11);
  const char prefix[] = "/proc/self/fd/";
  size_t len = sizeof prefix - 1;
  ::memcpy(buf, prefix, len);
  while (n > 0) buf[len++] = digits[--n];
  buf[len] = '\0';
}

// Opens the directory `name` directly under `root_fd` for use as a mount target, refusing a
// symlink (which could point the mount anywhere on the host). Returns -1 with errno ENOENT when
// the image has no such entry; fails the child for a symlink or a non-directory.
int OpenMountTarget(int efd, int root_fd, const char* name, const char* what) {
  struct open_how how {};
  how.flags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(::syscall(SYS_openat2, root_fd, name, &how, sizeof how));
  if (fd < 0 && errno != ENOENT) {
    if (errno == ELOOP || errno == ENOTDIR) errno = ENOTDIR;
    ChildFail(efd, what);
  }
  return fd;
}

int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

Result<int> NamespaceRunExecutor::Run(const RunStep& step) {
  if (::geteuid() != 0) {
    return Unsupported("RUN without the container runtime needs root (overlay mounts, namespaces)");
  }
  std::string parent = step.work_dir.substr(0, step.work_dir.rfind('/'));
  ASSIGN_OR_RETURN(TempDir merged, TempDir::MakeIn(parent, "merged-"));
  std::optional<TempDir> empty_lower;
  std::string lower;
  for (auto it = step.lower_dirs.rbegin(); it != step.lower_dirs.rend(); ++it) {
    lower += (lower.empty() ? "" : ":") + *it;
  }
  if (lower.empty()) {  // FROM scratch: overlay wants at least one lower dir
    ASSIGN_OR_RETURN(TempDir e, TempDir::MakeIn(parent, "empty-"));
    lower = e.path();
    empty_lower = std::move(e);
  }
  std::string options =
      fmt::format("lowerdir={},upperdir={},workdir={}", lower, step.upper_dir, step.work_dir);
  if (options.size() >= 4000) {
    return Unsupported(
        fmt::format("RUN: {} layers are too many for one overlay mount", step.lower_dirs.size()));
  }
  // Everything the child needs, prepared before fork.
  std::string root = merged.path();
  std::string proc = root + "/proc";
  std::string dev = root + "/dev";
  std::vector<char*> argv, envp;
  for (const std::string& a : step.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const std::string& e : step.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  struct DevNode {
    std::string path;
    int major, minor;
  };
  std::vector<DevNode> nodes = {{dev + "/null", 1, 3},    {dev + "/zero", 1, 5},
                                {dev + "/full", 1, 7},    {dev + "/random", 1, 8},
                                {dev + "/urandom", 1, 9}, {dev + "/tty", 5, 0}};
  std::vector<std::string> workdir_parts;
  {
    std::string acc;
    size_t start = 1;
    while (start <= step.working_dir.size()) {
      size_t end = step.working_dir.find('/', start);
      if (end == std::string::npos) end = step.working_dir.size();
      if (end > start) {
        acc += "/" + step.working_dir.substr(start, end - start);
        workdir_parts.push_back(acc);
      }
      start = end + 1;
    }
  }
  std::string workdir = step.working_dir.empty() ? "/" : step.working_dir;
  std::vector<std::string> masked, read_only;
  for (const char* p : kMaskedProcPaths) masked.push_back(proc + "/" + p);
  for (const char* p : kReadOnlyProcPaths) read_only.push_back(proc + "/" + p);

  bool quiet = quiet_;
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return ErrnoError("pipe");
  UniqueFd err_read(pipefd[0]), err_write(pipefd[1]);
  pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork");
  if (pid == 0) {
    int efd = err_write.get();
    if (::unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC) != 0)
      ChildFail(efd, "unshare");
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      ChildFail(efd, "make mounts private");
    pid_t init = ::fork();
    if (init < 0) ChildFail(efd, "fork");
    if (init == 0) {
      // PID 1 of the new PID namespace: when it exits, the kernel kills what it left behind.
      if (::mount("overlay", root.c_str(), "overlay", 0, options.c_str()) != 0)
        ChildFail(efd, "mount overlay");
      ::sethostname("barge-build", 11);
      // /proc and /dev are mounted only where the image has the directory (creating it would
      // put it in the layer), onto the directory opened beneath the root without following
      // symlinks: a symlinked /proc must not carry the mount to a host path. Once a fresh
      // proc or tmpfs is mounted there, paths below it are the kernel's, not the image's.
      int root_fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (root_fd < 0) ChildFail(efd, "open the overlay root");
      char target[32];
      int dev_fd = OpenMountTarget(efd, root_fd, "dev", "/dev in the image");
      if (dev_fd >= 0) {
        FdPath(dev_fd, target);
        if (::mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755") != 0)
          ChildFail(efd, "mount /dev");
        ::close(dev_fd);
        for (const DevNode& n : nodes) {
          ::mknod(n.path.c_str(), S_IFCHR | 0666, makedev(n.major, n.minor));
          ::chmod(n.path.c_str(), 0666);
        }
      }
      int proc_fd = OpenMountTarget(efd, root_fd, "proc", "/proc in the image");
      if (proc_fd >= 0) {
        FdPath(proc_fd, target);
        if (::mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
          ChildFail(efd, "mount /proc");
        ::close(proc_fd);
        for (const std::string& p : masked) {
          if (::mount("/dev/null", p.c_str(), nullptr, MS_BIND, nullptr) == 0) continue;
          if (errno == ENOENT) continue;  // not in this kernel
          if (errno != ENOTDIR ||
              ::mount("tmpfs", p.c_str(), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "size=0,mode=555") != 0)
            ChildFail(efd, p.c_str());
        }
        for (const std::string& p : read_only) {
          if (::mount(p.c_str(), p.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
            if (errno == ENOENT) continue;
            ChildFail(efd, p.c_str());
          }
          if (::mount(nullptr, p.c_str(), nullptr,
                      MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      nullptr) != 0)
            ChildFail(efd, p.c_str());
        }
      }
      ::close(root_fd);
      int null = ::open("/dev/null", O_RDWR);
      if (null >= 0) {
        ::dup2(null, STDIN_FILENO);
        if (quiet) {
          ::dup2(null, STDOUT_FILENO);
          ::dup2(null, STDERR_FILENO);
        }
        ::close(null);
      }
      // pivot_root rather than chroot: the old root is detached, so no chroot escape leads
      // back to the host's file system. pivot_root(".", ".") stacks the old root under the
      // new one, where umount2 detaches it (no directory has to be made in the image).
      if (::chdir(root.c_str()) != 0) ChildFail(efd, "chdir to the overlay root");
      if (::syscall(SYS_pivot_root, ".", ".") != 0) ChildFail(efd, "pivot_root");
      if (::umount2(".", MNT_DETACH) != 0) ChildFail(efd, "detach the old root");
      if (::chdir("/") != 0) ChildFail(efd, "chdir /");
      // Docker's default capability set; everything else (CAP_SYS_ADMIN: mounts, CAP_SYS_MODULE,
      // CAP_SYS_RAWIO, CAP_SYS_PTRACE, ...) leaves the bounding set before exec.
      for (int cap = 0; cap <= 63; ++cap) {
        bool keep = false;
        for (int k : kKeptCapabilities) keep |= k == cap;
        if (!keep && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
          ChildFail(efd, "drop capabilities");
      }
      for (const std::string& p : workdir_parts) ::mkdir(p.c_str(), 0755);
      if (::chdir(workdir.c_str()) != 0) ChildFail(efd, "chdir to the working directory");
      if (::setgroups(step.groups.size(), step.groups.data()) != 0) ChildFail(efd, "setgroups");
      if (::setgid(step.gid) != 0) ChildFail(efd, "setgid");
      if (::setuid(step.uid) != 0) ChildFail(efd, "setuid");
      environ = envp.data();
      ::execvp(argv[0], argv.data());
      ChildFail(efd, argv[0]);
    }
    int status = 0;
    while (::waitpid(init, &status, 0) < 0 && errno == EINTR) {
    }
    ::_exit(ExitCode(status));
  }
  err_write.Reset();
  std::string error;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(err_read.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    error.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoError("waitpid");
  }
  if (!error.empty()) return IoError(error);
  return ExitCode(status);
}

}  // namespace barge::oci
