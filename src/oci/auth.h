// Registry credentials, kept in the files Docker, Podman and skopeo use: a JSON object whose
// "auths" maps a registry (or registry/namespace) to {"auth": base64("user:password")}, so
// `skopeo login` and `barge login` see each other's logins. Credential helpers (credsStore,
// credHelpers) are not run. Files barge writes are mode 0600 in a 0700 directory; passwords are
// never printed.
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
};

// The auth file `login` writes and lookups read first: `auth_file` (--authfile) when given,
// else $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json, else
// /run/containers/<uid>/auth.json (where skopeo and Podman keep it).
std::string AuthFilePath(const std::string& auth_file);

// Files read for credentials, in order: AuthFilePath; then, unless a file was named,
// $XDG_CONFIG_HOME/containers/auth.json (~/.config/...) and $DOCKER_CONFIG/config.json
// (~/.docker/config.json).
std::vector<std::string> AuthFileSearchPath(const std::string& auth_file);

// The credentials for `name`: the most specific entry ("reg/team/app", "reg/team", "reg") of
// the first file that has one. Keys are read as Docker writes them too
// ("https://index.docker.io/v1/" is docker.io). nullopt: none (anonymous access).
Result<std::optional<Credentials>> LookupCredentials(const std::string& auth_file,
                                                     const RepositoryName& name);

// Records credentials for `key` (a registry, or registry/namespace) in the file, keeping the
// rest of it; the file is replaced atomically and left mode 0600.
Status StoreCredentials(const std::string& path, const std::string& key,
                        const Credentials& credentials);

// Removes `key`'s entry; false when there was none. `all`: every entry.
Result<bool> RemoveCredentials(const std::string& path, const std::string& key, bool all = false);

// A registry key as given on the command line ("https://localhost:5000/", "docker.io/team") in
// the form auth files use ("localhost:5000", "docker.io/team").
std::string NormalizeAuthKey(std::string key);

}  // namespace barge::oci
