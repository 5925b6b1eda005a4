// Platforms (os/architecture[/variant]) as image indexes, manifest lists and configs name them,
// and choosing an image's manifest from an index: shared by `load` and `pull`.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "barge/status.h"
#include "oci/image.h"

namespace barge::oci {

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;

  std::string ToString() const {
    return os + "/" + architecture + (variant.empty() ? "" : "/" + variant);
  }
  // Whether `p` (an index's platform object, or a config) is this platform; without a variant
  // here any variant is.
  bool Matches(const nlohmann::json& p) const;
  static Platform FromJson(const nlohmann::json& p);
  // amd64 for x86_64, arm64 for aarch64, no v8 variant of arm64.
  void Normalize();
};

// "os/arch[/variant]"; empty: this machine's, linux/<arch>.
Result<Platform> ParsePlatform(const std::string& text);

// "amd64", "arm64", ... for this machine.
std::string HostArchitecture();

bool IsIndexMediaType(std::string_view media_type);
bool IsManifestMediaType(std::string_view media_type);

// BuildKit's provenance and SBOM manifests sit in indexes beside the images they describe.
bool IsAttestation(const Descriptor& d, const nlohmann::json& entry);

// The manifest for `want` among an index's `manifests` (`what` names the index in errors). An
// entry that names no platform is taken for any; attestations never are.
Result<Descriptor> PickFromIndex(const nlohmann::json& index, const std::string& what,
                                 const Platform& want);

}  // namespace barge::oci
