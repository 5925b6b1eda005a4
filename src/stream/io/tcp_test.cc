#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "stream/io/test_util.h"

namespace barge::stream {
namespace {

using ::testing::ElementsAre;

// A loopback socket connected to `port`, or an invalid fd.
UniqueFd ConnectLoopback(uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fd.Reset();
  return fd;
}

// A loopback listening socket on an ephemeral port, for the test's own server side.
struct TestServer {
  TestServer() {
    fd.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd.get(), 8), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
  // The next connection, or an invalid fd after 10 s (so a failing test cannot hang here).
  UniqueFd Accept() const {
    pollfd pfd{fd.get(), POLLIN, 0};
    if (::poll(&pfd, 1, 10'000) != 1) return UniqueFd();
    return UniqueFd(::accept4(fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  }

  UniqueFd fd;
  uint16_t port = 0;
};

std::string ReadToEof(int fd) {
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  return out;
}

// A port nobody listens on: bound, then closed.
uint16_t DeadPort() {
  TestServer s;
  return s.port;
}

TEST(TcpTest, ListenSourceReadsLinesFromSeveralClients) {
  Result<TcpListener> listener = TcpListener::Bind("127.0.0.1:0");
  ASSERT_TRUE(listener.ok()) << listener.status().message();
  ASSERT_NE(listener->port(), 0);
  EXPECT_EQ(listener->address(), "127.0.0.1:" + std::to_string(listener->port()));

  Pipeline p;
  Collected<std::string> out;
  TcpSource(p, *listener, {.max_connections = 2}).collect(out);
  std::vector<std::jthread> clients;
  for (int c = 0; c < 2; ++c) {
    clients.emplace_back([c, port = listener->port()] {
      UniqueFd fd = ConnectLoopback(port);
      ASSERT_TRUE(fd.valid());
      std::string text;
      for (int i = 0; i < 1000; ++i) text += fmt::format("c{}-{}\n", c, i);
      text.pop_back();  // the last line ends with the connection
      // In pieces that cut lines, with pauses.
      for (size_t off = 0; off < text.size(); off += 4001) {
        ASSERT_TRUE(WriteAll(fd.get(), std::string_view(text).substr(off, 4001), "socket").ok());
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  }
  Status st = p.Run();
  ASSERT_TRUE(st.ok()) << st.message();
  std::vector<std::string> got = out.records();
  std::vector<std::string> want;
  for (int c = 0; c < 2; ++c) {
    for (int i = 0; i < 1000; ++i) want.push_back(fmt::format("c{}-{}", c, i));
  }
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
}

TEST(TcpTest, ListenSourceBindsItsOwnAddress) {
  uint16_t port = DeadPort();
  std::string address = "127.0.0.1:" + std::to_string(port);
  Pipeline p;
  Collected<std::string> out;
  TcpSource(p, {.listen = address, .max_connections = 1}).collect(out);
  std::jthread client([port] {
    // Retry until the pipeline's source is listening.
    for (int attempt = 0; attempt < 200; ++attempt) {
      UniqueFd fd = ConnectLoopback(port);
      if (fd.valid()) {
        ASSERT_TRUE(WriteAll(fd.get(), "hello\nworld\n", "socket").ok());
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  Status st = p.Run();
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_THAT(out.records(), ElementsAre("hello", "world"));
}

TEST(TcpTest, ListenSourceWithoutLimitRunsUntilCancelled) {
  Result<TcpListener> listener = TcpListener::Bind("127.0.0.1:0");
  ASSERT_TRUE(listener.ok());
  Pipeline p;
  Collected<std::string> out;
  TcpSource(p, *listener).collect(out);
  std::jthread client([&p, port = listener->port()] {
    {
      UniqueFd fd = ConnectLoopback(port);
      ASSERT_TRUE(WriteAll(fd.get(), "one\n", "socket").ok());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    p.Cancel();
  });
  Status st = p.Run();
  EXPECT_EQ(st.code(), StatusCode::kCancelled);
  EXPECT_THAT(out.records(), ElementsAre("one"));
}

TEST(TcpTest, ConnectSourceReadsUntilThePeerCloses) {
  TestServer server;
  std::jthread peer([&server] {
    UniqueFd fd = server.Accept();
    ASSERT_TRUE(WriteAll(fd.get(), "a\r\nb\n\nc", "socket").ok());
  });
  Pipeline p;
  Collected<std::string> out;
  TcpSource(p, {.connect = server.address()}).collect(out);
  Status st = p.Run();
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_THAT(out.records(), ElementsAre("a", "b", "", "c"));
}

TEST(TcpTest, OverlongLinesFailOrAreSkipped) {
  for (OnError policy : {OnError::kFail, OnError::kSkip}) {
    TestServer server;
    std::jthread peer([&server] {
      UniqueFd fd = server.Accept();
      ASSERT_TRUE(WriteAll(fd.get(), "ok\n" + std::string(5000, 'x') + "\nfine\n", "s").ok());
    });
    Pipeline p;
    Collected<std::string> out;
    TcpSource(p,
              {.connect = server.address(), .read = {.on_error = policy, .max_record_bytes = 1000}})
        .collect(out);
    Status st = p.Run();
    if (policy == OnError::kFail) {
      EXPECT_EQ(st.message(), "operator 'tcp_source' failed: tcp://" + server.address() +
                                  ":2: line longer than 1000 bytes");
    } else {
      ASSERT_TRUE(st.ok()) << st.message();
      EXPECT_THAT(out.records(), ElementsAre("ok", "fine"));
      EXPECT_EQ(iotest::Skipped(p), 1u);
    }
  }
}

TEST(TcpTest, ConnectFailureNamesThePeer) {
  std::string address = "127.0.0.1:" + std::to_string(DeadPort());
  Pipeline p;
  TcpSource(p, {.connect = address}).sink([](const std::string&) {});
  EXPECT_EQ(p.Run().message(), "source 'tcp_source': connect " + address + ": Connection refused");
}

TEST(TcpTest, BadAddressIsAClearError) {
  EXPECT_EQ(TcpListener::Bind("nonsense").status().message(),
            "invalid TCP address 'nonsense': expected HOST:PORT");
}

TEST(TcpTest, SinkSendsLinesToAServer) {
  TestServer server;
  std::string received;
  std::jthread peer([&server, &received] {
    UniqueFd fd = server.Accept();
    received = ReadToEof(fd.get());
  });
  Pipeline p;
  auto lines = p.generate("n", 100000, [](uint64_t i) { return i; });
  TcpSink(lines, {.connect = server.address()},
          [](uint64_t i, std::string& out) { out += std::to_string(i); });
  Status st = p.Run();
  ASSERT_TRUE(st.ok()) << st.message();
  peer.join();
  std::string want;
  for (uint64_t i = 0; i < 100000; ++i) want += std::to_string(i) + "\n";
  EXPECT_EQ(received, want);
}

TEST(TcpTest, SinkFailsWhenThePeerGoesAway) {
  TestServer server;
  std::jthread peer([&server] { UniqueFd fd = server.Accept(); });  // accept, then close
  Pipeline p;
  auto lines = p.generate("n", 50'000'000, [](uint64_t i) { return i; });
  TcpSink(lines, {.connect = server.address()},
          [](uint64_t i, std::string& out) { out += std::to_string(i); });
  EXPECT_EQ(p.Run().message(),
            "operator 'tcp_sink' failed: send to tcp://" + server.address() + ": Broken pipe");
}

// A peer that closes with data unread makes its kernel answer with a reset, which send reports
// as ECONNRESET: the sink still says Broken pipe, as documented.
TEST(TcpTest, SinkSaysBrokenPipeWhenThePeerResets) {
  TestServer server;
  std::jthread peer([&server] {
    UniqueFd fd = server.Accept();
    pollfd pfd{fd.get(), POLLIN, 0};
    ::poll(&pfd, 1, 10'000);  // data arrived, and stays unread: close sends a reset
  });
  Pipeline p;
  auto lines = p.generate("n", 50'000'000, [](uint64_t i) { return i; });
  TcpSink(lines, {.connect = server.address()},
          [](uint64_t i, std::string& out) { out += std::to_string(i); });
  EXPECT_EQ(p.Run().message(),
            "operator 'tcp_sink' failed: send to tcp://" + server.address() + ": Broken pipe");
}

TEST(TcpTest, SinkConnectFailureNamesThePeer) {
  std::string address = "127.0.0.1:" + std::to_string(DeadPort());
  Pipeline p;
  TcpSink(p.generate("n", 10, [](uint64_t i) { return std::to_string(i); }), {.connect = address});
  EXPECT_EQ(p.Run().message(),
            "operator 'tcp_sink' failed: connect " + address + ": Connection refused");
}

}  // namespace
}  // namespace barge::stream
