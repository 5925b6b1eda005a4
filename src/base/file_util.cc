#include "base/file_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

namespace barge {

Result<UniqueFd> OpenFile(const std::string& path, int flags, int mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoError("open " + path);
  return UniqueFd(fd);
}

Result<std::string> ReadFile(const std::string& path) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
  std::string out;
  struct stat st {};
  if (::fstat(fd.get(), &st) == 0 && st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

namespace {

// Opens `path` (O_NONBLOCK, so a FIFO nobody writes to cannot hang before the type check) and
// refuses what is neither a regular file nor, when `pipes`, a pipe. A pipe comes back blocking.
Result<UniqueFd> OpenChecked(const std::string& path, bool pipes, struct stat& st) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY | O_NONBLOCK | O_NOCTTY));
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("stat " + path);
  if (S_ISDIR(st.st_mode)) return InvalidArgument(path + " is a directory, not a file");
  if (!pipes && !S_ISREG(st.st_mode)) return InvalidArgument(path + " is not a regular file");
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
    return InvalidArgument(path + " is not a regular file or a pipe");
  }
  if (S_ISFIFO(st.st_mode)) {
    // A pipe opened without blocking reads as empty until a writer comes: open it again, now
    // waiting for the writer, through the descriptor (the same pipe, even if the path changed).
    return OpenFile("/proc/self/fd/" + std::to_string(fd.get()), O_RDONLY);
  }
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return ErrnoError("fcntl " + path);
  }
  return fd;
}

Result<std::string> ReadLimited(const std::string& path, size_t max_bytes, bool pipes) {
  struct stat st {};
  ASSIGN_OR_RETURN(UniqueFd fd, OpenChecked(path, pipes, st));
  if (S_ISREG(st.st_mode) && static_cast<unsigned long long>(st.st_size) > max_bytes) {
    return InvalidArgument(path + " is larger than the limit of " + std::to_string(max_bytes) +
                           " bytes");
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      return InvalidArgument(path + " is larger than the limit of " + std::to_string(max_bytes) +
                             " bytes");
    }
  }
  return out;
}

}  // namespace

Result<UniqueFd> OpenFileOrPipe(const std::string& path) {
  struct stat st {};
  return OpenChecked(path, /*pipes=*/true, st);
}

Result<std::string> ReadFileLimited(const std::string& path, size_t max_bytes) {
  return ReadLimited(path, max_bytes, /*pipes=*/true);
}

Result<std::string> ReadRegularFileLimited(const std::string& path, size_t max_bytes) {
  return ReadLimited(path, max_bytes, /*pipes=*/false);
}

Status WriteAll(int fd, std::string_view data, std::string_view what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(std::string("write ") + std::string(what));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Status WriteFile(const std::string& path, std::string_view data, int mode) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_WRONLY | O_CREAT | O_TRUNC, mode));
  return WriteAll(fd.get(), data, path);
}

Status WriteFileAtomic(const std::string& path, std::string_view data, int mode) {
  std::string tmp = path + ".tmp-XXXXXX";
  int raw = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (raw < 0) return ErrnoError("create temporary file for " + path);
  UniqueFd fd(raw);
  Status st = WriteAll(fd.get(), data, tmp);
  if (st.ok() && ::fchmod(fd.get(), static_cast<mode_t>(mode)) != 0)
    st = ErrnoError("chmod " + tmp);
  if (st.ok() && ::fsync(fd.get()) != 0) st = ErrnoError("fsync " + tmp);
  fd.Reset();
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) st = ErrnoError("rename to " + path);
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

Status SyncDir(const std::string& dir) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY));
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + dir);
  return Status::Ok();
}

Status MakeDirs(const std::string& path, int mode) {
  if (path.empty()) return Status::Ok();
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return Status::Ok();
    return InvalidArgument("mkdir " + path + ": exists and is not a directory");
  }
  size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0)
    RETURN_IF_ERROR(MakeDirs(path.substr(0, slash), mode));
  if (::mkdir(path.c_str(), static_cast<mode_t>(mode)) != 0 && errno != EEXIST) {
    return ErrnoError("mkdir " + path);
  }
  return Status::Ok();
}

bool PathExists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

namespace {

Status RemoveAt(int parent_fd, const std::string& name, const std::string& path, dev_t dev) {
  struct stat st {};
  if (::fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return ErrnoError("stat " + path);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlinkat(parent_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
      return ErrnoError("unlink " + path);
    }
    return Status::Ok();
  }
  if (st.st_dev != dev) {
    return IoError("refusing to remove " + path + ": it is a mount point (unmount it first)");
  }
  // A directory we cannot list (0000) or empty (0555) is opened up first: the tree is ours to
  // remove, as an unpacked image may well contain such directories.
  if ((st.st_mode & 0700) != 0700 && ::geteuid() == st.st_uid)
    (void)::fchmodat(parent_fd, name.c_str(), (st.st_mode & 07777) | 0700, 0);
  int dfd = ::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) return ErrnoError("open " + path);
  DIR* dir = ::fdopendir(dfd);
  if (dir == nullptr) {
    ::close(dfd);
    return ErrnoError("opendir " + path);
  }
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(dir)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  Status result;
  for (const std::string& n : names) {
    result = RemoveAt(::dirfd(dir), n, path + "/" + n, dev);
    if (!result.ok()) break;
  }
  ::closedir(dir);
  RETURN_IF_ERROR(result);
  if (::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return ErrnoError("rmdir " + path);
  }
  return Status::Ok();
}

}  // namespace

Status RemoveTree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return ErrnoError("stat " + path);
  }
  // The device of the top directory's parent is the file system we stay on; a `path` that is
  // itself a mount point is refused too.
  std::string parent = ".";
  std::string name = path;
  size_t slash = path.find_last_of('/');
  if (slash != std::string::npos) {
    parent = slash == 0 ? "/" : path.substr(0, slash);
    name = path.substr(slash + 1);
  }
  struct stat pst {};
  if (::stat(parent.c_str(), &pst) != 0) return ErrnoError("stat " + parent);
  int pfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pfd < 0) return ErrnoError("open " + parent);
  UniqueFd parent_fd(pfd);
  return RemoveAt(parent_fd.get(), name, path, pst.st_dev);
}

Result<TempDir> TempDir::Make(std::string_view prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" +
                     std::string(prefix) + "XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return ErrnoError("mkdtemp " + tmpl);
  return TempDir(std::move(tmpl));
}

Result<TempDir> TempDir::MakeIn(const std::string& parent, std::string_view prefix) {
  std::string tmpl = parent + "/" + std::string(prefix) + "XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return ErrnoError("mkdtemp " + tmpl);
  return TempDir(std::move(tmpl));
}

TempDir::~TempDir() {
  if (!path_.empty()) (void)RemoveTree(path_);
}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    if (!path_.empty()) (void)RemoveTree(path_);
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

}  // namespace barge
