#include "oci/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "base/file_util.h"
#include "base/open_beneath.h"
#include "base/unique_fd.h"
#include "oci/detail/path.h"
#include "oci/digest.h"
#include "oci/progress.h"

namespace barge::oci {
namespace {

constexpr size_t kBlock = 256 << 10;
constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueWhiteout = ".wh..wh..opq";
constexpr const char* kOpaqueXattr = "trusted.overlay.opaque";

struct ArchiveReadDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
struct ArchiveWriteDeleter {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
struct EntryDeleter {
  void operator()(struct archive_entry* e) const { archive_entry_free(e); }
};
using ReadArchive = std::unique_ptr<struct archive, ArchiveReadDeleter>;
using WriteArchive = std::unique_ptr<struct archive, ArchiveWriteDeleter>;
using Entry = std::unique_ptr<struct archive_entry, EntryDeleter>;

std::string ArchiveError(struct archive* a) {
  const char* msg = archive_error_string(a);
  return msg != nullptr ? msg : "unknown libarchive error";
}

// Only compressors libarchive implements in-process: "program" filters (lzop, lrzip, ...)
// would run external programs on untrusted input.
void SupportFilters(struct archive* a) {
  archive_read_support_filter_gzip(a);
  archive_read_support_filter_zstd(a);
  archive_read_support_filter_xz(a);
  archive_read_support_filter_lzma(a);
  archive_read_support_filter_bzip2(a);
}

// A tar stream read in two stages so that the uncompressed bytes pass through our hands: the
// outer archive decompresses ("raw" format), the inner one parses tar from what the outer
// yields. Both digests and the byte budget are kept on the way.
class TarReader {
 public:
  static Result<std::unique_ptr<TarReader>> Open(ByteSource source, const ExtractOptions& options,
                                                 const ByteSink* tee) {
    auto r = std::unique_ptr<TarReader>(new TarReader(std::move(source), options, tee));
    r->outer_.reset(archive_read_new());
    r->inner_.reset(archive_read_new());
    if (!r->outer_ || !r->inner_) return Internal("libarchive: out of memory");
    SupportFilters(r->outer_.get());
    archive_read_support_format_raw(r->outer_.get());
    if (archive_read_open(r->outer_.get(), r.get(), nullptr, &TarReader::ReadSource, nullptr) !=
        ARCHIVE_OK) {
      return r->Fail("open");
    }
    struct archive_entry* e = nullptr;
    int rc = archive_read_next_header(r->outer_.get(), &e);
    if (rc == ARCHIVE_EOF)
      return InvalidArgument(options.what + ": empty input, not a tar archive");
    if (rc != ARCHIVE_OK) return r->Fail("read");
    archive_read_support_format_tar(r->inner_.get());
    if (archive_read_open(r->inner_.get(), r.get(), nullptr, &TarReader::ReadInner, nullptr) !=
        ARCHIVE_OK) {
      return r->Fail("open tar");
    }
    return r;
  }

  struct archive* tar() {
    return inner_.get();
  }
  const ExtractOptions& options() const { return options_; }

  // An error for the current failure: our own (budget, I/O) if any, else libarchive's.
  Status Fail(std::string_view doing) {
    if (!own_error_.ok()) return own_error_;
    std::string msg = ArchiveError(outer_failed_ ? outer_.get() : inner_.get());
    return InvalidArgument(fmt::format("{}: {} failed: {}", options_.what, doing, msg));
  }

  // Reads whatever follows the tar end marker so both digests cover the whole stream.
  Result<TarDigests> Finish() {
    char buf[1 << 16];
    for (;;) {
      la_ssize_t n = archive_read_data(outer_.get(), buf, sizeof buf);
      if (n < 0) {
        outer_failed_ = true;
        return Fail("read");
      }
      if (n == 0) break;
      if (Status st = Consume(buf, static_cast<size_t>(n)); !st.ok()) return st;
    }
    for (;;) {
      ASSIGN_OR_RETURN(std::string_view block, source_());
      if (block.empty()) break;
      if (options_.hash_compressed) compressed_.Update(block);
      digests_.compressed_size += block.size();
      ReportRead(false);
    }
    ReportRead(true);
    if (options_.hash_compressed) digests_.compressed_digest = compressed_.FinishDigest();
    digests_.diff_id = uncompressed_.FinishDigest();
    return digests_;
  }

  TarDigests& digests() { return digests_; }

 private:
  TarReader(ByteSource source, const ExtractOptions& options, const ByteSink* tee)
      : source_(std::move(source)), options_(options), tee_(tee) {}

