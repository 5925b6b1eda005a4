#include "runtime/process.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>

#include "base/file_util.h"
#include "runtime/capabilities.h"
#include "runtime/container_store.h"
#include "runtime/detail/exec_shim.h"
#include "runtime/exec_shim.h"
#include "runtime/mounts.h"
#include "runtime/namespaces.h"
#include "runtime/rlimits.h"
#include "runtime/seccomp.h"
#include "runtime/users.h"

namespace barge::runtime {
namespace {

using detail::ChildFailure;
using detail::ChildReport;
using detail::Fail;

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// barge exec joins these namespaces of a running container (see JoinContainer), the mount
// namespace last, as runc does; then its pid namespace, for the process it clones.
constexpr const char* kJoinedNamespaceNames[] = {"uts", "ipc", "net", "mnt"};
constexpr int kJoinedNamespaces = 4;

// Everything the child needs, prepared by the parent so that the child does not allocate.
struct ChildArgs {
  const ContainerSpec* spec = nullptr;
  const MountPlan* mounts = nullptr;
  const CapabilitySet* caps = nullptr;
  const SeccompProgram* seccomp = nullptr;
  const std::vector<RlimitSetting>* rlimits = nullptr;
  const std::vector<UniqueFd>* cgroup_procs = nullptr;
  int report_fd = -1;
  int parent_pidfd = -1;  // die_with_parent: barge, to notice that it died before the child's
                          // parent-death signal was set
  int console_fd = -1;    // -t: where the child sends the terminal's master
  char* const* argv = nullptr;
  char** envp = nullptr;
  int shim_fd = -1;            // the sealed exec shim, -1 where memfds cannot be executed
  char** shim_argv = nullptr;  // {kExecShimName, "<report_fd>", <exe, set by the child>, argv...}
  int home_slot = -1;          // index in envp reserved for HOME, -1 when the spec sets it
  const char* path = nullptr;  // the container's PATH, for finding argv[0]
  const char* hostname = nullptr;
  // barge exec: namespaces of the running container to join (mount last), else all -1; its pid
  // namespace; and where the intermediate process reports the pid of the one it made.
  int join_ns[kJoinedNamespaces] = {-1, -1, -1, -1};
  int join_pid_ns = -1;
  int join_report_pid = -1;
};

char g_home_env[300];  // HOME=..., filled by the child from the container's /etc/passwd

[[noreturn]] void ChildExit(const ChildArgs& a, const ChildFailure& f, bool exec_stage) {
  ChildReport report;
  report.err = f.err;
  report.exec_stage = exec_stage;
  snprintf(report.message, sizeof report.message, "%s%s%s", f.what, f.object != nullptr ? " " : "",
           f.object != nullptr ? f.object : "");
  (void)!::write(a.report_fd, &report, sizeof report);
  ::_exit(127);
}

bool SetUpStdio(const Stdio& stdio, ChildFailure* f) {
  int fds[3] = {stdio.in, stdio.out, stdio.err};
  int high[3];
  for (int i = 0; i < 3; ++i) {
    high[i] = ::fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
    if (high[i] < 0) return Fail(f, "dup standard stream", nullptr, errno);
  }
  for (int i = 0; i < 3; ++i) {
    if (::dup2(high[i], i) < 0) return Fail(f, "dup2 standard stream", nullptr, errno);
  }
  return true;
}

// Closes every descriptor above 2 except `keep_a` and `keep_b` (-1: none). Whatever barge (or
// whoever started it) had open, directories included, would otherwise be reachable through
// /proc/self/fd while the child resolves the image's paths (mount points, the working
// directory) with full capabilities: CVE-2024-21626.
// Closes every descriptor above 2 but those in `keep` (ascending; -1 entries are ignored).
template <size_t N>
bool CloseInheritedDescriptors(const int (&keep)[N], ChildFailure* f) {
  unsigned next = 3;
  for (int fd : keep) {
    if (fd < static_cast<int>(next)) continue;
    if (static_cast<unsigned>(fd) > next &&
        ::syscall(SYS_close_range, next, static_cast<unsigned>(fd) - 1, 0U) != 0) {
      return Fail(f, "close inherited descriptors", nullptr, errno);
    }
    next = static_cast<unsigned>(fd) + 1;
  }
  if (::syscall(SYS_close_range, next, ~0U, 0U) != 0) {
    return Fail(f, "close inherited descriptors", nullptr, errno);
  }
  return true;
}

// The working directory must be a path of the container: the kernel names a directory outside
// the process's root "(unreachable)/...".
bool CheckWorkingDirectory(const char* cwd, ChildFailure* f) {
  char buf[PATH_MAX];
  long n = ::syscall(SYS_getcwd, buf, sizeof buf);
  if (n < 0) return Fail(f, "getcwd for working directory", cwd, errno);
  if (buf[0] != '/') return Fail(f, "working directory is outside the container:", cwd, 0);
  return true;
}

// Finds argv[0] in PATH inside the container (execvpe would use barge's own PATH).
bool FindExecutable(const char* name, const char* path, char* out, size_t size, ChildFailure* f) {
  if (strchr(name, '/') != nullptr) {
    snprintf(out, size, "%s", name);
    return true;
  }
  const char* p = path;
  int first_error = ENOENT;
  while (true) {
    const char* colon = strchr(p, ':');
    size_t len = colon != nullptr ? static_cast<size_t>(colon - p) : strlen(p);
    if (len == 0) {
      snprintf(out, size, "./%s", name);
    } else {
      snprintf(out, size, "%.*s/%s", static_cast<int>(len), p, name);
    }
    struct stat st {};
    if (::stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
      if (::access(out, X_OK) == 0) return true;
      first_error = EACCES;
    }
    if (colon == nullptr) break;
    p = colon + 1;
  }
  return Fail(f, "exec", name, first_error == ENOENT ? 0 : first_error);
}

// CVE-2019-5736: barge's own binary, run inside the container (an entrypoint of /proc/self/exe,
// or a symlink to it), would show the container a host file it could later open for writing.
// A script's "#!/proc/self/exe" line is not caught here; the binary stays unwritable (ETXTBSY)
// while a barge process waits for the container, and none of the container outlives it.
bool CheckNotOurBinary(const char* exe, ChildFailure* f) {
  struct stat ours {};
  struct stat target {};
  if (::stat("/proc/self/exe", &ours) != 0 || ::stat(exe, &target) != 0) return true;
  if (ours.st_dev == target.st_dev && ours.st_ino == target.st_ino) {
    return Fail(f, "refusing to run barge's own binary in the container:", exe, EACCES);
  }
  return true;
}

// A one-byte message with room for one passed file descriptor (SCM_RIGHTS), for handing the
// terminal's master between the container's child and barge. Not copyable: msg points into it.
struct FdMessage {
  explicit FdMessage(char b) : byte(b) {
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
  }
  FdMessage(const FdMessage&) = delete;
  FdMessage& operator=(const FdMessage&) = delete;

