// OCI image-spec 1.1 documents as barge uses them: descriptors, the image config and the
// manifest. The JSON documents are kept whole (nlohmann::json) so fields barge does not model
// survive a load/save round trip; the structs are the parsed, validated view.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "barge/status.h"

namespace barge::oci {

inline constexpr std::string_view kMediaTypeIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kMediaTypeManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kMediaTypeConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kMediaTypeLayer = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kMediaTypeLayerGzip =
    "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kMediaTypeLayerZstd =
    "application/vnd.oci.image.layer.v1.tar+zstd";
// Docker schema 2 equivalents, accepted on load.
inline constexpr std::string_view kMediaTypeDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kMediaTypeDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kMediaTypeDockerConfig =
    "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kMediaTypeDockerLayerGzip =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";

inline constexpr std::string_view kAnnotationRefName = "org.opencontainers.image.ref.name";
inline constexpr std::string_view kAnnotationContainerdName = "io.containerd.image.name";

struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:..."
  int64_t size = 0;
  std::map<std::string, std::string> annotations;

  nlohmann::json ToJson() const;
  // Validates mediaType, digest and size; `what` names the document for errors.
  static Result<Descriptor> FromJson(const nlohmann::json& j, std::string_view what);
};

bool IsLayerMediaType(std::string_view media_type);

// What a container runs with: the "config" object of the image config.
struct ImageConfig {
  std::vector<std::string> env;         // "K=V"
  std::vector<std::string> entrypoint;  // empty: none
  std::vector<std::string> cmd;
  std::string working_dir;
  std::string user;
  std::vector<std::string> exposed_ports;  // "80/tcp"
  std::map<std::string, std::string> labels;
  std::string stop_signal;

  nlohmann::json ToJson() const;
  static Result<ImageConfig> FromJson(const nlohmann::json& j);
};

// A resolved image: its manifest, its config and the references that name it.
struct Image {
  Descriptor manifest;  // the manifest's descriptor (digest = the image's identity)
  std::string config_digest;
  std::vector<Descriptor> layers;     // lowest first, as in the manifest
  std::vector<std::string> diff_ids;  // digests of the uncompressed layers, lowest first
  ImageConfig config;
  std::string architecture;
  std::string os;
  std::string created;               // RFC 3339, may be empty
  std::vector<std::string> tags;     // "name:tag" references pointing at this manifest
  nlohmann::json config_document;    // the whole config blob
  nlohmann::json manifest_document;  // the whole manifest blob

  // Short ID as `barge images` shows it: the first 12 hex digits of the config digest.
  std::string ShortId() const;
  int64_t Size() const;  // config + compressed layers
};

// Parses a manifest and its config blob (both already digest-checked) into an Image.
// Errors name `what` (usually the manifest digest) and the bad field.
Result<Image> ParseImage(const Descriptor& manifest, std::string_view manifest_json,
                         std::string_view config_json);

// j[key] if `j` is an object holding a string there, else `fallback`: for reading documents
// from images and archives, whose fields may have any type.
std::string StringField(const nlohmann::json& j, const char* key, std::string_view fallback = "");

// Current UTC time in RFC 3339 ("2026-11-28T12:00:00Z").
std::string NowRfc3339();

}  // namespace barge::oci
