#include "oci/detail/registry_client.h"

#include <fmt/core.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "oci/digest.h"

namespace barge::oci::detail {

using nlohmann::json;

namespace {

constexpr const char* kAcceptManifests =
    "Accept: application/vnd.oci.image.index.v1+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

std::string ShortDigest(const std::string& digest) {
  return digest.size() > 19 ? digest.substr(0, 19) : digest;
}

std::string WithQuery(const std::string& url, const std::string& query) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + query;
}

std::string MediaTypeOf(const HttpResponse& r, const std::string& body) {
  json j = json::parse(body, nullptr, false);
  std::string media = StringField(j, "mediaType");
  if (!media.empty()) return media;
  std::string type = r.Header("content-type");
  type = type.substr(0, type.find(';'));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  if (type.empty() || type == "application/json" || type == "text/plain") {
    // An OCI document may leave mediaType out: an index has manifests, a manifest a config.
    if (j.is_object() && j.contains("manifests")) return std::string(kMediaTypeIndex);
    if (j.is_object() && j.contains("config")) return std::string(kMediaTypeManifest);
  }
  return type;
}

// Whether http://HOST/v2/ gets an HTTP answer, after the TLS handshake failed: for an error
// that says what is wrong. A TLS server answers plain HTTP with 400, and is not one. Nothing is
// sent but the bare GET.
bool PlainHttpAnswers(HttpClient& http, const std::string& host) {
  HttpRequest probe;
  probe.url = "http://" + host + "/v2/";
  probe.follow_redirects = false;
  probe.max_body = 64 << 10;
  Result<HttpResponse> r = http.Do(probe);
  return r.ok() && r->status != 400;
}

}  // namespace

std::string RepositoryScope(const std::string& repo, const std::string& actions) {
  return "repository:" + repo + ":" + actions;
}

std::pair<std::string, std::map<std::string, std::string>> ParseChallenge(std::string_view h) {
  std::map<std::string, std::string> params;
  size_t sp = h.find(' ');
  std::string scheme(h.substr(0, sp));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (sp == std::string_view::npos) return {scheme, params};
  std::string_view rest = h.substr(sp + 1);
  size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && (rest[i] == ' ' || rest[i] == ',')) ++i;
    size_t eq = rest.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string key(rest.substr(i, eq - i));
    for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    i = eq + 1;
    std::string value;
    if (i < rest.size() && rest[i] == '"') {
      ++i;
      while (i < rest.size() && rest[i] != '"') {
        if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
        value += rest[i++];
      }
      ++i;  // the closing quote
    } else {
      size_t end = rest.find(',', i);
      value = std::string(rest.substr(i, end == std::string_view::npos ? rest.npos : end - i));
      i = end == std::string_view::npos ? rest.size() : end;
    }
    params[key] = value;
  }
  return {scheme, params};
}

RegistryClient::~RegistryClient() = default;

