// The local image repository: an OCI image layout under <root>/images (oci-layout,
// index.json, blobs/sha256/<hex>) and a cache of unpacked layers under <root>/layers/<hex of
// diff_id>/ that containers share as read-only overlayfs lower directories.
//
// Every blob is written to a temporary file, checked against its digest and renamed into
// place; every read checks the digest again. index.json is replaced atomically under
// flock(<root>/images/.lock), so a tag never points at a manifest that is not fully written.
// Processes that write blobs not yet reachable from a tag (build, load, import) hold
// <root>/images/.gc.lock shared; `image prune` takes it exclusively before deleting blobs.
//
// Thread-compatibility: an ImageStore may be used from one thread at a time; any number of
// processes may use the same root at once.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "barge/status.h"
#include "base/file_util.h"
#include "base/unique_fd.h"
#include "oci/archive.h"
#include "oci/image.h"

namespace barge::oci {

class ImageStore;

// A blob being written. Write() any number of times, then Commit(); a writer destroyed
// without a successful Commit() removes its temporary file.
class BlobWriter {
 public:
  BlobWriter(BlobWriter&&) noexcept;
  BlobWriter& operator=(BlobWriter&&) = delete;
  ~BlobWriter();

  Status Write(std::string_view bytes);
  ByteSink AsSink() {
    return [this](std::string_view b) { return Write(b); };
  }
  // The digest of everything written; no Write() may follow.
  const std::string& Digest();
  // fsyncs the data, checks it against `expected_digest` (when given) and renames it into the
  // store. The error for a mismatch names both digests.
  Result<Descriptor> Commit(std::string media_type, std::string_view expected_digest = {});

 private:
  friend class ImageStore;
  BlobWriter(std::string dir, std::string tmp_path, UniqueFd fd);

  std::string dir_;
  std::string tmp_path_;
  UniqueFd fd_;
  std::unique_ptr<class Sha256> hash_;
  std::string digest_;  // set by Digest()
  int64_t size_ = 0;
  int64_t started_ = 0;  // bytes whose writeback has been started
};

struct ImageList {
  std::vector<Image> images;   // newest first
  std::vector<Status> broken;  // index entries whose manifest or config cannot be read
};

struct RemoveResult {
  std::vector<std::string> untagged;  // references removed
  std::vector<std::string> deleted;   // manifest digests no longer in the repository
  // Done, but not everything: e.g. freeing blobs failed after the index was written.
  std::vector<std::string> warnings;
};

struct PruneResult {
  std::vector<std::string> deleted_images;  // manifest digests of untagged images removed
  uint64_t blobs = 0;
  uint64_t bytes = 0;
  uint64_t layer_dirs = 0;
  // Unreadable images whose blobs were kept as far as they could be named, and a failed
  // collection after untagged images were already removed from the index.
  std::vector<std::string> warnings;
};

class ImageStore {
 public:
  // Opens (creating if needed) the repository under `root`.
  static Result<ImageStore> Open(const std::string& root);

  const std::string& root() const { return root_; }
  std::string images_dir() const { return root_ + "/images"; }
  std::string layers_dir() const { return root_ + "/layers"; }
  // Scratch space on the same file system as the layer cache (renames stay atomic).
  std::string tmp_dir() const { return root_ + "/tmp"; }
  std::string BlobPath(std::string_view digest) const;

  // ---- blobs
  Result<BlobWriter> NewBlob() const;
  Result<Descriptor> PutBlob(std::string_view media_type, std::string_view data) const;
  bool HasBlob(std::string_view digest) const;
  // Reads a blob and checks its digest (and size, for a descriptor). Only the JSON documents of
  // images (indexes, manifests, configs) are read whole, and none may exceed kMaxJsonBlobBytes:
  // an archive's descriptor must not make barge read gigabytes into memory.
  static constexpr size_t kMaxJsonBlobBytes = 16 << 20;
  Result<std::string> ReadBlob(std::string_view digest) const;
  Result<std::string> ReadBlob(const Descriptor& descriptor) const;

