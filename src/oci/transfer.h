// Moving images in and out of the repository: `barge import` (a root file system tarball
// becomes a one-layer image), `barge save` (OCI archive) and `barge load` (OCI archives and
// layouts, and Docker archives as written by `docker save` / `podman save`).
#pragma once

#include <string>
#include <vector>

#include "barge/status.h"
#include "oci/image_store.h"
#include "oci/platform.h"

namespace barge::oci {

struct ImportOptions {
  std::string what = "rootfs";  // names the input in errors
  uint64_t max_bytes = 64ULL << 30;
};

// Reads a (possibly compressed) tar of a root file system from `fd` and stores it as an
// image with one tar+gzip layer, tagged `reference` (may be empty: untagged).
Result<Image> ImportRootfs(const ImageStore& store, int fd, const std::string& reference,
                           const ImportOptions& options = {});

// Writes the images as an OCI archive (a tar of an OCI image layout) to `path`, through a
// temporary file renamed into place; "-" writes to stdout. Every blob's digest is checked as
// it is copied. Each image is named in index.json by org.opencontainers.image.ref.name
// ("name:tag") and io.containerd.image.name.
Status SaveArchive(const ImageStore& store, const std::vector<std::string>& references,
                   const std::string& path);

struct LoadedImage {
  std::string manifest_digest;
  std::string reference;  // empty when the archive names none
};

struct LoadOptions {
  // "os/arch[/variant]": the image to take from an image index, or from several manifests one
  // name tags in a flat index. Empty: this machine's, linux/<arch>.
  std::string platform;
};

// Loads the images of an OCI archive or OCI layout directory, a Docker archive (`docker save`,
// `podman save`), or a directory skopeo wrote (`skopeo copy ... dir:D`), read from `path`
// ("-": stdin). Blobs are checked against their digests; the images are tagged only after all
// of them were stored and validated, so a bad archive changes no tag.
//
// Names in OCI layouts: io.containerd.image.name, else org.opencontainers.image.ref.name when it
// is a whole reference; a bare tag there ("latest", as skopeo's oci:DIR:latest and umoci write)
// is put after the archive's or directory's base name ("alpine.tar" -> "alpine:latest"). Of
// several manifests under one name the one for the platform is taken; attestation manifests
// (BuildKit's provenance and SBOMs) are never images.
Result<std::vector<LoadedImage>> LoadArchive(const ImageStore& store, const std::string& path,
                                             const LoadOptions& options = {});

}  // namespace barge::oci
