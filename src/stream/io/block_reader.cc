#include "stream/io/block_reader.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "base/file_util.h"

namespace barge::stream::io {

BlockReader::BlockReader(UniqueFd fd, std::string name, bool pollable)
    : fd_(std::move(fd)),
      name_(std::move(name)),
      pollable_(pollable),
      buf_(new char[kBlockBytes]),
      capacity_(kBlockBytes) {}

Result<BlockReader> BlockReader::OpenPath(const std::string& path) {
  UniqueFd fd;
  std::string name = path;
  if (path == "-") {
    // A duplicate, so closing the reader leaves the process's stdin alone.
    fd.Reset(::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0));
    if (!fd) return ErrnoError("duplicate stdin");
    name = "<stdin>";
  } else {
    ASSIGN_OR_RETURN(fd, OpenFile(path, O_RDONLY));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("stat " + name);
  if (S_ISDIR(st.st_mode)) return InvalidArgument("read " + name + ": is a directory");
  return BlockReader(std::move(fd), std::move(name), !S_ISREG(st.st_mode));
}

void BlockReader::Preload(std::string_view bytes) {
  if (end_ + bytes.size() > capacity_) {
    size_t grown = std::max(capacity_ * 2, end_ + bytes.size());
    std::unique_ptr<char[]> bigger(new char[grown]);
    std::memcpy(bigger.get(), buf_.get(), end_);
    buf_ = std::move(bigger);
    capacity_ = grown;
  }
  std::memcpy(buf_.get() + end_, bytes.data(), bytes.size());
  end_ += bytes.size();
}

Result<BlockReader::Fill> BlockReader::Read(int timeout_ms) {
  if (eof_) return Fill::kEof;
  // Make room: move the unread tail to the front, or grow for a record longer than a block.
  if (begin_ > 0 && (end_ == capacity_ || begin_ >= capacity_ / 2)) {
    std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    buf_offset_ += begin_;
    begin_ = 0;
  }
  if (end_ == capacity_) {
    size_t grown = capacity_ * 2;
    std::unique_ptr<char[]> bigger(new char[grown]);
    std::memcpy(bigger.get(), buf_.get(), end_);
    buf_ = std::move(bigger);
    capacity_ = grown;
  }
  if (pollable_) {
    pollfd pfd{fd_.get(), POLLIN, 0};
    int n;
    do {
      n = ::poll(&pfd, 1, timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return ErrnoError("poll " + name_);
    if (n == 0) return Fill::kNoData;
  }
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf_.get() + end_, capacity_ - end_);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Fill::kNoData;
      return ErrnoError("read " + name_);
    }
    if (n == 0) {
      eof_ = true;
      return Fill::kEof;
    }
    end_ += static_cast<size_t>(n);
    return Fill::kData;
  }
}

Result<uint64_t> BlockReader::Size() const {
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) return ErrnoError("stat " + name_);
  return static_cast<uint64_t>(st.st_size);
}

Status BlockReader::Seek(uint64_t offset) {
  if (::lseek(fd_.get(), static_cast<off_t>(offset), SEEK_SET) < 0) {
    return ErrnoError("seek " + name_);
  }
  buf_offset_ = offset;
  begin_ = end_ = 0;
  eof_ = false;
  return Status::Ok();
}

Result<uint64_t> BlockReader::CountLineBreaks(uint64_t end) const {
  std::unique_ptr<char[]> chunk(new char[kBlockBytes]);
  uint64_t count = 0;
  for (uint64_t at = 0; at < end;) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(kBlockBytes, end - at));
    ssize_t n = ::pread(fd_.get(), chunk.get(), want, static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read " + name_);
    if (n == 0) break;
    count += static_cast<uint64_t>(std::count(chunk.get(), chunk.get() + n, '\n'));
    at += static_cast<uint64_t>(n);
  }
  return count;
}

size_t LineLength(std::string_view data, bool eof, size_t* consumed, uint64_t* lines) {
  const void* nl = std::memchr(data.data(), '\n', data.size());
  if (nl == nullptr) {
    if (!eof || data.empty()) return std::string_view::npos;
    *consumed = data.size();
    *lines = 0;
    return data.size();
  }
  size_t len = static_cast<size_t>(static_cast<const char*>(nl) - data.data());
  *consumed = len + 1;
  *lines = 1;
  return len > 0 && data[len - 1] == '\r' ? len - 1 : len;
}

Status MalformedAt(const std::string& name, uint64_t line, std::string_view message) {
  return InvalidArgument(fmt::format("{}:{}: {}", name, line, message));
}

Decoded LineDecoder::Decode(std::string_view data, bool eof, std::string& out) {
  Decoded d;
  size_t len = LineLength(data, eof, &d.consumed, &d.lines);
  if (len == std::string_view::npos) return d;
  out.assign(data.data(), len);
  d.kind = Decoded::kRecord;
  return d;
}

namespace {

// nlohmann's message names "line 1" of the one-line input; keep the column and the reason.
std::string JsonErrorMessage(const nlohmann::json::parse_error& e) {
  std::string_view what = e.what();
  size_t at = what.find("column ");
  size_t colon = at == std::string_view::npos ? at : what.find(": ", at);
  if (colon == std::string_view::npos) return "invalid JSON: " + std::string(what);
  return fmt::format("invalid JSON at {}: {}", what.substr(at, colon - at), what.substr(colon + 2));
}

bool IsBlank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

}  // namespace

Decoded JsonLineDecoder::Decode(std::string_view data, bool eof, nlohmann::json& out) {
  Decoded d;
  size_t len = LineLength(data, eof, &d.consumed, &d.lines);
  if (len == std::string_view::npos) return d;
  std::string_view line = data.substr(0, len);
  if (IsBlank(line)) {
    d.kind = Decoded::kNothing;
    return d;
  }
  // A malformed line is rare; nlohmann reports its position only through the exception, which
  // never leaves this function.
  try {
    out = nlohmann::json::parse(line);
    d.kind = Decoded::kRecord;
  } catch (const nlohmann::json::parse_error& e) {
    d.kind = Decoded::kError;
    d.error = JsonErrorMessage(e);
  }
  return d;
}

}  // namespace barge::stream::io
