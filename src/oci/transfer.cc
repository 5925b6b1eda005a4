#include "oci/transfer.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <set>

#include "base/file_util.h"
#include "base/open_beneath.h"
#include "oci/digest.h"
#include "oci/platform.h"
#include "oci/reference.h"

namespace barge::oci {

using nlohmann::json;

namespace {

// The progress events of one import, save or load; nothing is built without a callback. A blob
// is reported finished (kDone or kPresent) once, however many images name it.
class Reporter {
 public:
  explicit Reporter(const TransferProgress& fn) : fn_(fn) {}

  bool on() const { return static_cast<bool>(fn_); }

  void Image(const std::string& what) {
    if (on()) fn_({TransferEvent::Kind::kImage, "", what});
  }
  // A blob starts; `digest` may be empty (then `what` names it) and `total` 0 (not known).
  void Start(const std::string& digest, const std::string& what, int64_t total, bool config) {
    if (!on() || finished_.count(digest) > 0) return;
    reported_ = 0;
    fn_({TransferEvent::Kind::kBlob, digest, what, 0, total, config});
  }
  // `done` bytes of the blob Start named: an event per kProgressStep bytes, and at its end.
  void Bytes(const std::string& digest, const std::string& what, int64_t done, int64_t total) {
    if (!on() || (done - reported_ < kProgressStep && (total == 0 || done < total))) return;
    if (finished_.count(digest) > 0) return;
    reported_ = done;
    fn_({TransferEvent::Kind::kBytes, digest, what, done, total});
  }
  void Done(const std::string& digest, const std::string& what, int64_t size, bool config) {
    if (!on() || (!digest.empty() && !finished_.insert(digest).second)) return;
    fn_({TransferEvent::Kind::kDone, digest, what, size, size, config});
  }
  // In the store before this load: kPresent, unless this load copied it (unreported, to read a
  // platform) - then it is done.
  void Present(const std::string& digest, int64_t size, bool config) {
    if (!on()) return;
    if (copied_.count(digest) > 0) return Done(digest, "", size, config);
    if (!finished_.insert(digest).second) return;
    fn_({TransferEvent::Kind::kPresent, digest, "", size, size, config});
  }
  void Copied(const std::string& digest) {
    if (on()) copied_.insert(digest);
  }

 private:
  const TransferProgress& fn_;
  int64_t reported_ = 0;            // bytes of the current blob at its last kBytes
  std::set<std::string> finished_;  // digests reported done or present
  std::set<std::string> copied_;    // blobs this load copied into the store
};

// The size of the input `fd` when it is a regular file; 0 (not known) for a pipe.
int64_t InputSize(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? static_cast<int64_t>(st.st_size) : 0;
}

}  // namespace

Result<Image> ImportRootfs(const ImageStore& store, int fd, const std::string& reference,
                           const ImportOptions& options) {
  if (!reference.empty()) RETURN_IF_ERROR(ParseReference(reference).status());
  ASSIGN_OR_RETURN(UniqueFd writers, store.LockBlobWriters());
  ASSIGN_OR_RETURN(BlobWriter blob, store.NewBlob());
  Reporter report(options.progress);
  report.Image(reference.empty() ? options.what : ParseReference(reference)->ToString());
  ExtractOptions limits;
  limits.max_bytes = options.max_bytes;
  limits.what = options.what;
  if (report.on()) {
    int64_t total = InputSize(fd);
    report.Start("", options.what, total, false);
    limits.read_progress = [&](uint64_t read) {
      report.Bytes("", options.what, static_cast<int64_t>(read), total);
    };
  }
  ASSIGN_OR_RETURN(TarDigests d, RecompressTar(fd, blob.AsSink(), limits));
  ASSIGN_OR_RETURN(Descriptor layer,
                   blob.Commit(std::string(kMediaTypeLayerGzip), d.compressed_digest));
  report.Done(layer.digest, options.what, layer.size, false);
  std::string now = NowRfc3339();
  json config = {
      {"created", now},
      {"architecture", HostArchitecture()},
      {"os", "linux"},
      {"config", json::object()},
      {"rootfs", {{"type", "layers"}, {"diff_ids", {d.diff_id}}}},
      {"history", {{{"created", now}, {"created_by", "barge import " + options.what}}}},
  };
  ASSIGN_OR_RETURN(Image image, store.WriteImage(config, {layer}));
  report.Done(image.config_digest, "", 0, true);
  if (reference.empty()) {
    RETURN_IF_ERROR(store.AddUntagged(image.manifest));
  } else {
    RETURN_IF_ERROR(store.Tag(image.manifest, reference));
    image.tags = {ParseReference(reference)->ToString()};
  }
  return image;
}

// ---------------------------------------------------------------- save

namespace {

struct WriteDeleter {
  void operator()(struct archive* a) const { archive_write_free(a); }
};

Status AddEntry(struct archive* a, const std::string& path, std::string_view data) {
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, path.c_str());
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
  int rc = archive_write_header(a, e);
  archive_entry_free(e);
  if (rc != ARCHIVE_OK) return IoError(fmt::format("write {}: {}", path, archive_error_string(a)));
  if (!data.empty() && archive_write_data(a, data.data(), data.size()) < 0)
    return IoError(fmt::format("write {}: {}", path, archive_error_string(a)));
  return Status::Ok();
}

Status AddDir(struct archive* a, const std::string& path) {
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, path.c_str());
  archive_entry_set_filetype(e, AE_IFDIR);
  archive_entry_set_perm(e, 0755);
  int rc = archive_write_header(a, e);
  archive_entry_free(e);
  if (rc != ARCHIVE_OK) return IoError(fmt::format("write {}: {}", path, archive_error_string(a)));
  return Status::Ok();
}