  char byte;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
};

// Opens a pty in the container's own devpts (so that its name resolves inside), sends the master
// to the parent over `console_fd` and makes the slave stdin, stdout, stderr and the controlling
// terminal.
bool OpenTerminal(int console_fd, ChildFailure* f) {
  int master = ::open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) return Fail(f, "open", "/dev/pts/ptmx", errno);
  int unlock = 0;
  if (::ioctl(master, TIOCSPTLCK, &unlock) != 0) return Fail(f, "unlock pty", nullptr, errno);
  int slave = ::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
  if (slave < 0) return Fail(f, "open pty peer", nullptr, errno);
  FdMessage m('t');
  cmsghdr* cmsg = CMSG_FIRSTHDR(&m.msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cmsg), &master, sizeof(int));
  if (::sendmsg(console_fd, &m.msg, 0) != 1)
    return Fail(f, "send the terminal to barge", nullptr, errno);
  ::close(master);
  for (int i = 0; i < 3; ++i) {
    if (::dup2(slave, i) < 0) return Fail(f, "dup2 terminal", nullptr, errno);
  }
  if (slave > 2) ::close(slave);
  if (::ioctl(0, TIOCSCTTY, 0) != 0) return Fail(f, "set the controlling terminal", nullptr, errno);
  return true;
}

// Receives the terminal's master from the child; an invalid fd when the child failed first.
UniqueFd ReceiveTerminal(int console_fd) {
  FdMessage m(0);
  ssize_t n;
  do {
    n = ::recvmsg(console_fd, &m.msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  cmsghdr* cmsg = n == 1 ? CMSG_FIRSTHDR(&m.msg) : nullptr;
  if (cmsg == nullptr || cmsg->cmsg_type != SCM_RIGHTS) return UniqueFd();
  int fd = -1;
  memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
  return UniqueFd(fd);
}

// Sets the parent-death signal (it does not survive a clone or a user change) and makes sure
// barge did not die before it was set (its pidfd is readable then).
void DieWithParent(const ChildArgs& a) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
    ChildExit(a, {"set parent-death signal", nullptr, errno}, false);
  }
  pollfd parent{a.parent_pidfd, POLLIN, 0};
  if (a.parent_pidfd >= 0 && ::poll(&parent, 1, 0) != 0) ::_exit(127);
}

