#include "metrics/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/unique_fd.h"
#include "metrics/prometheus.h"

namespace barge::metrics {
namespace {

// The whole HTTP/1.0 response to GET `path` from 127.0.0.1:port.
std::string Get(int port, const std::string& path) {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return "connect failed";
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: x\r\n\r\n";
  if (::write(s.get(), req.data(), req.size()) != static_cast<ssize_t>(req.size())) return "";
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(s.get(), buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

TEST(ListenAddressTest, LoopbackUnlessTold) {
  Result<ListenAddress> a = ParseListenAddress(":9464");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9464);
  a = ParseListenAddress("9000");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  a = ParseListenAddress("0.0.0.0:80");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "0.0.0.0");
  a = ParseListenAddress("[::1]:0");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 0);
  EXPECT_FALSE(ParseListenAddress("host:").ok());
  EXPECT_FALSE(ParseListenAddress("host:70000").ok());
  EXPECT_FALSE(ParseListenAddress("::1:80").ok());
  EXPECT_NE(ParseListenAddress("x:y").status().message().find("'x:y'"), std::string::npos);
}

TEST(HttpServerTest, ServesTheHandlersAnswer) {
  int calls = 0;
  Result<std::unique_ptr<HttpServer>> server =
      HttpServer::Start({"127.0.0.1", 0}, [&](const std::string& path) {
        ++calls;
        if (path == "/metrics") return HttpResponse{200, kPrometheusContentType, "x 1\n"};
        return HttpResponse{404, "text/plain", "no\n"};
      });
  ASSERT_TRUE(server.ok()) << server.status().message();
  ASSERT_GT((*server)->port(), 0);
  std::string r = Get((*server)->port(), "/metrics");
  EXPECT_NE(r.find("200 OK"), std::string::npos) << r;
  EXPECT_NE(r.find("version=0.0.4"), std::string::npos) << r;
  EXPECT_NE(r.find("\r\n\r\nx 1\n"), std::string::npos) << r;
  EXPECT_NE(Get((*server)->port(), "/nope").find("404"), std::string::npos);
  EXPECT_EQ(calls, 2);
}

TEST(HttpServerTest, PortInUseIsAnError) {
  Result<std::unique_ptr<HttpServer>> first =
      HttpServer::Start({"127.0.0.1", 0}, [](const std::string&) { return HttpResponse{}; });
  ASSERT_TRUE(first.ok()) << first.status().message();
  Result<std::unique_ptr<HttpServer>> second = HttpServer::Start(
      {"127.0.0.1", (*first)->port()}, [](const std::string&) { return HttpResponse{}; });
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("cannot listen on 127.0.0.1:"), std::string::npos)
      << second.status().message();
}

}  // namespace
}  // namespace barge::metrics
