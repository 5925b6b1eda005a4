#include "oci/image_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <map>
#include <set>

#include "base/file_util.h"
#include "oci/digest.h"
#include "oci/reference.h"

namespace barge::oci {

using nlohmann::json;

// ---------------------------------------------------------------- BlobWriter

BlobWriter::BlobWriter(std::string dir, std::string tmp_path, UniqueFd fd)
    : dir_(std::move(dir)),
      tmp_path_(std::move(tmp_path)),
      fd_(std::move(fd)),
      hash_(std::make_unique<Sha256>()) {}

BlobWriter::BlobWriter(BlobWriter&& o) noexcept
    : dir_(std::move(o.dir_)),
      tmp_path_(std::exchange(o.tmp_path_, std::string())),
      fd_(std::move(o.fd_)),
      hash_(std::move(o.hash_)),
      digest_(std::move(o.digest_)),
      size_(o.size_),
      started_(o.started_) {}

BlobWriter::~BlobWriter() {
  if (!tmp_path_.empty()) ::unlink(tmp_path_.c_str());
}

Status BlobWriter::Write(std::string_view bytes) {
  hash_->Update(bytes);
  size_ += static_cast<int64_t>(bytes.size());
  RETURN_IF_ERROR(WriteAll(fd_.get(), bytes, tmp_path_));
  // Write-behind: start writing back what has accumulated while more arrives, so the fsync in
  // Commit waits for the tail only (a 20 MB layer's fsync: ~90 ms -> a few ms).
  constexpr int64_t kWriteBehind = 4 << 20;
  if (size_ - started_ >= kWriteBehind) {
    ::sync_file_range(fd_.get(), started_, size_ - started_, SYNC_FILE_RANGE_WRITE);
    started_ = size_;
  }
  return Status::Ok();
}

const std::string& BlobWriter::Digest() {
  if (digest_.empty()) digest_ = hash_->FinishDigest();
  return digest_;
}

Result<Descriptor> BlobWriter::Commit(std::string media_type, std::string_view expected_digest) {
  std::string digest = Digest();
  if (!expected_digest.empty() && digest != expected_digest) {
    return Corruption(fmt::format("blob {} does not match its digest: its content hashes to {}",
                                  expected_digest, digest));
  }
  if (::fsync(fd_.get()) != 0) return ErrnoError("fsync " + tmp_path_);
  if (::fchmod(fd_.get(), 0444) != 0) return ErrnoError("chmod " + tmp_path_);
  fd_.Reset();
  std::string final_path = dir_ + "/" + DigestHex(digest);
  if (::rename(tmp_path_.c_str(), final_path.c_str()) != 0)
    return ErrnoError("rename to " + final_path);
  tmp_path_.clear();
  // Make the rename durable before anything (index.json) refers to the blob.
  if (int d = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
    ::fsync(d);
    ::close(d);
  }
  return Descriptor{std::move(media_type), digest, size_, {}};
}

// ---------------------------------------------------------------- ImageStore

namespace {

constexpr std::string_view kIndexLock = ".lock";
constexpr std::string_view kWritersLock = ".gc.lock";

json EmptyIndex() {
  return json{{"schemaVersion", 2}, {"mediaType", kMediaTypeIndex}, {"manifests", json::array()}};
}

std::string RefName(const json& entry) {
  auto a = entry.find("annotations");
  if (a == entry.end() || !a->is_object()) return "";
  auto r = a->find(std::string(kAnnotationRefName));
  return r != a->end() && r->is_string() ? r->get<std::string>() : "";
}

// The mount tables of every mount namespace on the machine (each read once), to find the
// layer dirs that overlay mounts use as lower dirs, wherever the runtime mounted them.
std::string MountTables() {
  std::string all;
  std::set<std::string> seen;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return all;
  while (struct dirent* e = ::readdir(proc)) {
    std::string pid = e->d_name;
    if (pid.empty() || !std::all_of(pid.begin(), pid.end(), ::isdigit)) continue;
    char ns[64] = {};
    if (::readlink(("/proc/" + pid + "/ns/mnt").c_str(), ns, sizeof ns - 1) <= 0) continue;
    if (!seen.insert(ns).second) continue;
    Result<std::string> table = ReadFile("/proc/" + pid + "/mountinfo");
    if (table.ok()) all += *table;
  }
  ::closedir(proc);
  return all;
}

// `dir` as a directory only its owner can enter: created 0700, or narrowed to that if a
// store made by an older barge left it wider.
Status MakePrivateDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) return Status::Ok();
  if (errno != EEXIST) return ErrnoError("mkdir " + dir);
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return ErrnoError("stat " + dir);
  if (!S_ISDIR(st.st_mode))
    return InvalidArgument("mkdir " + dir + ": exists and is not a directory");
  if ((st.st_mode & 077) != 0 && ::chmod(dir.c_str(), 0700) != 0) return ErrnoError("chmod " + dir);
  return Status::Ok();
}

