// HTTP for the registry client, through libcurl (TLS by OpenSSL, HTTP/2, proxies from the usual
// environment variables: https_proxy, no_proxy, ...).
//
// libcurl is loaded with dlopen the first time a client is made, not linked: linking it (and
// the thirty libraries it pulls in: OpenSSL, nghttp2, Kerberos, LDAP, ...) costs every barge
// process ~10 ms of dynamic loading, which `barge run` cannot afford. Only commands that talk to
// a registry pay it.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "barge/status.h"

namespace barge::oci::detail {

struct TlsConfig {
  bool verify = true;        // verify the server's certificate and host name
  std::string extra_ca_pem;  // CAs trusted for this registry besides the system's (PEM)
  std::string client_cert;   // PEM file of a client certificate (certs.d/HOST/*.cert)
  std::string client_key;    // and its key
};

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, PUT, POST, PATCH, DELETE
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  // The request body: `body`, or `body_size` bytes of the file `body_fd` from `body_offset`
  // (read with pread, so several requests may share a descriptor). `on_body_bytes` sees every
  // byte sent, in order, once per attempt.
  std::string_view body;
  int body_fd = -1;
  int64_t body_offset = 0;
  int64_t body_size = 0;
  std::function<Status(std::string_view)> on_body_bytes;
  // The response body of a 2xx answer goes to `sink` when set (a failing sink aborts the
  // transfer and its Status is returned); any other body is kept in HttpResponse::body, up to
  // `max_body` bytes (more is an error).
  std::function<Status(std::string_view)> sink;
  size_t max_body = 16 << 20;
  bool follow_redirects = true;
};

struct HttpResponse {
  long status = 0;
  // The headers of the final response (after redirects), names lowercased, in order.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string effective_url;  // the URL answered, after redirects

  // The first header of that name ("" if none); `name` in lowercase.
  std::string Header(std::string_view name) const;
  std::vector<std::string> Headers(std::string_view name) const;
};

// One connection cache (keep-alive, TLS sessions) for requests made one at a time. Not
// thread-safe: use one client per thread.
class HttpClient {
 public:
  // Loads libcurl on first use; the error says which library is missing.
  static Result<HttpClient> Make(const TlsConfig& tls);
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;
  ~HttpClient();

  // Performs the request. A Status error means no HTTP answer (connection refused, TLS failure,
  // timeout, interrupted); any HTTP status is a response. Errors name the URL's host.
  Result<HttpResponse> Do(const HttpRequest& request);
  // Whether the last Do failed because the server's certificate did not verify (as opposed
  // to, say, a server that does not speak TLS at all).
  bool LastFailureWasCertificate() const;
  // Whether the last Do failed in the TLS handshake (the connection was made): what a server
  // that speaks plain HTTP causes, among other things.
  bool LastFailureWasHandshake() const;

 private:
  struct Impl;
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Set (from a signal handler: it is lock-free) to make every transfer in progress fail with
// Cancelled("interrupted") within a second; nothing reads it back to false.
void CancelAllTransfers();
bool TransfersCancelled();

// "sha256:..." -> percent-encoding is never needed for digests; this escapes query values.
std::string UrlEscape(std::string_view text);

// Base64 (RFC 4648, padded), for Basic credentials and auth.json.
std::string Base64Encode(std::string_view data);
Result<std::string> Base64Decode(std::string_view text);

}  // namespace barge::oci::detail
