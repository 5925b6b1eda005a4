// File-system work of `barge build`, internal to src/oci: paths, the ignore file, a merged
// read-only view of an image's layer dirs, and copying trees into a new layer. Everything
// that reads an untrusted tree (the build context, another stage) goes through *at calls
// with O_NOFOLLOW below a directory opened safely (openat2 RESOLVE_IN_ROOT).
#pragma once

#include <fcntl.h>
#include <fmt/core.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <climits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "barge/status.h"
#include "base/file_util.h"
#include "base/open_beneath.h"
#include "base/unique_fd.h"
#include "oci/archive.h"
#include "oci/detail/path.h"
#include "oci/digest.h"

namespace barge::oci::detail {

inline constexpr const char* kOpaqueXattr = "trusted.overlay.opaque";

// Lexical clean-up: drops '.', empty components and '..' (never climbing above the start).
std::vector<std::string> SplitPath(std::string_view path);
// Whether `path`, read lexically, climbs above its starting directory ("a/../../b").
bool ClimbsAboveRoot(std::string_view path);
// Sorted names in a directory (without . and ..).
std::vector<std::string> ListDir(int dirfd);
// An overlay whiteout: a 0/0 character device.
bool IsWhiteout(const struct stat& st);
// A directory marked trusted.overlay.opaque=y.
bool IsOpaque(const std::string& path);
bool AllDigits(const std::string& s);

// .containerignore / .dockerignore rules, as moby's patternmatcher reads them: the last
// matching rule wins, '!' re-includes, a rule matching a directory covers everything below it,
// '*' and '?' stay within one path component, '**' spans any number of them ("**/x" also
// matches a top-level "x"), '[...]' is a character class and '\' escapes.
class IgnoreRules {
 public:
  void Add(std::string pattern);
  // `rel` is relative to the context root ("dir/file").
  bool Excluded(const std::string& rel) const;
  // Whether a '!' rule may re-include something below the directory `rel`: an excluded
  // directory must then still be walked.
  bool MayReinclude(const std::string& rel) const;

 private:
  // Whether `pattern` matches `rel` itself (not its parents).
  static bool Match(std::string_view pattern, std::string_view rel);
  std::vector<std::pair<std::string, bool>> rules_;
};

// Read-only view of a stack of layer cache dirs, as overlayfs would merge them.
class MergedView {
 public:
  explicit MergedView(std::vector<std::string> layers) : layers_(std::move(layers)) {}

  // The topmost entry at `rel` (components, no symlinks resolved); layer dir path if found.
  std::optional<std::pair<std::string, struct stat>> Lookup(
      const std::vector<std::string>& comps) const {
    for (size_t li = layers_.size(); li-- > 0;) {
      const std::string& base = layers_[li];
      bool stop = false;
      std::string path = base;
      for (size_t i = 0; i < comps.size(); ++i) {
        path += "/" + comps[i];
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0) break;
        if (IsWhiteout(st)) return std::nullopt;
        if (i + 1 == comps.size()) return std::make_pair(path, st);
        if (!S_ISDIR(st.st_mode)) return std::nullopt;  // a file hides what lies below
        if (IsOpaque(path)) stop = true;
      }
      if (stop) break;
    }
    return std::nullopt;
  }

  // Resolves symlinks (in-root, like the container would) in `comps`; the last component is
  // followed too when `follow_last`.
  Result<std::vector<std::string>> Resolve(std::vector<std::string> comps, bool follow_last) const {
    std::vector<std::string> done;
    int hops = 0;
    while (!comps.empty()) {
      std::string c = comps.front();
      comps.erase(comps.begin());
      done.push_back(c);
      if (comps.empty() && !follow_last) break;
      auto hit = Lookup(done);
      if (!hit || !S_ISLNK(hit->second.st_mode)) continue;
      if (++hops > 40)
        return InvalidArgument("too many levels of symbolic links in /" + JoinPath(done));
      std::string target(PATH_MAX, '\0');
      ssize_t n = ::readlink(hit->first.c_str(), target.data(), target.size());
      if (n < 0) return ErrnoError("readlink " + hit->first);
      target.resize(static_cast<size_t>(n));
      done.pop_back();
      std::string joined = target.front() == '/' ? target : JoinPath(done) + "/" + target;
      std::vector<std::string> next = SplitPath(joined);
      next.insert(next.end(), comps.begin(), comps.end());
      comps = std::move(next);
      done.clear();
    }
    return done;
  }

  Result<std::string> ReadFile(const std::string& path) const {
    ASSIGN_OR_RETURN(std::vector<std::string> comps, Resolve(SplitPath(path), true));
    auto hit = Lookup(comps);
    if (!hit || !S_ISREG(hit->second.st_mode)) return NotFound(path + " is not in the image");
    return barge::ReadRegularFileLimited(hit->first, 16 << 20);  // the image's, so bounded
  }

  const std::vector<std::string>& layers() const { return layers_; }

 private:
  std::vector<std::string> layers_;
};