Result<std::unique_ptr<RegistryClient>> RegistryClient::Connect(
    const std::string& registry, bool insecure, const RegistryOptions& options,
    std::optional<Credentials> credentials) {
  std::unique_ptr<RegistryClient> c(new RegistryClient());
  c->registry_ = registry;
  c->credentials_ = std::move(credentials);
  std::string host = registry == kDockerHub ? std::string(kDockerHubEndpoint) : registry;
  bool verify = options.tls_verify.value_or(!insecure);
  bool loopback = IsLoopbackRegistry(host);
  // Plain HTTP where it is acceptable: an insecure registry, --tls-verify=false, or this
  // machine (unless --tls-verify=true asks for TLS).
  bool http_allowed = (insecure || !verify || loopback) && options.tls_verify != true;
  ASSIGN_OR_RETURN(c->tls_, TlsConfigFor(registry, options.cert_dir));
  c->tls_.verify = verify;
  ASSIGN_OR_RETURN(HttpClient http, HttpClient::Make(c->tls_));
  // A registry on this machine most likely speaks plain HTTP: asking that first spares the TLS
  // set-up (loading the system's CAs costs ~20 ms). A TLS server answers plain HTTP with 400.
  std::vector<std::string> schemes = {"https"};
  if (http_allowed)
    schemes = loopback ? std::vector<std::string>{"http", "https"}
                       : std::vector<std::string>{"https", "http"};
  Result<HttpResponse> r = Internal("no attempt");
  Status first_error;
  for (size_t i = 0; i < schemes.size(); ++i) {
    HttpRequest ping;
    ping.url = schemes[i] + "://" + host + "/v2/";
    c->base_ = schemes[i] + "://" + host;
    r = http.Do(ping);
    bool last = i + 1 == schemes.size();
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kCancelled) return r.status();
      if (schemes[i] == "https" && http.LastFailureWasCertificate()) {
        return InvalidArgument(
            fmt::format("{}: {} (trust its CA with certs.d/{}/ca.crt, or use --tls-verify=false)",
                        registry, r.status().message(), registry));
      }
      if (first_error.ok()) first_error = r.status();
      if (schemes[i] == "https" && !http_allowed && http.LastFailureWasHandshake() &&
          PlainHttpAnswers(http, host)) {
        return InvalidArgument(fmt::format(
            "{}: the registry speaks plain HTTP, not HTTPS (allow that with --tls-verify=false, "
            "or insecure = true for it in registries.conf)",
            registry));
      }
      if (last) return first_error.Wrap(registry);
      continue;
    }
    if (schemes[i] == "http" && r->status == 400 && !last) continue;  // it speaks TLS
    break;
  }
  if (r->status == 401) {
    // Several challenges may come; Bearer is preferred.
    for (const std::string& h : r->Headers("www-authenticate")) {
      auto [scheme, params] = ParseChallenge(h);
      if (scheme == "bearer" || (scheme == "basic" && c->challenge_.scheme.empty())) {
        c->challenge_ = {scheme, params};
      }
    }
    if (c->challenge_.scheme.empty()) {
      return Unsupported(fmt::format("{}: asks for an authentication barge does not speak ({})",
                                     registry, r->Header("www-authenticate")));
    }
    if (c->challenge_.scheme == "bearer" && c->challenge_.params["realm"].empty())
      return InvalidArgument(registry + ": its Bearer challenge names no token realm");
  } else if (r->status != 200) {
    return InvalidArgument(
        fmt::format("{}: not a registry: GET /v2/ answered HTTP {}", registry, r->status));
  }
  c->pool_.push_back(std::move(http));
  return c;
}

Result<HttpClient> RegistryClient::Borrow() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!pool_.empty()) {
      HttpClient c = std::move(pool_.back());
      pool_.pop_back();
      return c;
    }
  }
  return HttpClient::Make(tls_);
}

void RegistryClient::Return(HttpClient client) {
  std::lock_guard<std::mutex> lock(mu_);
  pool_.push_back(std::move(client));
}

Result<std::string> RegistryClient::FetchToken(const std::vector<std::string>& scopes) {
  const std::string& realm = challenge_.params["realm"];
  std::string service;
  if (auto s = challenge_.params.find("service"); s != challenge_.params.end()) service = s->second;
  bool identity = credentials_ && !credentials_->identity_token.empty();
  HttpRequest req;
  req.url = realm;
  std::string form;
  if (identity) {
    // OAuth2 (distribution's spec/auth/oauth.md): the identity token is a refresh token,
    // POSTed as a form with the scopes space-separated.
    std::string scope_list;
    for (const std::string& scope : scopes) scope_list += (scope_list.empty() ? "" : " ") + scope;
    form = "grant_type=refresh_token&client_id=barge&refresh_token=" +
           UrlEscape(credentials_->identity_token) + "&service=" + UrlEscape(service);
    if (!scope_list.empty()) form += "&scope=" + UrlEscape(scope_list);
    req.method = "POST";
    req.headers.push_back("Content-Type: application/x-www-form-urlencoded");
    req.body = form;
  } else {
    if (!service.empty()) req.url = WithQuery(req.url, "service=" + UrlEscape(service));
    for (const std::string& scope : scopes)
      req.url = WithQuery(req.url, "scope=" + UrlEscape(scope));
    if (credentials_) {
      req.headers.push_back("Authorization: Basic " +
                            Base64Encode(credentials_->username + ":" + credentials_->password));
    }
  }
  req.max_body = 1 << 20;
  ASSIGN_OR_RETURN(HttpClient http, Borrow());
  Result<HttpResponse> r = http.Do(req);
  Return(std::move(http));
  if (!r.ok()) return r.status().Wrap(registry_ + ": token service");
  if (identity && (r->status == 404 || r->status == 405)) {
    return Unsupported(fmt::format(
        "{}: the token service does not take identity tokens (OAuth2 POST answered HTTP {}); log "
        "in with a username and password",
        registry_, r->status));
  }
  if (r->status == 401 || r->status == 403) {
    if (identity) {
      return InvalidArgument(fmt::format(
          "{}: the identity token was refused (expired or revoked? log in again)", registry_));
    }
    if (credentials_) {
      return InvalidArgument(fmt::format("{}: login as '{}' refused: wrong username or password",
                                         registry_, credentials_->username));
    }
    return InvalidArgument(
        fmt::format("{}: the token service refused anonymous access (log in with 'barge login {}')",
                    registry_, registry_));
  }
  if (r->status != 200) {
    return InvalidArgument(
        fmt::format("{}: the token service answered HTTP {}", registry_, r->status));
  }
  json j = json::parse(r->body, nullptr, false);
  std::string token = StringField(j, "token", StringField(j, "access_token"));
  if (token.empty()) return Corruption(registry_ + ": the token service answered no token");
  int64_t expires_in = 60;
  if (j.contains("expires_in") && j["expires_in"].is_number_integer())
    expires_in = std::max<int64_t>(j["expires_in"].get<int64_t>(), 10);
  std::string key;
  for (const std::string& s : scopes) key += s + " ";
  std::lock_guard<std::mutex> lock(mu_);
  // Renewed a little early, so that no request starts with a token about to expire.
  tokens_[key] = {token, std::chrono::steady_clock::now() + std::chrono::seconds(expires_in - 5)};
  return "Bearer " + token;
}

