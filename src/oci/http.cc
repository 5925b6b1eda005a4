#include "oci/detail/http.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <fmt/core.h>
#include <nettle/base64.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "base/file_util.h"

namespace barge::oci::detail {
namespace {

std::atomic<bool> g_cancelled{false};

// The libcurl functions barge calls, resolved from libcurl.so.4 (see http.h for why).
struct CurlApi {
  CURLcode (*global_init)(long);
  CURL* (*easy_init)();
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_perform)(CURL*);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  void (*easy_cleanup)(CURL*);
  void (*easy_reset)(CURL*);
  const char* (*easy_strerror)(CURLcode);
  struct curl_slist* (*slist_append)(struct curl_slist*, const char*);
  void (*slist_free_all)(struct curl_slist*);
  curl_version_info_data* (*version_info)(CURLversion);
};

Result<const CurlApi*> LoadCurl() {
  static CurlApi api;
  static std::string error;
  static std::once_flag once;
  std::call_once(once, [] {
    // The Debian package libcurl4 (OpenSSL), which libcurl4-openssl-dev installs.
    void* lib = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* e = ::dlerror();
      error = fmt::format("cannot load libcurl (install the libcurl4 package): {}",
                          e != nullptr ? e : "dlopen failed");
      return;
    }
    auto get = [&](auto& fn, const char* name) {
      void* sym = ::dlsym(lib, name);
      if (sym == nullptr && error.empty()) error = fmt::format("libcurl.so.4 lacks {}", name);
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(sym);
    };
    get(api.global_init, "curl_global_init");
    get(api.easy_init, "curl_easy_init");
    get(api.easy_setopt, "curl_easy_setopt");
    get(api.easy_perform, "curl_easy_perform");
    get(api.easy_getinfo, "curl_easy_getinfo");
    get(api.easy_cleanup, "curl_easy_cleanup");
    get(api.easy_reset, "curl_easy_reset");
    get(api.easy_strerror, "curl_easy_strerror");
    get(api.slist_append, "curl_slist_append");
    get(api.slist_free_all, "curl_slist_free_all");
    get(api.version_info, "curl_version_info");
    if (!error.empty()) return;
    // curl_global_init is not thread-safe; call_once makes it so.
    if (CURLcode rc = api.global_init(CURL_GLOBAL_DEFAULT); rc != CURLE_OK)
      error = fmt::format("libcurl initialisation failed: {}", api.easy_strerror(rc));
  });
  if (!error.empty()) return Internal(error);
  return &api;
}

std::string HostOf(const std::string& url) {
  size_t start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  size_t end = url.find_first_of("/?#", start);
  return url.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The system CA bundle followed by the registry's own CAs: CURLOPT_CAINFO_BLOB replaces the
// default bundle, so both go in.
std::string CaBundle(const std::string& extra) {
  const char* env = std::getenv("SSL_CERT_FILE");
  std::string path = env != nullptr && *env != '\0' ? env : "/etc/ssl/certs/ca-certificates.crt";
  Result<std::string> system = ReadFile(path);
  std::string out = system.ok() ? *system : "";
  if (!out.empty() && out.back() != '\n') out += '\n';
  return out + extra;
}

// State of one request, passed to curl's callbacks.
struct Transfer {
  const CurlApi* api = nullptr;
  CURL* curl = nullptr;
  const HttpRequest* request = nullptr;
  HttpResponse* response = nullptr;
  Status error;          // a sink's or body reader's failure, which aborted the transfer
  int64_t sent = 0;      // request body bytes handed to curl
  bool to_sink = false;  // decided at the first body byte of the final response
  bool body_started = false;

  static size_t OnHeader(char* data, size_t size, size_t n, void* p) {
    auto* t = static_cast<Transfer*>(p);
    std::string_view line(data, size * n);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    if (line.rfind("HTTP/", 0) == 0) {
      t->response->headers.clear();  // a new response (after a redirect or 100 Continue)
      t->body_started = false;
      return size * n;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return size * n;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    t->response->headers.emplace_back(Lower(std::string(line.substr(0, colon))),
                                      std::string(value));
    return size * n;
  }

  static size_t OnBody(char* data, size_t size, size_t n, void* p) {
    auto* t = static_cast<Transfer*>(p);
    size_t len = size * n;
    if (!t->body_started) {
      t->body_started = true;
      long code = 0;
      t->api->easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
      t->to_sink = t->request->sink && code >= 200 && code < 300;
    }
    if (t->to_sink) {
      t->error = t->request->sink(std::string_view(data, len));
      return t->error.ok() ? len : 0;
    }
    if (t->response->body.size() + len > t->request->max_body) {
      t->error = InvalidArgument(fmt::format("{}: the answer is longer than {} bytes",
                                             HostOf(t->request->url), t->request->max_body));
      return 0;
    }
    t->response->body.append(data, len);
    return len;
  }

  static size_t OnRead(char* buf, size_t size, size_t n, void* p) {
    auto* t = static_cast<Transfer*>(p);
    const HttpRequest& r = *t->request;
    size_t want = size * n;
    std::string_view chunk;
    if (r.body_fd >= 0) {
      int64_t left = r.body_size - t->sent;
      if (left <= 0) return 0;
      want = static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(want)));
      ssize_t got;
      do {
        got = ::pread(r.body_fd, buf, want, r.body_offset + t->sent);
      } while (got < 0 && errno == EINTR);
      if (got < 0) {
        t->error = ErrnoError("read the blob being uploaded");
        return CURL_READFUNC_ABORT;
      }
      if (got == 0) {
        t->error = IoError("read the blob being uploaded: it is shorter than its size");
        return CURL_READFUNC_ABORT;
      }
      chunk = std::string_view(buf, static_cast<size_t>(got));
    } else {
      size_t left = r.body.size() - static_cast<size_t>(t->sent);
      want = std::min(left, want);
      std::memcpy(buf, r.body.data() + t->sent, want);
      chunk = std::string_view(buf, want);
    }
    if (r.on_body_bytes) {
      t->error = r.on_body_bytes(chunk);
      if (!t->error.ok()) return CURL_READFUNC_ABORT;
    }
    t->sent += static_cast<int64_t>(chunk.size());
    return chunk.size();
  }

  // curl rewinds the body to send it again (after a redirect): start over, but `on_body_bytes`
  // has seen the bytes once already, so that is an error for a caller that counts on it.
  static int OnSeek(void* p, curl_off_t offset, int origin) {
    auto* t = static_cast<Transfer*>(p);
    if (origin != SEEK_SET || offset != 0 || t->request->on_body_bytes) return CURL_SEEKFUNC_FAIL;
    t->sent = 0;
    return CURL_SEEKFUNC_OK;
  }

  static int OnProgress(void*, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return g_cancelled.load(std::memory_order_relaxed) ? 1 : 0;
  }
};

}  // namespace

