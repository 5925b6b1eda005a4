// Helpers for oci tests: crafted tar archives built with libarchive, and small file checks.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "barge/status.h"

namespace barge::oci::testing {

struct TarEntry {
  enum Type { kFile, kDir, kSymlink, kHardlink, kCharDev, kBlockDev, kFifo };
  std::string path;
  Type type = kFile;
  std::string data;  // file content
  std::string link;  // symlink or hard link target
  int mode = 0644;
  int uid = 0;
  int gid = 0;
  int major = 0;
  int minor = 0;
  std::map<std::string, std::string> xattrs;
};

enum class Compression { kNone, kGzip, kZstd };

// A tar stream (pax format) with exactly these entries, in this order.
std::string MakeTar(const std::vector<TarEntry>& entries, Compression c = Compression::kNone);

Status WriteString(const std::string& path, const std::string& data);
// Every path below `dir`, relative, sorted ("a", "a/b", ...).
std::vector<std::string> ListTree(const std::string& dir);

// A fake Docker credential helper, DIR/bin/docker-credential-NAME (a sh script): it keeps
// credentials as files DIR/store/SERVER (the JSON `get` answers; '/' and ':' in SERVER as
// '_'), appends "ACTION INPUT" lines to DIR/calls, and when DIR/fail exists prints its text on
// stderr and exits 1. Put DIR/bin first on PATH to use it.
Status WriteFakeCredentialHelper(const std::string& dir, const std::string& name);
// Puts credentials into that helper's store, as its `store` would.
Status KeepInFakeCredentialHelper(const std::string& dir, const std::string& server,
                                  const std::string& username, const std::string& secret);

}  // namespace barge::oci::testing