  static la_ssize_t ReadSource(struct archive* a, void* self_ptr, const void** out) {
    auto* self = static_cast<TarReader*>(self_ptr);
    Result<std::string_view> block = self->source_();
    if (!block.ok()) {
      self->own_error_ = block.status();
      archive_set_error(a, EIO, "read failed");
      return -1;
    }
    if (self->options_.hash_compressed) self->compressed_.Update(*block);
    self->digests_.compressed_size += block->size();
    self->ReportRead(false);
    *out = block->data();
    return static_cast<la_ssize_t>(block->size());
  }

  static la_ssize_t ReadInner(struct archive* a, void* self_ptr, const void** out) {
    auto* self = static_cast<TarReader*>(self_ptr);
    la_ssize_t n = archive_read_data(self->outer_.get(), self->inner_buf_, sizeof self->inner_buf_);
    if (n < 0) {
      self->outer_failed_ = true;
      archive_set_error(a, EIO, "%s", ArchiveError(self->outer_.get()).c_str());
      return -1;
    }
    if (Status st = self->Consume(self->inner_buf_, static_cast<size_t>(n)); !st.ok()) {
      self->own_error_ = st;
      archive_set_error(a, EFBIG, "%s", st.message().c_str());
      return -1;
    }
    *out = self->inner_buf_;
    return n;
  }

  // read_progress, every kProgressStep bytes of input, and at the end (`last`).
  void ReportRead(bool last) {
    if (!options_.read_progress) return;
    uint64_t read = digests_.compressed_size;
    bool due =
        read - reported_ >= static_cast<uint64_t>(kProgressStep) || (last && read > reported_);
    if (!due) return;
    reported_ = read;
    options_.read_progress(read);
  }

  Status Consume(const void* data, size_t n) {
    digests_.uncompressed_size += n;
    if (digests_.uncompressed_size > options_.max_bytes) {
      return InvalidArgument(fmt::format("{}: uncompressed size exceeds the limit of {} bytes",
                                         options_.what, options_.max_bytes));
    }
    uncompressed_.Update(data, n);
    if (tee_ != nullptr) return (*tee_)(std::string_view(static_cast<const char*>(data), n));
    return Status::Ok();
  }

  ByteSource source_;
  ExtractOptions options_;
  const ByteSink* tee_;
  uint64_t reported_ = 0;  // bytes read at the last read_progress call
  char inner_buf_[1 << 16];
  ReadArchive outer_;
  ReadArchive inner_;
  Sha256 compressed_;
  Sha256 uncompressed_;
  TarDigests digests_;
  Status own_error_;
  bool outer_failed_ = false;
};

// Splits an entry path into components. '.' and empty components are dropped, and so is a
// leading '/': layers written by umoci insert or ko name entries "/" and "/etc/x", which umoci
// and containers-storage unpack relative to the root, as this does ("/" is the root itself).
// '..' is an error, wherever it is.
Result<std::vector<std::string>> SplitEntryPath(std::string_view path, const std::string& what) {
  std::vector<std::string> comps;
  bool ok = detail::ForEachComponent(path, [&](std::string_view c) {
    comps.emplace_back(c);
    return c != "..";
  });
  if (!ok) return InvalidArgument(fmt::format("{}: entry '{}' contains '..'", what, path));
  return comps;
}

using detail::JoinPath;

int OpenAt2(int dirfd, const std::string& path, int flags) {
  return OpenBeneathRaw(dirfd, path, flags);
}

std::string ProcPath(int dirfd, std::string_view name) {
  return fmt::format("/proc/self/fd/{}/{}", dirfd, name);
}

// The tree being extracted into. Every path is resolved beneath root_fd_.
class Extractor {
 public:
  Extractor(UniqueFd root_fd, const ExtractOptions& options)
      : root_fd_(std::move(root_fd)), options_(options) {}