// barge exec, in an intermediate child still in the host's pid namespace: joins the container's
// cgroups and its uts, ipc, net and mount namespaces, becomes non-dumpable, enters the pid
// namespace for its next child and clones that child as barge's own (CLONE_PARENT). Only the
// new child returns; the intermediate reports its pid to barge and exits. So the process appears
// in the container's /proc only when it is in all of the container's namespaces and cgroups and
// non-dumpable: nothing there can read the host's mounts or network through it, or open its
// /proc/<pid>/exe, barge's binary (CVE-2019-5736 as runc exec met it).
void JoinContainer(const ChildArgs& a) {
  for (const UniqueFd& fd : *a.cgroup_procs) {
    if (::write(fd.get(), "0", 1) != 1) ChildExit(a, {"join cgroup", nullptr, errno}, false);
  }
  for (int i = 0; i < kJoinedNamespaces; ++i) {
    if (::setns(a.join_ns[i], 0) != 0) {
      ChildExit(a, {"join the container's namespace", kJoinedNamespaceNames[i], errno}, false);
    }
    ::close(a.join_ns[i]);
  }
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    ChildExit(a, {"prctl PR_SET_DUMPABLE", nullptr, errno}, false);
  }
  if (::setns(a.join_pid_ns, CLONE_NEWPID) != 0) {
    ChildExit(a, {"join the container's namespace pid", nullptr, errno}, false);
  }
  long pid = ::syscall(SYS_clone, CLONE_PARENT | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid == 0) {
    DieWithParent(a);
    return;
  }
  if (pid < 0) ChildExit(a, {"clone into the container", nullptr, errno}, false);
  int created = static_cast<int>(pid);
  (void)!::write(a.join_report_pid, &created, sizeof created);
  ::_exit(0);
}

