#include "oci/digest.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <nettle/sha2.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "base/file_util.h"

namespace barge::oci {

// Nettle's SHA-256 (SHA-NI where the CPU has it, as fast as OpenSSL's). OpenSSL 3's EVP
// interface would cost 0.8 ms of provider and configuration loading on the first digest of
// every barge process, a tenth of a container start.
struct Sha256::Ctx {
  sha256_ctx sha;
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) { sha256_init(&ctx_->sha); }
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::Update(const void* data, size_t size) {
  if (size > 0) sha256_update(&ctx_->sha, size, static_cast<const uint8_t*>(data));
}

std::string Sha256::FinishDigest() {
  uint8_t out[SHA256_DIGEST_SIZE];
  sha256_digest(&ctx_->sha, sizeof out, out);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string digest(kSha256Prefix);
  for (size_t i = 0; i < sizeof out; ++i) {
    digest.push_back(kHex[out[i] >> 4]);
    digest.push_back(kHex[out[i] & 15]);
  }
  return digest;
}

std::string DigestOf(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.FinishDigest();
}

Result<std::string> DigestOfFile(const std::string& path) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
  Sha256 h;
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read " + path);
    if (n == 0) break;
    h.Update(buf.data(), static_cast<size_t>(n));
  }
  return h.FinishDigest();
}

std::string HexSha256(std::string_view data) { return DigestHex(DigestOf(data)); }

Status ValidateDigest(std::string_view digest) {
  bool ok = digest.size() == kSha256Prefix.size() + 64 && digest.substr(0, 7) == kSha256Prefix;
  for (size_t i = kSha256Prefix.size(); ok && i < digest.size(); ++i) {
    char c = digest[i];
    ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  }
  if (!ok) {
    return InvalidArgument(
        fmt::format("invalid digest '{}': expected sha256:<64 lowercase hex digits>", digest));
  }
  return Status::Ok();
}

}  // namespace barge::oci