  // Opens the directory made of the first `n` components, creating missing ones (0755).
  Result<UniqueFd> OpenDir(const std::vector<std::string>& comps, size_t n, bool create,
                           std::string_view entry) {
    if (n == 0) {
      int fd = ::fcntl(root_fd_.get(), F_DUPFD_CLOEXEC, 0);
      if (fd < 0) return ErrnoError("dup");
      return UniqueFd(fd);
    }
    int fd = OpenAt2(root_fd_.get(), JoinPath(comps, n), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) return UniqueFd(fd);
    if (errno != ENOENT || !create) {
      return ErrnoError(fmt::format("{}: entry '{}': open parent '{}'", options_.what, entry,
                                    JoinPath(comps, n)));
    }
    // Walk down, creating what is missing. Each mkdirat names one plain component inside a
    // directory that was itself resolved beneath the root.
    UniqueFd cur;
    ASSIGN_OR_RETURN(cur, OpenDir(comps, 0, false, entry));
    for (size_t i = 1; i <= n; ++i) {
      int next = OpenAt2(root_fd_.get(), JoinPath(comps, i), O_RDONLY | O_DIRECTORY);
      if (next < 0 && errno == ENOENT) {
        if (::mkdirat(cur.get(), comps[i - 1].c_str(), 0755) != 0 && errno != EEXIST) {
          return ErrnoError(
              fmt::format("{}: entry '{}': mkdir '{}'", options_.what, entry, JoinPath(comps, i)));
        }
        next = OpenAt2(root_fd_.get(), JoinPath(comps, i), O_RDONLY | O_DIRECTORY);
      }
      if (next < 0) {
        return ErrnoError(fmt::format("{}: entry '{}': open parent '{}'", options_.what, entry,
                                      JoinPath(comps, i)));
      }
      cur.Reset(next);
    }
    return cur;
  }

  // Gives the directories their archive modes, deepest first so that no parent is closed
  // before its children are done. Directories replaced or removed by later entries are skipped.
  Status FinishDirs() {
    std::vector<std::pair<std::string, mode_t>> dirs(dir_modes_.begin(), dir_modes_.end());
    auto depth = [](const std::string& p) { return std::count(p.begin(), p.end(), '/'); };
    std::stable_sort(dirs.begin(), dirs.end(),
                     [&](const auto& a, const auto& b) { return depth(a.first) > depth(b.first); });
    for (const auto& [path, perm] : dirs) {
      int fd = OpenAt2(root_fd_.get(), path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      if (fd < 0 && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)) continue;
      if (fd < 0) return ErrnoError(fmt::format("{}: open '{}'", options_.what, path));
      UniqueFd dir(fd);
      if (::fchmod(dir.get(), perm) != 0)
        return ErrnoError(fmt::format("{}: chmod '{}'", options_.what, path));
    }
    return Status::Ok();
  }

  // Removes whatever is at `name` in `dirfd` (a directory recursively), unless it is a
  // directory and `keep_dir` is set. Returns whether a directory was kept.
  Result<bool> Clear(int dirfd, const std::string& name, bool keep_dir, std::string_view entry) {
    struct stat st {};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return false;
      return ErrnoError(fmt::format("{}: entry '{}': stat", options_.what, entry));
    }
    if (S_ISDIR(st.st_mode)) {
      if (keep_dir) return true;
      RETURN_IF_ERROR(RemoveTree(ProcPath(dirfd, name)));
      return false;
    }
    if (::unlinkat(dirfd, name.c_str(), 0) != 0) {
      return ErrnoError(fmt::format("{}: entry '{}': unlink", options_.what, entry));
    }
    return false;
  }

  Status ApplyOwner(int fd, const char* name, struct archive_entry* e, int flags) {
    if (!options_.set_owner) return Status::Ok();
    uid_t uid = options_.owner ? options_.owner->first : static_cast<uid_t>(archive_entry_uid(e));
    gid_t gid = options_.owner ? options_.owner->second : static_cast<gid_t>(archive_entry_gid(e));
    if (::fchownat(fd, name, uid, gid, flags) != 0) {
      return ErrnoError(
          fmt::format("{}: entry '{}': chown", options_.what, archive_entry_pathname(e)));
    }
    return Status::Ok();
  }

  void ApplyXattrs(int fd, struct archive_entry* e) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
      // Best effort: a file system without xattr support keeps the file without them.
      if (name != nullptr && IsLayerXattr(name)) (void)::fsetxattr(fd, name, value, size, 0);
    }
  }

  Status Whiteout(const std::vector<std::string>& comps, std::string_view entry) {
    const std::string& base = comps.back();
    ASSIGN_OR_RETURN(UniqueFd parent, OpenDir(comps, comps.size() - 1, true, entry));
    if (base == kOpaqueWhiteout) {
      if (::fsetxattr(parent.get(), kOpaqueXattr, "y", 1, 0) != 0) {
        return ErrnoError(
            fmt::format("{}: entry '{}': set {}", options_.what, entry, kOpaqueXattr));
      }
      return Status::Ok();
    }
    std::string target = base.substr(kWhiteoutPrefix.size());
    if (target.empty() || target == "." || target == "..") {
      return InvalidArgument(
          fmt::format("{}: entry '{}' is a whiteout of an invalid name", options_.what, entry));
    }
    ASSIGN_OR_RETURN(bool kept, Clear(parent.get(), target, false, entry));
    (void)kept;
    if (::mknodat(parent.get(), target.c_str(), S_IFCHR | 0000, makedev(0, 0)) != 0) {
      return ErrnoError(fmt::format("{}: entry '{}': mknod whiteout", options_.what, entry));
    }
    return Status::Ok();
  }

