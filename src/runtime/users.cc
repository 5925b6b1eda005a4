#include "runtime/users.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace barge::runtime::detail {
namespace {

// Reads a small file into `buf` (NUL-terminated); a missing file reads as empty, and so does
// anything but a regular file: the image controls the path, and the child reads it with full
// capabilities before barge watches it, so a FIFO or /proc/kmsg must neither block nor be
// consumed (O_NONBLOCK, then fstat).
void ReadSmallFile(const char* path, char* buf, size_t size) {
  buf[0] = '\0';
  int fd = ::open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return;
  }
  size_t used = 0;
  while (used + 1 < size) {
    ssize_t n = ::read(fd, buf + used, size - 1 - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += static_cast<size_t>(n);
  }
  buf[used] = '\0';
  ::close(fd);
}

// Splits a line of colon-separated fields in place; returns the field count.
int SplitFields(char* line, char** fields, int max) {
  int n = 0;
  fields[n++] = line;
  for (char* p = line; *p != '\0' && n < max; ++p) {
    if (*p == ':') {
      *p = '\0';
      fields[n++] = p + 1;
    }
  }
  return n;
}

bool ParseId(const char* text, unsigned* out) {
  if (*text == '\0') return false;
  char* end = nullptr;
  unsigned long v = std::strtoul(text, &end, 10);
  if (*end != '\0' || v > 0xFFFFFFFEul) return false;
  *out = static_cast<unsigned>(v);
  return true;
}

// Big enough for the passwd and group files of ordinary images; longer files are truncated.
char g_passwd[1 << 16];
char g_group[1 << 16];
// The group named by -u, kept for the error message (which is formatted after ResolveUser
// returned, when its own buffers are gone).
char g_group_name[256];

}  // namespace

bool ResolveUser(const char* spec, ResolvedUser* out, ChildFailure* f) {
  char user[256];
  strncpy(user, spec, sizeof user - 1);
  user[sizeof user - 1] = '\0';
  char group_buf[256];
  char* group = nullptr;
  if (char* colon = strchr(user, ':'); colon != nullptr) {
    *colon = '\0';
    strncpy(group_buf, colon + 1, sizeof group_buf - 1);
    group_buf[sizeof group_buf - 1] = '\0';
    group = group_buf;
  }
  // An empty part is the default, as runc reads "0:" and ":0": root, and the user's own group.
  if (group != nullptr && group[0] == '\0') group = nullptr;
  if (user[0] == '\0') strcpy(user, "0");

  ReadSmallFile("/etc/passwd", g_passwd, sizeof g_passwd);
  unsigned uid = 0;
  bool numeric = ParseId(user, &uid);
  bool found = false;
  char user_name[128] = "";
  for (char* line = strtok(g_passwd, "\n"); line != nullptr; line = strtok(nullptr, "\n")) {
    char* fields[7];
    if (SplitFields(line, fields, 7) < 7) continue;
    unsigned line_uid = 0;
    if (!ParseId(fields[2], &line_uid)) continue;
    if (numeric ? line_uid != uid : strcmp(fields[0], user) != 0) continue;
    uid = line_uid;
    unsigned gid = 0;
    if (ParseId(fields[3], &gid)) out->gid = gid;
    strncpy(out->home, fields[5], sizeof out->home - 1);
    strncpy(user_name, fields[0], sizeof user_name - 1);
    found = true;
    break;
  }
  if (!numeric && !found) return Fail(f, "no such user in the container's /etc/passwd:", spec, 0);
  out->uid = uid;

  ReadSmallFile("/etc/group", g_group, sizeof g_group);
  bool group_found = group == nullptr;
  unsigned gid = 0;
  bool group_numeric = group != nullptr && ParseId(group, &gid);
  if (group_numeric) {
    out->gid = gid;
    group_found = true;
  }
  for (char* line = strtok(g_group, "\n"); line != nullptr; line = strtok(nullptr, "\n")) {
    char* fields[4];
    if (SplitFields(line, fields, 4) < 4) continue;
    unsigned line_gid = 0;
    if (!ParseId(fields[2], &line_gid)) continue;
    if (group != nullptr && !group_numeric && strcmp(fields[0], group) == 0) {
      out->gid = line_gid;
      group_found = true;
    }
    if (user_name[0] != '\0' && out->group_count < 64) {
      // members: comma-separated names
      for (char* m = fields[3]; *m != '\0';) {
        char* comma = strchr(m, ',');
        size_t len = comma != nullptr ? static_cast<size_t>(comma - m) : strlen(m);
        if (len == strlen(user_name) && strncmp(m, user_name, len) == 0) {
          out->groups[out->group_count++] = line_gid;
          break;
        }
        if (comma == nullptr) break;
        m = comma + 1;
      }
    }
  }
  // The primary group is also a supplementary one, as with Docker.
  if (out->group_count < 64) {
    bool listed = false;
    for (int i = 0; i < out->group_count; ++i) listed = listed || out->groups[i] == out->gid;
    if (!listed) {
      for (int i = out->group_count; i > 0; --i) out->groups[i] = out->groups[i - 1];
      out->groups[0] = out->gid;
      ++out->group_count;
    }
  }
  if (!group_found) {
    strncpy(g_group_name, group, sizeof g_group_name - 1);
    return Fail(f, "no such group in the container's /etc/group:", g_group_name, 0);
  }
  return true;
}

// Raw system calls, not glibc's wrappers: the child comes from a raw clone of a multithreaded
// barge, so glibc still lists the parent's threads, and its wrappers would hand the change to each
// of them (setxid), waiting forever on one that was being created at the clone.
bool SwitchUser(const ResolvedUser& user, ChildFailure* f) {
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0)
    return Fail(f, "keep capabilities", nullptr, errno);
  if (::syscall(SYS_setgroups, static_cast<size_t>(user.group_count), user.groups) != 0) {
    return Fail(f, "setgroups", nullptr, errno);
  }
  if (::syscall(SYS_setresgid, user.gid, user.gid, user.gid) != 0) {
    return Fail(f, "setgid", nullptr, errno);
  }
  if (::syscall(SYS_setresuid, user.uid, user.uid, user.uid) != 0) {
    return Fail(f, "setuid", nullptr, errno);
  }
  return true;
}

}  // namespace barge::runtime::detail
