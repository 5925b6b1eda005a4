// Docker's credential helper protocol (docker/docker-credential-helpers): a program
// `docker-credential-NAME` on $PATH, run with one argument and no shell.
//   get    stdin: the server ("localhost:5000", "https://index.docker.io/v1/");
//          stdout: {"ServerURL": ..., "Username": ..., "Secret": ...}
//   store  stdin: that JSON object; erase  stdin: the server.
// A helper that has nothing for the server exits non-zero saying "credentials not found in
// native keychain" (on stdout, as the reference helpers do, or on stderr). A Username of
// "<token>" makes the Secret an identity token. Each run is killed after kHelperTimeout.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "barge/status.h"
#include "oci/auth.h"

namespace barge::oci::detail {

inline constexpr std::chrono::seconds kHelperTimeout{30};

struct CredentialHelper {
  std::string name;  // "pass" runs docker-credential-pass
  std::string
      setting;       // what named it, for errors: "credsStore", "credHelpers entry localhost:5000"
  std::string file;  // the credentials file that holds the setting

  std::string Program() const { return "docker-credential-" + name; }
};

// nullopt: the helper has no credentials for `server`. Errors are one line naming the helper,
// where it was configured and what to do; they never carry a secret.
Result<std::optional<Credentials>> HelperGet(const CredentialHelper& helper,
                                             const std::string& server);
Status HelperStore(const CredentialHelper& helper, const std::string& server,
                   const Credentials& credentials);
// false: the helper had nothing for `server`.
Result<bool> HelperErase(const CredentialHelper& helper, const std::string& server);

}  // namespace barge::oci::detail