  // ---- images
  // Finds an image by NAME[:TAG], NAME@DIGEST, a manifest or config digest, or a unique
  // prefix (at least 4 hex digits) of the image ID (config digest) or manifest digest.
  Result<Image> Resolve(std::string_view reference) const;
  Result<ImageList> List() const;
  // Reads and checks a manifest and its config.
  Result<Image> LoadImage(const Descriptor& manifest) const;
  // Writes the config and manifest blobs of a new image; does not tag it.
  Result<Image> WriteImage(const nlohmann::json& config,
                           const std::vector<Descriptor>& layers) const;
  // Writes a manifest for a config blob already in the store (kept byte for byte, so a
  // Docker image ID is preserved) and layers.
  Result<Image> WriteManifest(const Descriptor& config,
                              const std::vector<Descriptor>& layers) const;
  // Points `reference` (NAME[:TAG]) at the manifest, which must be in the store. A manifest
  // that loses its last tag stays as an untagged image until `Prune`.
  Status Tag(const Descriptor& manifest, std::string_view reference) const;
  // Records an image that has no name (loaded from an archive without one).
  Status AddUntagged(const Descriptor& manifest) const;
  // `barge rmi`: removes a tag; an image referenced by no tag any more is deleted and its
  // blobs no other image uses are freed. An ID that several tags share needs `force`.
  Result<RemoveResult> Remove(std::string_view reference, bool force) const;
  // Deletes untagged images, every blob no tagged image reaches, and unused layer dirs. A layer
  // dir that an overlay mount in any mount namespace uses (a running container) is kept.
  Result<PruneResult> Prune() const;

  // ---- unpacked layers
  // The cache directories of the image's layers, lowest first, unpacking (and checking the
  // digest and diff_id of) any that is not cached yet.
  Result<std::vector<std::string>> LayerDirs(const Image& image) const;
  Result<std::string> LayerDir(const Descriptor& layer, std::string_view diff_id) const;
  std::string LayerDirPath(std::string_view diff_id) const;
  // Unpacks the compressed layer stream `source` yields into a new temporary directory below
  // layers/ (overlay whiteouts; owners kept when running as root). The caller checks the
  // digests, then AdoptLayerDir()s the directory and releases it; otherwise the TempDir
  // removes it. The caller holds LockBlobWriters().
  // `hash_compressed`: see ExtractOptions.
  Result<std::pair<TempDir, TarDigests>> UnpackLayer(const ByteSource& source,
                                                     const std::string& what,
                                                     bool hash_compressed = true) const;
  // Moves an already unpacked tree (overlay whiteout form) into the cache as `diff_id`'s dir.
  // Used by the builder, whose new layers exist as directories before they are tarred.
  Status AdoptLayerDir(const std::string& dir, std::string_view diff_id) const;

  // Held (shared) by a process while it writes blobs that no tag reaches yet.
  Result<UniqueFd> LockBlobWriters() const;

 private:
  explicit ImageStore(std::string root) : root_(std::move(root)) {}
  Result<nlohmann::json> ReadIndex() const;
  Status WriteIndex(const nlohmann::json& index) const;
  Result<UniqueFd> LockFile(const std::string& name, int operation) const;
  // Deletes blobs (and, with `layer_dirs`, cache dirs) no index entry reaches. Caller holds
  // the index lock and the blob-writers lock exclusively.
  // An index entry whose image cannot be loaded is skipped with a warning in `result`; the
  // blobs its manifest still names (as far as it parses) are kept.
  Status CollectGarbage(const nlohmann::json& index, PruneResult& result) const;
  // Adds to `blobs` (hex) the config and layer digests a manifest names, read without checks.
  void KeepNamedBlobs(const std::string& manifest_digest, std::set<std::string>& blobs) const;
  // The manifest digest `reference` names: by tag or manifest digest (prefix) from the index
  // alone, else by image ID through the manifests.
  Result<std::string> ManifestDigestOf(const nlohmann::json& index,
                                       std::string_view reference) const;

  std::string root_;
};

}  // namespace barge::oci