// Copies a blob into the archive, checking its digest on the way; reported unless `report` is null.
Status AddBlob(const ImageStore& store, struct archive* a, const std::string& digest,
               Reporter* report, bool config) {
  std::string path = store.BlobPath(digest);
  if (!PathExists(path))
    return NotFound(fmt::format("blob {} is missing from the repository", digest));
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("stat " + path);
  struct archive_entry* e = archive_entry_new();
  std::string name = "blobs/sha256/" + DigestHex(digest);
  archive_entry_set_pathname(e, name.c_str());
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, st.st_size);
  int rc = archive_write_header(a, e);
  archive_entry_free(e);
  if (rc != ARCHIVE_OK) return IoError(fmt::format("write {}: {}", name, archive_error_string(a)));
  if (report != nullptr) report->Start(digest, "", st.st_size, config);
  Sha256 hash;
  std::vector<char> buf(1 << 20);
  off_t left = st.st_size;
  while (left > 0) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read " + path);
    if (n == 0) return IoError("read " + path + ": blob shrank while being saved");
    n = std::min<ssize_t>(n, left);
    hash.Update(buf.data(), static_cast<size_t>(n));
    if (archive_write_data(a, buf.data(), static_cast<size_t>(n)) < 0)
      return IoError(fmt::format("write {}: {}", name, archive_error_string(a)));
    left -= n;
    if (report != nullptr) report->Bytes(digest, "", st.st_size - left, st.st_size);
  }
  if (std::string actual = hash.FinishDigest(); actual != digest)
    return Corruption(fmt::format("blob {} is corrupt: its content hashes to {}", digest, actual));
  if (report != nullptr) report->Done(digest, "", st.st_size, config);
  return Status::Ok();
}

}  // namespace

