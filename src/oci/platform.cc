#include "oci/platform.h"

#include <fmt/core.h>
#include <sys/utsname.h>

namespace barge::oci {

using nlohmann::json;

std::string HostArchitecture() {
  struct utsname u {};
  ::uname(&u);
  std::string m = u.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64") return "arm64";
  if (m == "armv7l") return "arm";
  if (m == "i686" || m == "i386") return "386";
  return m;
}

bool Platform::Matches(const json& p) const {
  Platform other = FromJson(p);
  return other.os == os && other.architecture == architecture &&
         (variant.empty() || other.variant == variant);
}

Platform Platform::FromJson(const json& p) {
  Platform out{StringField(p, "os"), StringField(p, "architecture"), StringField(p, "variant")};
  out.Normalize();
  return out;
}

void Platform::Normalize() {
  if (architecture == "x86_64" || architecture == "x86-64") architecture = "amd64";
  if (architecture == "aarch64") architecture = "arm64";
  if (architecture == "arm64" && (variant == "v8" || variant == "8")) variant.clear();
}

Result<Platform> ParsePlatform(const std::string& text) {
  if (text.empty()) return Platform{"linux", HostArchitecture(), ""};
  Platform p;
  size_t a = text.find('/');
  size_t b = a == std::string::npos ? a : text.find('/', a + 1);
  p.os = text.substr(0, a);
  if (a != std::string::npos)
    p.architecture = text.substr(a + 1, b == std::string::npos ? b : b - a - 1);
  if (b != std::string::npos) p.variant = text.substr(b + 1);
  if (p.os.empty() || p.architecture.empty() || p.variant.find('/') != std::string::npos)
    return InvalidArgument(fmt::format("--platform '{}': expected OS/ARCH[/VARIANT]", text));
  p.Normalize();
  return p;
}

// BuildKit's provenance and SBOM manifests sit in indexes beside the images they describe.
bool IsAttestation(const Descriptor& d, const json& entry) {
  auto type = d.annotations.find("vnd.docker.reference.type");
  if (type != d.annotations.end() && type->second == "attestation-manifest") return true;
  const json platform = entry.is_object() ? entry.value("platform", json::object()) : json();
  return StringField(platform, "os") == "unknown";
}

bool IsIndexMediaType(std::string_view m) {
  return m == kMediaTypeIndex || m == kMediaTypeDockerManifestList;
}
bool IsManifestMediaType(std::string_view m) {
  return m == kMediaTypeManifest || m == kMediaTypeDockerManifest;
}

// The manifest for `want` among an index's `manifests`.
Result<Descriptor> PickFromIndex(const json& index, const std::string& what, const Platform& want) {
  if (!index.is_object() || !index.contains("manifests") || !index["manifests"].is_array())
    return Corruption(what + ": no manifests");
  for (const json& m : index["manifests"]) {
    ASSIGN_OR_RETURN(Descriptor d, Descriptor::FromJson(m, what));
    if (IsAttestation(d, m) || !IsManifestMediaType(d.media_type)) continue;
    // An entry that names no platform (or not as an object) is taken for any.
    const json p = m.contains("platform") && m["platform"].is_object() ? m["platform"] : json();
    json platform = {{"os", StringField(p, "os", want.os)},
                     {"architecture", StringField(p, "architecture", want.architecture)},
                     {"variant", StringField(p, "variant", want.variant)}};
    if (want.Matches(platform)) return d;
  }
  return NotFound(fmt::format("{} has no manifest for {}", what, want.ToString()));
}

}  // namespace barge::oci