  Status Entry(TarReader& reader, struct archive_entry* e, TarDigests& digests) {
    std::string entry = archive_entry_pathname(e) != nullptr ? archive_entry_pathname(e) : "";
    ASSIGN_OR_RETURN(std::vector<std::string> comps, SplitEntryPath(entry, options_.what));
    if (comps.empty()) return Status::Ok();  // the root itself
    const std::string& name = comps.back();
    if (options_.whiteouts == WhiteoutMode::kOverlay && name.rfind(kWhiteoutPrefix, 0) == 0) {
      return Whiteout(comps, entry);
    }
    ASSIGN_OR_RETURN(UniqueFd parent, OpenDir(comps, comps.size() - 1, true, entry));
    int pfd = parent.get();
    const char* cname = name.c_str();

    if (const char* link = archive_entry_hardlink(e); link != nullptr) {
      ASSIGN_OR_RETURN(std::vector<std::string> tcomps, SplitEntryPath(link, options_.what));
      if (tcomps.empty()) {
        return InvalidArgument(
            fmt::format("{}: entry '{}' links to the root", options_.what, entry));
      }
      ASSIGN_OR_RETURN(UniqueFd tparent, OpenDir(tcomps, tcomps.size() - 1, false, entry));
      struct stat tst {};
      if (::fstatat(tparent.get(), tcomps.back().c_str(), &tst, AT_SYMLINK_NOFOLLOW) != 0) {
        return ErrnoError(
            fmt::format("{}: entry '{}': hard link target '{}'", options_.what, entry, link));
      }
      if (S_ISDIR(tst.st_mode)) {
        return InvalidArgument(fmt::format("{}: entry '{}' is a hard link to directory '{}'",
                                           options_.what, entry, link));
      }
      ASSIGN_OR_RETURN(bool kept, Clear(pfd, name, false, entry));
      (void)kept;
      // linkat without AT_SYMLINK_FOLLOW links a symlink itself, never what it points at.
      if (::linkat(tparent.get(), tcomps.back().c_str(), pfd, cname, 0) != 0) {
        return ErrnoError(fmt::format("{}: entry '{}': link to '{}'", options_.what, entry, link));
      }
      return Status::Ok();
    }

    mode_t perm = static_cast<mode_t>(archive_entry_perm(e)) & 07777;
    switch (archive_entry_filetype(e)) {
      case AE_IFDIR: {
        ASSIGN_OR_RETURN(bool kept, Clear(pfd, name, true, entry));
        if (!kept && ::mkdirat(pfd, cname, 0700) != 0) {
          return ErrnoError(fmt::format("{}: entry '{}': mkdir", options_.what, entry));
        }
        int dfd = ::openat(pfd, cname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0) return ErrnoError(fmt::format("{}: entry '{}': open", options_.what, entry));
        UniqueFd dir(dfd);
        RETURN_IF_ERROR(ApplyOwner(dir.get(), "", e, AT_EMPTY_PATH));
        // 0700 until the end (FinishDirs): a 0555 or 0000 directory must still take the
        // entries below it when unpacking without root, and what a failure leaves behind
        // must stay removable.
        if (::fchmod(dir.get(), 0700) != 0)
          return ErrnoError(fmt::format("{}: entry '{}': chmod", options_.what, entry));
        dir_modes_[JoinPath(comps, comps.size())] = perm;
        ApplyXattrs(dir.get(), e);
        return Status::Ok();
      }
      case AE_IFREG: {
        if (archive_entry_size(e) < 0 ||
            static_cast<uint64_t>(archive_entry_size(e)) > options_.max_bytes) {
          return InvalidArgument(fmt::format("{}: entry '{}' is larger than the limit of {} bytes",
                                             options_.what, entry, options_.max_bytes));
        }
        ASSIGN_OR_RETURN(bool kept, Clear(pfd, name, false, entry));
        (void)kept;
        int ffd = ::openat(pfd, cname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (ffd < 0) return ErrnoError(fmt::format("{}: entry '{}': create", options_.what, entry));
        UniqueFd file(ffd);
        const void* block = nullptr;
        size_t size = 0;
        la_int64_t offset = 0;
        for (;;) {
          int rc = archive_read_data_block(reader.tar(), &block, &size, &offset);
          if (rc == ARCHIVE_EOF) break;
          if (rc != ARCHIVE_OK) return reader.Fail(fmt::format("reading entry '{}'", entry));
          const char* p = static_cast<const char*>(block);
          while (size > 0) {
            ssize_t n = ::pwrite(file.get(), p, size, offset);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0)
              return ErrnoError(fmt::format("{}: entry '{}': write", options_.what, entry));
            p += n;
            size -= static_cast<size_t>(n);
            offset += n;
          }
        }
        if (::ftruncate(file.get(), archive_entry_size(e)) != 0)
          return ErrnoError(fmt::format("{}: entry '{}': truncate", options_.what, entry));
        RETURN_IF_ERROR(ApplyOwner(file.get(), "", e, AT_EMPTY_PATH));
        if (::fchmod(file.get(), perm) != 0)
          return ErrnoError(fmt::format("{}: entry '{}': chmod", options_.what, entry));
        ApplyXattrs(file.get(), e);
        struct timespec times[2] = {{archive_entry_mtime(e), 0}, {archive_entry_mtime(e), 0}};
        (void)::futimens(file.get(), times);
        return Status::Ok();
      }
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(e);
        ASSIGN_OR_RETURN(bool kept, Clear(pfd, name, false, entry));
        (void)kept;
        // The target is stored as written: it is only ever resolved beneath a root (here by
        // openat2, in a container by its own root), so it cannot point outside.
        if (::symlinkat(target != nullptr ? target : "", pfd, cname) != 0)
          return ErrnoError(fmt::format("{}: entry '{}': symlink", options_.what, entry));
        RETURN_IF_ERROR(ApplyOwner(pfd, cname, e, AT_SYMLINK_NOFOLLOW));
        struct timespec times[2] = {{archive_entry_mtime(e), 0}, {archive_entry_mtime(e), 0}};
        (void)::utimensat(pfd, cname, times, AT_SYMLINK_NOFOLLOW);
        return Status::Ok();
      }
      case AE_IFIFO: {
        ASSIGN_OR_RETURN(bool kept, Clear(pfd, name, false, entry));
        (void)kept;
        if (::mknodat(pfd, cname, S_IFIFO | perm, 0) != 0)
          return ErrnoError(fmt::format("{}: entry '{}': mkfifo", options_.what, entry));
        return ApplyOwner(pfd, cname, e, AT_SYMLINK_NOFOLLOW);
      }
      case AE_IFCHR:
      case AE_IFBLK:
        // Device nodes would hand a container the host's devices; the runtime provides /dev.
        ++digests.skipped_devices;
        return Status::Ok();
      default:
        return Status::Ok();  // sockets and unknown types carry nothing a container needs
    }
  }

 private:
  UniqueFd root_fd_;
  ExtractOptions options_;
  std::map<std::string, mode_t> dir_modes_;  // directory entries -> their modes, for FinishDirs
};

