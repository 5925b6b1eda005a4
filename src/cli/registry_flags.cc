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

std::string HumanBytes(int64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  return u == 0 ? fmt::format("{}B", bytes) : fmt::format("{:.1f}{}", v, units[u]);
}

TransferDisplay::TransferDisplay(bool enabled, std::string verb)
    : enabled_(enabled && ::isatty(STDERR_FILENO)), verb_(std::move(verb)) {}

oci::TransferProgress TransferDisplay::Callback() {
  if (!enabled_) return nullptr;
  return [this](const oci::TransferEvent& e) { Handle(e); };
}

void TransferDisplay::Handle(const oci::TransferEvent& e) {
  using Kind = oci::TransferEvent::Kind;
  if (e.kind == Kind::kImage) {
    header_ = verb_ + " " + e.what;
    Draw(true);
    return;
  }
  Line* line = nullptr;
  for (Line& l : lines_) {
    if (l.digest == e.digest) line = &l;
  }
  if (line == nullptr) {
    lines_.push_back({e.digest, "", 0, e.total});
    line = &lines_.back();
  }
  line->done = e.done;
  line->total = e.total;
  switch (e.kind) {
    case Kind::kBlob:
      line->state = "waiting";
      break;
    case Kind::kBytes:
      line->state = "";
      break;
    case Kind::kPresent:
      line->state = "already there";
      break;
    case Kind::kMounted:
      line->state = "mounted from " + e.what;
      break;
    case Kind::kDone:
      line->state = "done";
      break;
    case Kind::kImage:
      break;
  }
  Draw(e.kind != Kind::kBytes);
}

void TransferDisplay::Draw(bool force) {
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  std::string out;
  if (drawn_ > 0) out += fmt::format("\x1b[{}A", drawn_);
  int rows = 0;
  if (!header_.empty()) {
    out += "\r\x1b[K" + header_ + "\n";
    ++rows;
  }
  for (const Line& l : lines_) {
    std::string state = l.state;
    if (state.empty()) {
      int width = 24;
      int filled = l.total > 0 ? static_cast<int>(width * l.done / l.total) : 0;
      state =
          fmt::format("[{}{}] {} / {}", std::string(filled, '='), std::string(width - filled, ' '),
                      HumanBytes(l.done), HumanBytes(l.total));
    }
    out += fmt::format("\r\x1b[K  {}  {}\n", l.digest.substr(7, 12), state);
    ++rows;
  }
  drawn_ = rows;
  std::fputs(out.c_str(), stderr);
  std::fflush(stderr);
}

void TransferDisplay::Finish() {
  if (enabled_) Draw(true);
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