[[noreturn]] void ChildMain(const ChildArgs& a) {
  ChildFailure f;
  const ContainerSpec& spec = *a.spec;
  // Signal dispositions and the mask are inherited from barge (which may ignore SIGPIPE or block
  // signals); the container starts from the defaults.
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  // First, so that a barge killed during the set-up takes the container with it (the user
  // switch clears it; it is set again after). A barge that died before the prctl sent no
  // signal: its pidfd is readable then.
  if (spec.die_with_parent) DieWithParent(a);
  const bool join = spec.join_pid > 0;
  if (join) {
    JoinContainer(a);
  } else {
    for (const UniqueFd& fd : *a.cgroup_procs) {
      if (::write(fd.get(), "0", 1) != 1) ChildExit(a, {"join cgroup", nullptr, errno}, false);
    }
  }
  if (!SetUpStdio(spec.stdio, &f)) ChildExit(a, f, false);
  int keep[3] = {a.report_fd, a.console_fd, a.shim_fd};
  std::sort(std::begin(keep), std::end(keep));
  if (!CloseInheritedDescriptors(keep, &f)) ChildExit(a, f, false);
  // A session of its own: the terminal's Ctrl-C reaches barge, which forwards it once.
  ::setsid();
  ::umask(022);
  if (!join && !detail::SetUpRootfs(*a.mounts, &f)) ChildExit(a, f, false);
  if (spec.terminal && !OpenTerminal(a.console_fd, &f)) ChildExit(a, f, false);
  if (!join && !detail::SetUpNamespaces(a.hostname, spec.network, &f)) ChildExit(a, f, false);
  if (!detail::ApplyRlimits(*a.rlimits, &f)) ChildExit(a, f, false);
  detail::ResolvedUser user;
  if (!detail::ResolveUser(spec.process.user.c_str(), &user, &f)) ChildExit(a, f, false);
  if (a.home_slot >= 0) {
    snprintf(g_home_env, sizeof g_home_env, "HOME=%s", user.home[0] != '\0' ? user.home : "/");
    a.envp[a.home_slot] = g_home_env;
  }
  const char* cwd = spec.process.cwd.empty() ? "/" : spec.process.cwd.c_str();
  if (!join && !detail::MakeDirsInRoot(cwd, &f)) {
    f.what = "create working directory";
    f.object = cwd;
    ChildExit(a, f, false);
  }
  if (!join && !detail::FinishRootfs(*a.mounts, &f)) ChildExit(a, f, false);
  if (!detail::DropBoundingSet(*a.caps, &f)) ChildExit(a, f, false);
  if (!detail::SwitchUser(user, &f)) {
    f.object = spec.process.user.c_str();  // the -u value the switch failed for
    ChildExit(a, f, false);
  }
  // barge exec: the user change may have reset the dumpable flag (to fs.suid_dumpable); the copy
  // of barge must stay unreadable to the container until its exec.
  if (join && ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    ChildExit(a, {"prctl PR_SET_DUMPABLE", nullptr, errno}, false);
  }
  if (!detail::ApplyCapabilities(*a.caps, &f)) ChildExit(a, f, false);
  if (join && ::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) {
    ChildExit(a, {"stay non-dumpable", nullptr, EPERM}, false);
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    ChildExit(a, {"set no_new_privs", nullptr, errno}, false);
  }
  // Again after the user change, which clears the parent-death signal.
  if (spec.die_with_parent && ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
    ChildExit(a, {"set parent-death signal", nullptr, errno}, false);
  }
  // As the container's user, inside the new root: the working directory can only be a path of
  // the container (CVE-2024-21626 used a cwd left open on the host).
  if (::chdir(cwd) != 0) ChildExit(a, {"chdir to working directory", cwd, errno}, false);
  if (!CheckWorkingDirectory(cwd, &f)) ChildExit(a, f, false);
  char exe[PATH_MAX];
  if (!FindExecutable(a.argv[0], a.path, exe, sizeof exe, &f)) ChildExit(a, f, true);
  if (!CheckNotOurBinary(exe, &f)) ChildExit(a, f, true);
  if (!detail::LoadSeccomp(*a.seccomp, &f)) ChildExit(a, f, false);
  // Every descriptor but 0, 1 and 2 closes at exec: bind sources, cgroup files, barge's own.
  if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    ChildExit(a, {"close descriptors", nullptr, errno}, false);
  }
  if (a.shim_fd >= 0) {
    // The shim execs `exe` (see detail/exec_shim.h) and reports a failure on the pipe, which
    // stays open for it until then.
    if (::fcntl(a.report_fd, F_SETFD, 0) != 0)
      ChildExit(a, {"keep report pipe", nullptr, errno}, false);
    a.shim_argv[2] = exe;
    ::syscall(SYS_execveat, a.shim_fd, "", a.shim_argv, a.envp, AT_EMPTY_PATH);
    ChildExit(a, {"exec barge's exec shim", nullptr, errno}, false);
  }
  ::execve(exe, a.argv, a.envp);
  ChildExit(a, {"exec", a.argv[0], errno}, true);
}

bool HasEnv(const std::vector<std::string>& env, std::string_view key) {
  for (const std::string& e : env) {
    if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=') {
      return true;
    }
  }
  return false;
}

Result<const CapabilitySet*> DefaultCapabilitySet() {
  static const Result<CapabilitySet> set = MakeCapabilitySet(DefaultCapabilities());
  if (!set.ok()) return set.status();
  return &set.value();
}

}  // namespace

