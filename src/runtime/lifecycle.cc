#include "runtime/lifecycle.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <thread>

#include "base/file_util.h"
#include "runtime/time_util.h"

namespace barge::runtime {
namespace {

Status RecordRunning(ContainerStore& store, ContainerRecord& record, const Container& container) {
  ContainerState& s = record.state;
  s.status = ContainerStatus::kRunning;
  s.pid = container.pid();
  s.pid_start = ProcessStartTime(container.pid());
  s.monitor_pid = ::getpid();
  s.monitor_start = ProcessStartTime(::getpid());
  s.started_at = NowRfc3339();
  s.cgroup_dirs = container.cgroup().dirs();
  return store.SaveState(record.config.id, s);
}

Status RecordExit(ContainerStore& store, ContainerRecord& record, int exit_code, bool oom) {
  ContainerState& s = record.state;
  s.status = ContainerStatus::kExited;
  s.exit_code = exit_code;
  s.oom_killed = oom;
  s.finished_at = NowRfc3339();
  s.cgroup_dirs.clear();
  if (record.config.auto_remove) return store.Delete(record.config.id);
  return store.SaveState(record.config.id, s);
}

// Waits for an exited process that is not our child: a pidfd becomes readable when it exits.
bool WaitGone(pid_t pid, uint64_t start, std::chrono::milliseconds timeout) {
  if (!ProcessAlive(pid, start)) return true;
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return !ProcessAlive(pid, start);
  UniqueFd pidfd(fd);
  if (!ProcessAlive(pid, start)) return true;  // the pid was reused before pidfd_open
  pollfd p{fd, POLLIN, 0};
  int rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
  return rc > 0 || !ProcessAlive(pid, start);
}

// Copies `from` to `to` until `from` ends (EIO: every process closed the terminal).
void CopyToEnd(int from, int to) {
  char buf[1 << 14];
  for (;;) {
    ssize_t n = ::read(from, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || !WriteAll(to, std::string_view(buf, static_cast<size_t>(n)), "log").ok()) return;
  }
}

// Starts the container of `record`, its state saved before (the monitor: who is starting it,
// so that a later barge can clean up if this one is killed meanwhile) and after (running, or
// the exit of a start that failed, with where it failed in `failure`).
Result<Container> StartRecorded(ContainerStore& store, ContainerRecord& record, const Stdio& stdio,
                                StartFailure* failure) {
  StartFailure unused;
  if (failure == nullptr) failure = &unused;
  *failure = StartFailure::kSetUp;
  ContainerSpec spec = store.MakeSpec(record);
  spec.stdio = stdio;
  record.state.monitor_pid = ::getpid();
  record.state.monitor_start = ProcessStartTime(::getpid());
  RETURN_IF_ERROR(store.SaveState(record.config.id, record.state));
  StartFailure failed_at = StartFailure::kSetUp;
  Result<Container> container = Container::Start(spec, &failed_at);
  if (!container.ok()) {
    *failure = failed_at;
    (void)RecordExit(store, record, static_cast<int>(failed_at), false);
    return container.status();
  }
  RETURN_IF_ERROR(RecordRunning(store, record, *container));
  return container;
}

}  // namespace

Result<ExitInfo> RunAttached(ContainerStore& store, ContainerRecord record, const Stdio& stdio,
                             const std::function<void(Container&)>& on_start,
                             StartFailure* failure) {
  ASSIGN_OR_RETURN(Container container, StartRecorded(store, record, stdio, failure));
  if (on_start) on_start(container);
  Result<ExitInfo> exit = container.Wait();
  if (!exit.ok()) return exit.status();
  RETURN_IF_ERROR(RecordExit(store, record, exit->exit_code, exit->oom_killed));
  return exit;
}

Result<OwnedContainer> OwnedContainer::Start(ContainerStore& store, ContainerRecord record,
                                             const Stdio& stdio, StartFailure* failure) {
  ASSIGN_OR_RETURN(Container container, StartRecorded(store, record, stdio, failure));
  OwnedContainer owned;
  owned.store_ = &store;
  owned.record_ = std::move(record);
  owned.container_ = std::move(container);
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, owned.container_.pid(), 0));
  if (fd >= 0) owned.pidfd_ = UniqueFd(fd);
  return owned;
}

