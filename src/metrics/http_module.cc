// The HTTP module (see http_module.h): cpp-httplib behind a C interface. Built as a shared object
// that barge embeds and loads on demand.
#include "metrics/http_module.h"

#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

namespace {

struct Server {
  httplib::Server http;
  std::thread thread;
};

void Respond(void* response, int status, const char* content_type, const char* body,
             size_t body_len) {
  auto* res = static_cast<httplib::Response*>(response);
  res->status = status;
  res->set_content(std::string(body, body_len), content_type);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) void* barge_http_start(
    const char* host, int port, barge_http_handler_fn handler, void* context, int* bound_port,
    char* error, size_t error_len) {
  try {
    auto server = std::make_unique<Server>();
    // One worker: scrapes are rare and small, and the pipeline's threads own the CPUs.
    server->http.new_task_queue = [] { return new httplib::ThreadPool(1); };
    // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a second barge
    // share the port silently instead of failing.
    server->http.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    server->http.Get(".*", [handler, context](const httplib::Request& req, httplib::Response& res) {
      handler(context, req.path.c_str(), Respond, &res);
    });
    int bound = port == 0 ? server->http.bind_to_any_port(host) : port;
    if (port != 0 && !server->http.bind_to_port(host, port)) bound = -1;
    if (bound < 0) {
      std::snprintf(error, error_len, "cannot listen on %s:%d (in use, or not an address here)",
                    host, port);
      return nullptr;
    }
    *bound_port = bound;
    Server* s = server.get();
    s->thread = std::thread([s] { s->http.listen_after_bind(); });
    // stop() is a no-op until the loop runs: wait for it, so that a stop right after start works.
    while (!s->http.is_running()) std::this_thread::sleep_for(std::chrono::microseconds(100));
    return server.release();
  } catch (const std::exception& e) {
    std::snprintf(error, error_len, "%s", e.what());
    return nullptr;
  }
}

extern "C" __attribute__((visibility("default"))) void barge_http_stop(void* server) {
  auto* s = static_cast<Server*>(server);
  s->http.stop();
  if (s->thread.joinable()) s->thread.join();
  delete s;
}
