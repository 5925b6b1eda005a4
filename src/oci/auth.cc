#include "oci/auth.h"

#include <fmt/core.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/file_util.h"
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
  return j;
}

Result<Credentials> Decode(const json& entry, const std::string& path, const std::string& key) {
  std::string auth = StringField(entry, "auth");
  if (auth.empty()) {
    // Docker's older files keep username and password apart.
    return Credentials{StringField(entry, "username"), StringField(entry, "password")};
  }
  Result<std::string> plain = detail::Base64Decode(auth);
  size_t colon = plain.ok() ? plain->find(':') : std::string::npos;
  if (colon == std::string::npos)
    return Corruption(
        fmt::format("{}: the entry for {} is not base64 of user:password", path, key));
  return Credentials{plain->substr(0, colon), plain->substr(colon + 1)};
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
    if (!file.contains("auths")) continue;
    std::map<std::string, const json*> entries;
    for (const auto& [k, v] : file["auths"].items()) entries[NormalizeAuthKey(k)] = &v;
    for (const std::string& k : keys) {
      auto it = entries.find(k);
      if (it == entries.end()) continue;
      ASSIGN_OR_RETURN(Credentials c, Decode(*it->second, path, k));
      if (c.username.empty() && c.password.empty()) continue;
      return std::optional<Credentials>(std::move(c));
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
  for (const std::string& k : same) file["auths"].erase(k);
  file["auths"][key] = {
      {"auth", detail::Base64Encode(credentials.username + ":" + credentials.password)}};
  std::string dir = Parent(path);
  if (!PathExists(dir)) RETURN_IF_ERROR(MakeDirs(dir, 0700));
  RETURN_IF_ERROR(WriteFileAtomic(path, file.dump(1, '\t') + "\n", 0600));
  return Status::Ok();
}

Result<bool> RemoveCredentials(const std::string& path, const std::string& key, bool all) {
  ASSIGN_OR_RETURN(json file, ReadAuthFile(path));
  if (!file.contains("auths")) return false;
  std::vector<std::string> gone;
  for (const auto& [k, v] : file["auths"].items()) {
    if (all || NormalizeAuthKey(k) == key) gone.push_back(k);
  }
  if (gone.empty()) return false;
  for (const std::string& k : gone) file["auths"].erase(k);
  RETURN_IF_ERROR(WriteFileAtomic(path, file.dump(1, '\t') + "\n", 0600));
  return true;
}

}  // namespace barge::oci