OwnedContainer& OwnedContainer::operator=(OwnedContainer&& other) noexcept {
  if (this != &other) {
    if (running()) (void)Finish();
    store_ = other.store_;
    record_ = std::move(other.record_);
    container_ = std::move(other.container_);
    pidfd_ = std::move(other.pidfd_);
    finished_ = other.finished_;
  }
  return *this;
}

OwnedContainer::~OwnedContainer() {
  if (running()) {
    (void)container_.Signal(SIGKILL);
    (void)Finish();
  }
}

bool OwnedContainer::Exited() const {
  if (!running()) return true;
  if (!pidfd_) return !ProcessAlive(container_.pid(), record_.state.pid_start);
  pollfd p{pidfd_.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

Result<ExitInfo> OwnedContainer::Finish() {
  finished_ = true;
  Result<ExitInfo> exit = container_.Wait();
  if (!exit.ok()) return exit.status();
  RETURN_IF_ERROR(RecordExit(*store_, record_, exit->exit_code, exit->oom_killed));
  return exit;
}

Status RunDetached(ContainerStore& store, const ContainerRecord& record, StartFailure* failure) {
  StartFailure unused;
  if (failure == nullptr) failure = &unused;
  *failure = StartFailure::kSetUp;
  ASSIGN_OR_RETURN(UniqueFd log,
                   OpenFile(store.LogPath(record.config.id), O_WRONLY | O_CREAT | O_APPEND, 0640));
  ASSIGN_OR_RETURN(UniqueFd null, OpenFile("/dev/null", O_RDWR));
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("pipe");
  UniqueFd report_read(fds[0]), report_write(fds[1]);
  pid_t monitor = ::fork();
  if (monitor < 0) return ErrnoError("fork container monitor");
  if (monitor == 0) {
    // The monitor: no terminal, no descriptor of the caller (a pipe a test reads until EOF, say),
    // only the log, /dev/null and the report pipe.
    ::setsid();
    ::dup2(null.get(), 0);
    ::dup2(null.get(), 1);
    ::dup2(null.get(), 2);
    int keep[] = {log.get(), null.get(), report_write.get()};
    for (int fd = 3; fd < 1024; ++fd) {
      if (fd != keep[0] && fd != keep[1] && fd != keep[2]) ::close(fd);
    }
    ::syscall(SYS_close_range, 1024U, ~0U, 0U);
    ContainerStore own_store = store;
    bool reported = false;
    StartFailure failed_at = StartFailure::kSetUp;
    Result<ExitInfo> exit = RunAttached(
        own_store, record, {null.get(), log.get(), log.get()},
        [&](Container& c) {
          (void)!::write(report_write.get(), "OK", 2);
          report_write.Reset();
          reported = true;
          // -dt: the container's terminal stays open with nobody typing (a shell waits on it, as
          // with docker run -dit); what it prints goes to the log.
          if (record.config.terminal) CopyToEnd(c.terminal(), log.get());
        },
        &failed_at);
    if (!exit.ok() && !reported) {
      std::string message =
          std::to_string(static_cast<int>(failed_at)) + " " + exit.status().message();
      (void)!::write(report_write.get(), message.data(), message.size());
    }
    ::_exit(exit.ok() ? 0 : 1);
  }
  report_write.Reset();
  std::string reply;
  char buf[1024];
  for (;;) {
    ssize_t n = ::read(report_read.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  if (reply == "OK") return Status::Ok();
  if (reply.empty()) return Internal("the container monitor exited before starting the container");
  int code = std::atoi(reply.c_str());
  std::string message = reply.substr(reply.find(' ') + 1);
  if (code == static_cast<int>(StartFailure::kNotFound)) {
    *failure = StartFailure::kNotFound;
    return NotFound(message);
  }
  if (code == static_cast<int>(StartFailure::kCannotInvoke)) {
    *failure = StartFailure::kCannotInvoke;
    return InvalidArgument(message);
  }
  return IoError(message);
}

Result<ContainerRecord> WaitForExit(ContainerStore& store, const std::string& id,
                                    std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    Result<ContainerRecord> r = store.Find(id);  // reconciles a container whose monitor died
    if (!r.ok() || r->state.status != ContainerStatus::kRunning) return r;
    if (std::chrono::steady_clock::now() > deadline) {
      return IoError("container " + r->config.name + " did not stop in time");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

Result<std::string> StartContainer(ContainerStore& store, const std::string& id_or_name) {
  ASSIGN_OR_RETURN(ContainerRecord r, store.Find(id_or_name));
  if (r.state.status == ContainerStatus::kRunning) return r.config.name;
  r.state = ContainerState();
  RETURN_IF_ERROR(store.SaveState(r.config.id, r.state));
  RETURN_IF_ERROR(RunDetached(store, r));
  return r.config.name;
}

Result<ContainerRecord> WaitContainer(ContainerStore& store, const std::string& id_or_name) {
  ASSIGN_OR_RETURN(ContainerRecord r, store.Find(id_or_name));
  if (r.state.status == ContainerStatus::kRunning) {
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, r.state.pid, 0)));
    // Opened before the check, so the pid cannot have been reused for what the pidfd watches.
    if (pidfd && ProcessAlive(r.state.pid, r.state.pid_start)) {
      pollfd exited{pidfd.get(), POLLIN, 0};
      while (::poll(&exited, 1, -1) < 0 && errno == EINTR) {
      }
    }
  }
  // Its barge process records the exit right after.
  Result<ContainerRecord> done = WaitForExit(store, r.config.id, std::chrono::seconds(10));
  if (!done.ok() && done.status().code() == StatusCode::kNotFound) {
    return NotFound("container " + r.config.name + " was removed when it exited (--rm)");
  }
  return done;
}

Status StopContainer(ContainerStore& store, const std::string& id_or_name,
                     std::chrono::milliseconds timeout) {
  ASSIGN_OR_RETURN(ContainerRecord r, store.Find(id_or_name));
  if (r.state.status != ContainerStatus::kRunning) return Status::Ok();
  const ContainerState& s = r.state;
  if (ProcessAlive(s.pid, s.pid_start)) {
    ::kill(s.pid, SIGTERM);
    if (!WaitGone(s.pid, s.pid_start, timeout) && ProcessAlive(s.pid, s.pid_start)) {
      ::kill(s.pid, SIGKILL);
    }
  }
  Result<ContainerRecord> done = WaitForExit(store, r.config.id, std::chrono::seconds(10));
  if (!done.ok() && done.status().code() != StatusCode::kNotFound) return done.status();
  return Status::Ok();
}

Status KillContainer(ContainerStore& store, const std::string& id_or_name, int signal) {
  ASSIGN_OR_RETURN(ContainerRecord r, store.Find(id_or_name));
  const ContainerState& s = r.state;
  if (r.state.status != ContainerStatus::kRunning || !ProcessAlive(s.pid, s.pid_start)) {
    return InvalidArgument("container " + r.config.name + " is not running");
  }
  if (::kill(s.pid, signal) != 0) return ErrnoError("kill container " + r.config.name);
  return Status::Ok();
}

Result<ContainerSpec> ExecSpec(ContainerStore& store, const std::string& id_or_name) {
  ASSIGN_OR_RETURN(ContainerRecord r, store.Find(id_or_name));
  const ContainerState& s = r.state;
  if (s.status != ContainerStatus::kRunning || !ProcessAlive(s.pid, s.pid_start)) {
    return InvalidArgument("container " + r.config.name + " is not running");
  }
  ContainerSpec spec = store.MakeSpec(r);
  spec.process.argv.clear();
  spec.process.init = false;
  spec.join_pid = s.pid;
  spec.join_pid_start = s.pid_start;
  spec.join_cgroup_dirs = s.cgroup_dirs;
  spec.terminal = false;
  return spec;
}

Status RemoveContainer(ContainerStore& store, const std::string& id_or_name, bool force) {
  ASSIGN_OR_RETURN(ContainerRecord r, store.Find(id_or_name));
  if (r.state.status == ContainerStatus::kRunning) {
    if (!force) {
      return InvalidArgument("container " + r.config.name +
                             " is running: stop it first, or use rm -f");
    }
    if (ProcessAlive(r.state.pid, r.state.pid_start)) ::kill(r.state.pid, SIGKILL);
    Result<ContainerRecord> done = WaitForExit(store, r.config.id, std::chrono::seconds(10));
    if (!done.ok()) {
      if (done.status().code() == StatusCode::kNotFound) return Status::Ok();
      return done.status();
    }
  }
  return store.Delete(r.config.id);
}

}  // namespace barge::runtime
