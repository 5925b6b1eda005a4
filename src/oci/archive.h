// Tar layers: safe extraction of (compressed) tar streams and writing a directory tree as a
// tar+gzip layer. libarchive does the tar, gzip and zstd work; this file owns the policy:
// where entries may land, how whiteouts are represented, and how much may be unpacked.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "barge/status.h"

namespace barge::oci {

// Receives bytes produced by a writer (for example a store BlobWriter).
using ByteSink = std::function<Status(std::string_view bytes)>;

enum class WhiteoutMode {
  // Layer cache form that overlayfs understands: ".wh.NAME" becomes a 0/0 character device
  // NAME, ".wh..wh..opq" sets trusted.overlay.opaque=y on its directory.
  kOverlay,
  // No whiteout meaning: ".wh." entries are ordinary files (ADD of a local archive).
  kPlain,
};

struct ExtractOptions {
  WhiteoutMode whiteouts = WhiteoutMode::kOverlay;
  // Decompression-bomb bounds: the uncompressed tar stream (ExtractTar also never unpacks more
  // than the target file system has free), and the number of entries.
  uint64_t max_bytes = 64ULL << 30;
  uint64_t max_entries = 4u << 20;
  // Apply entry uid/gid (needs root); otherwise files belong to the caller.
  bool set_owner = true;
  // With set_owner: every entry gets this uid/gid instead of its own (ADD --chown).
  std::optional<std::pair<uint32_t, uint32_t>> owner;
  // Names the stream in errors ("layer sha256:ab..").
  std::string what = "archive";
  // false: TarDigests::compressed_digest stays empty, for a caller that hashes the compressed
  // bytes itself (a pull, which checks them as they arrive).
  bool hash_compressed = true;
  // Called with the bytes read from the input so far (compressed, as they come), at most once per
  // kProgressStep (progress.h) bytes and once at the end of the stream: for progress displays.
  std::function<void(uint64_t read)> read_progress;
};

struct TarDigests {
  std::string compressed_digest;  // sha256 of the bytes read (or written)
  std::string diff_id;            // sha256 of the uncompressed tar stream
  uint64_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  uint64_t entries = 0;
  uint64_t skipped_devices = 0;  // character/block devices, never created
};

// Extracts the tar stream read from `fd` (plain, gzip, zstd, xz or bzip2) into the existing
// directory `root`. Nothing is created, changed or followed outside `root`: paths are resolved
// with openat2(RESOLVE_IN_ROOT), so '..' and symlinks (absolute or relative, including ones
// planted by earlier entries) cannot leave it; entries with '..' are rejected, and a leading
// '/' is dropped ("/etc/x" is etc/x below `root`, as umoci and containers-storage read it);
// device nodes are skipped. Names are bytes: non-UTF-8 and non-ASCII names come out as written. On
// error `root` may hold a partial tree: extract into a temporary directory and rename it into
// place.
Result<TarDigests> ExtractTar(int fd, const std::string& root, const ExtractOptions& options);

// Hands out the next block of a stream, empty at its end; the view stays valid until the next
// call. An error ends the extraction with it.
using ByteSource = std::function<Result<std::string_view>()>;
// The same, reading the stream from `source` (a pull feeds it as the bytes arrive).
Result<TarDigests> ExtractTar(const ByteSource& source, const std::string& root,
                              const ExtractOptions& options);
// Reads `fd` in blocks; errors name `what`.
ByteSource FdSource(int fd, const std::string& what);

// Reads the tar stream from `fd` (any supported compression), checks that every header
// parses, and writes it gzip-compressed to `sink`. For `barge import` and Docker archives.
Result<TarDigests> RecompressTar(int fd, const ByteSink& sink, const ExtractOptions& options);

// Whether the file is a tar archive (possibly compressed) that ADD should extract.
bool IsTarArchive(const std::string& path);

struct WriteLayerOptions {
  int gzip_level = 6;
};

// The extended attributes a layer carries, of an open file: user.* and security.capability
// (file capabilities, e.g. ping's cap_net_raw), sorted by name. trusted.* (overlay's own) and
// security.selinux never enter or leave a layer.
std::vector<std::pair<std::string, std::string>> LayerXattrs(int fd);
bool IsLayerXattr(std::string_view name);

// Writes the tree under `dir` as a reproducible tar+gzip layer to `sink` (sorted names,
// mtimes in whole seconds, no user/group names). Overlay whiteouts (0/0 character devices and
// trusted.overlay.opaque=y directories) become ".wh." entries; hard links, FIFOs and other
// device nodes are kept; sockets are left out.
Result<TarDigests> WriteLayerFromDir(const std::string& dir, const ByteSink& sink,
                                     const WriteLayerOptions& options = {});

}  // namespace barge::oci
