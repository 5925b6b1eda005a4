// Registry credentials, kept in the files Docker, Podman and skopeo use: a JSON object whose
// "auths" maps a registry (or registry/namespace) to {"auth": base64("user:password")}, so
// `skopeo login` and `barge login` see each other's logins. Docker's credential helpers are run
// too (detail/credential_helper.h): "credHelpers" maps a registry to a helper, "credsStore"
// names the helper for every other registry. Files barge writes are mode 0600 in a 0700
// directory; passwords are never printed.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "barge/status.h"
#include "oci/registry_config.h"

namespace barge::oci {

struct Credentials {
  std::string username;
  std::string password;
  // Docker's identity token (a helper's "<token>" user, an auths entry's "identitytoken"):
  // sent to the registry's token service as an OAuth2 refresh token, instead of the username
  // and password. Set, it is what authenticates; username and password are then unused.
  std::string identity_token;
};

// The auth file `login` writes and lookups read first: `auth_file` (--authfile) when given,
// else $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json, else
// /run/containers/<uid>/auth.json (where skopeo and Podman keep it).
std::string AuthFilePath(const std::string& auth_file);

// Files read for credentials, in order: AuthFilePath; then, unless a file was named,
// $XDG_CONFIG_HOME/containers/auth.json (~/.config/...) and $DOCKER_CONFIG/config.json
// (~/.docker/config.json).
std::vector<std::string> AuthFileSearchPath(const std::string& auth_file);

// The credentials for `name`, from the first file of AuthFileSearchPath that has some. In each
// file, in this order:
//   1. a credHelpers entry for the registry host (keys read as Docker writes them too:
//      "https://index.docker.io/v1/" is docker.io): that helper's answer is the file's answer;
//   2. the most specific "auths" entry ("reg/team/app", "reg/team", "reg") with credentials;
//   3. the credsStore helper.
// A helper without credentials for the registry passes on to the next file; a helper that is
// missing or fails is an error naming it. nullopt: none anywhere (anonymous access).
Result<std::optional<Credentials>> LookupCredentials(const std::string& auth_file,
                                                     const RepositoryName& name);

// Records credentials for `key` (a registry, or registry/namespace). When the file names a
// helper for the registry (credHelpers, else credsStore) they go to the helper (`store`; a
// namespace is refused there, helpers keep one login per registry) and the file loses any
// "auths" entry for the key that would hide them; otherwise into "auths". The rest of the file
// is kept; it is replaced atomically and left mode 0600.
Status StoreCredentials(const std::string& path, const std::string& key,
                        const Credentials& credentials);

// Removes `key`'s credentials: its "auths" entries, and the helper's (`erase`) when the file
// names one for the registry. False when there were none. `all`: every "auths" entry, and
// from the helpers every registry the file names (credHelpers keys; auths keys, for
// credsStore); credHelpers and credsStore themselves stay.
Result<bool> RemoveCredentials(const std::string& path, const std::string& key, bool all = false);

// A registry key as given on the command line ("https://localhost:5000/", "docker.io/team") in
// the form auth files use ("localhost:5000", "docker.io/team").
std::string NormalizeAuthKey(std::string key);

}  // namespace barge::oci