// "name[:group]" or "uid[:gid]" against the image's /etc/passwd and /etc/group.
struct Ids {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

// Resolves "name[:group]" or "uid[:gid]" against the image's /etc/passwd and /etc/group.
Result<Ids> ResolveUser(const MergedView& view, const std::string& spec, bool want_groups);

// Copies all of `in` to `out` (copy_file_range, else read/write).
Status CopyFileData(int in, int out, const std::string& what);

struct CopyPolicy {
  std::optional<Ids> owner;    // --chown (or 0:0 for COPY from the context)
  std::optional<mode_t> mode;  // --chmod
  const IgnoreRules* ignore = nullptr;
};

// Walks a source tree below `fd` (already opened safely); every entry below is reached with
// *at calls and O_NOFOLLOW, so nothing outside the source root is ever read.
class TreeVisitor {
 public:
  virtual ~TreeVisitor() = default;
  virtual Status File(int fd, const struct stat& st, const std::string& dest) = 0;
  virtual Status Symlink(const std::string& target, const struct stat& st,
                         const std::string& dest) = 0;
  virtual Status Dir(const struct stat& st, const std::string& dest) = 0;
  // A named pipe: copied as a pipe, never opened (BuildKit's copier keeps FIFOs too).
  virtual Status Fifo(const struct stat& st, const std::string& dest) = 0;
};

// Visits the tree at `fd` (a file or a directory opened safely); `ctx_rel` is its path
// relative to the source root (for ignore rules), `dest` where it lands in the layer.
Status WalkSource(int fd, const struct stat& st, const std::string& ctx_rel,
                  const std::string& dest, const CopyPolicy& policy, TreeVisitor& v);

// Hashes what a COPY would produce: paths, modes, link targets and file content.
class HashVisitor : public TreeVisitor {
 public:
  // `with_owner`: ownership is copied too (COPY --from without --chown), so it is content.
  HashVisitor(Sha256& h, bool with_owner) : h_(h), with_owner_(with_owner) {}
  Status File(int fd, const struct stat& st, const std::string& dest) override {
    if (st.st_nlink > 1) {
      auto [it, first] = links_.emplace(std::make_pair(st.st_dev, st.st_ino), dest);
      if (!first) {
        h_.Update(fmt::format("H {} {}\n", dest, it->second));
        return Status::Ok();
      }
    }
    h_.Update(fmt::format("F {} {:o} {}\n", dest, st.st_mode & 07777, st.st_size));
    Owner(st);
    char buf[1 << 16];
    if (::lseek(fd, 0, SEEK_SET) < 0) return ErrnoError("seek " + dest);
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError("read " + dest);
      if (n == 0) break;
      h_.Update(buf, static_cast<size_t>(n));
    }
    for (const auto& [name, value] : LayerXattrs(fd)) {
      h_.Update(fmt::format("X {} {}\n", name, value.size()));
      h_.Update(value.data(), value.size());
    }
    return Status::Ok();
  }
  Status Symlink(const std::string& target, const struct stat& st,
                 const std::string& dest) override {
    h_.Update(fmt::format("L {} {}\n", dest, target));
    Owner(st);
    return Status::Ok();
  }
  Status Dir(const struct stat& st, const std::string& dest) override {
    h_.Update(fmt::format("D {} {:o}\n", dest, st.st_mode & 07777));
    Owner(st);
    return Status::Ok();
  }
  Status Fifo(const struct stat& st, const std::string& dest) override {
    h_.Update(fmt::format("P {} {:o}\n", dest, st.st_mode & 07777));
    Owner(st);
    return Status::Ok();
  }

 private:
  void Owner(const struct stat& st) {
    if (with_owner_) h_.Update(fmt::format("O {}:{}\n", st.st_uid, st.st_gid));
  }
  Sha256& h_;
  bool with_owner_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

// Writes the tree into the new layer `layer_root`. `made_dir` is a destination directory the
// caller made (the target of a directory source): it keeps the metadata it was given rather than
// the source directory's.
class CopyVisitor : public TreeVisitor {
 public:
  CopyVisitor(int layer_root, const CopyPolicy& policy, std::string made_dir = "")
      : root_(layer_root), policy_(policy), made_dir_(std::move(made_dir)) {}