Result<Container> Container::Start(const ContainerSpec& spec, StartFailure* failure) {
  // Every failure but the command's own (at the end) is one of setting the container up.
  StartFailure unused;
  if (failure == nullptr) failure = &unused;
  *failure = StartFailure::kSetUp;
  if (spec.process.argv.empty() || spec.process.argv[0].empty()) {
    return InvalidArgument("no command to run (the image has no Entrypoint or Cmd)");
  }
  if (spec.id.empty()) return InvalidArgument("container has no id");
  if (!spec.process.cwd.empty() && spec.process.cwd[0] != '/') {
    return InvalidArgument("working directory must be absolute, got '" + spec.process.cwd + "'");
  }
  ASSIGN_OR_RETURN(const CapabilitySet* caps, DefaultCapabilitySet());
  ASSIGN_OR_RETURN(const SeccompProgram* seccomp, DefaultSeccompProgram());
  const bool join = spec.join_pid > 0;
  MountPlan mounts;
  if (!join) {
    ASSIGN_OR_RETURN(mounts, PlanMounts(spec));
  }
  std::vector<RlimitSetting> rlimits = DefaultRlimits();

  std::vector<char*> argv;
  for (const std::string& arg : spec.process.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  // -1 where memfds may not be executed (vm.memfd_noexec=2): the child execs the command itself.
  ASSIGN_OR_RETURN(int shim_fd, ExecShimFd());
  if (shim_fd < 0 && spec.process.init) {
    return Unsupported("--init needs an executable memfd, which vm.memfd_noexec=2 forbids");
  }
  std::string hostname = spec.hostname.empty() ? spec.id.substr(0, 12) : spec.hostname;
  std::vector<std::string> env = spec.process.env;
  if (!HasEnv(env, "PATH")) env.push_back(std::string("PATH=") + kDefaultPath);
  if (!HasEnv(env, "HOSTNAME")) env.push_back("HOSTNAME=" + hostname);
  if (spec.terminal && !HasEnv(env, "TERM")) env.push_back("TERM=xterm");
  std::string path = kDefaultPath;
  for (const std::string& e : env) {
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  }
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  int home_slot = -1;
  if (!HasEnv(env, "HOME")) {
    home_slot = static_cast<int>(envp.size());
    envp.push_back(nullptr);  // filled by the child
  }
  envp.push_back(nullptr);

  Container container;
  std::vector<UniqueFd> cgroup_procs;
  // barge exec: the running container's namespaces, opened while its pid 1 is the process that
  // was recorded (a pid is not reused while that process lives).
  UniqueFd join_ns[kJoinedNamespaces];
  UniqueFd join_pid_ns;
  UniqueFd join_pid_read, join_pid_write;
  if (join) {
    // Any failure here means the container stopped meanwhile (an IoError: exit code 125).
    auto not_running = [&](const Status& why) {
      return IoError("container " + spec.id.substr(0, 12) + " is not running (" + why.message() +
                     ")");
    };
    std::string ns = "/proc/" + std::to_string(spec.join_pid) + "/ns/";
    for (int i = 0; i < kJoinedNamespaces; ++i) {
      Result<UniqueFd> fd = OpenFile(ns + kJoinedNamespaceNames[i], O_RDONLY | O_CLOEXEC);
      if (!fd.ok()) return not_running(fd.status());
      join_ns[i] = std::move(fd).value();
    }
    Result<UniqueFd> pid_ns = OpenFile(ns + "pid", O_RDONLY | O_CLOEXEC);
    if (!pid_ns.ok()) return not_running(pid_ns.status());
    join_pid_ns = std::move(pid_ns).value();
    if (!ProcessAlive(spec.join_pid, spec.join_pid_start)) {
      return not_running(NotFound("its first process exited"));
    }
    for (const std::string& dir : spec.join_cgroup_dirs) {
      Result<UniqueFd> procs = OpenFile(dir + "/cgroup.procs", O_WRONLY | O_CLOEXEC);
      if (!procs.ok()) return not_running(procs.status());
      cgroup_procs.push_back(std::move(procs).value());
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("pipe");
    join_pid_read.Reset(fds[0]);
    join_pid_write.Reset(fds[1]);
  } else {
    ASSIGN_OR_RETURN(container.cgroup_, Cgroup::Create(spec.cgroup_parent, spec.id, spec.limits));
    ASSIGN_OR_RETURN(cgroup_procs, container.cgroup_.OpenProcsFiles());
  }

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoError("pipe");
  UniqueFd report_read(pipe_fds[0]);
  UniqueFd report_write(pipe_fds[1]);

  ChildArgs args;
  args.spec = &spec;
  args.mounts = &mounts;
  args.caps = caps;
  args.seccomp = seccomp;
  args.rlimits = &rlimits;
  args.cgroup_procs = &cgroup_procs;
  args.report_fd = report_write.get();
  UniqueFd parent_pidfd;
  if (spec.die_with_parent) {
    // pidfds are close-on-exec; the child closes it with the rest of what it inherits. Without
    // pidfds (Linux < 5.3) only the parent-death signal guards the start.
    parent_pidfd.Reset(static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0)));
    args.parent_pidfd = parent_pidfd.get();
  }
  UniqueFd console_parent, console_child;
  if (spec.terminal) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
      return ErrnoError("socketpair for the terminal");
    }
    console_parent.Reset(pair[0]);
    console_child.Reset(pair[1]);
    args.console_fd = console_child.get();
  }
  args.argv = argv.data();
  args.envp = envp.data();
  std::string report_fd_text = std::to_string(args.report_fd);
  const char* shim_name = spec.process.init ? detail::kExecShimInitName : detail::kExecShimName;
  std::vector<char*> shim_argv = {const_cast<char*>(shim_name), report_fd_text.data(), nullptr};
  shim_argv.insert(shim_argv.end(), argv.begin(), argv.end());
  if (shim_fd >= 0) {
    args.shim_fd = shim_fd;
    args.shim_argv = shim_argv.data();
  }
  args.home_slot = home_slot;
  args.path = path.c_str();
  args.hostname = hostname.c_str();
  for (int i = 0; i < kJoinedNamespaces; ++i) args.join_ns[i] = join_ns[i].get();
  args.join_pid_ns = join_pid_ns.get();
  args.join_report_pid = join_pid_write.get();

  // A fork-like clone (no new stack, no CLONE_VM) straight into the new namespaces: one process,
  // no intermediate. The child only touches memory prepared above.
  // (barge exec: a plain child, which joins the container and clones the real one; see
  // JoinContainer.)
  unsigned long flags = join ? 0 : NamespaceFlags(spec.network);
  long pid = ::syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid < 0) return ErrnoError("clone container process");
  if (pid == 0) ChildMain(args);
  container.pid_ = static_cast<pid_t>(pid);
  if (join) {
    join_pid_write.Reset();
    int joined = -1;
    ssize_t n;
    do {
      n = ::read(join_pid_read.get(), &joined, sizeof joined);
    } while (n < 0 && errno == EINTR);
    int status = 0;
    while (::waitpid(container.pid_, &status, 0) < 0 && errno == EINTR) {
    }
    // The process in the container, or none when the intermediate failed (its report follows).
    container.pid_ = n == sizeof joined ? joined : -1;
  }
  report_write.Reset();
  console_child.Reset();
  cgroup_procs.clear();
  mounts.binds.clear();
  if (spec.terminal) container.terminal_ = ReceiveTerminal(console_parent.get());

  ChildReport report;
  size_t got = 0;
  while (got < sizeof report) {
    ssize_t n =
        ::read(report_read.get(), reinterpret_cast<char*>(&report) + got, sizeof report - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got == 0) {  // exec'd: the pipe closed on exec
    if (spec.terminal && !container.terminal_) return Internal("the container's terminal was lost");
    return container;
  }
  // The child failed before exec and has exited: reap it (the destructor does) and report.
  report.message[sizeof report.message - 1] = '\0';
  std::string message = report.message;
  if (report.exec_stage && (report.err == 0 || report.err == ENOENT)) {
    *failure = StartFailure::kNotFound;
    bool searched = spec.process.argv[0].find('/') == std::string::npos;
    return NotFound(message + (searched ? ": executable file not found in $PATH"
                                        : ": no such file or directory"));
  }
  if (report.err != 0) message += std::string(": ") + strerrordesc_np(report.err);
  if (report.exec_stage) {
    *failure = StartFailure::kCannotInvoke;
    return InvalidArgument(message);
  }
  return IoError(message);
}

