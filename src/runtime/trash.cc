#include "runtime/trash.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <thread>
#include <vector>

#include "base/file_util.h"
#include "base/unique_fd.h"

namespace barge::runtime {
namespace {

class Heap {
 public:
  static Result<Heap> Open(const std::string& dir) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoError("mkdir " + dir);
    ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(dir, O_RDONLY | O_DIRECTORY));
    Heap heap;
    heap.dir_ = dir;
    heap.fd_ = std::move(fd);
    return heap;
  }

  // Moves the entry `name` of the directory `parent_fd` into the heap under a name of its own.
  Status Add(int parent_fd, const std::string& name, const std::string& path) {
    static std::atomic<unsigned long> sequence{0};
    for (;;) {
      char unique[64];
      std::snprintf(unique, sizeof unique, "%d-%lu", ::getpid(), sequence.fetch_add(1));
      if (::renameat2(parent_fd, name.c_str(), fd_.get(), unique, RENAME_NOREPLACE) == 0) {
        return Status::Ok();
      }
      if (errno != EEXIST) return ErrnoError("move " + path + " to " + dir_);
    }
  }

  // Removes every entry (an empty directory), kHeapThreads at once; with `only_if_full`,
  // only once there are kHeapBatch of them. Entries another process removes meanwhile are
  // skipped.
  Status Drain(bool only_if_full) {
    std::vector<std::string> names;
    {
      ASSIGN_OR_RETURN(UniqueFd list_fd, OpenFile(dir_, O_RDONLY | O_DIRECTORY));
      DIR* d = ::fdopendir(list_fd.get());
      if (d == nullptr) return ErrnoError("opendir " + dir_);
      (void)list_fd.Release();
      while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(std::move(n));
      }
      ::closedir(d);
    }
    if (only_if_full && names.size() < kHeapBatch) return Status::Ok();
    std::atomic<size_t> next{0};
    std::atomic<int> first_errno{0};
    auto worker = [&] {
      for (size_t i; (i = next.fetch_add(1)) < names.size();) {
        if (::unlinkat(fd_.get(), names[i].c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) {
          continue;
        }
        int zero = 0;
        first_errno.compare_exchange_strong(zero, errno);
      }
    };
    std::vector<std::thread> threads;
    size_t count = std::min(names.size(), kHeapThreads);
    for (size_t t = 1; t < count; ++t) threads.emplace_back(worker);
    worker();
    for (std::thread& t : threads) t.join();
    if (first_errno != 0) return ErrnoError("empty " + dir_, first_errno);
    return Status::Ok();
  }

 private:
  std::string dir_;
  UniqueFd fd_;
};

// Moves the entry `name` of `parent_fd` (whose path is `path`) into the heap, its contents first.
Status Flatten(int parent_fd, const std::string& name, const std::string& path, dev_t dev,
               Heap& heap) {
  struct stat st {};
  if (::fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return ErrnoError("stat " + path);
  }
  if (!S_ISDIR(st.st_mode)) {
    // Files are removed at once: their space matters, and the small ones (the container's
    // state) are usually still in the page cache, with no block on disk yet to free.
    if (::unlinkat(parent_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
      return ErrnoError("unlink " + path);
    }
    return Status::Ok();
  }
  if (st.st_dev != dev) {
    return IoError("refusing to remove " + path + ": it is a mount point (unmount it first)");
  }
  // A directory the container made unreadable (0000) is opened up first, as RemoveTree does.
  if ((st.st_mode & 0700) != 0700 && ::geteuid() == st.st_uid) {
    (void)::fchmodat(parent_fd, name.c_str(), (st.st_mode & 07777) | 0700, 0);
  }
  int raw = ::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (raw < 0) return ErrnoError("open " + path);
  UniqueFd dir_fd(raw);
  std::vector<std::string> names;
  {
    int list = ::dup(dir_fd.get());
    DIR* d = list < 0 ? nullptr : ::fdopendir(list);
    if (d == nullptr) {
      if (list >= 0) ::close(list);
      return ErrnoError("opendir " + path);
    }
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(std::move(n));
    }
    ::closedir(d);
  }
  for (const std::string& n : names) {
    RETURN_IF_ERROR(Flatten(dir_fd.get(), n, path + "/" + n, dev, heap));
  }
  return heap.Add(parent_fd, name, path);
}

}  // namespace

Status RemoveTreeThroughHeap(const std::string& path, const std::string& heap_dir) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return ErrnoError("stat " + path);
  }
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos || slash == 0) return InvalidArgument("not removable: " + path);
  std::string parent = path.substr(0, slash);
  ASSIGN_OR_RETURN(UniqueFd parent_fd, OpenFile(parent, O_RDONLY | O_DIRECTORY));
  struct stat pst {};
  if (::fstat(parent_fd.get(), &pst) != 0) return ErrnoError("stat " + parent);
  ASSIGN_OR_RETURN(Heap heap, Heap::Open(heap_dir));
  RETURN_IF_ERROR(Flatten(parent_fd.get(), path.substr(slash + 1), path, pst.st_dev, heap));
  return heap.Drain(/*only_if_full=*/true);
}

Status EmptyHeap(const std::string& heap_dir) {
  if (!PathExists(heap_dir)) return Status::Ok();
  ASSIGN_OR_RETURN(Heap heap, Heap::Open(heap_dir));
  return heap.Drain(/*only_if_full=*/false);
}

}  // namespace barge::runtime
