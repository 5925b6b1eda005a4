// SHA-256 digests in the OCI form "sha256:<64 lowercase hex>". Hashing uses nettle.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "barge/status.h"

namespace barge::oci {

inline constexpr std::string_view kSha256Prefix = "sha256:";

// Incremental SHA-256. Move-only; Finish() may be called once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // "sha256:<hex>".
  std::string FinishDigest();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// "sha256:<hex>" of `data`.
std::string DigestOf(std::string_view data);
// "sha256:<hex>" of the file at `path`, read in large blocks.
Result<std::string> DigestOfFile(const std::string& path);

// Checks that `digest` is "sha256:" followed by 64 lowercase hex digits; the error names it.
Status ValidateDigest(std::string_view digest);

// The hex part of a valid digest.
inline std::string DigestHex(std::string_view digest) {
  return std::string(digest.substr(kSha256Prefix.size()));
}

// The hex digest of a SHA-256 over `data` (no prefix); for cache keys.
std::string HexSha256(std::string_view data);

}  // namespace barge::oci