Status SaveArchive(const ImageStore& store, const std::vector<std::string>& references,
                   const std::string& path, const SaveOptions& options) {
  if (references.empty()) return InvalidArgument("save: name at least one image");
  std::vector<Image> images;
  std::vector<std::string> names;
  json index = {{"schemaVersion", 2}, {"mediaType", kMediaTypeIndex}, {"manifests", json::array()}};
  for (const std::string& r : references) {
    ASSIGN_OR_RETURN(Image image, store.Resolve(r));
    std::string name;
    Result<Reference> ref = ParseReference(r);
    for (const std::string& t : image.tags) {
      if (ref.ok() && t == ref->ToString()) name = t;
    }
    if (name.empty() && !image.tags.empty()) name = image.tags.front();
    Descriptor d = image.manifest;
    d.annotations.clear();
    if (!name.empty()) {
      d.annotations[std::string(kAnnotationRefName)] = name;
      d.annotations[std::string(kAnnotationContainerdName)] = name;
    }
    index["manifests"].push_back(d.ToJson());
    images.push_back(std::move(image));
    names.push_back(name);
  }

  UniqueFd out;
  std::string tmp;
  if (path == "-") {
    out.Reset(::dup(STDOUT_FILENO));
  } else {
    tmp = path + ".tmp-XXXXXX";
    int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
    if (fd < 0) return ErrnoError("create " + tmp);
    out.Reset(fd);
  }
  struct Cleanup {
    std::string& p;
    ~Cleanup() {
      if (!p.empty()) ::unlink(p.c_str());
    }
  } cleanup{tmp};

  std::unique_ptr<struct archive, WriteDeleter> a(archive_write_new());
  archive_write_set_format_pax_restricted(a.get());
  if (archive_write_open_fd(a.get(), out.get()) != ARCHIVE_OK)
    return IoError(fmt::format("write {}: {}", path, archive_error_string(a.get())));
  RETURN_IF_ERROR(AddEntry(a.get(), "oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  RETURN_IF_ERROR(AddEntry(a.get(), "index.json", index.dump()));
  RETURN_IF_ERROR(AddDir(a.get(), "blobs"));
  RETURN_IF_ERROR(AddDir(a.get(), "blobs/sha256"));
  Reporter report(options.progress);
  std::set<std::string> done;
  for (size_t i = 0; i < images.size(); ++i) {
    const Image& image = images[i];
    report.Image(names[i].empty() ? image.manifest.digest : names[i]);
    if (done.insert(image.manifest.digest).second)
      RETURN_IF_ERROR(AddBlob(store, a.get(), image.manifest.digest, nullptr, false));
    if (done.insert(image.config_digest).second)
      RETURN_IF_ERROR(AddBlob(store, a.get(), image.config_digest, &report, true));
    for (const Descriptor& l : image.layers) {
      if (done.insert(l.digest).second)
        RETURN_IF_ERROR(AddBlob(store, a.get(), l.digest, &report, false));
    }
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK)
    return IoError(fmt::format("write {}: {}", path, archive_error_string(a.get())));
  if (!tmp.empty()) {
    if (::fsync(out.get()) != 0) return ErrnoError("fsync " + tmp);
    if (::fchmod(out.get(), 0644) != 0) return ErrnoError("chmod " + tmp);
    if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError("rename to " + path);
    tmp.clear();
  }
  return Status::Ok();
}

// ---------------------------------------------------------------- load

namespace {

// The archive being loaded, and where its progress goes.
class ArchiveDir {
 public:
  ArchiveDir(int fd, std::string name, Reporter& report)
      : fd_(fd), name_(std::move(name)), report_(report) {}

  bool Exists(const std::string& rel) const {
    int fd = OpenBeneathRaw(fd_.get(), rel, O_PATH);
    if (fd < 0) return false;
    ::close(fd);
    return true;
  }

  // A regular file beneath the archive root (symlinks resolve inside it). Opened with
  // O_NONBLOCK so a FIFO planted in the archive cannot block the open (with the GC lock held);
  // it is then refused as not a regular file.
  Result<UniqueFd> Open(const std::string& rel) const {
    int fd = OpenBeneathRaw(fd_.get(), rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return ErrnoError(fmt::format("{}: open {}", name_, rel));
    UniqueFd file(fd);
    struct stat st {};
    if (::fstat(file.get(), &st) != 0 || !S_ISREG(st.st_mode))
      return InvalidArgument(fmt::format("{}: {} is not a regular file", name_, rel));
    int flags = ::fcntl(file.get(), F_GETFL);
    if (flags < 0 || ::fcntl(file.get(), F_SETFL, flags & ~O_NONBLOCK) != 0)
      return ErrnoError(fmt::format("{}: fcntl {}", name_, rel));
    return file;
  }

  Result<std::string> Read(const std::string& rel,
                           size_t max = ImageStore::kMaxJsonBlobBytes) const {
    ASSIGN_OR_RETURN(UniqueFd fd, Open(rel));
    std::string out;
    char buf[1 << 16];
    for (;;) {
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError(fmt::format("{}: read {}", name_, rel));
      if (n == 0) break;
      out.append(buf, static_cast<size_t>(n));
      if (out.size() > max) return InvalidArgument(fmt::format("{}: {} is too large", name_, rel));
    }
    return out;
  }

  const std::string& name() const { return name_; }
  Reporter& report() const { return report_; }

 private:
  UniqueFd fd_;
  std::string name_;
  Reporter& report_;
};

// What progress shows of a blob: an image's config and layers, not its manifest or index.
enum class Shown { kNo, kConfig, kLayer };

// Copies blob `d`, the file `rel` of the archive, into the store, checking digest and size.
Status CopyBlob(const ImageStore& store, const ArchiveDir& dir, const Descriptor& d,
                const std::string& rel, Shown shown = Shown::kNo) {
  Reporter* report = shown == Shown::kNo ? nullptr : &dir.report();
  bool config = shown == Shown::kConfig;
  // A JSON blob already stored is read again (and so checked); a layer's digest was checked
  // when it was stored.
  if (store.HasBlob(d.digest) && (IsLayerMediaType(d.media_type) || store.ReadBlob(d).ok())) {
    if (report != nullptr) report->Present(d.digest, d.size, config);
    return Status::Ok();
  }
  if (!IsLayerMediaType(d.media_type) &&
      static_cast<uint64_t>(d.size) > ImageStore::kMaxJsonBlobBytes) {
    return InvalidArgument(
        fmt::format("{}: {} {} has {} bytes, more than the {} an image's JSON may have", dir.name(),
                    d.media_type, d.digest, d.size, ImageStore::kMaxJsonBlobBytes));
  }
  Result<UniqueFd> fd = dir.Open(rel);
  if (!fd.ok()) {
    if (fd.status().code() == StatusCode::kInvalidArgument) return fd.status();  // not a file
    return NotFound(fmt::format("{}: blob {} is missing from the archive", dir.name(), d.digest));
  }
  ASSIGN_OR_RETURN(BlobWriter w, store.NewBlob());
  if (report != nullptr) report->Start(d.digest, "", d.size, config);
  char buf[1 << 16];
  int64_t size = 0;
  for (;;) {
    ssize_t n = ::read(fd->get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(fmt::format("{}: read {}", dir.name(), rel));
    if (n == 0) break;
    size += n;
    if (size > d.size) break;  // longer than its descriptor says: refused below, read no further
    RETURN_IF_ERROR(w.Write(std::string_view(buf, static_cast<size_t>(n))));
    if (report != nullptr) report->Bytes(d.digest, "", size, d.size);
  }
  if (size > d.size) {
    return Corruption(fmt::format("{}: blob {} is longer than the {} bytes its descriptor says",
                                  dir.name(), d.digest, d.size));
  }
  if (size != d.size) {
    return Corruption(fmt::format("{}: blob {} has {} bytes but its descriptor says {}", dir.name(),
                                  d.digest, size, d.size));
  }
  Result<Descriptor> done = w.Commit(d.media_type, d.digest);
  if (!done.ok()) return done.status().Wrap(dir.name());
  dir.report().Copied(d.digest);
  if (report != nullptr) report->Done(d.digest, "", d.size, config);
  return Status::Ok();
}

// Where an OCI layout keeps a blob.
std::string LayoutBlob(const Descriptor& d) { return "blobs/sha256/" + DigestHex(d.digest); }

Result<json> ParseJson(const std::string& text, const std::string& what) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return Corruption(what + ": not valid JSON");
  return j;
}

// The manifest to take from an image index blob of an OCI layout: the one for `want`.
Result<Descriptor> PickPlatform(const ImageStore& store, const ArchiveDir& dir,
                                const Descriptor& index_desc, const Platform& want) {
  RETURN_IF_ERROR(CopyBlob(store, dir, index_desc, LayoutBlob(index_desc)));
  ASSIGN_OR_RETURN(std::string text, store.ReadBlob(index_desc));
  ASSIGN_OR_RETURN(json index, ParseJson(text, "image index " + index_desc.digest));
  return PickFromIndex(index, "image index " + index_desc.digest, want);
}

// Stores a manifest's config and layers (files named by `blob_path`), then the image.
Result<Image> LoadManifest(const ImageStore& store, const ArchiveDir& dir,
                           const Descriptor& manifest,
                           const std::function<std::string(const Descriptor&)>& blob_path) {
  ASSIGN_OR_RETURN(std::string mtext, store.ReadBlob(manifest));
  ASSIGN_OR_RETURN(json m, ParseJson(mtext, "manifest " + manifest.digest));
  if (!m.is_object() || !m.contains("config") || !m.contains("layers") || !m["layers"].is_array())
    return Corruption("manifest " + manifest.digest + ": no config or layers");
  ASSIGN_OR_RETURN(Descriptor config, Descriptor::FromJson(m["config"], "manifest config"));
  RETURN_IF_ERROR(CopyBlob(store, dir, config, blob_path(config), Shown::kConfig));
  for (const json& l : m["layers"]) {
    ASSIGN_OR_RETURN(Descriptor layer, Descriptor::FromJson(l, "manifest " + manifest.digest));
    RETURN_IF_ERROR(CopyBlob(store, dir, layer, blob_path(layer), Shown::kLayer));
  }
  return store.LoadImage(manifest);
}

// The platform a manifest's config names (for manifests whose index entry names none).
Result<json> ConfigPlatform(const ImageStore& store, const ArchiveDir& dir,
                            const Descriptor& manifest) {
  RETURN_IF_ERROR(CopyBlob(store, dir, manifest, LayoutBlob(manifest)));
  ASSIGN_OR_RETURN(std::string mtext, store.ReadBlob(manifest));
  ASSIGN_OR_RETURN(json m, ParseJson(mtext, "manifest " + manifest.digest));
  if (!m.is_object() || !m.contains("config"))
    return Corruption("manifest " + manifest.digest + ": no config");
  ASSIGN_OR_RETURN(Descriptor config, Descriptor::FromJson(m["config"], "manifest config"));
  RETURN_IF_ERROR(CopyBlob(store, dir, config, LayoutBlob(config)));
  ASSIGN_OR_RETURN(std::string ctext, store.ReadBlob(config));
  return ParseJson(ctext, "image config " + config.digest);
}

// The repository a bare tag in an OCI layout goes with: the archive's or directory's base name
// without its extension, if that makes a valid name ("" otherwise, and for stdin).
std::string RepositoryFromPath(const std::string& path) {
  if (path == "-") return "";
  std::string base = path;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  base = base.substr(base.rfind('/') == std::string::npos ? 0 : base.rfind('/') + 1);
  for (const char* ext : {".tar.gz", ".tgz", ".tar", ".oci"}) {
    std::string e = ext;
    if (base.size() > e.size() && base.compare(base.size() - e.size(), e.size(), e) == 0) {
      base.resize(base.size() - e.size());
      break;
    }
  }
  for (char& c : base) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ParseReference(base + ":latest").ok() ? base : "";
}

// The name an OCI layout's index entry gives its image ("" for none).
std::string NameOf(const Descriptor& d, const std::string& repository) {
  auto ann = d.annotations;
  if (auto it = ann.find(std::string(kAnnotationContainerdName)); it != ann.end())
    return it->second;
  auto rn = ann.find(std::string(kAnnotationRefName));
  if (rn == ann.end()) return "";
  if (rn->second.find_first_of(":/") != std::string::npos) return rn->second;
  // A bare tag: a tag of the repository the archive is named after.
  return repository.empty() ? "" : repository + ":" + rn->second;
}

Result<std::vector<std::pair<Image, std::string>>> LoadOciLayout(const ImageStore& store,
                                                                 const ArchiveDir& dir,
                                                                 const Platform& want,
                                                                 const std::string& repository) {
  ASSIGN_OR_RETURN(std::string text, dir.Read("index.json"));
  ASSIGN_OR_RETURN(json index, ParseJson(text, dir.name() + ": index.json"));
  if (!index.is_object() || !index.contains("manifests") || !index["manifests"].is_array())
    return Corruption(dir.name() + ": index.json has no manifests array");
  if (index.contains("mediaType") && index["mediaType"] != kMediaTypeIndex)
    return Corruption(
        fmt::format("{}: index.json has mediaType {}", dir.name(), index["mediaType"].dump()));
  // Each entry: an image (a manifest, or the right one of a nested index) and its name, grouped
  // by name in the order of first appearance.
  struct Entry {
    Descriptor manifest;
    json platform;  // null: to be read from the config if it matters
  };
  std::vector<std::pair<std::string, std::vector<Entry>>> groups;
  for (const json& entry : index["manifests"]) {
    ASSIGN_OR_RETURN(Descriptor d, Descriptor::FromJson(entry, dir.name() + ": index.json"));
    if (IsAttestation(d, entry)) continue;
    Entry e{d, json()};
    if (IsIndexMediaType(d.media_type)) {
      ASSIGN_OR_RETURN(e.manifest, PickPlatform(store, dir, d, want));
      e.platform = {{"os", want.os}, {"architecture", want.architecture}};
    } else if (!IsManifestMediaType(d.media_type)) {
      return Unsupported(fmt::format("{}: index.json entry {} has mediaType '{}'", dir.name(),
                                     d.digest, d.media_type));
    } else if (entry.contains("platform") && entry["platform"].is_object()) {
      e.platform = entry["platform"];
    }
    std::string name = NameOf(d, repository);
    if (!name.empty()) RETURN_IF_ERROR(ParseReference(name).status().Wrap(dir.name()));
    auto g = std::find_if(groups.begin(), groups.end(),
                          [&](const auto& group) { return group.first == name; });
    if (g == groups.end()) {
      groups.push_back({name, {}});
      g = groups.end() - 1;
    }
    g->second.push_back(std::move(e));
  }
  std::vector<std::pair<Image, std::string>> out;
  for (auto& [name, entries] : groups) {
    std::vector<size_t> chosen;  // indexes into `entries`
    if (entries.size() == 1) {
      chosen.push_back(0);  // one image is loaded whatever its platform, as docker does
    } else {
      for (size_t i = 0; i < entries.size(); ++i) {
        Entry& e = entries[i];
        if (e.platform.is_null()) {
          ASSIGN_OR_RETURN(e.platform, ConfigPlatform(store, dir, e.manifest));
        }
        // Under one name, one image: the first for the platform. Unnamed ones all load.
        if (want.Matches(e.platform) && (name.empty() || chosen.empty())) chosen.push_back(i);
      }
      if (chosen.empty()) {
        return NotFound(
            fmt::format("{}: of the {} manifests {} none is for {}", dir.name(), entries.size(),
                        name.empty() ? "without a name" : "named '" + name + "'", want.ToString()));
      }
    }
    for (size_t i : chosen) {
      const Descriptor& manifest = entries[i].manifest;
      dir.report().Image(name.empty() ? manifest.digest : ParseReference(name)->ToString());
      RETURN_IF_ERROR(CopyBlob(store, dir, manifest, LayoutBlob(manifest)));
      ASSIGN_OR_RETURN(Image image, LoadManifest(store, dir, manifest, LayoutBlob));
      out.emplace_back(std::move(image), name);
    }
  }
  return out;
}

// A directory `skopeo copy ... dir:D` wrote: manifest.json (a manifest, or an index whose
// manifests are "<hex>.manifest.json"), blobs named by their hex digest, a "version" file.
Result<std::vector<std::pair<Image, std::string>>> LoadSkopeoDir(const ImageStore& store,
                                                                 const ArchiveDir& dir,
                                                                 const json& manifest,
                                                                 const std::string& text,
                                                                 const Platform& want) {
  auto media_of = [](const json& m) {
    std::string media = StringField(m, "mediaType");
    if (!media.empty()) return media;
    return std::string(m.contains("manifests") ? kMediaTypeIndex : kMediaTypeManifest);
  };
  std::string media = media_of(manifest);
  std::string mtext = text;
  if (IsIndexMediaType(media)) {
    ASSIGN_OR_RETURN(Descriptor d, PickFromIndex(manifest, dir.name() + ": manifest.json", want));
    ASSIGN_OR_RETURN(mtext, dir.Read(DigestHex(d.digest) + ".manifest.json"));
    ASSIGN_OR_RETURN(json instance, ParseJson(mtext, dir.name() + ": manifest " + d.digest));
    media = media_of(instance);
  }
  if (!IsManifestMediaType(media))
    return Unsupported(fmt::format("{}: manifest.json has mediaType '{}'", dir.name(), media));
  ASSIGN_OR_RETURN(Descriptor m, store.PutBlob(media, mtext));
  dir.report().Image(m.digest);
  auto blob_path = [&](const Descriptor& d) {
    // Directory transport 1.1 names blobs by hex digest; 1.0 gave layers a ".tar" suffix.
    std::string hex = DigestHex(d.digest);
    return dir.Exists(hex) || !dir.Exists(hex + ".tar") ? hex : hex + ".tar";
  };
  ASSIGN_OR_RETURN(Image image, LoadManifest(store, dir, m, blob_path));
  return std::vector<std::pair<Image, std::string>>{{std::move(image), ""}};
}

Result<std::vector<std::pair<Image, std::string>>> LoadDockerArchive(const ImageStore& store,
                                                                     const ArchiveDir& dir,
                                                                     const json& manifests) {
  if (!manifests.is_array()) return Corruption(dir.name() + ": manifest.json is not an array");
  std::vector<std::pair<Image, std::string>> out;
  for (const json& m : manifests) {
    if (!m.is_object() || !m.contains("Config") || !m["Config"].is_string() ||
        !m.contains("Layers") || !m["Layers"].is_array()) {
      return Corruption(dir.name() + ": manifest.json entry without Config or Layers");
    }
    std::string config_path = m["Config"].get<std::string>();
    ASSIGN_OR_RETURN(std::string config_text, dir.Read(config_path));
    ASSIGN_OR_RETURN(json config, ParseJson(config_text, dir.name() + ": " + config_path));
    if (!config.is_object() || !config.contains("rootfs") ||
        !config["rootfs"].contains("diff_ids") || !config["rootfs"]["diff_ids"].is_array())
      return Corruption(dir.name() + ": " + config_path + " has no rootfs.diff_ids");
    const json& diff_ids = config["rootfs"]["diff_ids"];
    if (diff_ids.size() != m["Layers"].size()) {
      return Corruption(fmt::format("{}: {} lists {} layers but its config {} diff_ids", dir.name(),
                                    "manifest.json", m["Layers"].size(), diff_ids.size()));
    }
    std::vector<std::string> tags;
    if (m.contains("RepoTags") && m["RepoTags"].is_array()) {
      for (const json& t : m["RepoTags"]) {
        if (!t.is_string()) continue;
        // barge has no default registry: "docker.io/library/x:1" is "x:1" here.
        std::string tag = t.get<std::string>();
        constexpr std::string_view kDockerHub = "docker.io/library/";
        if (tag.rfind(kDockerHub, 0) == 0) tag = tag.substr(kDockerHub.size());
        tags.push_back(tag);
      }
    }
    if (tags.empty()) tags.push_back("");
    Reporter& report = dir.report();
    report.Image(tags.front().empty() ? DigestOf(config_text) : tags.front());
    std::vector<Descriptor> layers;
    for (size_t i = 0; i < diff_ids.size(); ++i) {
      if (!m["Layers"][i].is_string()) return Corruption(dir.name() + ": bad Layers entry");
      std::string rel = m["Layers"][i].get<std::string>();
      ASSIGN_OR_RETURN(UniqueFd fd, dir.Open(rel));
      ASSIGN_OR_RETURN(BlobWriter w, store.NewBlob());
      ExtractOptions limits;
      limits.what = dir.name() + ": " + rel;
      // Shown by its diff_id (the digest of the tar in the archive), as podman shows it.
      std::string diff_id = diff_ids[i].is_string() ? diff_ids[i].get<std::string>() : "";
      int64_t total = report.on() ? InputSize(fd.get()) : 0;
      if (report.on()) {
        report.Start(diff_id, rel, total, false);
        limits.read_progress = [&](uint64_t read) {
          report.Bytes(diff_id, rel, static_cast<int64_t>(read), total);
        };
      }
      ASSIGN_OR_RETURN(TarDigests d, RecompressTar(fd.get(), w.AsSink(), limits));
      if (diff_id.empty() || d.diff_id != diff_id) {
        return Corruption(fmt::format("{}: layer {} hashes to {} but the config lists {}",
                                      dir.name(), rel, d.diff_id, diff_ids[i].dump()));
      }
      ASSIGN_OR_RETURN(Descriptor layer,
                       w.Commit(std::string(kMediaTypeLayerGzip), d.compressed_digest));
      report.Done(diff_id, rel, total, false);
      layers.push_back(layer);
    }
    ASSIGN_OR_RETURN(Descriptor config_desc, store.PutBlob(kMediaTypeConfig, config_text));
    report.Done(config_desc.digest, "", config_desc.size, true);
    ASSIGN_OR_RETURN(Image image, store.WriteManifest(config_desc, layers));
    for (const std::string& t : tags) {
      if (!t.empty()) RETURN_IF_ERROR(ParseReference(t).status().Wrap(dir.name()));
      out.emplace_back(image, t);
    }
  }
  return out;
}

Result<std::vector<LoadedImage>> LoadArchiveUnchecked(const ImageStore& store,
                                                      const std::string& path,
                                                      const LoadOptions& options) {
  ASSIGN_OR_RETURN(Platform want, ParsePlatform(options.platform));
  ASSIGN_OR_RETURN(UniqueFd writers, store.LockBlobWriters());
  std::string name = path == "-" ? "stdin" : path;
  Reporter report(options.progress);
  TempDir tmp;
  std::string dir_path;
  struct stat st {};
  if (path != "-" && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    dir_path = path;  // an OCI layout directory
  } else {
    UniqueFd in;
    if (path == "-") {
      in.Reset(::dup(STDIN_FILENO));
    } else {
      ASSIGN_OR_RETURN(in, OpenFileOrPipe(path));  // never /dev/zero: it would never end
    }
    ASSIGN_OR_RETURN(tmp, TempDir::MakeIn(store.tmp_dir(), "load-"));
    ExtractOptions extract;
    extract.whiteouts = WhiteoutMode::kPlain;
    extract.set_owner = false;
    extract.what = name;
    // The archive is read whole before its blobs are: a row of its own, named by it.
    if (report.on()) {
      int64_t total = InputSize(in.get());
      report.Start("", name, total, false);
      extract.read_progress = [&](uint64_t read) {
        report.Bytes("", name, static_cast<int64_t>(read), total);
      };
    }
    ASSIGN_OR_RETURN(TarDigests read, ExtractTar(in.get(), tmp.path(), extract));
    report.Done("", name, static_cast<int64_t>(read.compressed_size), false);
    dir_path = tmp.path();
  }
  int fd = ::open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open " + dir_path);
  ArchiveDir dir(fd, name, report);
  std::vector<std::pair<Image, std::string>> images;
  if (dir.Exists("index.json")) {
    ASSIGN_OR_RETURN(images, LoadOciLayout(store, dir, want, RepositoryFromPath(path)));
  } else if (dir.Exists("manifest.json")) {
    // docker save writes an array of images; skopeo's dir: layout one manifest (an object).
    ASSIGN_OR_RETURN(std::string text, dir.Read("manifest.json"));
    ASSIGN_OR_RETURN(json manifest, ParseJson(text, name + ": manifest.json"));
    if (manifest.is_object()) {
      ASSIGN_OR_RETURN(images, LoadSkopeoDir(store, dir, manifest, text, want));
    } else {
      ASSIGN_OR_RETURN(images, LoadDockerArchive(store, dir, manifest));
    }
  } else {
    return InvalidArgument(fmt::format(
        "{}: not an image archive: no index.json (OCI layout) nor manifest.json (docker save "
        "archive, skopeo dir: layout)",
        name));
  }
  if (images.empty()) return InvalidArgument(name + ": the archive holds no images");
  // Everything is stored and checked; only now do tags change.
  std::vector<LoadedImage> loaded;
  for (auto& [image, reference] : images) {
    if (reference.empty()) {
      RETURN_IF_ERROR(store.AddUntagged(image.manifest));
    } else {
      RETURN_IF_ERROR(store.Tag(image.manifest, reference));
      reference = ParseReference(reference)->ToString();
    }
    loaded.push_back({image.manifest.digest, reference});
  }
  return loaded;
}

}  // namespace

Result<std::vector<LoadedImage>> LoadArchive(const ImageStore& store, const std::string& path,
                                             const LoadOptions& options) {
  try {
    return LoadArchiveUnchecked(store, path, options);
  } catch (const nlohmann::json::exception& e) {  // a document field of an unexpected type
    return Corruption(
        fmt::format("{}: unexpected JSON: {}", path == "-" ? "stdin" : path, e.what()));
  }
}

}  // namespace barge::oci
