// Where images live and how to reach them: image names split into registry and repository,
// short names ("python:3.11") resolved through a list of registries, and the per-registry
// settings of Podman's registries.conf (v2 TOML: unqualified-search-registries, [aliases],
// [[registry]] with prefix, location, insecure, blocked and [[registry.mirror]]), plus the TLS
// material of the certs.d convention (certs.d/HOST[:PORT]/*.crt CAs, *.cert/*.key client pairs).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "barge/status.h"
#include "oci/detail/http.h"

namespace barge::oci {

// Docker Hub: names without a registry that a search list resolves to "docker.io" are served by
// this host, and one-component repositories there live under "library/".
inline constexpr std::string_view kDockerHub = "docker.io";
inline constexpr std::string_view kDockerHubEndpoint = "registry-1.docker.io";

// An image name split as the distribution spec does: the first component is a registry when it
// holds a '.' or a ':' or is "localhost".
struct RepositoryName {
  std::string registry;    // "localhost:5000", "docker.io"; empty for a short name
  std::string repository;  // "team/app", "library/busybox"

  std::string ToString() const {
    return registry.empty() ? repository : registry + "/" + repository;
  }
};
// "docker.io/busybox" becomes docker.io + library/busybox.
RepositoryName SplitName(std::string_view name);

// One place to reach an image: the registry and repository to ask (a mirror's or the one a
// registries.conf location rewrote it to) and whether plain HTTP or an unverified certificate
// is acceptable there.
struct Endpoint {
  RepositoryName name;
  bool insecure = false;
  bool mirror = false;
};

// A registries.conf mirror: "host[:port][/path]" standing in for an entry's prefix.
struct Mirror {
  std::string location;
  bool insecure = false;
};

struct RegistryEntry {
  std::string
      prefix;  // what names it applies to: "example.com", "example.com/team", "*.example.com"
  std::string location;
  bool insecure = false;
  bool blocked = false;
  std::vector<Mirror> mirrors;
};

struct RegistriesConf {
  std::vector<std::string> search;             // unqualified-search-registries, in order
  bool search_configured = false;              // false: none was set, and docker.io is searched
  std::map<std::string, std::string> aliases;  // short name (no tag) -> qualified name
  std::vector<RegistryEntry> registries;
  std::vector<std::string> files;  // the files read, for messages

  // $CONTAINERS_REGISTRIES_CONF alone when set; else $XDG_CONFIG_HOME/containers/registries.conf
  // (~/.config/...) when it exists, else /etc/containers/registries.conf; then the drop-ins
  // (*.conf, in name order) of the registries.conf.d beside it. A missing file is no error.
  static Result<RegistriesConf> Load();
  // Merges the TOML `text` (from `what`, named in errors) over what is set already.
  Status Merge(std::string_view text, const std::string& what);

  // The fully qualified names to try for `name` (no tag or digest): `name` itself when it
  // names a registry; else its alias, else one name per search registry.
  std::vector<std::string> Candidates(const std::string& name) const;

  // Where to pull `name` (qualified) from, in order: its entry's mirrors, then the registry
  // itself (its location). An error when the entry is blocked. `for_push`: mirrors are left out.
  Result<std::vector<Endpoint>> Endpoints(const RepositoryName& name, bool for_push) const;
};

// The TLS settings for `host` ("host[:port]"): the CAs (*.crt) and client pair (*.cert with its
// *.key) of DIR/HOST/ for each certs.d DIR: `cert_dir` alone when given, else
// $XDG_CONFIG_HOME/containers/certs.d (~/.config/...), /etc/containers/certs.d and
// /etc/docker/certs.d.
Result<detail::TlsConfig> TlsConfigFor(const std::string& host, const std::string& cert_dir);

// localhost, 127.0.0.0/8 and ::1 (with any port): registries that may be reached over plain
// HTTP without being configured insecure, as Docker and Podman allow.
bool IsLoopbackRegistry(std::string_view host);

}  // namespace barge::oci