bool IsHex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

}  // namespace

Result<ImageStore> ImageStore::Open(const std::string& root) {
  if (root.empty()) return InvalidArgument("the state root is empty (set --root or BARGE_ROOT)");
  ImageStore store(root);
  // Layer trees keep the image's modes: world-writable dirs and setuid binaries that other
  // local users must not reach (moby CVE-2021-41091). So the root only lets others through
  // (0711, for what the runtime may put beside these) and everything below is private.
  RETURN_IF_ERROR(MakeDirs(root, 0711));
  for (const std::string& dir : {store.images_dir(), store.layers_dir(), store.tmp_dir()})
    RETURN_IF_ERROR(MakePrivateDir(dir));
  RETURN_IF_ERROR(MakeDirs(store.images_dir() + "/blobs/sha256", 0700));
  std::string layout = store.images_dir() + "/oci-layout";
  std::string index = store.images_dir() + "/index.json";
  if (!PathExists(layout) || !PathExists(index)) {
    ASSIGN_OR_RETURN(UniqueFd lock, store.LockFile(std::string(kIndexLock), LOCK_EX));
    if (!PathExists(layout))
      RETURN_IF_ERROR(WriteFileAtomic(layout, R"({"imageLayoutVersion":"1.0.0"})"));
    if (!PathExists(index)) RETURN_IF_ERROR(WriteFileAtomic(index, EmptyIndex().dump()));
  }
  return store;
}

std::string ImageStore::BlobPath(std::string_view digest) const {
  return images_dir() + "/blobs/sha256/" + DigestHex(digest);
}

Result<UniqueFd> ImageStore::LockFile(const std::string& name, int operation) const {
  std::string path = images_dir() + "/" + name;
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDWR | O_CREAT, 0644));
  while (::flock(fd.get(), operation) != 0) {
    if (errno == EINTR) continue;
    return ErrnoError("flock " + path);
  }
  return fd;
}

Result<UniqueFd> ImageStore::LockBlobWriters() const {
  return LockFile(std::string(kWritersLock), LOCK_SH);
}

Result<BlobWriter> ImageStore::NewBlob() const {
  std::string dir = images_dir() + "/blobs/sha256";
  std::string tmp = dir + "/.tmp-XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoError("create temporary blob in " + dir);
  return BlobWriter(dir, tmp, UniqueFd(fd));
}

Result<Descriptor> ImageStore::PutBlob(std::string_view media_type, std::string_view data) const {
  std::string digest = DigestOf(data);
  if (HasBlob(digest)) {
    // Already stored: reuse it, but only if it is intact.
    Result<std::string> existing = ReadBlob(digest);
    if (existing.ok()) return Descriptor{std::string(media_type), digest, (int64_t)data.size(), {}};
  }
  ASSIGN_OR_RETURN(BlobWriter w, NewBlob());
  RETURN_IF_ERROR(w.Write(data));
  return w.Commit(std::string(media_type), digest);
}

bool ImageStore::HasBlob(std::string_view digest) const {
  return ValidateDigest(digest).ok() && PathExists(BlobPath(digest));
}

