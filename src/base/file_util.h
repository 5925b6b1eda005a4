// Small filesystem helpers that report failures as Status with the path and errno.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "barge/status.h"
#include "base/unique_fd.h"

namespace barge {

Result<UniqueFd> OpenFile(const std::string& path, int flags, int mode = 0644);

// Reads a whole file.
Result<std::string> ReadFile(const std::string& path);

// Reads a file a user named (a spec, an env file, a Containerfile): a regular file or a pipe
// (`/dev/stdin`, `<(...)`), at most `max_bytes`. Anything else (a device such as /dev/zero, a
// directory, a socket) and anything longer is refused with an error naming the path and the
// limit, before more than `max_bytes` + 1 bytes are read.
Result<std::string> ReadFileLimited(const std::string& path, size_t max_bytes);

// Opens `path` for reading when it is a regular file or a pipe the user named (`/dev/stdin`,
// `<(...)`, a FIFO); a device such as /dev/zero, a directory or a socket is refused with an error
// naming the path, so that an unbounded reader never starts on it.
Result<UniqueFd> OpenFileOrPipe(const std::string& path);

// The same for a file found rather than named (a build context's .dockerignore, an image's
// /etc/passwd): a pipe there is refused too, since nobody may ever write to it.
Result<std::string> ReadRegularFileLimited(const std::string& path, size_t max_bytes);

// Writes `data` to `path` (truncating).
Status WriteFile(const std::string& path, std::string_view data, int mode = 0644);

// Writes through a temporary file in the same directory, fsyncs, then renames over `path`:
// readers see the old content or the new one, never a torn file.
Status WriteFileAtomic(const std::string& path, std::string_view data, int mode = 0644);

// fsyncs directory `dir`, so that entries created, renamed or removed in it survive a crash.
Status SyncDir(const std::string& dir);

// Writes all of `data` to `fd`, retrying short writes and EINTR.
Status WriteAll(int fd, std::string_view data, std::string_view what);

// mkdir -p.
Status MakeDirs(const std::string& path, int mode = 0755);

bool PathExists(const std::string& path);

// rm -rf that never crosses into another file system: a mount point found inside `path`
// is an error and nothing below it is touched. A missing path is OK.
Status RemoveTree(const std::string& path);

// A directory made with mkdtemp and removed (RemoveTree) when destroyed. Move-only.
class TempDir {
 public:
  static Result<TempDir> Make(std::string_view prefix = "barge-");
  // A temporary directory inside `parent` (which must exist), e.g. on the same file system as
  // the place it will later be renamed to.
  static Result<TempDir> MakeIn(const std::string& parent, std::string_view prefix = ".tmp-");
  TempDir() = default;
  ~TempDir();
  TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Gives up ownership (after the directory was renamed into place); returns the path.
  std::string Release() { return std::exchange(path_, std::string()); }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace barge
