// A small HTTP server for GET endpoints such as /metrics and /healthz, on cpp-httplib. The first
// Start() loads barge's embedded HTTP module (http_module.h), which needs Debian's
// libcpp-httplib0.11 on the machine; commands that serve nothing never load it.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "barge/status.h"

namespace barge::metrics {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// Answers a GET of a path. Called on the server's one thread, never concurrently.
using HttpHandler = std::function<HttpResponse(const std::string& path)>;

// HOST:PORT, [V6HOST]:PORT, :PORT or PORT (the host then being 127.0.0.1: loopback unless told
// otherwise). Port 0 asks for any free port.
struct ListenAddress {
  std::string host;
  int port = 0;
};
Result<ListenAddress> ParseListenAddress(const std::string& text);

class HttpServer {
 public:
  // Listens before returning (so a bad address fails here); serves until destroyed.
  static Result<std::unique_ptr<HttpServer>> Start(const ListenAddress& address,
                                                   HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The port bound (the one chosen when asked for port 0).
  int port() const { return port_; }
  // http://HOST:PORT, with a v6 host in brackets.
  std::string url() const;

 private:
  HttpServer(std::string host, HttpHandler handler)
      : host_(std::move(host)), handler_(std::move(handler)) {}
  static void Handle(void* context, const char* path,
                     void (*respond)(void*, int, const char*, const char*, size_t), void* response);
  std::string host_;
  int port_ = 0;
  HttpHandler handler_;
  void* server_ = nullptr;  // the module's; freed by its stop function
};

}  // namespace barge::metrics