Result<std::string> ImageStore::ReadBlob(std::string_view digest) const {
  RETURN_IF_ERROR(ValidateDigest(digest));
  std::string path = BlobPath(digest);
  if (!PathExists(path))
    return NotFound(fmt::format("blob {} is missing from the repository", digest));
  ASSIGN_OR_RETURN(std::string data, ReadRegularFileLimited(path, kMaxJsonBlobBytes));
  std::string actual = DigestOf(data);
  if (actual != digest) {
    return Corruption(fmt::format("blob {} is corrupt: its content hashes to {}", digest, actual));
  }
  return data;
}

Result<std::string> ImageStore::ReadBlob(const Descriptor& d) const {
  ASSIGN_OR_RETURN(std::string data, ReadBlob(d.digest));
  if (static_cast<int64_t>(data.size()) != d.size) {
    return Corruption(fmt::format("blob {} has {} bytes but its descriptor says {}", d.digest,
                                  data.size(), d.size));
  }
  return data;
}

Result<json> ImageStore::ReadIndex() const {
  std::string path = images_dir() + "/index.json";
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  json index = json::parse(text, nullptr, false);
  if (index.is_discarded() || !index.is_object()) return Corruption(path + ": not valid JSON");
  if (!index.contains("manifests") || !index["manifests"].is_array())
    return Corruption(path + ": no manifests array");
  return index;
}

Status ImageStore::WriteIndex(const json& index) const {
  return WriteFileAtomic(images_dir() + "/index.json", index.dump(2) + "\n");
}

Result<Image> ImageStore::LoadImage(const Descriptor& manifest) const {
  if (manifest.media_type != kMediaTypeManifest && manifest.media_type != kMediaTypeDockerManifest)
    return Unsupported(fmt::format("{} has mediaType '{}', not an image manifest", manifest.digest,
                                   manifest.media_type));
  ASSIGN_OR_RETURN(std::string mtext, ReadBlob(manifest));
  json m = json::parse(mtext, nullptr, false);
  if (m.is_discarded() || !m.is_object() || !m.contains("config"))
    return Corruption(fmt::format("manifest {}: not valid JSON or no config", manifest.digest));
  ASSIGN_OR_RETURN(Descriptor config,
                   Descriptor::FromJson(m["config"], "manifest " + manifest.digest + " config"));
  ASSIGN_OR_RETURN(std::string ctext, ReadBlob(config));
  return ParseImage(manifest, mtext, ctext);
}

Result<ImageList> ImageStore::List() const {
  ASSIGN_OR_RETURN(json index, ReadIndex());
  ImageList list;
  std::map<std::string, size_t> by_digest;
  for (const json& entry : index["manifests"]) {
    Result<Descriptor> d = Descriptor::FromJson(entry, "index.json");
    if (!d.ok()) {
      list.broken.push_back(d.status());
      continue;
    }
    auto it = by_digest.find(d->digest);
    if (it == by_digest.end()) {
      Result<Image> image = LoadImage(*d);
      if (!image.ok()) {
        list.broken.push_back(image.status());
        continue;
      }
      it = by_digest.emplace(d->digest, list.images.size()).first;
      list.images.push_back(std::move(*image));
    }
    if (std::string ref = RefName(entry); !ref.empty()) list.images[it->second].tags.push_back(ref);
  }
  std::stable_sort(list.images.begin(), list.images.end(),
                   [](const Image& a, const Image& b) { return a.created > b.created; });
  return list;
}

