// Moving images in and out of the repository: `barge import` (a root file system tarball
// becomes a one-layer image), `barge save` (OCI archive) and `barge load` (OCI archives and
// layouts, and Docker archives as written by `docker save` / `podman save`).
#pragma once

#include <string>
#include <vector>

#include "barge/status.h"
#include "oci/image_store.h"
#include "oci/platform.h"
#include "oci/progress.h"

namespace barge::oci {

struct ImportOptions {
  std::string what = "rootfs";  // names the input in errors and progress
  uint64_t max_bytes = 64ULL << 30;
  // kImage; the layer as it is read (no digest yet: named by `what`; `total` is the input's size
  // when it is a file), its kDone with the digest; the config's kDone.
  TransferProgress progress;
};

// Reads a (possibly compressed) tar of a root file system from `fd` and stores it as an
// image with one tar+gzip layer, tagged `reference` (may be empty: untagged).
Result<Image> ImportRootfs(const ImageStore& store, int fd, const std::string& reference,
                           const ImportOptions& options = {});

struct SaveOptions {
  // Per image kImage, then its config and layers (kBlob, kBytes, kDone); a blob an earlier image
  // already put in the archive is not reported again.
  TransferProgress progress;
};

// Writes the images as an OCI archive (a tar of an OCI image layout) to `path`, through a
// temporary file renamed into place; "-" writes to stdout. Every blob's digest is checked as
// it is copied. Each image is named in index.json by org.opencontainers.image.ref.name
// ("name:tag") and io.containerd.image.name.
Status SaveArchive(const ImageStore& store, const std::vector<std::string>& references,
                   const std::string& path, const SaveOptions& options = {});

struct LoadedImage {
  std::string manifest_digest;
  std::string reference;  // empty when the archive names none
};

struct LoadOptions {
  // "os/arch[/variant]": the image to take from an image index, or from several manifests one
  // name tags in a flat index. Empty: this machine's, linux/<arch>.
  std::string platform;
  // A tar archive's read into a scratch directory first (no digest: named by the archive, "stdin"
  // from stdin); then per image kImage and its config and layers: kPresent for what the store
  // held before, kBlob, kBytes, kDone for what is copied (a Docker archive's layers by their
  // diff_id, as podman names them).
  TransferProgress progress;
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