Container::Container(Container&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      cgroup_(std::move(other.cgroup_)),
      terminal_(std::move(other.terminal_)) {}

Container& Container::operator=(Container&& other) noexcept {
  if (this != &other) {
    Destroy();
    pid_ = std::exchange(other.pid_, -1);
    cgroup_ = std::move(other.cgroup_);
    terminal_ = std::move(other.terminal_);
  }
  return *this;
}

Container::~Container() { Destroy(); }

void Container::Destroy() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  (void)cgroup_.Remove();
}

Status Container::Signal(int signal) {
  if (pid_ <= 0) return Internal("signal: the container is not running");
  if (::kill(pid_, signal) != 0) return ErrnoError("kill container pid " + std::to_string(pid_));
  return Status::Ok();
}

Result<ExitInfo> Container::Wait() {
  if (pid_ <= 0) return Internal("wait: the container is not running");
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoError("waitpid container " + std::to_string(pid_));
  }
  pid_ = -1;
  ExitInfo info;
  if (WIFSIGNALED(status)) {
    info.signal = WTERMSIG(status);
    info.exit_code = 128 + info.signal;
  } else {
    info.exit_code = WEXITSTATUS(status);
  }
  info.oom_killed = cgroup_.OomKilled();
  RETURN_IF_ERROR(cgroup_.Remove());
  return info;
}

Result<ExitInfo> RunContainer(const ContainerSpec& spec,
                              const std::function<void(Container&)>& on_start) {
  ASSIGN_OR_RETURN(Container container, Container::Start(spec));
  if (on_start) on_start(container);
  ASSIGN_OR_RETURN(ExitInfo exit, container.Wait());
  if (spec.remove_created_mount_points) RETURN_IF_ERROR(RemoveCreatedMountPoints(spec));
  return exit;
}

}  // namespace barge::runtime