Result<Image> ImageStore::Resolve(std::string_view text) const {
  ASSIGN_OR_RETURN(json index, ReadIndex());
  Result<Reference> ref = ParseReference(text);
  std::string want = ref.ok() ? ref->ToString() : "";
  // By name.
  std::vector<Descriptor> matches;
  for (const json& entry : index["manifests"]) {
    std::string name = RefName(entry);
    bool hit = ref.ok() && (ref->digest.empty() ? !name.empty() && name == want
                                                : entry.value("digest", "") == ref->digest);
    if (hit) {
      ASSIGN_OR_RETURN(Descriptor d, Descriptor::FromJson(entry, "index.json"));
      matches = {d};
      break;
    }
  }
  // By digest or ID prefix.
  std::string_view hex = text;
  if (hex.substr(0, kSha256Prefix.size()) == kSha256Prefix) hex.remove_prefix(kSha256Prefix.size());
  if (matches.empty() && IsHex(hex) && hex.size() >= 4) {
    std::set<std::string> seen;
    for (const json& entry : index["manifests"]) {
      Result<Descriptor> d = Descriptor::FromJson(entry, "index.json");
      if (!d.ok() || !seen.insert(d->digest).second) continue;
      bool hit = DigestHex(d->digest).rfind(hex, 0) == 0;
      if (!hit) {
        Result<Image> image = LoadImage(*d);
        hit = image.ok() && DigestHex(image->config_digest).rfind(hex, 0) == 0;
      }
      if (hit) matches.push_back(*d);
    }
    if (matches.size() > 1) {
      return InvalidArgument(fmt::format("image ID prefix '{}' is ambiguous: it matches {} images",
                                         text, matches.size()));
    }
  }
  if (matches.empty()) {
    if (!ref.ok() && !(IsHex(hex) && hex.size() >= 4)) return ref.status();
    return NotFound(fmt::format("image '{}' not found", text));
  }
  ASSIGN_OR_RETURN(Image image, LoadImage(matches[0]));
  for (const json& entry : index["manifests"]) {
    if (entry.value("digest", "") == image.manifest.digest) {
      if (std::string n = RefName(entry); !n.empty()) image.tags.push_back(n);
    }
  }
  return image;
}

Result<Image> ImageStore::WriteImage(const json& config,
                                     const std::vector<Descriptor>& layers) const {
  ASSIGN_OR_RETURN(Descriptor config_desc, PutBlob(kMediaTypeConfig, config.dump()));
  return WriteManifest(config_desc, layers);
}

Result<Image> ImageStore::WriteManifest(const Descriptor& config_desc,
                                        const std::vector<Descriptor>& layers) const {
  ASSIGN_OR_RETURN(std::string config_text, ReadBlob(config_desc));
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", kMediaTypeManifest},
                   {"config", config_desc.ToJson()},
                   {"layers", json::array()}};
  for (const Descriptor& l : layers) manifest["layers"].push_back(l.ToJson());
  std::string manifest_text = manifest.dump();
  ASSIGN_OR_RETURN(Descriptor manifest_desc, PutBlob(kMediaTypeManifest, manifest_text));
  return ParseImage(manifest_desc, manifest_text, config_text);
}

Status ImageStore::Tag(const Descriptor& manifest, std::string_view reference) const {
  ASSIGN_OR_RETURN(Reference ref, ParseReference(reference));
  if (!ref.digest.empty())
    return InvalidArgument(fmt::format("cannot tag with a digest reference '{}'", reference));
  if (!HasBlob(manifest.digest))
    return NotFound(fmt::format("manifest {} is not in the repository", manifest.digest));
  std::string name = ref.ToString();
  ASSIGN_OR_RETURN(UniqueFd lock, LockFile(std::string(kIndexLock), LOCK_EX));
  ASSIGN_OR_RETURN(json index, ReadIndex());
  json out = json::array();
  bool displaced_has_other = false;
  std::string displaced;
  for (const json& entry : index["manifests"]) {
    std::string digest = entry.value("digest", "");
    if (RefName(entry) == name) {
      if (digest == manifest.digest) return Status::Ok();  // already so
      displaced = digest;
      continue;
    }
    // An untagged entry of the image being tagged is replaced by the tagged one.
    if (digest == manifest.digest && RefName(entry).empty()) continue;
    out.push_back(entry);
  }
  for (const json& entry : out) displaced_has_other |= entry.value("digest", "") == displaced;
  Descriptor d = manifest;
  if (d.media_type.empty()) d.media_type = std::string(kMediaTypeManifest);
  d.annotations = {{std::string(kAnnotationRefName), name}};
  out.push_back(d.ToJson());
  if (!displaced.empty() && !displaced_has_other) {
    // The old image keeps existing, untagged, until `image prune`.
    json entry = index["manifests"][0];
    for (const json& e : index["manifests"]) {
      if (e.value("digest", "") == displaced) entry = e;
    }
    entry.erase("annotations");
    out.push_back(entry);
  }
  index["manifests"] = out;
  return WriteIndex(index);
}

