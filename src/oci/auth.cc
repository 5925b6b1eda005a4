#include "oci/auth.h"

#include <fmt/core.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <set>

#include "base/file_util.h"
#include "oci/detail/credential_helper.h"
#include "oci/detail/http.h"
#include "oci/image.h"

namespace barge::oci {
namespace {

using nlohmann::json;

constexpr size_t kMaxAuthFile = 4 << 20;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

std::string Parent(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
}

// The file's JSON (an empty object if it does not exist).
Result<json> ReadAuthFile(const std::string& path) {
  if (!PathExists(path)) return json::object();
  ASSIGN_OR_RETURN(std::string text, ReadRegularFileLimited(path, kMaxAuthFile));
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Corruption(path + ": not a JSON object");
  if (j.contains("auths") && !j["auths"].is_object())
    return Corruption(path + ": \"auths\" is not an object");
  if (j.contains("credHelpers")) {
    const json& helpers = j["credHelpers"];
    bool strings = helpers.is_object();
    for (auto it = helpers.begin(); strings && it != helpers.end(); ++it) strings = it->is_string();
    if (!strings)
      return Corruption(path + ": \"credHelpers\" is not an object of registry: helper name");
  }
  if (j.contains("credsStore") && !j["credsStore"].is_string())
    return Corruption(path + ": \"credsStore\" is not a string");
  return j;
}

// The helper a credHelpers entry names for `host`: the key as given, or in another of the
// spellings NormalizeAuthKey reads ("https://index.docker.io/v1/" for docker.io).
std::optional<detail::CredentialHelper> CredHelperFor(const json& file, const std::string& path,
                                                      const std::string& host) {
  if (!file.contains("credHelpers")) return std::nullopt;
  const json& helpers = file["credHelpers"];
  auto named = [&](const std::string& key, const json& value) {
    return detail::CredentialHelper{value.get<std::string>(), "credHelpers entry " + key, path};
  };
  if (auto it = helpers.find(host); it != helpers.end()) return named(host, *it);
  for (const auto& [key, value] : helpers.items()) {
    if (NormalizeAuthKey(key) == host) return named(key, value);
  }
  return std::nullopt;
}

std::optional<detail::CredentialHelper> CredsStoreOf(const json& file, const std::string& path) {
  std::string store = StringField(file, "credsStore");
  if (store.empty()) return std::nullopt;
  return detail::CredentialHelper{store, "credsStore", path};
}

// The helper that keeps `host`'s credentials for the file: credHelpers, else credsStore.
std::optional<detail::CredentialHelper> HelperFor(const json& file, const std::string& path,
                                                  const std::string& host) {
  if (auto h = CredHelperFor(file, path, host)) return h;
  return CredsStoreOf(file, path);
}

// The server names a helper may keep `registry` under, the one Docker uses first: Docker keys
// Docker Hub as "https://index.docker.io/v1/", Podman as "docker.io".
std::vector<std::string> HelperServers(const std::string& registry) {
  if (registry == kDockerHub) return {"https://index.docker.io/v1/", std::string(kDockerHub)};
  return {registry};
}

Result<std::optional<Credentials>> HelperLookup(const detail::CredentialHelper& helper,
                                                const std::string& registry) {
  for (const std::string& server : HelperServers(registry)) {
    ASSIGN_OR_RETURN(std::optional<Credentials> c, detail::HelperGet(helper, server));
    if (c) return c;
  }
  return std::optional<Credentials>();
}

bool Empty(const Credentials& c) {
  return c.username.empty() && c.password.empty() && c.identity_token.empty();
}

Result<Credentials> Decode(const json& entry, const std::string& path, const std::string& key) {
  std::string auth = StringField(entry, "auth");
  std::string token = StringField(entry, "identitytoken");
  if (auth.empty()) {
    // Docker's older files keep username and password apart.
    return Credentials{StringField(entry, "username"), StringField(entry, "password"), token};
  }
  Result<std::string> plain = detail::Base64Decode(auth);
  size_t colon = plain.ok() ? plain->find(':') : std::string::npos;
  if (colon == std::string::npos)
    return Corruption(
        fmt::format("{}: the entry for {} is not base64 of user:password", path, key));
  return Credentials{plain->substr(0, colon), plain->substr(colon + 1), token};
}

}  // namespace

std::string AuthFilePath(const std::string& auth_file) {
  if (!auth_file.empty()) return auth_file;
  if (std::string env = Env("REGISTRY_AUTH_FILE"); !env.empty()) return env;
  if (std::string run = Env("XDG_RUNTIME_DIR"); !run.empty()) return run + "/containers/auth.json";
  return fmt::format("/run/containers/{}/auth.json", ::getuid());
}

std::vector<std::string> AuthFileSearchPath(const std::string& auth_file) {
  std::vector<std::string> out = {AuthFilePath(auth_file)};
  if (!auth_file.empty() || !Env("REGISTRY_AUTH_FILE").empty()) return out;
  std::string config = Env("XDG_CONFIG_HOME");
  std::string home = Env("HOME");
  if (config.empty() && !home.empty()) config = home + "/.config";
  if (!config.empty()) out.push_back(config + "/containers/auth.json");
  if (std::string docker = Env("DOCKER_CONFIG"); !docker.empty()) {
    out.push_back(docker + "/config.json");
  } else if (!home.empty()) {
    out.push_back(home + "/.docker/config.json");
  }
  return out;
}

std::string NormalizeAuthKey(std::string key) {
  for (const char* scheme : {"https://", "http://"}) {
    if (key.rfind(scheme, 0) == 0) key = key.substr(std::string_view(scheme).size());
  }
  while (!key.empty() && key.back() == '/') key.pop_back();
  for (const char* version : {"/v1", "/v2"}) {
    std::string_view v = version;
    if (key.size() > v.size() && key.compare(key.size() - v.size(), v.size(), v) == 0)
      key.resize(key.size() - v.size());
  }
  std::string host = key.substr(0, key.find('/'));
  if (host == "index.docker.io" || host == kDockerHubEndpoint)
    key = std::string(kDockerHub) + key.substr(host.size());
  return key;
}

Result<std::optional<Credentials>> LookupCredentials(const std::string& auth_file,
                                                     const RepositoryName& name) {
  // Most specific first: registry/a/b/c, registry/a/b, registry/a, registry.
  std::vector<std::string> keys;
  std::string key = name.ToString();
  for (;;) {
    keys.push_back(key);
    size_t slash = key.rfind('/');
    if (slash == std::string::npos || key.size() <= name.registry.size()) break;
    key.resize(slash);
  }
  for (const std::string& path : AuthFileSearchPath(auth_file)) {
    ASSIGN_OR_RETURN(json file, ReadAuthFile(path));
    if (auto helper = CredHelperFor(file, path, name.registry)) {
      ASSIGN_OR_RETURN(std::optional<Credentials> c, HelperLookup(*helper, name.registry));
      if (c) return c;
      continue;
    }
    if (file.contains("auths")) {
      std::map<std::string, const json*> entries;
      for (const auto& [k, v] : file["auths"].items()) entries[NormalizeAuthKey(k)] = &v;
      for (const std::string& k : keys) {
        auto it = entries.find(k);
        if (it == entries.end()) continue;
        ASSIGN_OR_RETURN(Credentials c, Decode(*it->second, path, k));
        if (Empty(c)) continue;  // Docker leaves {} behind when a helper keeps the login
        return std::optional<Credentials>(std::move(c));
      }
    }
    if (auto store = CredsStoreOf(file, path)) {
      ASSIGN_OR_RETURN(std::optional<Credentials> c, HelperLookup(*store, name.registry));
      if (c) return c;
    }
  }
  return std::optional<Credentials>();
}

Status StoreCredentials(const std::string& path, const std::string& key,
                        const Credentials& credentials) {
  ASSIGN_OR_RETURN(json file, ReadAuthFile(path));
  if (!file.contains("auths")) file["auths"] = json::object();
  // Another spelling of the same key (https://..., a trailing /) is replaced, not duplicated.
  std::vector<std::string> same;
  for (const auto& [k, v] : file["auths"].items()) {
    if (NormalizeAuthKey(k) == key) same.push_back(k);
  }
  std::string host = key.substr(0, key.find('/'));
  if (auto helper = HelperFor(file, path, host)) {
    if (key != host) {
      return InvalidArgument(
          fmt::format("{}: credential helper {} ({} in {}) keeps one login per registry, not per "
                      "namespace: log in to {}",
                      key, helper->Program(), helper->setting, path, host));
    }
    RETURN_IF_ERROR(detail::HelperStore(*helper, HelperServers(host).front(), credentials));
    // An entry left in the file would hide the helper's credentials from lookups.
    if (same.empty()) return Status::Ok();
    for (const std::string& k : same) file["auths"].erase(k);
    return WriteFileAtomic(path, file.dump(1, '\t') + "\n", 0600);
  }
  for (const std::string& k : same) file["auths"].erase(k);
  json entry = {{"auth", detail::Base64Encode(credentials.username + ":" + credentials.password)}};
  if (!credentials.identity_token.empty()) entry["identitytoken"] = credentials.identity_token;
  file["auths"][key] = std::move(entry);
  std::string dir = Parent(path);
  if (!PathExists(dir)) RETURN_IF_ERROR(MakeDirs(dir, 0700));
  RETURN_IF_ERROR(WriteFileAtomic(path, file.dump(1, '\t') + "\n", 0600));
  return Status::Ok();
}

Result<bool> RemoveCredentials(const std::string& path, const std::string& key, bool all) {
  ASSIGN_OR_RETURN(json file, ReadAuthFile(path));
  bool removed = false;
  auto erase = [&](const detail::CredentialHelper& helper, const std::string& host) -> Status {
    for (const std::string& server : HelperServers(host)) {
      ASSIGN_OR_RETURN(bool erased, detail::HelperErase(helper, server));
      removed = removed || erased;
    }
    return Status::Ok();
  };
  std::vector<std::string> gone;
  if (file.contains("auths")) {
    for (const auto& [k, v] : file["auths"].items()) {
      if (all || NormalizeAuthKey(k) == key) gone.push_back(k);
    }
  }
  if (all) {
    std::set<std::string> hosts;
    if (file.contains("credHelpers")) {
      for (const auto& [k, v] : file["credHelpers"].items()) hosts.insert(NormalizeAuthKey(k));
    }
    if (CredsStoreOf(file, path)) {
      for (const std::string& k : gone) {
        std::string normal = NormalizeAuthKey(k);
        if (normal.find('/') == std::string::npos) hosts.insert(normal);
      }
    }
    for (const std::string& host : hosts) {
      if (auto helper = HelperFor(file, path, host)) RETURN_IF_ERROR(erase(*helper, host));
    }
  } else if (key.find('/') == std::string::npos) {
    if (auto helper = HelperFor(file, path, key)) RETURN_IF_ERROR(erase(*helper, key));
  }
  if (gone.empty()) return removed;
  for (const std::string& k : gone) file["auths"].erase(k);
  RETURN_IF_ERROR(WriteFileAtomic(path, file.dump(1, '\t') + "\n", 0600));
  return true;
}

}  // namespace barge::oci
