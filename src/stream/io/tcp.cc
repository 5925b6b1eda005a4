// TCP: addresses, the listening and connecting line source, and the connecting writer.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "barge/stream/io.h"
#include "stream/io/block_reader.h"

namespace barge::stream {

struct TcpListener::Socket {
  UniqueFd fd;
  uint16_t port = 0;
  std::string address;
};

namespace {

using io::BlockReader;

struct HostPort {
  std::string host;
  std::string port;
};

Result<HostPort> SplitAddress(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size()) {
    return InvalidArgument("invalid TCP address '" + address + "': expected HOST:PORT");
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::string port = address.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return InvalidArgument("invalid TCP address '" + address + "': the port must be a number " +
                           "from 0 to 65535, got '" + port + "'");
  }
  return HostPort{host, port};
}

}  // namespace

Status CheckTcpAddress(const std::string& address) { return SplitAddress(address).status(); }

namespace {

struct AddrInfoDeleter {
  void operator()(addrinfo* ai) const { ::freeaddrinfo(ai); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;

Result<AddrInfoPtr> Resolve(const std::string& address, bool passive) {
  ASSIGN_OR_RETURN(HostPort hp, SplitAddress(address));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* result = nullptr;
  int rc =
      ::getaddrinfo(hp.host.empty() ? nullptr : hp.host.c_str(), hp.port.c_str(), &hints, &result);
  if (rc != 0) {
    return InvalidArgument("resolve " + address + ": " + ::gai_strerror(rc));
  }
  return AddrInfoPtr(result);
}

std::string PeerName(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
    return fmt::format("{}:{}", host, port);
  }
  if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
  }
  return fmt::format("[{}]:{}", host, port);
}

Status SetNonBlocking(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return ErrnoError("fcntl");
  flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (::fcntl(fd, F_SETFL, flags) < 0) return ErrnoError("fcntl");
  return Status::Ok();
}

// Waits for `events` on fd for at most timeout_ms; false on timeout.
Result<bool> WaitFor(int fd, short events, int timeout_ms, std::string_view what) {
  pollfd pfd{fd, events, 0};
  for (;;) {
    int n = ::poll(&pfd, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(std::string("poll ") + std::string(what));
    return n > 0;
  }
}

// A connected, blocking socket to `address`, tried on every resolved address in turn.
Result<UniqueFd> Connect(const std::string& address, int timeout_ms) {
  ASSIGN_OR_RETURN(AddrInfoPtr ai, Resolve(address, false));
  Status last = IoError("connect " + address + ": no addresses");
  for (addrinfo* a = ai.get(); a != nullptr; a = a->ai_next) {
    UniqueFd fd(
        ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd) {
      last = ErrnoError("socket for " + address);
      continue;
    }
    if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last = ErrnoError("connect " + address);
        continue;
      }
      ASSIGN_OR_RETURN(bool ready, WaitFor(fd.get(), POLLOUT, timeout_ms, "connect " + address));
      if (!ready) {
        last = IoError(fmt::format("connect {}: timed out after {} ms", address, timeout_ms));
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last = ErrnoError("connect " + address, err);
        continue;
      }
    }
    RETURN_IF_ERROR(SetNonBlocking(fd.get(), false));
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
  }
  return last;
}

using LineStream = io::RecordStream<std::string, io::LineDecoder>;

// Line-framed TCP input on instance 0: one connection (connect) or every accepted one (listen).
class TcpLineSource final : public Source<std::string> {
 public:
  TcpLineSource(TcpOptions options, std::shared_ptr<TcpListener::Socket> listener)
      : options_(std::move(options)), listener_(std::move(listener)) {}