  Status File(int fd, const struct stat& st, const std::string& dest) override {
    ASSIGN_OR_RETURN(auto parent, Parent(dest));
    std::string name = dest.substr(dest.rfind('/') + 1);
    ::unlinkat(parent.get(), name.c_str(), 0);
    // Hard links within the tree copied stay hard links (as BuildKit's copier keeps them).
    if (st.st_nlink > 1) {
      auto [it, first] = links_.emplace(std::make_pair(st.st_dev, st.st_ino), dest);
      if (!first) {
        const std::string& target = it->second;
        ASSIGN_OR_RETURN(auto target_parent, Parent(target));
        std::string target_name = target.substr(target.rfind('/') + 1);
        if (::linkat(target_parent.get(), target_name.c_str(), parent.get(), name.c_str(), 0) != 0)
          return ErrnoError(fmt::format("link {} to {} in the new layer", dest, target));
        return Status::Ok();
      }
    }
    int out = ::openat(parent.get(), name.c_str(),
                       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0) return ErrnoError("create " + dest + " in the new layer");
    UniqueFd file(out);
    if (::lseek(fd, 0, SEEK_SET) < 0) return ErrnoError("seek " + dest);
    RETURN_IF_ERROR(CopyFileData(fd, file.get(), dest));
    RETURN_IF_ERROR(Own(file.get(), "", AT_EMPTY_PATH, st));
    if (::fchmod(file.get(), policy_.mode.value_or(st.st_mode & 07777)) != 0)
      return ErrnoError("chmod " + dest);
    // After the chown, which clears security.capability.
    for (const auto& [xname, value] : LayerXattrs(fd)) {
      if (::fsetxattr(file.get(), xname.c_str(), value.data(), value.size(), 0) != 0 &&
          errno != ENOTSUP)
        return ErrnoError(fmt::format("set {} on {} in the new layer", xname, dest));
    }
    struct timespec times[2] = {st.st_mtim, st.st_mtim};
    ::futimens(file.get(), times);
    return Status::Ok();
  }
  Status Symlink(const std::string& target, const struct stat& st,
                 const std::string& dest) override {
    ASSIGN_OR_RETURN(auto parent, Parent(dest));
    std::string name = dest.substr(dest.rfind('/') + 1);
    ::unlinkat(parent.get(), name.c_str(), 0);
    if (::symlinkat(target.c_str(), parent.get(), name.c_str()) != 0)
      return ErrnoError("symlink " + dest + " in the new layer");
    RETURN_IF_ERROR(Own(parent.get(), name.c_str(), AT_SYMLINK_NOFOLLOW, st));
    struct timespec times[2] = {st.st_mtim, st.st_mtim};
    ::utimensat(parent.get(), name.c_str(), times, AT_SYMLINK_NOFOLLOW);
    return Status::Ok();
  }
  Status Fifo(const struct stat& st, const std::string& dest) override {
    ASSIGN_OR_RETURN(auto parent, Parent(dest));
    std::string name = dest.substr(dest.rfind('/') + 1);
    ::unlinkat(parent.get(), name.c_str(), 0);
    if (::mkfifoat(parent.get(), name.c_str(), 0600) != 0)
      return ErrnoError("mkfifo " + dest + " in the new layer");
    RETURN_IF_ERROR(Own(parent.get(), name.c_str(), AT_SYMLINK_NOFOLLOW, st));
    if (::fchmodat(parent.get(), name.c_str(), policy_.mode.value_or(st.st_mode & 07777), 0) != 0)
      return ErrnoError("chmod " + dest);
    struct timespec times[2] = {st.st_mtim, st.st_mtim};
    ::utimensat(parent.get(), name.c_str(), times, AT_SYMLINK_NOFOLLOW);
    return Status::Ok();
  }
  Status Dir(const struct stat& st, const std::string& dest) override {
    if (dest.empty() || dest == made_dir_) return Status::Ok();
    ASSIGN_OR_RETURN(auto parent, Parent(dest));
    std::string name = dest.substr(dest.rfind('/') + 1);
    struct stat existing {};
    if (::fstatat(parent.get(), name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0 &&
        !S_ISDIR(existing.st_mode)) {
      ::unlinkat(parent.get(), name.c_str(), 0);
    }
    if (::mkdirat(parent.get(), name.c_str(), 0755) != 0 && errno != EEXIST)
      return ErrnoError("mkdir " + dest + " in the new layer");
    int dfd = ::openat(parent.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) return ErrnoError("open " + dest + " in the new layer");
    UniqueFd dir(dfd);
    RETURN_IF_ERROR(Own(dir.get(), "", AT_EMPTY_PATH, st));
    if (::fchmod(dir.get(), policy_.mode.value_or(st.st_mode & 07777)) != 0)
      return ErrnoError("chmod " + dest);
    return Status::Ok();
  }

 private:
  Result<UniqueFd> Parent(const std::string& dest) {
    size_t slash = dest.rfind('/');
    std::string parent = slash == std::string::npos ? "" : dest.substr(0, slash);
    if (parent.empty()) {
      int fd = ::fcntl(root_, F_DUPFD_CLOEXEC, 0);
      if (fd < 0) return ErrnoError("dup");
      return UniqueFd(fd);
    }
    // The layer is ours and only holds what this copy made; still, never follow a symlink.
    return OpenBeneath(root_, parent, O_RDONLY | O_DIRECTORY, "the new layer");
  }
  Status Own(int fd, const char* name, int flags, const struct stat& st) {
    uid_t uid = policy_.owner ? policy_.owner->uid : st.st_uid;
    gid_t gid = policy_.owner ? policy_.owner->gid : st.st_gid;
    if (::geteuid() != 0) return Status::Ok();
    if (::fchownat(fd, name, uid, gid, flags) != 0) return ErrnoError("chown in the new layer");
    return Status::Ok();
  }

  int root_;
  const CopyPolicy& policy_;
  std::string made_dir_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;  // source inode -> first copy
};

// Copies a layer cache dir onto a flattened tree, applying whiteouts and opaque dirs.
Status ApplyLayer(const std::string& src, const std::string& dst);

}  // namespace barge::oci::detail
