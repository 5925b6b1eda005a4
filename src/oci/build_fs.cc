#include "oci/detail/build_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>

#include "base/file_util.h"

namespace barge::oci::detail {

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> out;
  ForEachComponent(path, [&](std::string_view c) {
    if (c != "..") {
      out.emplace_back(c);
    } else if (!out.empty()) {
      out.pop_back();
    }
    return true;
  });
  return out;
}

bool ClimbsAboveRoot(std::string_view path) {
  int depth = 0;
  return !ForEachComponent(path, [&](std::string_view c) {
    depth += c == ".." ? -1 : 1;
    return depth >= 0;
  });
}

std::vector<std::string> ListDir(int dirfd) {
  std::vector<std::string> names;
  DIR* d = ::fdopendir(::fcntl(dirfd, F_DUPFD_CLOEXEC, 0));
  if (d == nullptr) return names;
  ::rewinddir(d);
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool IsWhiteout(const struct stat& st) {
  return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

bool IsOpaque(const std::string& path) {
  char v[4] = {};
  return ::getxattr(path.c_str(), kOpaqueXattr, v, sizeof v) == 1 && v[0] == 'y';
}

bool AllDigits(const std::string& s) {
  return !s.empty() && s.size() < 10 && std::all_of(s.begin(), s.end(), ::isdigit);
}

Result<Ids> ResolveUser(const MergedView& view, const std::string& spec, bool want_groups) {
  Ids ids;
  if (spec.empty()) return ids;
  std::string user = spec.substr(0, spec.find(':'));
  std::string group = spec.find(':') == std::string::npos ? "" : spec.substr(spec.find(':') + 1);
  auto table = [&](const char* file) {
    std::vector<std::vector<std::string>> rows;
    Result<std::string> text = view.ReadFile(file);
    if (!text.ok()) return rows;
    size_t pos = 0;
    while (pos < text->size()) {
      size_t end = text->find('\n', pos);
      if (end == std::string::npos) end = text->size();
      std::string line = text->substr(pos, end - pos);
      pos = end + 1;
      std::vector<std::string> fields;
      size_t s = 0;
      for (;;) {
        size_t c = line.find(':', s);
        fields.push_back(line.substr(s, c == std::string::npos ? std::string::npos : c - s));
        if (c == std::string::npos) break;
        s = c + 1;
      }
      if (fields.size() >= 4) rows.push_back(std::move(fields));
    }
    return rows;
  };
  auto passwd = table("/etc/passwd");
  bool found = false;
  for (const auto& row : passwd) {
    if (row[0] == user || (AllDigits(user) && row[2] == user)) {
      if (!AllDigits(row[2])) {
        return InvalidArgument(fmt::format(
            "the image's /etc/passwd gives user '{}' the uid '{}', which is not a number", row[0],
            row[2]));
      }
      ids.uid = static_cast<uid_t>(std::stoul(row[2]));
      ids.gid = AllDigits(row[3]) ? static_cast<gid_t>(std::stoul(row[3])) : 0;
      found = true;
      break;
    }
  }
  if (!found) {
    if (!AllDigits(user))
      return NotFound(fmt::format("user '{}' is not in the image's /etc/passwd", user));
    ids.uid = static_cast<uid_t>(std::stoul(user));
    ids.gid = ids.uid == 0 ? 0 : ids.uid;
  }
  auto groups = table("/etc/group");
  if (!group.empty()) {
    if (AllDigits(group)) {
      ids.gid = static_cast<gid_t>(std::stoul(group));
    } else {
      bool ok = false;
      for (const auto& row : groups) {
        if (row[0] == group && AllDigits(row[2])) {
          ids.gid = static_cast<gid_t>(std::stoul(row[2]));
          ok = true;
        }
      }
      if (!ok) return NotFound(fmt::format("group '{}' is not in the image's /etc/group", group));
    }
  } else if (want_groups && found) {
    for (const auto& row : groups) {
      std::string members = "," + row[3] + ",";
      if (members.find("," + user + ",") != std::string::npos && AllDigits(row[2]))
        ids.groups.push_back(static_cast<gid_t>(std::stoul(row[2])));
    }
  }
  return ids;
}

Status CopyFileData(int in, int out, const std::string& what) {
  for (;;) {
    ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, 1 << 30, 0);
    if (n > 0) continue;
    if (n == 0) return Status::Ok();
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
      return ErrnoError("copy " + what);
    break;
  }
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read " + what);
    if (n == 0) return Status::Ok();
    RETURN_IF_ERROR(WriteAll(out, std::string_view(buf, static_cast<size_t>(n)), what));
  }
}