  Status Open(int instance, int) override {
    if (instance != 0) {
      ended_ = true;
      return Status::Ok();
    }
    if (!options_.connect.empty()) {
      ASSIGN_OR_RETURN(UniqueFd fd, Connect(options_.connect, options_.connect_timeout_ms));
      AddConnection(std::move(fd), "tcp://" + options_.connect);
      return Status::Ok();
    }
    if (listener_ == nullptr) {
      if (options_.listen.empty()) {
        return InvalidArgument("TCP source needs TcpOptions::listen or TcpOptions::connect");
      }
      ASSIGN_OR_RETURN(TcpListener bound, TcpListener::Bind(options_.listen));
      listener_ = bound.socket();
    }
    return Status::Ok();
  }

  Result<SourceState> Next(Batch<std::string>& out, size_t max_records) override {
    if (ended_) return SourceState::kEnd;
    // Two rounds at most: hand out what is buffered, wait once for more, hand that out. The
    // engine calls again soon; returning keeps cancellation prompt on a trickling input.
    for (int round = 0;; ++round) {
      for (size_t c = 0; c < conns_.size() && out.size() < max_records;) {
        ASSIGN_OR_RETURN(bool need_more, conns_[c]->Drain(out, max_records, metrics()));
        if (!need_more && conns_[c]->done()) {
          conns_.erase(conns_.begin() + static_cast<std::ptrdiff_t>(c));
          continue;
        }
        ++c;
      }
      if (Finished()) {
        ended_ = true;
        return out.empty() ? SourceState::kEnd : SourceState::kMore;
      }
      if (out.size() >= max_records) return SourceState::kMore;
      if (round == 1) break;
      RETURN_IF_ERROR(WaitAndRead(out.empty() ? 100 : 0));
      if (!progressed_) break;
    }
    return out.empty() ? SourceState::kIdle : SourceState::kMore;
  }

  void Close() override {
    conns_.clear();
    listener_.reset();
  }

 private:
  bool Accepting() const {
    return listener_ != nullptr &&
           (options_.max_connections <= 0 || accepted_ < options_.max_connections);
  }

  bool Finished() const {
    if (!options_.connect.empty()) return conns_.empty();
    return !Accepting() && conns_.empty();
  }

  void AddConnection(UniqueFd fd, std::string name) {
    ++accepted_;
    conns_.push_back(std::make_unique<LineStream>(
        BlockReader(std::move(fd), std::move(name), /*pollable=*/true), io::LineDecoder{},
        options_.read.on_error, options_.read.max_record_bytes));
  }