struct HttpClient::Impl {
  const CurlApi* api = nullptr;
  CURL* curl = nullptr;
  TlsConfig tls;
  std::string ca_bundle;  // kept alive: curl copies blobs, but only when asked to
  char error_buffer[CURL_ERROR_SIZE] = {};
  CURLcode last = CURLE_OK;

  ~Impl() {
    if (curl != nullptr) api->easy_cleanup(curl);
  }
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;
HttpClient::~HttpClient() = default;

Result<HttpClient> HttpClient::Make(const TlsConfig& tls) {
  ASSIGN_OR_RETURN(const CurlApi* api, LoadCurl());
  auto impl = std::make_unique<Impl>();
  impl->api = api;
  impl->tls = tls;
  if (!tls.extra_ca_pem.empty()) impl->ca_bundle = CaBundle(tls.extra_ca_pem);
  impl->curl = api->easy_init();
  if (impl->curl == nullptr) return Internal("libcurl: cannot create a handle");
  return HttpClient(std::move(impl));
}

Result<HttpResponse> HttpClient::Do(const HttpRequest& request) {
  if (g_cancelled.load()) return Cancelled("interrupted");
  const CurlApi& api = *impl_->api;
  CURL* c = impl_->curl;
  // reset keeps the connection cache and TLS sessions: the next request reuses them.
  api.easy_reset(c);
  HttpResponse response;
  Transfer t;
  t.api = &api;
  t.curl = c;
  t.request = &request;
  t.response = &response;
  struct Headers {
    const CurlApi& api;
    struct curl_slist* list = nullptr;
    ~Headers() { api.slist_free_all(list); }
  } headers{api};
  for (const std::string& h : request.headers)
    headers.list = api.slist_append(headers.list, h.c_str());
  // No "Expect: 100-continue" round trip before an upload.
  headers.list = api.slist_append(headers.list, "Expect:");

  impl_->error_buffer[0] = '\0';
  api.easy_setopt(c, CURLOPT_URL, request.url.c_str());
  api.easy_setopt(c, CURLOPT_HTTPHEADER, headers.list);
  api.easy_setopt(c, CURLOPT_ERRORBUFFER, impl_->error_buffer);
  api.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  api.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  api.easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  api.easy_setopt(c, CURLOPT_FOLLOWLOCATION, request.follow_redirects ? 1L : 0L);
  api.easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  api.easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  // A transfer that moves nothing for 60 s has failed (a hung registry).
  api.easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  api.easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  api.easy_setopt(c, CURLOPT_BUFFERSIZE, 256L << 10);
  api.easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 1L << 20);
  api.easy_setopt(c, CURLOPT_USERAGENT, "barge/0.1");
  api.easy_setopt(c, CURLOPT_HEADERFUNCTION, &Transfer::OnHeader);
  api.easy_setopt(c, CURLOPT_HEADERDATA, &t);
  api.easy_setopt(c, CURLOPT_WRITEFUNCTION, &Transfer::OnBody);
  api.easy_setopt(c, CURLOPT_WRITEDATA, &t);
  api.easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  api.easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &Transfer::OnProgress);
  api.easy_setopt(c, CURLOPT_SSL_VERIFYPEER, impl_->tls.verify ? 1L : 0L);
  api.easy_setopt(c, CURLOPT_SSL_VERIFYHOST, impl_->tls.verify ? 2L : 0L);
  if (!impl_->ca_bundle.empty()) {
    struct curl_blob blob {};
    blob.data = impl_->ca_bundle.data();
    blob.len = impl_->ca_bundle.size();
    blob.flags = CURL_BLOB_NOCOPY;
    api.easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
  }
  if (!impl_->tls.client_cert.empty()) {
    api.easy_setopt(c, CURLOPT_SSLCERT, impl_->tls.client_cert.c_str());
    api.easy_setopt(c, CURLOPT_SSLKEY, impl_->tls.client_key.c_str());
  }

  bool has_body = request.body_fd >= 0 || !request.body.empty();
  int64_t body_size =
      request.body_fd >= 0 ? request.body_size : static_cast<int64_t>(request.body.size());
  const std::string& m = request.method;
  if (m == "HEAD") {
    api.easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (m == "PUT" || m == "PATCH") {
    api.easy_setopt(c, CURLOPT_UPLOAD, 1L);
    api.easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body_size));
    if (m == "PATCH") api.easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PATCH");
  } else if (m == "POST") {
    api.easy_setopt(c, CURLOPT_POST, 1L);
    api.easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body_size));
    if (!has_body) api.easy_setopt(c, CURLOPT_POSTFIELDS, "");
  } else if (m != "GET") {
    api.easy_setopt(c, CURLOPT_CUSTOMREQUEST, m.c_str());
  }
  if (has_body || m == "PUT" || m == "PATCH") {
    api.easy_setopt(c, CURLOPT_READFUNCTION, &Transfer::OnRead);
    api.easy_setopt(c, CURLOPT_READDATA, &t);
    api.easy_setopt(c, CURLOPT_SEEKFUNCTION, &Transfer::OnSeek);
    api.easy_setopt(c, CURLOPT_SEEKDATA, &t);
  }

  CURLcode rc = api.easy_perform(c);
  impl_->last = rc;
  if (!t.error.ok()) return t.error;
  if (rc == CURLE_ABORTED_BY_CALLBACK) return Cancelled("interrupted");
  if (rc != CURLE_OK) {
    std::string detail =
        impl_->error_buffer[0] != '\0' ? impl_->error_buffer : api.easy_strerror(rc);
    while (!detail.empty() && detail.back() == '\n') detail.pop_back();
    return IoError(fmt::format("{} {}: {}", m, HostOf(request.url), detail));
  }
  api.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  char* effective = nullptr;
  api.easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &effective);
  response.effective_url = effective != nullptr ? effective : request.url;
  return response;
}