Result<std::string> RegistryClient::AuthorizationFor(const std::vector<std::string>& scopes,
                                                     bool refresh) {
  if (challenge_.scheme == "basic") {
    if (!credentials_) return std::string();
    if (!credentials_->identity_token.empty()) {
      return InvalidArgument(fmt::format(
          "{}: asks for Basic authentication, and an identity token is only good for a token "
          "service (log in with a username and password)",
          registry_));
    }
    return "Basic " + Base64Encode(credentials_->username + ":" + credentials_->password);
  }
  if (challenge_.scheme != "bearer") return std::string();
  std::string key;
  for (const std::string& s : scopes) key += s + " ";
  if (!refresh) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tokens_.find(key);
    if (it != tokens_.end() && it->second.expires > std::chrono::steady_clock::now())
      return "Bearer " + it->second.value;
  }
  return FetchToken(scopes);
}

Result<HttpResponse> RegistryClient::Send(HttpRequest request,
                                          const std::vector<std::string>& scopes) {
  std::vector<std::string> want = scopes;
  std::sort(want.begin(), want.end());
  size_t base_headers = request.headers.size();
  for (int attempt = 0;; ++attempt) {
    ASSIGN_OR_RETURN(std::string auth, AuthorizationFor(want, attempt > 0));
    request.headers.resize(base_headers);
    if (!auth.empty()) request.headers.push_back("Authorization: " + auth);
    ASSIGN_OR_RETURN(HttpClient http, Borrow());
    Result<HttpResponse> r = http.Do(request);
    if (r.ok()) Return(std::move(http));  // a failed connection is not reused
    if (!r.ok() || r->status != 401 || attempt > 0 || challenge_.scheme != "bearer" ||
        request.on_body_bytes) {
      return r;
    }
    // The token does not cover what this request needs (or expired): ask for the scope the
    // registry names, and try once more.
    for (const std::string& h : r->Headers("www-authenticate")) {
      auto [scheme, params] = ParseChallenge(h);
      if (scheme == "bearer" && !params["scope"].empty() &&
          std::find(want.begin(), want.end(), params["scope"]) == want.end()) {
        want.push_back(params["scope"]);
        std::sort(want.begin(), want.end());
      }
    }
  }
}

Status RegistryClient::ErrorFor(const HttpResponse& r, const std::string& doing) const {
  std::string code;
  std::string message;
  json j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("errors") && j["errors"].is_array() && !j["errors"].empty()) {
    code = StringField(j["errors"][0], "code");
    message = StringField(j["errors"][0], "message");
  }
  std::string what =
      message.empty() ? fmt::format("HTTP {}", r.status) : fmt::format("{} ({})", message, code);
  if (r.status == 401) {
    if (credentials_ && !credentials_->identity_token.empty()) {
      return InvalidArgument(
          fmt::format("{}: {}: the identity token was refused: {}", doing, registry_, what));
    }
    if (credentials_) {
      return InvalidArgument(
          fmt::format("{}: {}: login as '{}' refused: wrong username or password", doing, registry_,
                      credentials_->username));
    }
    return InvalidArgument(fmt::format("{}: {} requires a login ('barge login {}'): {}", doing,
                                       registry_, registry_, what));
  }
  if (r.status == 403) return InvalidArgument(fmt::format("{}: access denied: {}", doing, what));
  if (r.status == 404) return NotFound(fmt::format("{}: {}", doing, what));
  return IoError(fmt::format("{}: {}", doing, what));
}

