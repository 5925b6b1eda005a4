#include "oci/digest.h"

#include <fmt/core.h>
#include <openssl/evp.h>

#include <cassert>

namespace barge::oci {

struct Sha256::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  // Allocation failure is the only way these fail for SHA-256; treat it as a bug.
  [[maybe_unused]] int ok =
      ctx_->md != nullptr && EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr);
  assert(ok);
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::Update(const void* data, size_t size) {
  if (size > 0) EVP_DigestUpdate(ctx_->md, data, size);
}

std::string Sha256::FinishDigest() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_->md, out, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string digest(kSha256Prefix);
  for (unsigned int i = 0; i < len; ++i) {
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
