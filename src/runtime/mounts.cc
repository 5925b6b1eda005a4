#include "runtime/mounts.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

namespace barge::runtime {
namespace {

// Overlay options are passed in one page.
constexpr size_t kMaxMountData = 4000;

bool HasBadOverlayChar(const std::string& path) {
  return path.find_first_of(":,\n") != std::string::npos;
}

bool IsAbsoluteClean(const std::string& path) {
  if (path.empty() || path[0] != '/') return false;
  // No "." or ".." components: destinations are resolved inside the container.
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

Status AddBind(MountPlan& plan, const std::string& source, const std::string& destination,
               bool read_only) {
  if (plan.binds.size() >= MountPlan::kMaxBinds) {
    return InvalidArgument("too many bind mounts: at most " + std::to_string(MountPlan::kMaxBinds) +
                           ", /etc/hosts, /etc/hostname and /etc/resolv.conf included; " +
                           destination + " is one too many");
  }
  struct stat st {};
  if (::stat(source.c_str(), &st) != 0) return ErrnoError("bind mount source " + source);
  MountPlan::Bind bind;
  bind.source = source;
  bind.is_dir = S_ISDIR(st.st_mode);
  bind.destination = destination;
  bind.read_only = read_only;
  plan.binds.push_back(std::move(bind));
  return Status::Ok();
}

}  // namespace

Result<MountPlan> PlanMounts(const ContainerSpec& spec) {
  MountPlan plan;
  if (spec.lower_dirs.empty()) return InvalidArgument("container has no root file system layers");
  for (const std::string* dir : {&spec.upper_dir, &spec.work_dir, &spec.rootfs_dir}) {
    if (dir->empty() || (*dir)[0] != '/') {
      return InvalidArgument("container directories must be absolute paths, got '" + *dir + "'");
    }
  }
  // Top layer first, as overlayfs lists them. A layer that appears more than once (images with
  // repeated identical layers, such as the empty layer of every `RUN true`) is listed once, at
  // its topmost place: overlayfs refuses a lower dir listed twice (ELOOP), and the topmost copy
  // decides every path the layer holds, so the merged tree is the same.
  std::vector<std::string> top_first;
  std::set<std::pair<dev_t, ino_t>> seen;
  for (auto it = spec.lower_dirs.rbegin(); it != spec.lower_dirs.rend(); ++it) {
    if (HasBadOverlayChar(*it)) return InvalidArgument("layer path has ':' or ',': " + *it);
    struct stat st {};
    if (::stat(it->c_str(), &st) != 0) return ErrnoError("stat layer " + *it);
    if (!S_ISDIR(st.st_mode)) return InvalidArgument("layer is not a directory: " + *it);
    if (seen.insert({st.st_dev, st.st_ino}).second) top_first.push_back(*it);
  }
  std::string lowers;
  for (const std::string& dir : top_first) lowers += (lowers.empty() ? "" : ":") + dir;
  if (HasBadOverlayChar(spec.upper_dir) || HasBadOverlayChar(spec.work_dir)) {
    return InvalidArgument("container directory has ':' or ',': " + spec.upper_dir + " or " +
                           spec.work_dir);
  }
  plan.rootfs = spec.rootfs_dir;
  std::string tail = ",upperdir=" + spec.upper_dir + ",workdir=" + spec.work_dir;
  plan.overlay_data = "lowerdir=" + lowers + tail;
  if (plan.overlay_data.size() > kMaxMountData) {
    // Many layers: name them relative to their common parent (the layer store) and mount from
    // there, as crun does.
    std::string parent = spec.lower_dirs[0].substr(0, spec.lower_dirs[0].find_last_of('/'));
    std::string relative;
    for (const std::string& dir : top_first) {
      if (dir.compare(0, parent.size() + 1, parent + "/") != 0) {
        return InvalidArgument("too many layers for one overlay mount");
      }
      relative += (relative.empty() ? "" : ":") + dir.substr(parent.size() + 1);
    }
    plan.overlay_data = "lowerdir=" + relative + tail;
    plan.overlay_chdir = parent;
    if (plan.overlay_data.size() > kMaxMountData) {
      return InvalidArgument("too many layers for one overlay mount");
    }
  }

  if (!spec.hosts_file.empty())
    RETURN_IF_ERROR(AddBind(plan, spec.hosts_file, "/etc/hosts", false));
  if (!spec.hostname_file.empty()) {
    RETURN_IF_ERROR(AddBind(plan, spec.hostname_file, "/etc/hostname", false));
  }
  if (!spec.resolv_conf_file.empty()) {
    RETURN_IF_ERROR(AddBind(plan, spec.resolv_conf_file, "/etc/resolv.conf", false));
  }
  for (const MountSpec& m : spec.mounts) {
    if (!IsAbsoluteClean(m.destination) || m.destination == "/") {
      return InvalidArgument("mount destination must be an absolute path below /, got '" +
                             m.destination + "'");
    }
    if (m.destination.size() >= PATH_MAX / 2) {
      return InvalidArgument("mount destination too long: " + m.destination.substr(0, 64) + "...");
    }
    if (m.kind == MountSpec::Kind::kTmpfs) {
      MountPlan::Tmpfs t;
      t.destination = m.destination;
      t.flags = MS_NOSUID | MS_NODEV | (m.no_exec ? MS_NOEXEC : 0) | (m.read_only ? MS_RDONLY : 0);
      bool has_mode = ("," + m.tmpfs_options).find(",mode=") != std::string::npos;
      t.data = has_mode ? m.tmpfs_options
                        : "mode=1777" + (m.tmpfs_options.empty() ? "" : "," + m.tmpfs_options);
      if (t.data.size() > kMaxMountData) {
        return InvalidArgument("tmpfs options of " + m.destination +
                               " too long: " + std::to_string(t.data.size()) + " bytes, at most " +
                               std::to_string(kMaxMountData));
      }
      plan.tmpfs.push_back(std::move(t));
    } else {
      if (m.source.empty() || m.source[0] != '/') {
        return InvalidArgument("bind mount source must be an absolute path, got '" + m.source +
                               "'");
      }
      RETURN_IF_ERROR(AddBind(plan, m.source, m.destination, m.read_only));
    }
  }
  plan.read_only_root = spec.read_only_root;
  // sysfs belongs to a network namespace; with the host's network Docker still mounts it read-only.
  plan.mount_sysfs = true;
  return plan;
}

Status RemoveCreatedMountPoints(const ContainerSpec& spec) {
  std::vector<std::string> candidates = {"/proc", "/dev", "/sys"};
  if (!spec.hosts_file.empty()) candidates.push_back("/etc/hosts");
  if (!spec.hostname_file.empty()) candidates.push_back("/etc/hostname");
  if (!spec.resolv_conf_file.empty()) candidates.push_back("/etc/resolv.conf");
  for (const MountSpec& m : spec.mounts) candidates.push_back(m.destination);
  auto in_a_lower = [&](const std::string& path) {
    for (const std::string& lower : spec.lower_dirs) {
      struct stat st {};
      if (::lstat((lower + path).c_str(), &st) == 0) return true;  // a whiteout counts too
    }
    return false;
  };
  int raw_upper = ::open(spec.upper_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (raw_upper < 0) return ErrnoError("open " + spec.upper_dir);
  UniqueFd upper(raw_upper);
  for (std::string path : candidates) {
    // The path and then each parent, while it is an empty leftover of ours.
    while (!path.empty() && path != "/") {
      std::string in_upper = spec.upper_dir + path;
      size_t slash = path.find_last_of('/');
      // The command may have replaced a parent with a symlink (to a host path, as seen from
      // here): the parent is opened without following any, and the entry used relative to it.
      std::string parent_path = slash == 0 ? "." : path.substr(1, slash - 1);
      std::string name = path.substr(slash + 1);
      open_how how{};
      how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
      how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
      int raw_parent = static_cast<int>(
          ::syscall(SYS_openat2, upper.get(), parent_path.c_str(), &how, sizeof how));
      if (raw_parent < 0) break;  // gone, or no longer a plain directory: leave it
      UniqueFd parent(raw_parent);
      struct stat st {};
      if (::fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || in_a_lower(path))
        break;
      if (S_ISDIR(st.st_mode)) {
        if (::unlinkat(parent.get(), name.c_str(), AT_REMOVEDIR) != 0) {
          if (errno == ENOTEMPTY || errno == EEXIST) break;  // the command put something there
          return ErrnoError("remove mount point " + in_upper);
        }
      } else if (S_ISREG(st.st_mode) && st.st_size == 0) {
        if (::unlinkat(parent.get(), name.c_str(), 0) != 0) {
          return ErrnoError("remove mount point " + in_upper);
        }
      } else {
        break;
      }
      path = path.substr(0, slash);
    }
  }
  return Status::Ok();
}

namespace detail {
namespace {

constexpr unsigned long kNoSuidDevExec = MS_NOSUID | MS_NODEV | MS_NOEXEC;

bool Mount(const char* source, const char* target, const char* fstype, unsigned long flags,
           const char* data, const char* what, ChildFailure* f) {
  if (::mount(source, target, fstype, flags, data) != 0) return Fail(f, what, target, errno);
  return true;
}

bool MakeDir(const char* path, mode_t mode, ChildFailure* f) {
  if (::mkdir(path, mode) != 0 && errno != EEXIST) return Fail(f, "mkdir", path, errno);
  return true;
}

// Remounts a bind mount read-only, keeping the flags it already has (a plain MS_RDONLY remount
// would be refused when the source has nosuid/nodev/noexec locked).
bool RemountReadOnly(const char* target, ChildFailure* f) {
  struct statvfs sv {};
  if (::statvfs(target, &sv) != 0) return Fail(f, "statvfs", target, errno);
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY;
  if (sv.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  return Mount(nullptr, target, nullptr, flags, nullptr, "remount read-only", f);
}

struct Device {
  const char* path;
  unsigned major, minor;
};
constexpr Device kDevices[] = {{"/dev/null", 1, 3},   {"/dev/zero", 1, 5},    {"/dev/full", 1, 7},
                               {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};

struct Link {
  const char* target;
  const char* path;
};
constexpr Link kDevLinks[] = {
    {"/proc/self/fd", "/dev/fd"},       {"/proc/self/fd/0", "/dev/stdin"},
    {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"},
    {"/proc/kcore", "/dev/core"},       {"pts/ptmx", "/dev/ptmx"}};

// runc's defaults: hidden (files get /dev/null, directories an empty read-only tmpfs) ...
constexpr const char* kMaskedPaths[] = {"/proc/asound",
                                        "/proc/acpi",
                                        "/proc/kcore",
                                        "/proc/keys",
                                        "/proc/latency_stats",
                                        "/proc/timer_list",
                                        "/proc/timer_stats",
                                        "/proc/sched_debug",
                                        "/proc/scsi",
                                        "/sys/firmware",
                                        "/sys/devices/virtual/powercap"};
// ... and read-only.
constexpr const char* kReadOnlyPaths[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                          "/proc/sysrq-trigger"};

// The container keeps CAP_MKNOD (Docker's default set) but has no device cgroup, so every file
// system it can write to is nodev: a node it makes cannot be opened. /dev itself too: its few
// devices are made while the tmpfs still allows them, each is bound onto itself (a bind mount
// keeps the flags of the mount it was made from), and then the tmpfs becomes nodev.
bool SetUpDev(ChildFailure* f) {
  constexpr const char* kDevData = "mode=755,size=65536k";
  if (!MakeDir("/dev", 0755, f)) return false;
  if (!Mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, kDevData, "mount tmpfs on", f)) {
    return false;
  }
  for (const Device& d : kDevices) {
    if (::mknod(d.path, S_IFCHR | 0666, makedev(d.major, d.minor)) != 0) {
      return Fail(f, "mknod", d.path, errno);
    }
    // mknod applies the umask; the devices must be usable by every user.
    if (::chmod(d.path, 0666) != 0) return Fail(f, "chmod", d.path, errno);
    if (!Mount(d.path, d.path, nullptr, MS_BIND, nullptr, "bind", f)) return false;
  }
  if (!Mount("tmpfs", "/dev", nullptr, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_STRICTATIME, kDevData,
             "remount nodev", f)) {
    return false;
  }
  if (!MakeDir("/dev/pts", 0755, f) || !MakeDir("/dev/shm", 01777, f) ||
      !MakeDir("/dev/mqueue", 0755, f)) {
    return false;
  }
  if (!Mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
             "newinstance,ptmxmode=0666,mode=0620,gid=5", "mount devpts on", f) ||
      !Mount("shm", "/dev/shm", "tmpfs", kNoSuidDevExec, "mode=1777,size=65536k", "mount tmpfs on",
             f) ||
      !Mount("mqueue", "/dev/mqueue", "mqueue", kNoSuidDevExec, nullptr, "mount mqueue on", f)) {
    return false;
  }
  for (const Link& l : kDevLinks) {
    if (::symlink(l.target, l.path) != 0) return Fail(f, "symlink", l.path, errno);
  }
  return true;
}

bool MaskPaths(ChildFailure* f) {
  for (const char* path : kMaskedPaths) {
    struct stat st {};
    if (::stat(path, &st) != 0) continue;  // not on this kernel
    if (S_ISDIR(st.st_mode)) {
      if (!Mount("tmpfs", path, "tmpfs", MS_RDONLY | kNoSuidDevExec, "size=0", "mask", f)) {
        return false;
      }
    } else if (!Mount("/dev/null", path, nullptr, MS_BIND, nullptr, "mask", f)) {
      return false;
    }
  }
  for (const char* path : kReadOnlyPaths) {
    struct stat st {};
    if (::stat(path, &st) != 0) continue;
    if (!Mount(path, path, nullptr, MS_BIND | MS_REC, nullptr, "bind", f) ||
        !RemountReadOnly(path, f)) {
      return false;
    }
  }
  return true;
}

// Creates an empty file (with its parent directories) to bind a file onto.
bool MakeFileInRoot(const char* path, ChildFailure* f) {
  char parent[PATH_MAX];
  size_t n = strnlen(path, sizeof parent - 1);
  memcpy(parent, path, n);
  parent[n] = '\0';
  char* slash = strrchr(parent, '/');
  if (slash != nullptr && slash != parent) {
    *slash = '\0';
    if (!MakeDirsInRoot(parent, f)) return false;
  }
  // O_NONBLOCK: a FIFO the image put there fails (ENXIO) rather than blocking the child.
  int fd = ::open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0644);
  if (fd < 0) {
    if (errno == EISDIR) return Fail(f, "bind a file onto directory", path, EISDIR);
    return Fail(f, "create mount point", path, errno);
  }
  ::close(fd);
  return true;
}

}  // namespace

bool MakeDirsInRoot(const char* path, ChildFailure* f) {
  char buf[PATH_MAX];
  size_t n = strnlen(path, sizeof buf - 1);
  memcpy(buf, path, n);
  buf[n] = '\0';
  for (size_t i = 1; i <= n; ++i) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char saved = buf[i];
    buf[i] = '\0';
    if (::mkdir(buf, 0755) != 0 && errno != EEXIST) return Fail(f, "mkdir", path, errno);
    buf[i] = saved;
  }
  struct stat st {};
  if (::stat(path, &st) != 0) return Fail(f, "stat", path, errno);
  if (!S_ISDIR(st.st_mode)) return Fail(f, "mount directory onto non-directory", path, ENOTDIR);
  return true;
}

namespace {

// Clones each bind source as a detached mount tree while the host's tree is still reachable;
// AttachBinds moves them into place once the container's root is "/". Read-only is set on the
// detached tree, so the container never sees the mount writable.
bool CloneBinds(const MountPlan& plan, int* trees, ChildFailure* f) {
  for (size_t i = 0; i < plan.binds.size(); ++i) {
    const MountPlan::Bind& b = plan.binds[i];
    int fd = static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, b.source.c_str(),
                                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE));
    if (fd < 0) return Fail(f, "clone mount of", b.source.c_str(), errno);
    trees[i] = fd;
    // nodev: the container may make device nodes (CAP_MKNOD), never open them (see SetUpDev).
    mount_attr attr{};
    attr.attr_set = MOUNT_ATTR_NODEV | (b.read_only ? MOUNT_ATTR_RDONLY : 0);
    if (::syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) !=
        0) {
      return Fail(f, b.read_only ? "make read-only and nodev" : "make nodev", b.source.c_str(),
                  errno);
    }
  }
  return true;
}

bool AttachBinds(const MountPlan& plan, const int* trees, ChildFailure* f) {
  for (size_t i = 0; i < plan.binds.size(); ++i) {
    const MountPlan::Bind& b = plan.binds[i];
    const char* dest = b.destination.c_str();
    if (!(b.is_dir ? MakeDirsInRoot(dest, f) : MakeFileInRoot(dest, f))) return false;
    if (::syscall(SYS_move_mount, trees[i], "", AT_FDCWD, dest, MOVE_MOUNT_F_EMPTY_PATH) != 0) {
      return Fail(f, "bind mount onto", dest, errno);
    }
    ::close(trees[i]);
  }
  return true;
}

}  // namespace