Status ImageStore::AddUntagged(const Descriptor& manifest) const {
  ASSIGN_OR_RETURN(UniqueFd lock, LockFile(std::string(kIndexLock), LOCK_EX));
  ASSIGN_OR_RETURN(json index, ReadIndex());
  for (const json& entry : index["manifests"]) {
    if (entry.value("digest", "") == manifest.digest) return Status::Ok();
  }
  Descriptor d = manifest;
  d.annotations.clear();
  index["manifests"].push_back(d.ToJson());
  return WriteIndex(index);
}

Result<std::string> ImageStore::ManifestDigestOf(const json& index,
                                                 std::string_view reference) const {
  // By name or manifest digest straight from the index: no manifest is read, so an image
  // whose blobs are broken can still be removed.
  Result<Reference> ref = ParseReference(reference);
  std::string_view hex = reference;
  if (hex.substr(0, kSha256Prefix.size()) == kSha256Prefix) hex.remove_prefix(kSha256Prefix.size());
  bool by_hex = IsHex(hex) && hex.size() >= 4;
  std::set<std::string> hex_matches;
  for (const json& entry : index["manifests"]) {
    std::string digest = StringField(entry, "digest");
    if (ref.ok() && ref->digest.empty() && RefName(entry) == ref->ToString()) return digest;
    if (ref.ok() && !ref->digest.empty() && digest == ref->digest) return digest;
    if (by_hex && ValidateDigest(digest).ok() && DigestHex(digest).rfind(hex, 0) == 0)
      hex_matches.insert(digest);
  }
  if (hex_matches.size() == 1) return *hex_matches.begin();
  // An image ID (config digest) prefix: that needs the manifests.
  ASSIGN_OR_RETURN(Image image, Resolve(reference));
  return image.manifest.digest;
}

Result<RemoveResult> ImageStore::Remove(std::string_view reference, bool force) const {
  std::string digest;
  {
    ASSIGN_OR_RETURN(json index, ReadIndex());
    ASSIGN_OR_RETURN(digest, ManifestDigestOf(index, reference));
  }
  RemoveResult result;
  ASSIGN_OR_RETURN(UniqueFd lock, LockFile(std::string(kIndexLock), LOCK_EX));
  ASSIGN_OR_RETURN(json index, ReadIndex());
  std::vector<std::string> tags;
  for (const json& entry : index["manifests"]) {
    if (StringField(entry, "digest") != digest) continue;
    if (std::string n = RefName(entry); !n.empty()) tags.push_back(n);
  }
  Result<Reference> ref = ParseReference(reference);
  std::string by_name;
  if (ref.ok() && ref->digest.empty() &&
      std::find(tags.begin(), tags.end(), ref->ToString()) != tags.end()) {
    by_name = ref->ToString();
  }
  if (by_name.empty() && tags.size() > 1 && !force) {
    std::string names;
    for (const std::string& t : tags) names += (names.empty() ? "" : ", ") + t;
    return InvalidArgument(
        fmt::format("image '{}' is referenced by {} tags ({}): remove them by name, or use --force",
                    reference, tags.size(), names));
  }
  json out = json::array();
  bool still_referenced = false;
  for (const json& entry : index["manifests"]) {
    std::string name = RefName(entry);
    bool same = StringField(entry, "digest") == digest;
    if (same && (by_name.empty() || name == by_name)) {
      if (!name.empty()) result.untagged.push_back(name);
      continue;
    }
    still_referenced |= same;
    out.push_back(entry);
  }
  index["manifests"] = out;
  RETURN_IF_ERROR(WriteIndex(index));
  if (!still_referenced) {
    result.deleted.push_back(digest);
    // Free the image's blobs now unless a build or load is writing (then prune does it). The
    // removal itself is done: a failure here leaves garbage for `image prune`, not an error.
    std::string path = images_dir() + "/" + std::string(kWritersLock);
    Result<UniqueFd> writers = OpenFile(path, O_RDWR | O_CREAT, 0644);
    if (!writers.ok()) {
      result.warnings.push_back(writers.status().message());
    } else if (::flock(writers->get(), LOCK_EX | LOCK_NB) == 0) {
      PruneResult gc;
      Status st = CollectGarbage(index, gc);
      result.warnings = std::move(gc.warnings);
      if (!st.ok()) result.warnings.push_back("freeing space: " + st.message());
    }
  }
  return result;
}