// The next entry of `reader`, or nullptr at the end; counts entries against the limit.
Result<struct archive_entry*> NextEntry(TarReader& reader, const ExtractOptions& options,
                                        uint64_t& entries) {
  struct archive_entry* e = nullptr;
  int rc = archive_read_next_header(reader.tar(), &e);
  if (rc == ARCHIVE_EOF) return static_cast<struct archive_entry*>(nullptr);
  if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) return reader.Fail("read");
  if (++entries > options.max_entries) {
    return InvalidArgument(
        fmt::format("{}: more than {} entries", options.what, options.max_entries));
  }
  return e;
}

}  // namespace

ByteSource FdSource(int fd, const std::string& what) {
  auto buf = std::make_shared<std::vector<char>>(kBlock);
  return [fd, buf, what]() -> Result<std::string_view> {
    for (;;) {
      ssize_t n = ::read(fd, buf->data(), buf->size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError("read " + what);
      return std::string_view(buf->data(), static_cast<size_t>(n));
    }
  };
}

Result<TarDigests> ExtractTar(int fd, const std::string& root, const ExtractOptions& options) {
  return ExtractTar(FdSource(fd, options.what), root, options);
}

Result<TarDigests> ExtractTar(const ByteSource& source, const std::string& root,
                              const ExtractOptions& options) {
  int rfd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rfd < 0) return ErrnoError("open " + root);
  // A bomb must not fill the disk either: never unpack more than the file system has free.
  ExtractOptions bounded = options;
  struct statvfs vfs {};
  if (::fstatvfs(rfd, &vfs) == 0) {
    uint64_t avail = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    if (avail < bounded.max_bytes) bounded.max_bytes = avail;
  }
  Extractor extractor{UniqueFd(rfd), bounded};
  ASSIGN_OR_RETURN(std::unique_ptr<TarReader> reader, TarReader::Open(source, bounded, nullptr));
  uint64_t entries = 0;
  for (;;) {
    ASSIGN_OR_RETURN(struct archive_entry * e, NextEntry(*reader, options, entries));
    if (e == nullptr) break;
    RETURN_IF_ERROR(extractor.Entry(*reader, e, reader->digests()));
  }
  RETURN_IF_ERROR(extractor.FinishDirs());
  reader->digests().entries = entries;
  return reader->Finish();
}

