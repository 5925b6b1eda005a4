#include "base/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "base/unique_fd.h"

extern char** environ;

namespace barge {
namespace {

Status MakePipe(UniqueFd& read_end, UniqueFd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("pipe");
  read_end.Reset(fds[0]);
  write_end.Reset(fds[1]);
  return Status::Ok();
}

}  // namespace

Result<CommandOutput> RunCommand(const std::vector<std::string>& argv,
                                 const CommandOptions& options) {
  if (argv.empty()) return InvalidArgument("RunCommand: empty argv");
  UniqueFd in_r, in_w, out_r, out_w, err_r, err_w, exec_r, exec_w;
  RETURN_IF_ERROR(MakePipe(in_r, in_w));
  RETURN_IF_ERROR(MakePipe(out_r, out_w));
  RETURN_IF_ERROR(MakePipe(err_r, err_w));
  RETURN_IF_ERROR(MakePipe(exec_r, exec_w));  // reports an exec failure's errno

  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // An entry of options.env replaces an inherited one of the same name (getenv would find the
  // first), and a later entry an earlier one.
  auto name_of = [](std::string_view e) { return e.substr(0, e.find('=')); };
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) env_storage.emplace_back(*e);
  for (const std::string& e : options.env) {
    std::erase_if(env_storage,
                  [&](const std::string& have) { return name_of(have) == name_of(e); });
    env_storage.push_back(e);
  }
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork for " + argv[0]);
  bool own_group = options.timeout.count() > 0;
  if (pid == 0) {
    if (own_group) ::setpgid(0, 0);
    ::dup2(in_r.get(), 0);
    ::dup2(out_w.get(), 1);
    ::dup2(err_w.get(), 2);
    if (!options.cwd.empty() && ::chdir(options.cwd.c_str()) != 0) {
      int err = errno;
      (void)!::write(exec_w.get(), &err, sizeof err);
      ::_exit(127);
    }
    ::execvpe(args[0], args.data(), envp.data());
    int err = errno;
    (void)!::write(exec_w.get(), &err, sizeof err);
    ::_exit(127);
  }
  // Both sides set the group, so that it exists before either goes on.
  if (own_group) ::setpgid(pid, pid);
  auto deadline = std::chrono::steady_clock::now() + options.timeout;
  in_r.Reset();
  out_w.Reset();
  err_w.Reset();
  exec_w.Reset();

  CommandOutput result;
  std::string_view input = options.input;
  if (input.empty()) in_w.Reset();
  if (in_w) ::fcntl(in_w.get(), F_SETFL, O_NONBLOCK);
  signal(SIGPIPE, SIG_IGN);
  while (out_r || err_r || in_w) {
    pollfd fds[3];
    int n = 0;
    if (out_r) fds[n++] = {out_r.get(), POLLIN, 0};
    if (err_r) fds[n++] = {err_r.get(), POLLIN, 0};
    if (in_w) fds[n++] = {in_w.get(), POLLOUT, 0};
    int wait_ms = -1;
    if (own_group) {
      auto left =
          std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        ::kill(-pid, SIGKILL);
        result.timed_out = true;
        break;
      }
      wait_ms = static_cast<int>(std::min<int64_t>(left.count(), 1 << 30));
    }
    int ready = ::poll(fds, static_cast<nfds_t>(n), wait_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (in_w && fds[i].fd == in_w.get()) {
        ssize_t w = ::write(in_w.get(), input.data(), input.size());
        if (w > 0) input.remove_prefix(static_cast<size_t>(w));
        if (w < 0 && errno != EAGAIN && errno != EINTR) input = {};
        if (input.empty()) in_w.Reset();
        continue;
      }
      UniqueFd& fd = (out_r && fds[i].fd == out_r.get()) ? out_r : err_r;
      std::string& sink = (&fd == &out_r) ? result.out : result.err;
      char buf[1 << 15];
      ssize_t r = ::read(fd.get(), buf, sizeof buf);
      if (r > 0) {
        sink.append(buf, static_cast<size_t>(r));
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        fd.Reset();
      }
    }
  }
  int status = 0;
  bool reaped = false;
  // A program that closed its output but goes on running is still bound by the timeout.
  while (own_group && !result.timed_out && !reaped) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      reaped = true;
    } else if (w < 0 && errno != EINTR) {
      break;
    } else if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);
      result.timed_out = true;
    } else {
      ::poll(nullptr, 0, 5);
    }
  }
  while (!reaped && ::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int exec_errno = 0;
  if (::read(exec_r.get(), &exec_errno, sizeof exec_errno) == sizeof exec_errno) {
    return ErrnoError("run " + argv[0], exec_errno);
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace barge