void ImageStore::KeepNamedBlobs(const std::string& manifest_digest,
                                std::set<std::string>& blobs) const {
  Result<std::string> text = ReadRegularFileLimited(BlobPath(manifest_digest), kMaxJsonBlobBytes);
  if (!text.ok()) return;
  json m = json::parse(*text, nullptr, false);
  if (!m.is_object()) return;
  auto keep = [&](const json& d) {
    std::string digest = StringField(d, "digest");
    if (ValidateDigest(digest).ok()) blobs.insert(DigestHex(digest));
  };
  if (m.contains("config")) keep(m["config"]);
  if (m.contains("layers") && m["layers"].is_array()) {
    for (const json& l : m["layers"]) keep(l);
  }
}

Status ImageStore::CollectGarbage(const json& index, PruneResult& result) const {
  std::set<std::string> blobs;
  std::set<std::string> diff_ids;
  for (const json& entry : index["manifests"]) {
    Result<Descriptor> d = Descriptor::FromJson(entry, "index.json");
    if (!d.ok()) continue;
    blobs.insert(DigestHex(d->digest));
    Result<Image> image = LoadImage(*d);
    if (!image.ok()) {
      // Keep whatever the broken manifest still names, as far as it can be read; one broken
      // image must not stop the others from being collected.
      KeepNamedBlobs(d->digest, blobs);
      result.warnings.push_back(
          fmt::format("{} (its blobs are kept; remove it with rmi)", image.status().message()));
      continue;
    }
    blobs.insert(DigestHex(image->config_digest));
    for (const Descriptor& l : image->layers) blobs.insert(DigestHex(l.digest));
    for (const std::string& id : image->diff_ids) diff_ids.insert(DigestHex(id));
  }
  std::string mounts = MountTables();
  char real[PATH_MAX];
  std::string layers_real = ::realpath(layers_dir().c_str(), real) != nullptr ? real : layers_dir();
  auto sweep = [&](const std::string& dir, const std::set<std::string>& keep, bool dirs) -> Status {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return ErrnoError("opendir " + dir);
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != ".." && !keep.count(n)) names.push_back(n);
    }
    ::closedir(d);
    for (const std::string& n : names) {
      std::string path = dir + "/" + n;
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0) continue;
      if (dirs) {
        // A layer some overlay still uses (a running container) stays until a later prune.
        if (mounts.find(layers_real + "/" + n) != std::string::npos) continue;
        RETURN_IF_ERROR(RemoveTree(path));
        ++result.layer_dirs;
      } else {
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError("unlink " + path);
        ++result.blobs;
        result.bytes += static_cast<uint64_t>(st.st_size);
      }
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(sweep(images_dir() + "/blobs/sha256", blobs, false));
  RETURN_IF_ERROR(sweep(layers_dir(), diff_ids, true));
  return Status::Ok();
}

Result<PruneResult> ImageStore::Prune() const {
  ASSIGN_OR_RETURN(UniqueFd writers, LockFile(std::string(kWritersLock), LOCK_EX));
  ASSIGN_OR_RETURN(UniqueFd lock, LockFile(std::string(kIndexLock), LOCK_EX));
  ASSIGN_OR_RETURN(json index, ReadIndex());
  PruneResult result;
  json out = json::array();
  for (const json& entry : index["manifests"]) {
    if (RefName(entry).empty()) {
      result.deleted_images.push_back(entry.value("digest", ""));
    } else {
      out.push_back(entry);
    }
  }
  if (!result.deleted_images.empty()) {
    index["manifests"] = out;
    RETURN_IF_ERROR(WriteIndex(index));
  }
  if (Status st = CollectGarbage(index, result); !st.ok()) {
    if (result.deleted_images.empty()) return st;
    result.warnings.push_back("freeing space: " + st.message());  // the untagging stands
  }
  // Scratch left by killed processes: tmp/, and temporary files of index.json (written under
  // the index lock) and of build-cache records (written under the writers lock). We hold both
  // locks exclusively, so none of these is in use.
  auto sweep_tmp = [](const std::string& dir, bool only_tmp_files) -> Status {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return Status::Ok();
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      if (!only_tmp_files || n.find(".tmp-") != std::string::npos) names.push_back(n);
    }
    ::closedir(d);
    for (const std::string& n : names) RETURN_IF_ERROR(RemoveTree(dir + "/" + n));
    return Status::Ok();
  };
  RETURN_IF_ERROR(sweep_tmp(tmp_dir(), false));
  RETURN_IF_ERROR(sweep_tmp(images_dir(), true));
  RETURN_IF_ERROR(sweep_tmp(root_ + "/build-cache", true));
  return result;
}