// A raw gzip stream to `sink` holding one entry ("layer.tar") whose data the caller writes,
// hashing and counting the compressed bytes on the way. Heap-allocated: libarchive keeps its
// address as the write callback's argument.
struct GzipOut {
  const ByteSink* sink = nullptr;
  Sha256 hash;
  uint64_t size = 0;
  Status error;  // the sink's first failure
  WriteArchive gz;

  // `level` < 0: libarchive's default compression level.
  static Result<std::unique_ptr<GzipOut>> Open(const ByteSink& sink, int level) {
    auto out = std::make_unique<GzipOut>();
    out->sink = &sink;
    out->gz.reset(archive_write_new());
    struct archive* gz = out->gz.get();
    if (gz == nullptr) return Internal("libarchive: out of memory");
    archive_write_set_format_raw(gz);
    archive_write_add_filter_gzip(gz);
    if (level >= 0) {
      archive_write_set_filter_option(gz, "gzip", "compression-level",
                                      std::to_string(level).c_str());
    }
    archive_write_set_bytes_in_last_block(gz, 1);
    auto write_cb = [](struct archive*, void* p, const void* buf, size_t n) -> la_ssize_t {
      auto* o = static_cast<GzipOut*>(p);
      o->hash.Update(buf, n);
      o->size += n;
      o->error = (*o->sink)(std::string_view(static_cast<const char*>(buf), n));
      return o->error.ok() ? static_cast<la_ssize_t>(n) : -1;
    };
    if (archive_write_open(gz, out.get(), nullptr, write_cb, nullptr) != ARCHIVE_OK)
      return Internal("gzip: " + ArchiveError(gz));
    Entry raw(archive_entry_new());
    archive_entry_set_filetype(raw.get(), AE_IFREG);
    archive_entry_set_pathname(raw.get(), "layer.tar");
    if (archive_write_header(gz, raw.get()) != ARCHIVE_OK)
      return Internal("gzip: " + ArchiveError(gz));
    return out;
  }
};

Result<TarDigests> RecompressTar(int fd, const ByteSink& sink, const ExtractOptions& options) {
  // gzip writer fed with the uncompressed stream as the tar reader pulls it through.
  ASSIGN_OR_RETURN(std::unique_ptr<GzipOut> gzip, GzipOut::Open(sink, -1));
  GzipOut& out = *gzip;
  struct archive* gz = out.gz.get();
  ByteSink tee = [&](std::string_view bytes) -> Status {
    if (archive_write_data(gz, bytes.data(), bytes.size()) < 0) {
      return out.error.ok() ? Internal("gzip: " + ArchiveError(gz)) : out.error;
    }
    return Status::Ok();
  };
  ASSIGN_OR_RETURN(std::unique_ptr<TarReader> reader,
                   TarReader::Open(FdSource(fd, options.what), options, &tee));
  uint64_t entries = 0;
  for (;;) {
    ASSIGN_OR_RETURN(struct archive_entry * e, NextEntry(*reader, options, entries));
    if (e == nullptr) break;
    const char* path = archive_entry_pathname(e);
    RETURN_IF_ERROR(SplitEntryPath(path != nullptr ? path : "", options.what).status());
    if (archive_read_data_skip(reader->tar()) != ARCHIVE_OK) return reader->Fail("read");
  }
  ASSIGN_OR_RETURN(TarDigests d, reader->Finish());
  if (archive_write_close(gz) != ARCHIVE_OK)
    return out.error.ok() ? Internal("gzip: " + ArchiveError(gz)) : out.error;
  d.entries = entries;
  d.compressed_digest = out.hash.FinishDigest();
  d.compressed_size = out.size;
  return d;
}

bool IsTarArchive(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  UniqueFd file(fd);
  ReadArchive a(archive_read_new());
  SupportFilters(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_fd(a.get(), file.get(), 1 << 16) != ARCHIVE_OK) return false;
  struct archive_entry* e = nullptr;
  int rc = archive_read_next_header(a.get(), &e);
  return rc == ARCHIVE_OK || rc == ARCHIVE_WARN;
}

namespace {

// Writes a directory tree as tar into `tar`, in sorted order.
class TreeWriter {
 public:
  TreeWriter(struct archive* tar) : tar_(tar) {}