bool HttpClient::LastFailureWasHandshake() const { return impl_->last == CURLE_SSL_CONNECT_ERROR; }

bool HttpClient::LastFailureWasCertificate() const {
  return impl_->last == CURLE_PEER_FAILED_VERIFICATION;
}

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

std::vector<std::string> HttpResponse::Headers(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : headers) {
    if (k == name) out.push_back(v);
  }
  return out;
}

void CancelAllTransfers() { g_cancelled.store(true); }
bool TransfersCancelled() { return g_cancelled.load(); }

std::string UrlEscape(std::string_view text) {
  std::string out;
  for (unsigned char ch : text) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out += static_cast<char>(ch);
    } else {
      out += fmt::format("%{:02X}", ch);
    }
  }
  return out;
}

std::string Base64Encode(std::string_view data) {
  std::string out(BASE64_ENCODE_RAW_LENGTH(data.size()), '\0');
  base64_encode_raw(out.data(), data.size(), reinterpret_cast<const uint8_t*>(data.data()));
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  struct base64_decode_ctx ctx;
  base64_decode_init(&ctx);
  std::string out(BASE64_DECODE_LENGTH(text.size()) + 1, '\0');
  size_t len = out.size();
  if (!base64_decode_update(&ctx, &len, reinterpret_cast<uint8_t*>(out.data()), text.size(),
                            text.data()) ||
      !base64_decode_final(&ctx)) {
    return InvalidArgument("not valid base64");
  }
  out.resize(len);
  return out;
}

}  // namespace barge::oci::detail
