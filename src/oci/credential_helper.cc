#include "oci/detail/credential_helper.h"

#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "base/subprocess.h"
#include "oci/image.h"

namespace barge::oci::detail {
namespace {

using nlohmann::json;

constexpr std::string_view kNotFound = "credentials not found in native keychain";
constexpr std::string_view kIdentityTokenUser = "<token>";
constexpr size_t kMaxMessage = 400;

struct HelperRun {
  CommandOutput output;
  bool not_found = false;  // exited non-zero saying it has no credentials for the server
};

std::string Describe(const CredentialHelper& helper) {
  return fmt::format("credential helper {} ({} in {})", helper.Program(), helper.setting,
                     helper.file);
}

// What a failed helper said, on one line: stderr, else stdout (where the reference helpers
// print their errors).
std::string MessageOf(const CommandOutput& out) {
  std::string text = out.err.find_first_not_of(" \t\r\n") != std::string::npos ? out.err : out.out;
  std::string line;
  for (char c : text) {
    if (c == '\n' || c == '\r') {
      if (!line.empty() && line.back() != ' ') line += "; ";
    } else {
      line += c;
    }
  }
  while (!line.empty() && (line.back() == ' ' || line.back() == ';')) line.pop_back();
  size_t start = line.find_first_not_of(' ');
  line = start == std::string::npos ? "" : line.substr(start);
  if (line.size() > kMaxMessage) line = line.substr(0, kMaxMessage) + "...";
  if (line.empty()) line = fmt::format("exit status {}", out.exit_code);
  return line;
}

Result<HelperRun> Run(const CredentialHelper& helper, const std::string& action,
                      std::string input) {
  if (helper.name.empty() || helper.name.find('/') != std::string::npos) {
    return InvalidArgument(fmt::format("credential helper name '{}' ({} in {}) is not a plain name",
                                       helper.name, helper.setting, helper.file));
  }
  CommandOptions options;
  options.input = std::move(input);
  options.timeout = kHelperTimeout;
  Result<CommandOutput> out = RunCommand({helper.Program(), action}, options);
  if (!out.ok()) {
    if (out.status().code() == StatusCode::kNotFound) {
      return NotFound(
          fmt::format("{} is not installed: no {} on $PATH (install it, or remove {} "
                      "from {})",
                      Describe(helper), helper.Program(), helper.setting, helper.file));
    }
    return out.status().Wrap(Describe(helper));
  }
  if (out->timed_out) {
    return IoError(fmt::format("{} did not finish '{}' within {} s and was killed",
                               Describe(helper), action, kHelperTimeout.count()));
  }
  HelperRun run{std::move(*out)};
  if (run.output.exit_code != 0) {
    bool not_found = run.output.out.find(kNotFound) != std::string::npos ||
                     run.output.err.find(kNotFound) != std::string::npos;
    if (!not_found) {
      return IoError(
          fmt::format("{} failed ({}): {}", Describe(helper), action, MessageOf(run.output)));
    }
    run.not_found = true;
  }
  return run;
}

}  // namespace

Result<std::optional<Credentials>> HelperGet(const CredentialHelper& helper,
                                             const std::string& server) {
  ASSIGN_OR_RETURN(HelperRun run, Run(helper, "get", server));
  if (run.not_found) return std::optional<Credentials>();
  // Never quote stdout here: it may hold the secret.
  json j = json::parse(run.output.out, nullptr, false);
  if (!j.is_object() || (j.contains("Username") && !j["Username"].is_string()) ||
      (j.contains("Secret") && !j["Secret"].is_string())) {
    return Corruption(fmt::format(
        "{} answered 'get' with something other than a JSON object of ServerURL, Username and "
        "Secret",
        Describe(helper)));
  }
  Credentials c;
  std::string user = StringField(j, "Username");
  std::string secret = StringField(j, "Secret");
  if (secret.empty()) return std::optional<Credentials>();
  if (user == kIdentityTokenUser) {
    c.identity_token = std::move(secret);
  } else {
    c.username = std::move(user);
    c.password = std::move(secret);
  }
  return std::optional<Credentials>(std::move(c));
}

Status HelperStore(const CredentialHelper& helper, const std::string& server,
                   const Credentials& credentials) {
  json j = {{"ServerURL", server},
            {"Username", credentials.identity_token.empty() ? credentials.username
                                                            : std::string(kIdentityTokenUser)},
            {"Secret", credentials.identity_token.empty() ? credentials.password
                                                          : credentials.identity_token}};
  ASSIGN_OR_RETURN(HelperRun run, Run(helper, "store", j.dump()));
  if (run.not_found) {
    return IoError(fmt::format("{} failed (store): {}", Describe(helper), MessageOf(run.output)));
  }
  return Status::Ok();
}

Result<bool> HelperErase(const CredentialHelper& helper, const std::string& server) {
  ASSIGN_OR_RETURN(HelperRun run, Run(helper, "erase", server));
  return !run.not_found;
}

}  // namespace barge::oci::detail