  Status WriteDir(int dirfd, const std::string& rel) {
    DIR* d = ::fdopendir(::fcntl(dirfd, F_DUPFD_CLOEXEC, 0));
    if (d == nullptr) return ErrnoError("opendir " + rel);
    std::vector<std::string> names;
    while (struct dirent* de = ::readdir(d)) {
      std::string n = de->d_name;
      if (n != "." && n != "..") names.push_back(std::move(n));
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
      RETURN_IF_ERROR(WriteOne(dirfd, n, rel.empty() ? n : rel + "/" + n));
    }
    return Status::Ok();
  }

 private:
  // ARCHIVE_WARN is a header written: names are bytes, and a name (or link target) that is not
  // valid in the current locale, as any non-ASCII name is in the C locale, is written raw in a
  // pax record with hdrcharset=BINARY (which Go's archive/tar and libarchive read back as is).
  Status Header(struct archive_entry* e, const std::string& path) {
    int rc = archive_write_header(tar_, e);
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
      return IoError(fmt::format("tar header for '{}': {}", path, ArchiveError(tar_)));
    return Status::Ok();
  }

  // As SCHILY.xattr.* pax records, which docker, containerd and podman apply on unpack.
  static void AddXattrs(int fd, struct archive_entry* e) {
    for (const auto& [name, value] : LayerXattrs(fd))
      archive_entry_xattr_add_entry(e, name.c_str(), value.data(), value.size());
  }

  Status WriteOne(int dirfd, const std::string& name, const std::string& rel) {
    struct stat st {};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return ErrnoError("stat " + rel);
    // Such a file would be a plain file in the tree it came from (the build's layer cache)
    // but a whiteout deleting its sibling wherever the layer is unpacked: the two would differ.
    if (name.rfind(kWhiteoutPrefix, 0) == 0) {
      return InvalidArgument(
          fmt::format("'/{}': names starting with '{}' are reserved for whiteouts in layers", rel,
                      kWhiteoutPrefix));
    }
    Entry e(archive_entry_new());
    archive_entry_set_uid(e.get(), st.st_uid);
    archive_entry_set_gid(e.get(), st.st_gid);
    archive_entry_set_mtime(e.get(), st.st_mtim.tv_sec, 0);
    archive_entry_set_perm(e.get(), st.st_mode & 07777);

    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
      size_t slash = rel.rfind('/');
      std::string wh = (slash == std::string::npos ? "" : rel.substr(0, slash + 1)) +
                       std::string(kWhiteoutPrefix) + name;
      archive_entry_set_pathname(e.get(), wh.c_str());
      archive_entry_set_filetype(e.get(), AE_IFREG);
      archive_entry_set_perm(e.get(), 0);
      archive_entry_set_size(e.get(), 0);
      return Header(e.get(), wh);
    }
    archive_entry_set_pathname(e.get(), rel.c_str());
    if (S_ISDIR(st.st_mode)) {
      archive_entry_set_filetype(e.get(), AE_IFDIR);
      int sub = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) return ErrnoError("open " + rel);
      UniqueFd subfd(sub);
      AddXattrs(subfd.get(), e.get());
      RETURN_IF_ERROR(Header(e.get(), rel));
      char value[4] = {};
      if (::fgetxattr(subfd.get(), kOpaqueXattr, value, sizeof value) == 1 && value[0] == 'y') {
        Entry opq(archive_entry_new());
        std::string path = rel + "/" + std::string(kOpaqueWhiteout);
        archive_entry_set_pathname(opq.get(), path.c_str());
        archive_entry_set_filetype(opq.get(), AE_IFREG);
        archive_entry_set_perm(opq.get(), 0);
        archive_entry_set_size(opq.get(), 0);
        archive_entry_set_mtime(opq.get(), st.st_mtim.tv_sec, 0);
        RETURN_IF_ERROR(Header(opq.get(), path));
      }
      return WriteDir(subfd.get(), rel);
    }
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      auto key = std::make_pair(st.st_dev, st.st_ino);
      auto [it, inserted] = links_.emplace(key, rel);
      if (!inserted) {
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_hardlink(e.get(), it->second.c_str());
        archive_entry_set_size(e.get(), 0);
        return Header(e.get(), rel);
      }
    }
    if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      ssize_t n = ::readlinkat(dirfd, name.c_str(), target.data(), target.size());
      if (n < 0) return ErrnoError("readlink " + rel);
      target.resize(static_cast<size_t>(n));
      archive_entry_set_filetype(e.get(), AE_IFLNK);
      archive_entry_set_symlink(e.get(), target.c_str());
      return Header(e.get(), rel);
    }
    if (S_ISFIFO(st.st_mode)) {
      archive_entry_set_filetype(e.get(), AE_IFIFO);
      return Header(e.get(), rel);
    }
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      // A node a RUN step made (mknod): image content, as in docker's layers. Unpacking never
      // creates one (ExtractTar skips them).
      archive_entry_set_filetype(e.get(), S_ISCHR(st.st_mode) ? AE_IFCHR : AE_IFBLK);
      archive_entry_set_rdev(e.get(), st.st_rdev);
      return Header(e.get(), rel);
    }
    if (!S_ISREG(st.st_mode)) return Status::Ok();  // sockets: tar cannot hold them
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_size(e.get(), st.st_size);
    int ffd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (ffd < 0) return ErrnoError("open " + rel);
    UniqueFd file(ffd);
    AddXattrs(file.get(), e.get());
    RETURN_IF_ERROR(Header(e.get(), rel));
    std::vector<char> buf(kBlock);
    off_t left = st.st_size;
    while (left > 0) {
      ssize_t n = ::read(file.get(), buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError("read " + rel);
      if (n == 0) return IoError("read " + rel + ": file shrank while being archived");
      size_t want = static_cast<size_t>(std::min<off_t>(n, left));
      if (archive_write_data(tar_, buf.data(), want) < 0)
        return IoError(fmt::format("tar data for '{}': {}", rel, ArchiveError(tar_)));
      left -= static_cast<off_t>(want);
    }
    return Status::Ok();
  }

  struct archive* tar_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

}  // namespace

