#include "oci/registry_config.h"

#include <dirent.h>
#include <fmt/core.h>

#include <cpptoml.h>
#include <algorithm>
#include <sstream>

#include "base/file_util.h"

namespace barge::oci {
namespace {

std::string ConfigHome() {
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  if (xdg != nullptr && *xdg == '/') return xdg;
  const char* home = std::getenv("HOME");
  return home != nullptr && *home != '\0' ? std::string(home) + "/.config" : "";
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Whether `prefix` (a registries.conf [[registry]] prefix) applies to the qualified `name`, and
// how many characters of it match (longest wins).
size_t PrefixMatch(const std::string& prefix, const std::string& name) {
  if (prefix.rfind("*.", 0) == 0) {
    // "*.example.com" matches hosts below example.com, with anything after them.
    std::string host = name.substr(0, name.find('/'));
    std::string host_no_port = host.substr(0, host.find(':'));
    return EndsWith(host_no_port, prefix.substr(1)) ? prefix.size() : 0;
  }
  if (name == prefix) return prefix.size();
  if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
      name[prefix.size()] == '/') {
    return prefix.size();
  }
  return 0;
}

Status MergeToml(RegistriesConf& conf, std::string_view text, const std::string& what) {
  std::istringstream in{std::string(text)};
  std::shared_ptr<cpptoml::table> t;
  try {
    cpptoml::parser parser(in);
    t = parser.parse();
  } catch (const std::exception& e) {
    return InvalidArgument(fmt::format("{}: {}", what, e.what()));
  }
  auto bad = [&](const std::string& field, const std::string& expected) {
    return InvalidArgument(fmt::format("{}: {} must be {}", what, field, expected));
  };
  if (t->contains("unqualified-search-registries")) {
    auto list = t->get_array_of<std::string>("unqualified-search-registries");
    if (!list) return bad("unqualified-search-registries", "an array of strings");
    conf.search = *list;
    conf.search_configured = true;
  }
  if (t->contains("aliases")) {
    auto aliases = t->get_table("aliases");
    if (!aliases) return bad("[aliases]", "a table");
    for (const auto& [k, v] : *aliases) {
      auto value = aliases->get_as<std::string>(k);
      if (!value) return bad("alias '" + k + "'", "a string");
      conf.aliases[k] = *value;
    }
  }
  if (t->contains("registry")) {
    auto list = t->get_table_array("registry");
    if (!list) return bad("[[registry]]", "an array of tables");
    for (const auto& r : *list) {
      RegistryEntry e;
      e.location = r->get_as<std::string>("location").value_or("");
      e.prefix = r->get_as<std::string>("prefix").value_or(e.location);
      e.insecure = r->get_as<bool>("insecure").value_or(false);
      e.blocked = r->get_as<bool>("blocked").value_or(false);
      if (e.prefix.empty()) return bad("[[registry]]", "given a location or a prefix");
      // A prefix without a location applies settings to names as they are.
      if (e.location.empty()) {
        if (e.prefix.rfind("*.", 0) == 0) {
          e.location.clear();
        } else {
          e.location = e.prefix;
        }
      }
      if (auto mirrors = r->get_table_array("mirror")) {
        for (const auto& m : *mirrors) {
          auto loc = m->get_as<std::string>("location");
          if (!loc || loc->empty()) return bad("[[registry.mirror]]", "given a location");
          e.mirrors.push_back({*loc, m->get_as<bool>("insecure").value_or(false)});
        }
      }
      auto same = std::find_if(conf.registries.begin(), conf.registries.end(),
                               [&](const RegistryEntry& o) { return o.prefix == e.prefix; });
      if (same != conf.registries.end()) {
        *same = std::move(e);
      } else {
        conf.registries.push_back(std::move(e));
      }
    }
  }
  return Status::Ok();
}

}  // namespace

RepositoryName SplitName(std::string_view name) {
  RepositoryName out;
  size_t slash = name.find('/');
  std::string_view first = name.substr(0, slash);
  if (slash != std::string_view::npos &&
      (first.find_first_of(".:") != std::string_view::npos || first == "localhost")) {
    out.registry = std::string(first);
    out.repository = std::string(name.substr(slash + 1));
  } else {
    out.repository = std::string(name);
  }
  if (out.registry == "index.docker.io" || out.registry == kDockerHubEndpoint)
    out.registry = std::string(kDockerHub);
  if (out.registry == kDockerHub && out.repository.find('/') == std::string::npos)
    out.repository = "library/" + out.repository;
  return out;
}

Result<RegistriesConf> RegistriesConf::Load() {
  RegistriesConf conf;
  std::string main;
  bool dropins = true;
  if (const char* env = std::getenv("CONTAINERS_REGISTRIES_CONF"); env != nullptr && *env != '\0') {
    main = env;
    dropins = false;
  } else if (std::string user = ConfigHome() + "/containers/registries.conf";
             !ConfigHome().empty() && PathExists(user)) {
    main = user;
  } else {
    main = "/etc/containers/registries.conf";
  }
  std::vector<std::string> files;
  if (PathExists(main)) files.push_back(main);
  if (dropins) {
    std::string dir = main + ".d";
    for (const std::string& n : ListDir(dir)) {
      if (EndsWith(n, ".conf")) files.push_back(dir + "/" + n);
    }
  }
  for (const std::string& f : files) {
    ASSIGN_OR_RETURN(std::string text, ReadRegularFileLimited(f, 1 << 20));
    RETURN_IF_ERROR(conf.Merge(text, f));
    conf.files.push_back(f);
  }
  return conf;
}

Status RegistriesConf::Merge(std::string_view text, const std::string& what) {
  return MergeToml(*this, text, what);
}

std::vector<std::string> RegistriesConf::Candidates(const std::string& name) const {
  RepositoryName split = SplitName(name);
  if (!split.registry.empty()) return {split.ToString()};
  if (auto a = aliases.find(name); a != aliases.end()) return {SplitName(a->second).ToString()};
  std::vector<std::string> out;
  std::vector<std::string> registries =
      search_configured ? search : std::vector<std::string>{std::string(kDockerHub)};
  for (const std::string& r : registries) out.push_back(SplitName(r + "/" + name).ToString());
  return out;
}

Result<std::vector<Endpoint>> RegistriesConf::Endpoints(const RepositoryName& name,
                                                        bool for_push) const {
  std::string full = name.ToString();
  const RegistryEntry* best = nullptr;
  size_t best_len = 0;
  for (const RegistryEntry& e : registries) {
    size_t len = PrefixMatch(e.prefix, full);
    if (len > best_len) {
      best = &e;
      best_len = len;
    }
  }
  std::vector<Endpoint> out;
  if (best == nullptr) {
    out.push_back({name, false, false});
    return out;
  }
  if (best->blocked) {
    return InvalidArgument(fmt::format("registry {} is blocked by {}", name.registry,
                                       files.empty() ? "registries.conf" : files.back()));
  }
  // A location ("host[/path]") replaces the matched prefix; a wildcard entry rewrites nothing.
  std::string rest = best->prefix.rfind("*.", 0) == 0 ? "" : full.substr(best_len);
  auto at = [&](const std::string& location) {
    return location.empty() || best->prefix.rfind("*.", 0) == 0 ? name : SplitName(location + rest);
  };
  if (!for_push) {
    for (const Mirror& m : best->mirrors) out.push_back({at(m.location), m.insecure, true});
  }
  out.push_back({at(best->location), best->insecure, false});
  return out;
}

bool IsLoopbackRegistry(std::string_view host) {
  std::string_view h = host;
  if (h.substr(0, 1) == "[") {
    return h.substr(0, 5) == "[::1]";
  }
  h = h.substr(0, h.find(':'));
  return h == "localhost" || h.rfind("127.", 0) == 0;
}

Result<detail::TlsConfig> TlsConfigFor(const std::string& host, const std::string& cert_dir) {
  detail::TlsConfig tls;
  std::vector<std::string> dirs;
  if (!cert_dir.empty()) {
    dirs.push_back(cert_dir);
  } else {
    if (std::string home = ConfigHome(); !home.empty())
      dirs.push_back(home + "/containers/certs.d");
    dirs.push_back("/etc/containers/certs.d");
    dirs.push_back("/etc/docker/certs.d");
  }
  for (const std::string& d : dirs) {
    std::string dir = d + "/" + host;
    for (const std::string& n : ListDir(dir)) {
      std::string path = dir + "/" + n;
      if (EndsWith(n, ".crt")) {
        ASSIGN_OR_RETURN(std::string pem, ReadRegularFileLimited(path, 1 << 20));
        tls.extra_ca_pem += pem;
        if (!pem.empty() && pem.back() != '\n') tls.extra_ca_pem += '\n';
      } else if (EndsWith(n, ".cert")) {
        std::string key = dir + "/" + n.substr(0, n.size() - 5) + ".key";
        if (!PathExists(key)) {
          return InvalidArgument(
              fmt::format("{}: client certificate without its key {}", path, key));
        }
        tls.client_cert = path;
        tls.client_key = key;
      }
    }
    // The first certs.d with a directory for this host is the one used, as containers/image.
    if (!tls.extra_ca_pem.empty() || !tls.client_cert.empty()) break;
  }
  return tls;
}

}  // namespace barge::oci
