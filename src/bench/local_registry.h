// A registry on 127.0.0.1 for benchmarks and tests: Debian's docker-registry (the distribution
// reference implementation), its storage, config, htpasswd users (bcrypt, by apache2-utils'
// htpasswd) and TLS certificate (signed by a CA made with openssl) all under a directory the
// caller owns. The registry dies with the process that started it (PR_SET_PDEATHSIG) and is
// killed when its LocalRegistry is destroyed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

#include "barge/status.h"

namespace barge::bench {

class LocalRegistry {
 public:
  struct Options {
    bool tls = false;  // serve HTTPS with a certificate for localhost and 127.0.0.1
    std::string user;  // non-empty: Basic auth (htpasswd) with this user
    std::string password;
  };

  static Result<std::unique_ptr<LocalRegistry>> Start(const std::string& dir,
                                                      const Options& options);
  ~LocalRegistry();
  LocalRegistry(const LocalRegistry&) = delete;
  LocalRegistry& operator=(const LocalRegistry&) = delete;

  // SIGKILL, as a crash; Restart() brings it back on the same port and storage.
  void Kill();
  Status Restart();
  // Kills it, empties its storage and starts it again.
  Status Wipe();

  int port() const { return port_; }
  std::string host() const { return "localhost:" + std::to_string(port_); }
  // A certs.d directory holding localhost:PORT/ca.crt (TLS registries).
  std::string cert_dir() const { return dir_ + "/certs.d"; }
  std::string ca_file() const { return dir_ + "/ca.crt"; }
  pid_t pid() const { return pid_; }

 private:
  LocalRegistry(std::string dir, int port) : dir_(std::move(dir)), port_(port) {}
  Status Spawn();

  std::string dir_;
  int port_;
  pid_t pid_ = -1;
};

// A TCP port on 127.0.0.1 that nothing listens on now.
Result<int> FreeLoopbackPort();
// Waits until something accepts connections on 127.0.0.1:port.
Status WaitForPort(int port, std::chrono::milliseconds timeout);

}  // namespace barge::bench