bool IsLayerXattr(std::string_view name) {
  return name.substr(0, 5) == "user." || name == "security.capability";
}

std::vector<std::pair<std::string, std::string>> LayerXattrs(int fd) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string names(1024, '\0');
  ssize_t n;
  while ((n = ::flistxattr(fd, names.data(), names.size())) < 0 && errno == ERANGE)
    names.resize(names.size() * 4);
  if (n <= 0) return out;  // none, or a file system without xattrs
  names.resize(static_cast<size_t>(n));
  for (size_t pos = 0; pos < names.size();) {
    std::string name = names.c_str() + pos;
    pos += name.size() + 1;
    if (!IsLayerXattr(name)) continue;
    ssize_t size = ::fgetxattr(fd, name.c_str(), nullptr, 0);
    if (size < 0) continue;
    std::string value(static_cast<size_t>(size), '\0');
    size = ::fgetxattr(fd, name.c_str(), value.data(), value.size());
    if (size < 0) continue;
    value.resize(static_cast<size_t>(size));
    out.emplace_back(std::move(name), std::move(value));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<TarDigests> WriteLayerFromDir(const std::string& dir, const ByteSink& sink,
                                     const WriteLayerOptions& options) {
  struct Mid {
    struct archive* gz;
    Sha256 hash;
    uint64_t size = 0;
  } mid{nullptr, {}, 0};

  ASSIGN_OR_RETURN(std::unique_ptr<GzipOut> gzip, GzipOut::Open(sink, options.gzip_level));
  GzipOut& out = *gzip;
  struct archive* gz = out.gz.get();
  WriteArchive tar(archive_write_new());
  if (!tar) return Internal("libarchive: out of memory");
  mid.gz = gz;

  archive_write_set_format_pax_restricted(tar.get());
  archive_write_set_bytes_per_block(tar.get(), 512);
  archive_write_set_bytes_in_last_block(tar.get(), 1);
  auto mid_cb = [](struct archive*, void* p, const void* buf, size_t n) -> la_ssize_t {
    auto* m = static_cast<Mid*>(p);
    m->hash.Update(buf, n);
    m->size += n;
    return archive_write_data(m->gz, buf, n) < 0 ? -1 : static_cast<la_ssize_t>(n);
  };
  if (archive_write_open(tar.get(), &mid, nullptr, mid_cb, nullptr) != ARCHIVE_OK)
    return Internal("tar: " + ArchiveError(tar.get()));

  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return ErrnoError("open " + dir);
  UniqueFd dirfd(dfd);
  TreeWriter writer(tar.get());
  Status st = writer.WriteDir(dirfd.get(), "");
  if (!st.ok()) return out.error.ok() ? st : out.error;
  if (archive_write_close(tar.get()) != ARCHIVE_OK)
    return out.error.ok() ? IoError("tar: " + ArchiveError(tar.get())) : out.error;
  if (archive_write_close(gz) != ARCHIVE_OK)
    return out.error.ok() ? IoError("gzip: " + ArchiveError(gz)) : out.error;
  TarDigests d;
  d.diff_id = mid.hash.FinishDigest();
  d.uncompressed_size = mid.size;
  d.compressed_digest = out.hash.FinishDigest();
  d.compressed_size = out.size;
  return d;
}

}  // namespace barge::oci
