// What pull, push, login, run and build share for talking to registries: the registry flags
// (--tls-verify, --cert-dir, --authfile, --creds) and Ctrl-C ending a transfer cleanly (the
// library removes what it had not finished). Their progress display is in progress.h.
#pragma once

#include <signal.h>
#include <CLI/CLI.hpp>
#include <string>

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

// Prompts on the terminal (without echo when `secret`); an error when stdin is not one.
Result<std::string> Prompt(const std::string& question, bool secret);

}  // namespace barge::cli