Result<Manifest> RegistryClient::GetManifest(const std::string& repo, const std::string& ref) {
  HttpRequest req;
  req.url = Url("/v2/" + repo + "/manifests/" + ref);
  req.headers.push_back(kAcceptManifests);
  ASSIGN_OR_RETURN(HttpResponse r, Send(req, {RepositoryScope(repo, "pull")}));
  std::string where = registry_ + "/" + repo;
  if (r.status == 404) {
    json j = json::parse(r.body, nullptr, false);
    std::string code;
    if (j.is_object() && j.contains("errors") && j["errors"].is_array() && !j["errors"].empty())
      code = StringField(j["errors"][0], "code");
    if (code != "NAME_UNKNOWN") {
      // distribution answers MANIFEST_UNKNOWN for a repository it does not have either; its
      // tag list tells the two apart.
      HttpRequest tags;
      tags.url = Url("/v2/" + repo + "/tags/list?n=1");
      Result<HttpResponse> t = Send(tags, {RepositoryScope(repo, "pull")});
      if (t.ok() && t->status == 404) code = "NAME_UNKNOWN";
    }
    if (code == "NAME_UNKNOWN")
      return NotFound(fmt::format("repository {} not found on {}", repo, registry_));
    bool by_digest = ref.rfind(kSha256Prefix, 0) == 0;
    return NotFound(
        fmt::format("{} {} not found in {}", by_digest ? "manifest" : "tag", ref, where));
  }
  if (r.status != 200) return ErrorFor(r, "get manifest " + ref + " of " + where);
  Manifest m;
  m.bytes = std::move(r.body);
  m.digest = DigestOf(m.bytes);
  m.media_type = MediaTypeOf(r, m.bytes);
  if (ref.rfind(kSha256Prefix, 0) == 0 && m.digest != ref) {
    return Corruption(fmt::format("manifest {} from {} does not match its digest: it hashes to {}",
                                  ref, where, m.digest));
  }
  if (m.media_type.find("distribution.manifest.v1") != std::string::npos) {
    return Unsupported(
        fmt::format("{}:{} is a Docker schema 1 image, which barge does not pull", where, ref));
  }
  return m;
}

Result<std::string> RegistryClient::PutManifest(const std::string& repo, const std::string& ref,
                                                const std::string& media_type,
                                                const std::string& bytes) {
  HttpRequest req;
  req.method = "PUT";
  req.url = Url("/v2/" + repo + "/manifests/" + ref);
  req.headers.push_back("Content-Type: " + media_type);
  req.body = bytes;
  ASSIGN_OR_RETURN(HttpResponse r, Send(req, {RepositoryScope(repo, "pull,push")}));
  if (r.status != 201 && r.status != 200)
    return ErrorFor(r, fmt::format("put manifest {}/{}:{}", registry_, repo, ref));
  std::string digest = r.Header("docker-content-digest");
  return digest.empty() ? DigestOf(bytes) : digest;
}

Result<bool> RegistryClient::HasBlob(const std::string& repo, const std::string& digest) {
  HttpRequest req;
  req.method = "HEAD";
  req.url = Url("/v2/" + repo + "/blobs/" + digest);
  ASSIGN_OR_RETURN(HttpResponse r, Send(req, {RepositoryScope(repo, "pull,push")}));
  if (r.status == 200) return true;
  if (r.status == 404) return false;
  return ErrorFor(r, fmt::format("check blob {} in {}/{}", ShortDigest(digest), registry_, repo));
}

Status RegistryClient::GetBlob(const std::string& repo, const std::string& digest,
                               const std::function<Status(std::string_view)>& sink) {
  HttpRequest req;
  req.url = Url("/v2/" + repo + "/blobs/" + digest);
  req.sink = sink;
  std::string doing = fmt::format("fetch blob {} from {}/{}", ShortDigest(digest), registry_, repo);
  Result<HttpResponse> r = Send(req, {RepositoryScope(repo, "pull")});
  if (!r.ok()) return r.status().Wrap(doing);
  if (r->status != 200) return ErrorFor(*r, doing);
  return Status::Ok();
}

