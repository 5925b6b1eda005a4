// What pull, push, login, run and build share for talking to registries: the registry flags
// (--tls-verify, --cert-dir, --authfile, --creds), the progress display, and Ctrl-C ending a
// transfer cleanly (the library removes what it had not finished).
#pragma once

#include <signal.h>
#include <CLI/CLI.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "barge/status.h"
#include "oci/registry.h"

namespace barge::cli {

struct RegistryFlags {
  bool tls_verify = true;
  CLI::Option* tls_verify_option = nullptr;
  std::string cert_dir;
  std::string auth_file;
  std::string creds;  // USER[:PASSWORD]

  // --tls-verify[=false], --cert-dir, --authfile; --creds when `with_creds`.
  void Add(CLI::App& cmd, bool with_creds = true);
  // The library's options; --creds without a password asks for one on the terminal.
  Result<oci::RegistryOptions> Options() const;
};

// Per-blob progress on a terminal (stderr), redrawn in place; nothing when stderr is not a
// terminal or `enabled` is false (the command prints its one summary line instead).
class TransferDisplay {
 public:
  TransferDisplay(bool enabled, std::string verb);
  oci::TransferProgress Callback();
  // Leaves the final state on the screen.
  void Finish();

 private:
  struct Line {
    std::string digest;
    std::string state;
    int64_t done = 0;
    int64_t total = 0;
  };
  void Handle(const oci::TransferEvent& e);
  void Draw(bool force);

  bool enabled_;
  std::string verb_;
  std::string header_;
  std::vector<Line> lines_;
  int drawn_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
};

// While alive, SIGINT and SIGTERM cancel transfers instead of killing barge; the command then
// fails with "interrupted" after its temporary files are gone.
class InterruptTransfers {
 public:
  InterruptTransfers();
  ~InterruptTransfers();
  InterruptTransfers(const InterruptTransfers&) = delete;
  InterruptTransfers& operator=(const InterruptTransfers&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

// "12.3MB"
std::string HumanBytes(int64_t bytes);

// Prompts on the terminal (without echo when `secret`); an error when stdin is not one.
Result<std::string> Prompt(const std::string& question, bool secret);

}  // namespace barge::cli