// ---------------------------------------------------------------- layer cache

std::string ImageStore::LayerDirPath(std::string_view diff_id) const {
  return layers_dir() + "/" + DigestHex(diff_id);
}

Result<std::string> ImageStore::LayerDir(const Descriptor& layer, std::string_view diff_id) const {
  RETURN_IF_ERROR(ValidateDigest(diff_id));
  std::string final_path = LayerDirPath(diff_id);
  if (PathExists(final_path)) return final_path;
  std::string blob = BlobPath(layer.digest);
  if (!PathExists(blob))
    return NotFound(fmt::format("layer blob {} is missing from the repository", layer.digest));
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(blob, O_RDONLY));
  // Prune sweeps <root>/layers under the exclusive lock; our temporary dir lives there.
  ASSIGN_OR_RETURN(UniqueFd writers, LockBlobWriters());
  std::string what = "layer " + layer.digest;
  ASSIGN_OR_RETURN(auto unpacked, UnpackLayer(FdSource(fd.get(), what), what));
  auto& [tmp, got] = unpacked;
  if (got.compressed_digest != layer.digest) {
    return Corruption(fmt::format("blob {} is corrupt: its content hashes to {}", layer.digest,
                                  got.compressed_digest));
  }
  if (got.diff_id != diff_id) {
    return Corruption(fmt::format("layer {}: uncompressed content hashes to {}, not diff_id {}",
                                  layer.digest, got.diff_id, diff_id));
  }
  RETURN_IF_ERROR(AdoptLayerDir(tmp.path(), diff_id));
  tmp.Release();
  return final_path;
}

Result<std::pair<TempDir, TarDigests>> ImageStore::UnpackLayer(const ByteSource& source,
                                                               const std::string& what,
                                                               bool hash_compressed) const {
  ASSIGN_OR_RETURN(TempDir tmp, TempDir::MakeIn(layers_dir()));
  ExtractOptions options;
  options.whiteouts = WhiteoutMode::kOverlay;
  options.set_owner = ::geteuid() == 0;
  options.what = what;
  options.hash_compressed = hash_compressed;
  ASSIGN_OR_RETURN(TarDigests got, ExtractTar(source, tmp.path(), options));
  return std::make_pair(std::move(tmp), std::move(got));
}

Status ImageStore::AdoptLayerDir(const std::string& dir, std::string_view diff_id) const {
  std::string final_path = LayerDirPath(diff_id);
  // 0700 like its parent: see Open.
  if (::chmod(dir.c_str(), 0700) != 0) return ErrnoError("chmod " + dir);
  if (::rename(dir.c_str(), final_path.c_str()) != 0) {
    // Another process unpacked the same layer first: theirs is as good as ours.
    if (errno == EEXIST || errno == ENOTEMPTY) return RemoveTree(dir);
    return ErrnoError("rename " + dir + " to " + final_path);
  }
  return Status::Ok();
}

Result<std::vector<std::string>> ImageStore::LayerDirs(const Image& image) const {
  std::vector<std::string> dirs;
  for (size_t i = 0; i < image.layers.size(); ++i) {
    ASSIGN_OR_RETURN(std::string dir, LayerDir(image.layers[i], image.diff_ids[i]));
    dirs.push_back(std::move(dir));
  }
  return dirs;
}

}  // namespace barge::oci
