#include "cli/registry_flags.h"

#include <fmt/core.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

namespace barge::cli {

void RegistryFlags::Add(CLI::App& cmd, bool with_creds) {
  tls_verify_option = cmd.add_flag("--tls-verify", tls_verify,
                                   "Verify TLS certificates; --tls-verify=false also allows plain "
                                   "HTTP (default: verify, except registries.conf insecure ones)");
  cmd.add_option("--cert-dir", cert_dir,
                 "certs.d directory: HOST[:PORT]/ca.crt, client.cert, client.key (default: "
                 "~/.config/containers/certs.d, /etc/containers/certs.d, /etc/docker/certs.d)");
  cmd.add_option("--authfile", auth_file,
                 "Credentials file (default: $REGISTRY_AUTH_FILE, else "
                 "$XDG_RUNTIME_DIR/containers/auth.json)");
  if (with_creds) cmd.add_option("--creds", creds, "USER[:PASSWORD] for the registry");
}

Result<oci::RegistryOptions> RegistryFlags::Options() const {
  oci::RegistryOptions o;
  if (tls_verify_option != nullptr && tls_verify_option->count() > 0) o.tls_verify = tls_verify;
  o.cert_dir = cert_dir;
  o.auth_file = auth_file;
  if (!creds.empty()) {
    size_t colon = creds.find(':');
    oci::Credentials c;
    c.username = creds.substr(0, colon);
    if (c.username.empty()) return InvalidArgument("--creds: expected USER[:PASSWORD]");
    if (colon != std::string::npos) {
      c.password = creds.substr(colon + 1);
    } else {
      ASSIGN_OR_RETURN(c.password, Prompt("Password: ", true));
    }
    o.credentials = std::move(c);
  }
  return o;
}

namespace {
void OnInterrupt(int) { oci::CancelTransfers(); }
}  // namespace

InterruptTransfers::InterruptTransfers() {
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &old_int_);
  ::sigaction(SIGTERM, &sa, &old_term_);
}

InterruptTransfers::~InterruptTransfers() {
  ::sigaction(SIGINT, &old_int_, nullptr);
  ::sigaction(SIGTERM, &old_term_, nullptr);
}

Result<std::string> Prompt(const std::string& question, bool secret) {
  if (!::isatty(STDIN_FILENO)) {
    return InvalidArgument(fmt::format("cannot ask for '{}': stdin is not a terminal",
                                       question.substr(0, question.find(':'))));
  }
  std::fputs(question.c_str(), stderr);
  std::fflush(stderr);
  struct termios old {};
  bool restore = secret && ::tcgetattr(STDIN_FILENO, &old) == 0;
  if (restore) {
    struct termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  std::string answer;
  std::getline(std::cin, answer);
  if (restore) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    std::fputs("\n", stderr);
  }
  if (!answer.empty() && answer.back() == '\r') answer.pop_back();
  return answer;
}

}  // namespace barge::cli