Result<std::string> RegistryClient::GetSmallBlob(const std::string& repo, const Descriptor& d) {
  if (static_cast<uint64_t>(d.size) > ImageStore::kMaxJsonBlobBytes) {
    return InvalidArgument(
        fmt::format("{} {} has {} bytes, more than the {} an image's JSON may have", d.media_type,
                    d.digest, d.size, ImageStore::kMaxJsonBlobBytes));
  }
  std::string data;
  RETURN_IF_ERROR(GetBlob(repo, d.digest, [&](std::string_view b) -> Status {
    if (data.size() + b.size() > static_cast<size_t>(d.size)) {
      return Corruption(
          fmt::format("blob {} from {}/{} is longer than the {} bytes its descriptor says",
                      d.digest, registry_, repo, d.size));
    }
    data.append(b);
    return Status::Ok();
  }));
  std::string actual = DigestOf(data);
  if (actual != d.digest) {
    return Corruption(fmt::format("blob {} from {}/{} does not match its digest: it hashes to {}",
                                  d.digest, registry_, repo, actual));
  }
  if (static_cast<int64_t>(data.size()) != d.size) {
    return Corruption(fmt::format("blob {} from {}/{} has {} bytes, its descriptor says {}",
                                  d.digest, registry_, repo, data.size(), d.size));
  }
  return data;
}

Result<bool> RegistryClient::MountBlob(const std::string& repo, const std::string& digest,
                                       const std::string& from) {
  HttpRequest req;
  req.method = "POST";
  req.url = Url("/v2/" + repo + "/blobs/uploads/?mount=" + UrlEscape(digest) +
                "&from=" + UrlEscape(from));
  ASSIGN_OR_RETURN(HttpResponse r,
                   Send(req, {RepositoryScope(repo, "pull,push"), RepositoryScope(from, "pull")}));
  // 202: the registry would not mount it and opened an upload instead, which expires unused.
  return r.status == 201;
}

Status RegistryClient::UploadBlob(const std::string& repo, const std::string& digest, int fd,
                                  int64_t size, int64_t chunk_size,
                                  const std::function<Status(std::string_view)>& on_bytes) {
  std::string doing = fmt::format("upload blob {} to {}/{}", ShortDigest(digest), registry_, repo);
  std::vector<std::string> scopes = {RepositoryScope(repo, "pull,push")};
  HttpRequest start;
  start.method = "POST";
  start.url = Url("/v2/" + repo + "/blobs/uploads/");
  Result<HttpResponse> r = Send(start, scopes);
  if (!r.ok()) return r.status().Wrap(doing);
  if (r->status != 202) return ErrorFor(*r, doing);
  auto location = [&](const HttpResponse& resp) -> Result<std::string> {
    std::string loc = resp.Header("location");
    if (loc.empty()) return Corruption(doing + ": the registry gave no upload location");
    if (loc[0] == '/') loc = base_ + loc;
    return loc;
  };
  ASSIGN_OR_RETURN(std::string url, location(*r));
  if (chunk_size > 0) {
    for (int64_t offset = 0; offset < size;) {
      int64_t n = std::min(chunk_size, size - offset);
      HttpRequest patch;
      patch.method = "PATCH";
      patch.url = url;
      patch.headers = {"Content-Type: application/octet-stream",
                       fmt::format("Content-Range: {}-{}", offset, offset + n - 1)};
      patch.body_fd = fd;
      patch.body_offset = offset;
      patch.body_size = n;
      patch.on_body_bytes = on_bytes;
      Result<HttpResponse> p = Send(patch, scopes);
      if (!p.ok()) return p.status().Wrap(doing);
      if (p->status != 202) return ErrorFor(*p, doing);
      ASSIGN_OR_RETURN(url, location(*p));
      offset += n;
    }
  }
  HttpRequest put;
  put.method = "PUT";
  put.url = WithQuery(url, "digest=" + UrlEscape(digest));
  put.headers = {"Content-Type: application/octet-stream"};
  if (chunk_size <= 0) {
    put.body_fd = fd;
    put.body_size = size;
    put.on_body_bytes = on_bytes;
  }
  Result<HttpResponse> done = Send(put, scopes);
  if (!done.ok()) return done.status().Wrap(doing);
  if (done->status != 201) return ErrorFor(*done, doing);
  return Status::Ok();
}

Status RegistryClient::CheckCredentials() {
  if (challenge_.scheme == "bearer") return FetchToken({}).status();
  if (challenge_.scheme == "basic") {
    HttpRequest req;
    req.url = Url("/v2/");
    ASSIGN_OR_RETURN(HttpResponse r, Send(req, {}));
    if (r.status == 200) return Status::Ok();
    return ErrorFor(r, "login");
  }
  return Status::Ok();  // the registry asks for no authentication
}

}  // namespace barge::oci::detail
