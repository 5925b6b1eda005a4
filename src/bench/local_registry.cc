#include "bench/local_registry.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "base/file_util.h"
#include "base/subprocess.h"

namespace barge::bench {
namespace {

Status Run(const std::vector<std::string>& argv, const std::string& input = "") {
  CommandOptions options;
  options.input = input;
  ASSIGN_OR_RETURN(CommandOutput out, RunCommand(argv, options));
  if (out.exit_code != 0) {
    return Internal(fmt::format("{} failed (exit {}): {}", argv[0], out.exit_code, out.err));
  }
  return Status::Ok();
}

}  // namespace

Result<int> FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoError("socket");
  UniqueFd sock(fd);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return ErrnoError("bind");
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return ErrnoError("getsockname");
  return static_cast<int>(ntohs(addr.sin_port));
}

Status WaitForPort(int port, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return ErrnoError("socket");
    UniqueFd sock(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return Status::Ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return Internal(
      fmt::format("nothing listens on 127.0.0.1:{} after {} ms", port, timeout.count()));
}

Result<std::unique_ptr<LocalRegistry>> LocalRegistry::Start(const std::string& dir,
                                                            const Options& options) {
  ASSIGN_OR_RETURN(int port, FreeLoopbackPort());
  std::unique_ptr<LocalRegistry> r(new LocalRegistry(dir, port));
  RETURN_IF_ERROR(MakeDirs(dir + "/storage", 0700));
  std::string config = fmt::format(
      "version: 0.1\n"
      "log:\n  level: error\n  accesslog:\n    disabled: true\n"
      "storage:\n  filesystem:\n    rootdirectory: {}/storage\n  delete:\n    enabled: true\n"
      "http:\n  addr: 127.0.0.1:{}\n  secret: barge-local-registry\n",
      dir, port);
  if (options.tls) {
    std::string d = dir + "/";
    RETURN_IF_ERROR(Run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", d + "ca.key", "-out",
                         d + "ca.crt", "-days", "2", "-subj", "/CN=barge test CA"}));
    RETURN_IF_ERROR(Run({"openssl", "req", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", d + "server.key",
                         "-out", d + "server.csr", "-subj", "/CN=localhost"}));
    RETURN_IF_ERROR(WriteFile(d + "san.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"));
    RETURN_IF_ERROR(Run({"openssl", "x509", "-req", "-in", d + "server.csr", "-CA", d + "ca.crt",
                         "-CAkey", d + "ca.key", "-CAcreateserial", "-out", d + "server.crt",
                         "-days", "2", "-extfile", d + "san.ext"}));
    std::string certs = r->cert_dir() + "/" + r->host();
    RETURN_IF_ERROR(MakeDirs(certs, 0755));
    ASSIGN_OR_RETURN(std::string ca, ReadFile(d + "ca.crt"));
    RETURN_IF_ERROR(WriteFile(certs + "/ca.crt", ca));
    config += fmt::format("  tls:\n    certificate: {}server.crt\n    key: {}server.key\n", d, d);
  }
  if (!options.user.empty()) {
    CommandOutput out;
    ASSIGN_OR_RETURN(out, RunCommand({"htpasswd", "-Bbn", options.user, options.password}));
    if (out.exit_code != 0) return Internal("htpasswd failed: " + out.err);
    RETURN_IF_ERROR(WriteFile(dir + "/htpasswd", out.out));
    config +=
        fmt::format("auth:\n  htpasswd:\n    realm: barge-test\n    path: {}/htpasswd\n", dir);
  }
  RETURN_IF_ERROR(WriteFile(dir + "/config.yml", config));
  RETURN_IF_ERROR(r->Spawn());
  return r;
}

Status LocalRegistry::Spawn() {
  std::string config = dir_ + "/config.yml";
  std::string log = dir_ + "/registry.log";
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, STDIN_FILENO);
    ::execlp("docker-registry", "docker-registry", "serve", config.c_str(), nullptr);
    ::_exit(127);
  }
  pid_ = pid;
  Status up = WaitForPort(port_, std::chrono::seconds(20));
  if (!up.ok()) {
    Kill();
    Result<std::string> text = ReadFile(log);
    return Internal(
        fmt::format("docker-registry did not start: {}", text.ok() ? *text : up.message()));
  }
  return Status::Ok();
}

void LocalRegistry::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

Status LocalRegistry::Restart() {
  Kill();
  return Spawn();
}

Status LocalRegistry::Wipe() {
  Kill();
  RETURN_IF_ERROR(RemoveTree(dir_ + "/storage"));
  RETURN_IF_ERROR(MakeDirs(dir_ + "/storage", 0700));
  return Spawn();
}

LocalRegistry::~LocalRegistry() { Kill(); }

}  // namespace barge::bench