void IgnoreRules::Add(std::string pattern) {
  bool negate = !pattern.empty() && pattern[0] == '!';
  if (negate) pattern.erase(0, 1);
  std::string clean = JoinPath(SplitPath(pattern));
  if (!clean.empty()) rules_.push_back({clean, negate});
}

bool IgnoreRules::Match(std::string_view p, std::string_view s) {
  while (!p.empty()) {
    if (p.substr(0, 2) == "**") {
      p.remove_prefix(2);
      if (!p.empty() && p[0] == '/') p.remove_prefix(1);
      if (p.empty()) return true;  // "**" at the end matches everything
      // "(.*/)?": zero or more whole components, then the rest.
      for (size_t i = 0;; ++i) {
        if ((i == 0 || s[i - 1] == '/') && Match(p, s.substr(i))) return true;
        if (i == s.size()) return false;
      }
    }
    char c = p[0];
    if (c == '*') {
      p.remove_prefix(1);
      for (size_t i = 0;; ++i) {
        if (Match(p, s.substr(i))) return true;
        if (i == s.size() || s[i] == '/') return false;
      }
    }
    if (s.empty()) return false;
    if (c == '?') {
      if (s[0] == '/') return false;
    } else if (c == '[') {
      size_t close = p.find(']', 2);
      if (close == std::string_view::npos) {  // no class: a literal '['
        if (s[0] != '[') return false;
      } else {
        std::string cls(p.substr(0, close + 1));
        char one[2] = {s[0], '\0'};
        if (s[0] == '/' || ::fnmatch(cls.c_str(), one, 0) != 0) return false;
        p.remove_prefix(close);
      }
    } else {
      if (c == '\\' && p.size() > 1) {
        p.remove_prefix(1);
        c = p[0];
      }
      if (s[0] != c) return false;
    }
    p.remove_prefix(1);
    s.remove_prefix(1);
  }
  return s.empty();
}

bool IgnoreRules::Excluded(const std::string& rel) const {
  bool excluded = false;
  for (const auto& [pattern, negate] : rules_) {
    // A rule naming a directory covers everything below it.
    std::string_view prefix = rel;
    for (;;) {
      if (Match(pattern, prefix)) {
        excluded = !negate;
        break;
      }
      size_t slash = prefix.rfind('/');
      if (slash == std::string_view::npos) break;
      prefix = prefix.substr(0, slash);
    }
  }
  return excluded;
}

bool IgnoreRules::MayReinclude(const std::string& rel) const {
  std::string dir = rel + "/";
  for (const auto& [pattern, negate] : rules_) {
    if (!negate) continue;
    // Without '**' a pattern matches paths of exactly its number of components ('*', '?' and
    // classes never match '/'): it must have more than `rel`.
    if (pattern.find("**") == std::string::npos &&
        std::count(pattern.begin(), pattern.end(), '/') < std::count(dir.begin(), dir.end(), '/'))
      continue;
    // The literal start of the pattern, before any wildcard, must agree with `dir`.
    std::string_view literal(pattern);
    literal = literal.substr(0, literal.find_first_of("*?[\\"));
    size_t n = std::min(literal.size(), dir.size());
    if (literal.substr(0, n) == std::string_view(dir).substr(0, n)) return true;
  }
  return false;
}

namespace {

// Whether anything below the directory `name` (at `rel` in the context) is not excluded.
bool HasIncluded(int parent_fd, const std::string& name, const std::string& rel,
                 const IgnoreRules& ignore) {
  int dfd = ::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) return false;
  UniqueFd dir(dfd);
  for (const std::string& child : ListDir(dir.get())) {
    std::string child_rel = rel + "/" + child;
    if (!ignore.Excluded(child_rel)) return true;
    if (ignore.MayReinclude(child_rel) && HasIncluded(dir.get(), child, child_rel, ignore))
      return true;
  }
  return false;
}

}  // namespace

