#include "oci/namespace_executor.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <grp.h>
#include <linux/capability.h>
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

constexpr int kKeptCapabilities[] = {
    CAP_CHOWN,   CAP_DAC_OVERRIDE, CAP_FSETID,           CAP_FOWNER,
    CAP_MKNOD,   CAP_NET_RAW,      CAP_SETGID,           CAP_SETUID,
    CAP_SETFCAP, CAP_SETPCAP,      CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
    CAP_KILL,    CAP_AUDIT_WRITE};

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
  bool have_proc = false, have_dev = false;
  {
    struct stat st {};
    // Only mount where the image has the directory: creating it would put it in the layer.
    // (Checked on the lowers through the merged path after mounting would need the child.)
    for (const std::string& l : step.lower_dirs) {
      have_proc |= ::stat((l + "/proc").c_str(), &st) == 0 && S_ISDIR(st.st_mode);
      have_dev |= ::stat((l + "/dev").c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    }
  }

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
      if (have_proc &&
          ::mount("proc", proc.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
        ChildFail(efd, "mount /proc");
      if (have_dev) {
        if (::mount("tmpfs", dev.c_str(), "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755") != 0)
          ChildFail(efd, "mount /dev");
        for (const DevNode& n : nodes) {
          ::mknod(n.path.c_str(), S_IFCHR | 0666, makedev(n.major, n.minor));
          ::chmod(n.path.c_str(), 0666);
        }
      }
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
