#include "oci/test_util.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cassert>

#include "base/file_util.h"

namespace barge::oci::testing {

std::string MakeTar(const std::vector<TarEntry>& entries, Compression c) {
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (c == Compression::kGzip) archive_write_add_filter_gzip(a);
  if (c == Compression::kZstd) archive_write_add_filter_zstd(a);
  archive_write_set_bytes_in_last_block(a, 1);
  std::string out;
  archive_write_open(
      a, &out, nullptr,
      [](struct archive*, void* p, const void* buf, size_t n) -> la_ssize_t {
        static_cast<std::string*>(p)->append(static_cast<const char*>(buf), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  for (const TarEntry& t : entries) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, t.path.c_str());
    archive_entry_set_perm(e, static_cast<mode_t>(t.mode));
    archive_entry_set_uid(e, t.uid);
    archive_entry_set_gid(e, t.gid);
    archive_entry_set_mtime(e, 1700000000, 0);
    switch (t.type) {
      case TarEntry::kFile:
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, static_cast<la_int64_t>(t.data.size()));
        break;
      case TarEntry::kDir:
        archive_entry_set_filetype(e, AE_IFDIR);
        break;
      case TarEntry::kSymlink:
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_symlink(e, t.link.c_str());
        break;
      case TarEntry::kHardlink:
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_hardlink(e, t.link.c_str());
        archive_entry_set_size(e, 0);
        break;
      case TarEntry::kCharDev:
      case TarEntry::kBlockDev:
        archive_entry_set_filetype(e, t.type == TarEntry::kCharDev ? AE_IFCHR : AE_IFBLK);
        archive_entry_set_rdev(e, makedev(t.major, t.minor));
        break;
      case TarEntry::kFifo:
        archive_entry_set_filetype(e, AE_IFIFO);
        break;
    }
    for (const auto& [k, v] : t.xattrs)
      archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    [[maybe_unused]] int rc = archive_write_header(a, e);
    assert(rc == ARCHIVE_OK || rc == ARCHIVE_WARN);  // WARN: a non-ASCII name, written raw
    if (t.type == TarEntry::kFile && !t.data.empty())
      archive_write_data(a, t.data.data(), t.data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

Status WriteString(const std::string& path, const std::string& data) {
  return WriteFile(path, data);
}

namespace {
void Walk(const std::string& dir, const std::string& rel, std::vector<std::string>& out) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    std::string r = rel.empty() ? n : rel + "/" + n;
    out.push_back(r);
    struct stat st {};
    if (::lstat((dir + "/" + n).c_str(), &st) == 0 && S_ISDIR(st.st_mode))
      Walk(dir + "/" + n, r, out);
  }
  ::closedir(d);
}
}  // namespace

std::vector<std::string> ListTree(const std::string& dir) {
  std::vector<std::string> out;
  Walk(dir, "", out);
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

std::string StoreKey(std::string server) {
  for (char& c : server) c = (c == '/' || c == ':') ? '_' : c;
  return server;
}

}  // namespace

Status WriteFakeCredentialHelper(const std::string& dir, const std::string& name) {
  RETURN_IF_ERROR(MakeDirs(dir + "/bin"));
  RETURN_IF_ERROR(MakeDirs(dir + "/store"));
  std::string script = "#!/bin/sh\nd='" + dir + R"sh('
input=$(cat)
echo "$1 $input" >> "$d/calls"
if [ -e "$d/fail" ]; then cat "$d/fail" >&2; exit 1; fi
case "$1" in
get|erase) key=$(printf %s "$input" | tr '/:' '__') ;;
store) key=$(printf %s "$input" | sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p' | tr '/:' '__') ;;
*) echo "unknown action $1"; exit 1 ;;
esac
if [ "$1" = store ]; then printf %s "$input" > "$d/store/$key"; exit 0; fi
if [ ! -e "$d/store/$key" ]; then echo "credentials not found in native keychain"; exit 1; fi
if [ "$1" = get ]; then cat "$d/store/$key"; else rm "$d/store/$key"; fi
)sh";
  std::string path = dir + "/bin/docker-credential-" + name;
  RETURN_IF_ERROR(WriteFile(path, script));
  if (::chmod(path.c_str(), 0755) != 0) return ErrnoError("chmod " + path);
  return Status::Ok();
}

Status KeepInFakeCredentialHelper(const std::string& dir, const std::string& server,
                                  const std::string& username, const std::string& secret) {
  std::string json = "{\"ServerURL\":\"" + server + "\",\"Username\":\"" + username +
                     "\",\"Secret\":\"" + secret + "\"}";
  return WriteFile(dir + "/store/" + StoreKey(server), json);
}

}  // namespace barge::oci::testing
