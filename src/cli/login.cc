// barge login [-u USER] [--password-stdin] REGISTRY, barge logout REGISTRY: credentials in the
// auth file Docker, Podman and skopeo share (see src/oci/auth.h).
#include <fmt/core.h>
#include <unistd.h>

#include <iostream>
#include <iterator>

#include "cli/cli.h"
#include "cli/registry_flags.h"
#include "oci/auth.h"
#include "oci/registry.h"

namespace barge::cli {
namespace {

struct LoginArgs {
  std::string registry;
  std::string username;
  std::string password;
  bool password_stdin = false;
  RegistryFlags flags;
};

Status Login(const LoginArgs& args) {
  std::string key = oci::NormalizeAuthKey(args.registry);
  if (key.empty()) return InvalidArgument("login: no registry given");
  oci::Credentials c{args.username, args.password};
  if (!args.password.empty()) {
    fmt::print(stderr,
               "barge: warning: a password on the command line is visible to other users; use "
               "--password-stdin\n");
  }
  if (args.password_stdin) {
    if (!args.password.empty())
      return InvalidArgument("--password and --password-stdin exclude each other");
    if (c.username.empty()) return InvalidArgument("--password-stdin needs --username");
    std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    while (!in.empty() && (in.back() == '\n' || in.back() == '\r')) in.pop_back();
    c.password = std::move(in);
  }
  if (c.username.empty()) {
    ASSIGN_OR_RETURN(c.username, Prompt("Username: ", false));
  }
  if (c.password.empty() && !args.password_stdin) {
    ASSIGN_OR_RETURN(c.password, Prompt("Password: ", true));
  }
  if (c.username.empty()) return InvalidArgument("login: the username is empty");
  if (c.password.empty()) return InvalidArgument("login: the password is empty");
  ASSIGN_OR_RETURN(oci::RegistryOptions options, args.flags.Options());
  RETURN_IF_ERROR(oci::CheckLogin(key, c, options).Wrap("login to " + key));
  RETURN_IF_ERROR(oci::StoreCredentials(oci::AuthFilePath(options.auth_file), key, c));
  fmt::print("Login Succeeded!\n");
  return Status::Ok();
}

const Registration kLogin{
    "login", "Log in to a registry (credentials shared with podman and skopeo)",
    [](CLI::App& cmd, Cli& cli) {
      auto args = std::make_shared<LoginArgs>();
      cmd.add_option("registry", args->registry, "REGISTRY[/NAMESPACE]")->required();
      cmd.add_option("-u,--username", args->username, "User name");
      cmd.add_option("-p,--password", args->password, "Password (prefer --password-stdin)");
      cmd.add_flag("--password-stdin", args->password_stdin, "Read the password from stdin");
      args->flags.Add(cmd, false);
      cmd.callback([args, &cli] { cli.Finish(Login(*args)); });
    }};

struct LogoutArgs {
  std::string registry;
  std::string auth_file;
  bool all = false;
};

Status Logout(const LogoutArgs& args) {
  std::string path = oci::AuthFilePath(args.auth_file);
  if (args.all) {
    RETURN_IF_ERROR(oci::RemoveCredentials(path, "", true).status());
    fmt::print("Removed login credentials for all registries\n");
    return Status::Ok();
  }
  if (args.registry.empty()) return InvalidArgument("logout: name a registry, or use --all");
  std::string key = oci::NormalizeAuthKey(args.registry);
  ASSIGN_OR_RETURN(bool removed, oci::RemoveCredentials(path, key));
  if (!removed) return NotFound(fmt::format("logout: not logged in to {} (in {})", key, path));
  fmt::print("Removed login credentials for {}\n", key);
  return Status::Ok();
}

const Registration kLogout{"logout", "Log out of a registry", [](CLI::App& cmd, Cli& cli) {
                             auto args = std::make_shared<LogoutArgs>();
                             cmd.add_option("registry", args->registry, "REGISTRY[/NAMESPACE]");
                             cmd.add_option("--authfile", args->auth_file,
                                            "Credentials file (default: $REGISTRY_AUTH_FILE, else "
                                            "$XDG_RUNTIME_DIR/containers/auth.json)");
                             cmd.add_flag("-a,--all", args->all,
                                          "Remove the credentials of every registry");
                             cmd.callback([args, &cli] { cli.Finish(Logout(*args)); });
                           }};

}  // namespace
}  // namespace barge::cli
