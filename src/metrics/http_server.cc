#include "metrics/http_server.h"

#include <dlfcn.h>
#include <fmt/core.h>
#include <sys/mman.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <mutex>

#include "base/unique_fd.h"
#include "metrics/http_module.h"

namespace barge::metrics {
namespace detail {
extern const unsigned char kHttpModule[];
extern const size_t kHttpModule_size;
}  // namespace detail

namespace {

struct Module {
  barge_http_start_fn start = nullptr;
  barge_http_stop_fn stop = nullptr;
};

// Loads the embedded module once per process, from a memfd (nothing is written to disk). The
// handle is kept for the life of the process.
Result<Module> LoadModule() {
  static std::mutex mu;
  static Module module;
  static Status failure;
  std::lock_guard lock(mu);
  if (module.start != nullptr) return module;
  if (!failure.ok()) return failure;
  auto fail = [&](Status st) {
    failure = st;
    return st;
  };
  UniqueFd fd(::memfd_create("barge-http", MFD_CLOEXEC));
  if (!fd) return fail(ErrnoError("memfd_create for the HTTP module"));
  const unsigned char* p = detail::kHttpModule;
  size_t left = detail::kHttpModule_size;
  while (left > 0) {
    ssize_t n = ::write(fd.get(), p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(ErrnoError("write the HTTP module to a memfd"));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  std::string path = "/proc/self/fd/" + std::to_string(fd.get());
  void* lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* e = ::dlerror();
    return fail(Unsupported(std::string("cannot load barge's HTTP module (it needs Debian's "
                                        "libcpp-httplib0.11): ") +
                            (e != nullptr ? e : "dlopen failed")));
  }
  module.start = reinterpret_cast<barge_http_start_fn>(::dlsym(lib, "barge_http_start"));
  module.stop = reinterpret_cast<barge_http_stop_fn>(::dlsym(lib, "barge_http_stop"));
  if (module.start == nullptr || module.stop == nullptr) {
    module = {};
    return fail(Internal("barge's HTTP module lacks its entry points"));
  }
  return module;
}

Result<int> ParsePort(std::string_view text, const std::string& whole) {
  int port = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || port < 0 ||
      port > 65535) {
    return InvalidArgument("'" + whole + "' is not HOST:PORT (PORT 0 to 65535)");
  }
  return port;
}

}  // namespace

Result<ListenAddress> ParseListenAddress(const std::string& text) {
  ListenAddress a;
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) {
    ASSIGN_OR_RETURN(a.port, ParsePort(text, text));
    a.host = "127.0.0.1";
    return a;
  }
  std::string host = text.substr(0, colon);
  ASSIGN_OR_RETURN(a.port, ParsePort(std::string_view(text).substr(colon + 1), text));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return InvalidArgument("'" + text + "': write an IPv6 host in brackets, as [::1]:9464");
  }
  a.host = host.empty() ? "127.0.0.1" : host;
  return a;
}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const ListenAddress& address,
                                                      HttpHandler handler) {
  ASSIGN_OR_RETURN(Module module, LoadModule());
  std::unique_ptr<HttpServer> server(new HttpServer(address.host, std::move(handler)));
  char error[256] = {};
  int bound = 0;
  server->server_ = module.start(address.host.c_str(), address.port, &HttpServer::Handle,
                                 server.get(), &bound, error, sizeof(error));
  if (server->server_ == nullptr) return IoError(std::string("metrics server: ") + error);
  server->port_ = bound;
  return server;
}

HttpServer::~HttpServer() {
  if (server_ != nullptr) {
    Result<Module> module = LoadModule();  // loaded: this server came from it
    if (module.ok()) module->stop(server_);
  }
}

std::string HttpServer::url() const {
  if (host_.find(':') != std::string::npos) return fmt::format("http://[{}]:{}", host_, port_);
  return fmt::format("http://{}:{}", host_, port_);
}

void HttpServer::Handle(void* context, const char* path,
                        void (*respond)(void*, int, const char*, const char*, size_t),
                        void* response) {
  auto* self = static_cast<HttpServer*>(context);
  HttpResponse r;
  try {
    r = self->handler_(path);
  } catch (const std::exception& e) {
    r = {500, "text/plain; charset=utf-8", std::string(e.what()) + "\n"};
  }
  respond(response, r.status, r.content_type.c_str(), r.body.data(), r.body.size());
}

}  // namespace barge::metrics