bool SetUpRootfs(const MountPlan& plan, ChildFailure* f) {
  // Nothing below may propagate back to the host's mount namespace.
  if (!Mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr, "make private", f)) return false;
  int trees[MountPlan::kMaxBinds];
  if (!CloneBinds(plan, trees, f)) return false;
  if (!plan.overlay_chdir.empty() && ::chdir(plan.overlay_chdir.c_str()) != 0) {
    return Fail(f, "chdir", plan.overlay_chdir.c_str(), errno);
  }
  if (!Mount("overlay", plan.rootfs.c_str(), "overlay", MS_NODEV, plan.overlay_data.c_str(),
             "mount overlay on", f)) {
    return false;
  }
  // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the
  // container's tree, with no path back to the host.
  if (::chdir(plan.rootfs.c_str()) != 0) return Fail(f, "chdir", plan.rootfs.c_str(), errno);
  if (::syscall(SYS_pivot_root, ".", ".") != 0)
    return Fail(f, "pivot_root", plan.rootfs.c_str(), errno);
  if (::umount2(".", MNT_DETACH) != 0) return Fail(f, "detach old root", nullptr, errno);
  if (::chdir("/") != 0) return Fail(f, "chdir", "/", errno);

  if (!MakeDir("/proc", 0555, f) ||
      !Mount("proc", "/proc", "proc", kNoSuidDevExec, nullptr, "mount proc on", f)) {
    return false;
  }
  if (!SetUpDev(f)) return false;
  if (plan.mount_sysfs) {
    if (!MakeDir("/sys", 0555, f) || !Mount("sysfs", "/sys", "sysfs", MS_RDONLY | kNoSuidDevExec,
                                            nullptr, "mount sysfs on", f)) {
      return false;
    }
  }
  if (!AttachBinds(plan, trees, f)) return false;
  for (const MountPlan::Tmpfs& t : plan.tmpfs) {
    const char* dest = t.destination.c_str();
    if (!MakeDirsInRoot(dest, f) ||
        !Mount("tmpfs", dest, "tmpfs", t.flags, t.data.c_str(), "mount tmpfs on", f)) {
      return false;
    }
  }
  return MaskPaths(f);
}

bool FinishRootfs(const MountPlan& plan, ChildFailure* f) {
  if (plan.read_only_root && !RemountReadOnly("/", f)) return false;
  return true;
}

}  // namespace detail
}  // namespace barge::runtime
