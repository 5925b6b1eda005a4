// The distribution API, request by request, for pull and push (src/oci/registry_pull.cc,
// registry_push.cc): one client per registry endpoint, shared by the worker threads of a
// transfer.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "barge/status.h"
#include "oci/auth.h"
#include "oci/detail/http.h"
#include "oci/image.h"
#include "oci/registry.h"

namespace barge::oci::detail {

struct Manifest {
  std::string media_type;
  std::string bytes;
  std::string digest;  // sha256 of `bytes`, checked against what was asked for
};

// Thread-safe: each request borrows an idle HttpClient (one keep-alive connection each) from a
// pool, and tokens are cached under a lock.
class RegistryClient {
 public:
  // Pings https://HOST/v2/ (falling back to plain HTTP where that is allowed, see
  // RegistryOptions) and reads its authentication challenge. `insecure`: registries.conf says so.
  static Result<std::unique_ptr<RegistryClient>> Connect(const std::string& registry, bool insecure,
                                                         const RegistryOptions& options,
                                                         std::optional<Credentials> credentials);
  ~RegistryClient();

  const std::string& registry() const { return registry_; }

  // GET /v2/REPO/manifests/REF with every manifest type accepted; the digest of the bytes is
  // checked against REF when REF is a digest. At most 16 MiB.
  Result<Manifest> GetManifest(const std::string& repo, const std::string& ref);
  // PUT; returns the digest the registry answers with (Docker-Content-Digest).
  Result<std::string> PutManifest(const std::string& repo, const std::string& ref,
                                  const std::string& media_type, const std::string& bytes);

  // HEAD /v2/REPO/blobs/DIGEST.
  Result<bool> HasBlob(const std::string& repo, const std::string& digest);
  // Streams the blob to `sink` (which checks it); errors name the digest.
  Status GetBlob(const std::string& repo, const std::string& digest,
                 const std::function<Status(std::string_view)>& sink);
  // Small blobs (configs): fetched whole, digest and size checked.
  Result<std::string> GetSmallBlob(const std::string& repo, const Descriptor& d);
  // POST ?mount=DIGEST&from=FROM: true when the registry mounted it.
  Result<bool> MountBlob(const std::string& repo, const std::string& digest,
                         const std::string& from);
  // Uploads `size` bytes of `fd` as blob `digest`; `chunk_size` > 0 sends PATCH chunks.
  // `on_bytes` sees the bytes as they go (for progress; an error from it stops the upload).
  Status UploadBlob(const std::string& repo, const std::string& digest, int fd, int64_t size,
                    int64_t chunk_size, const std::function<Status(std::string_view)>& on_bytes);

  // For login: a token (or Basic access to /v2/) with the client's credentials.
  Status CheckCredentials();

 private:
  RegistryClient() = default;
  struct Challenge {
    std::string scheme;                         // "bearer", "basic" or "" (none asked)
    std::map<std::string, std::string> params;  // realm, service, scope
  };
  struct Token {
    std::string value;
    std::chrono::steady_clock::time_point expires;
  };

  Result<HttpClient> Borrow();
  void Return(HttpClient client);
  // Sends `request` with the authorization `scopes` need ("repository:NAME:pull,push"),
  // answering one 401 that asks for a new token.
  Result<HttpResponse> Send(HttpRequest request, const std::vector<std::string>& scopes);
  Result<std::string> AuthorizationFor(const std::vector<std::string>& scopes, bool refresh);
  Result<std::string> FetchToken(const std::vector<std::string>& scopes);
  std::string Url(const std::string& path) const { return base_ + path; }
  // The error for a failed response: the registry's error code and message, the request named.
  Status ErrorFor(const HttpResponse& r, const std::string& doing) const;

  std::string registry_;  // as named ("docker.io", "localhost:5000")
  std::string base_;      // "https://registry-1.docker.io"
  TlsConfig tls_;
  std::optional<Credentials> credentials_;
  Challenge challenge_;
  std::mutex mu_;  // guards pool_ and tokens_
  std::vector<HttpClient> pool_;
  std::map<std::string, Token> tokens_;  // by scope set
};

// "repository:NAME:ACTIONS".
std::string RepositoryScope(const std::string& repo, const std::string& actions);

// Parses a WWW-Authenticate header: scheme (lowercased) and its parameters.
std::pair<std::string, std::map<std::string, std::string>> ParseChallenge(std::string_view header);

}  // namespace barge::oci::detail