Status WalkSource(int fd, const struct stat& st, const std::string& ctx_rel,
                  const std::string& dest, const CopyPolicy& policy, TreeVisitor& v) {
  if (S_ISREG(st.st_mode)) return v.File(fd, st, dest);
  if (S_ISFIFO(st.st_mode)) return v.Fifo(st, dest);
  if (!S_ISDIR(st.st_mode)) return Status::Ok();
  RETURN_IF_ERROR(v.Dir(st, dest));
  for (const std::string& name : ListDir(fd)) {
    std::string child_rel = ctx_rel.empty() ? name : ctx_rel + "/" + name;
    bool excluded = policy.ignore != nullptr && policy.ignore->Excluded(child_rel);
    struct stat cst {};
    if (!excluded || policy.ignore->MayReinclude(child_rel)) {
      if (::fstatat(fd, name.c_str(), &cst, AT_SYMLINK_NOFOLLOW) != 0)
        return ErrnoError("stat " + child_rel);
    }
    // An excluded directory is still entered when a '!' rule re-includes something below it;
    // it is then created as the parent of what is kept.
    if (excluded && !(S_ISDIR(cst.st_mode) && policy.ignore->MayReinclude(child_rel) &&
                      HasIncluded(fd, name, child_rel, *policy.ignore)))
      continue;
    std::string child_dest = dest.empty() ? name : dest + "/" + name;
    if (S_ISLNK(cst.st_mode)) {
      std::string target(PATH_MAX, '\0');
      ssize_t n = ::readlinkat(fd, name.c_str(), target.data(), target.size());
      if (n < 0) return ErrnoError("readlink " + child_rel);
      target.resize(static_cast<size_t>(n));
      RETURN_IF_ERROR(v.Symlink(target, cst, child_dest));
      continue;
    }
    if (S_ISFIFO(cst.st_mode)) {
      RETURN_IF_ERROR(v.Fifo(cst, child_dest));
      continue;
    }
    if (!S_ISREG(cst.st_mode) && !S_ISDIR(cst.st_mode)) continue;
    int cfd = ::openat(fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (cfd < 0) return ErrnoError("open " + child_rel);
    UniqueFd child(cfd);
    RETURN_IF_ERROR(WalkSource(child.get(), cst, child_rel, child_dest, policy, v));
  }
  return Status::Ok();
}

// Copies a cache layer dir onto a flattened tree, applying whiteouts and opaque dirs.
Status ApplyLayer(const std::string& src, const std::string& dst) {
  struct stat st {};
  if (::lstat(src.c_str(), &st) != 0) return ErrnoError("stat " + src);
  if (IsOpaque(src) && PathExists(dst)) {
    RETURN_IF_ERROR(RemoveTree(dst));
  }
  if (!PathExists(dst)) {
    if (::mkdir(dst.c_str(), st.st_mode & 07777) != 0) return ErrnoError("mkdir " + dst);
    ::lchown(dst.c_str(), st.st_uid, st.st_gid);
  }
  int dfd = ::open(src.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) return ErrnoError("open " + src);
  UniqueFd dir(dfd);
  for (const std::string& name : ListDir(dir.get())) {
    std::string s = src + "/" + name, d = dst + "/" + name;
    struct stat cst {};
    if (::lstat(s.c_str(), &cst) != 0) return ErrnoError("stat " + s);
    struct stat dst_st {};
    bool exists = ::lstat(d.c_str(), &dst_st) == 0;
    if (IsWhiteout(cst)) {
      RETURN_IF_ERROR(RemoveTree(d));
      continue;
    }
    if (S_ISDIR(cst.st_mode)) {
      if (exists && !S_ISDIR(dst_st.st_mode)) ::unlink(d.c_str());
      RETURN_IF_ERROR(ApplyLayer(s, d));
      continue;
    }
    if (exists) RETURN_IF_ERROR(RemoveTree(d));
    if (S_ISLNK(cst.st_mode)) {
      std::string target(PATH_MAX, '\0');
      ssize_t n = ::readlink(s.c_str(), target.data(), target.size());
      if (n < 0) return ErrnoError("readlink " + s);
      target.resize(static_cast<size_t>(n));
      if (::symlink(target.c_str(), d.c_str()) != 0) return ErrnoError("symlink " + d);
      ::lchown(d.c_str(), cst.st_uid, cst.st_gid);
    } else if (S_ISREG(cst.st_mode)) {
      ASSIGN_OR_RETURN(UniqueFd in, OpenFile(s, O_RDONLY | O_NOFOLLOW));
      ASSIGN_OR_RETURN(UniqueFd out, OpenFile(d, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
      RETURN_IF_ERROR(CopyFileData(in.get(), out.get(), d));
      ::fchown(out.get(), cst.st_uid, cst.st_gid);
      ::fchmod(out.get(), cst.st_mode & 07777);
      struct timespec times[2] = {cst.st_mtim, cst.st_mtim};
      ::futimens(out.get(), times);
    }
  }
  return Status::Ok();
}

}  // namespace barge::oci::detail