  // Polls the listener and every connection once; reads what is ready.
  Status WaitAndRead(int timeout_ms) {
    progressed_ = false;
    pfds_.clear();
    for (auto& c : conns_) pfds_.push_back({c->reader().fd(), POLLIN, 0});
    bool accepting = Accepting();
    if (accepting) pfds_.push_back({listener_->fd.get(), POLLIN, 0});
    int n;
    do {
      n = ::poll(pfds_.data(), pfds_.size(), timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return ErrnoError("poll TCP source");
    if (n == 0) return Status::Ok();
    progressed_ = true;
    for (size_t c = 0, count = conns_.size(); c < count; ++c) {
      if (pfds_[c].revents == 0) continue;
      Result<BlockReader::Fill> fill = conns_[c]->reader().Read(0);
      if (!fill.ok()) {
        // A client that resets its connection ends only that connection; with `connect`
        // the one peer is the whole input.
        if (!options_.connect.empty()) return fill.status();
        conns_[c]->reader().MarkClosed();
      }
    }
    if (accepting && pfds_.back().revents != 0) {
      while (Accepting()) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        int fd =
            ::accept4(listener_->fd.get(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
        if (fd < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED) break;
          return ErrnoError("accept on " + listener_->address);
        }
        AddConnection(UniqueFd(fd), "tcp://" + PeerName(ss));
      }
    }
    return Status::Ok();
  }

  TcpOptions options_;
  std::shared_ptr<TcpListener::Socket> listener_;
  std::vector<std::unique_ptr<LineStream>> conns_;
  std::vector<pollfd> pfds_;
  int accepted_ = 0;
  bool ended_ = false;
  bool progressed_ = false;
};

class TcpWriter final : public detail::ByteWriter {
 public:
  TcpWriter(UniqueFd fd, std::string name, int timeout_ms)
      : fd_(std::move(fd)), name_(std::move(name)), timeout_ms_(timeout_ms) {}

  Status Write(std::string_view block) override {
    while (!block.empty()) {
      // MSG_NOSIGNAL: a closed peer is an error here, not a SIGPIPE for the whole process.
      ssize_t n = ::send(fd_.get(), block.data(), block.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) {
        block.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (errno == EINTR) continue;
      // A peer that went away is one condition, but send reports it as EPIPE or, when the
      // peer's kernel answered with a reset (it closed with our data unread), as ECONNRESET for
      // one call. Report it one way, as documented: Broken pipe.
      if (errno == ECONNRESET) return ErrnoError("send to " + name_, EPIPE);
      if (errno != EAGAIN && errno != EWOULDBLOCK) return ErrnoError("send to " + name_);
      ASSIGN_OR_RETURN(bool ready, WaitFor(fd_.get(), POLLOUT, timeout_ms_, "send to " + name_));
      if (!ready) {
        return IoError(
            fmt::format("send to {}: peer accepted no data for {} ms", name_, timeout_ms_));
      }
    }
    return Status::Ok();
  }

  Status Close() override {
    if (::close(fd_.Release()) != 0) return ErrnoError("close connection to " + name_);
    return Status::Ok();
  }

 private:
  UniqueFd fd_;
  std::string name_;
  int timeout_ms_;
};

}  // namespace

Result<TcpListener> TcpListener::Bind(const std::string& address, int backlog) {
  ASSIGN_OR_RETURN(AddrInfoPtr ai, Resolve(address, true));
  Status last = IoError("bind " + address + ": no addresses");
  for (addrinfo* a = ai.get(); a != nullptr; a = a->ai_next) {
    UniqueFd fd(
        ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd) {
      last = ErrnoError("socket for " + address);
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
      last = ErrnoError("bind " + address);
      continue;
    }
    if (::listen(fd.get(), backlog) != 0) {
      last = ErrnoError("listen on " + address);
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      return ErrnoError("getsockname for " + address);
    }
    auto socket = std::make_shared<Socket>();
    socket->fd = std::move(fd);
    socket->address = PeerName(ss);
    socket->port = ss.ss_family == AF_INET
                       ? ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port)
                       : ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
    return TcpListener(std::move(socket));
  }
  return last;
}

uint16_t TcpListener::port() const { return socket_->port; }
const std::string& TcpListener::address() const { return socket_->address; }

Stream<std::string> TcpSource(Pipeline& p, TcpOptions options) {
  return p.source<std::string>(
      "tcp_source", [options] { return std::make_unique<TcpLineSource>(options, nullptr); },
      /*parallelism=*/1);
}

Stream<std::string> TcpSource(Pipeline& p, TcpListener listener, TcpOptions options) {
  options.connect.clear();
  options.listen = listener.address();
  std::shared_ptr<TcpListener::Socket> socket = listener.socket();
  return p.source<std::string>(
      "tcp_source", [options, socket] { return std::make_unique<TcpLineSource>(options, socket); },
      /*parallelism=*/1);
}

namespace detail {

Result<std::unique_ptr<ByteWriter>> ConnectTcpWriter(const TcpOptions& options) {
  if (options.connect.empty()) {
    return InvalidArgument("TCP sink needs TcpOptions::connect (a sink does not listen)");
  }
  ASSIGN_OR_RETURN(UniqueFd fd, Connect(options.connect, options.connect_timeout_ms));
  return std::unique_ptr<ByteWriter>(std::make_unique<TcpWriter>(
      std::move(fd), "tcp://" + options.connect, options.write_timeout_ms));
}

}  // namespace detail

}  // namespace barge::stream
