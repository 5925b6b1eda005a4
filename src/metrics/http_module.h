// The C interface between barge and its HTTP module (http_module.cc): a shared object built
// against Debian's cpp-httplib, embedded in barge and loaded only when a command serves HTTP, so
// that barge itself does not load libcpp-httplib, OpenSSL and brotli on every start.
#pragma once

#include <stddef.h>

extern "C" {

// Called by the handler, once, with the response.
typedef void (*barge_http_respond_fn)(void* response, int status, const char* content_type,
                                      const char* body, size_t body_len);
// Answers a GET of `path` by calling `respond(response, ...)`. Called from the server's one
// worker thread.
typedef void (*barge_http_handler_fn)(void* context, const char* path,
                                      barge_http_respond_fn respond, void* response);

// Binds host:port (port 0: any free one, returned in *bound_port) and serves on a thread of its
// own. Returns the server, or null with a message in `error`.
typedef void* (*barge_http_start_fn)(const char* host, int port, barge_http_handler_fn handler,
                                     void* context, int* bound_port, char* error, size_t error_len);
// Stops serving, joins the thread and frees the server.
typedef void (*barge_http_stop_fn)(void* server);
}
