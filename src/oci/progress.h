// Progress of image transfers (pull, push, load, save, import), as events for a display to draw.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace barge::oci {

// What a transfer is doing. Calls are serialized (one at a time): pull and push make them from
// their worker threads, load, save and import from the calling thread. kBytes comes at most once
// per kProgressStep bytes of a blob, and at its end, so a callback may do some work per event.
struct TransferEvent {
  enum class Kind {
    kImage,    // `what` is the image being transferred (pull: resolved, before any blob)
    kBlob,     // a blob starts: `digest`, `total`
    kBytes,    // `done` of `total` bytes of `digest` moved
    kPresent,  // `digest` is there already (pull, load: in the store; push: in the registry)
    kMounted,  // push: `digest` mounted from `what` (another repository)
    kDone,     // `digest` moved and checked
  };
  Kind kind;
  // Empty for bytes not yet known by a digest, named by `what` instead: the archive `load` reads
  // before its blobs, and `import`'s layer until it is compressed (its kDone brings both names).
  std::string digest;
  std::string what;
  int64_t done = 0;
  int64_t total = 0;    // 0: not known (a stream from stdin)
  bool config = false;  // the blob is an image's config (load, save, import report it)
};
using TransferProgress = std::function<void(const TransferEvent&)>;

// kBytes events of one blob are at least this many bytes apart.
inline constexpr int64_t kProgressStep = 1 << 20;

}  // namespace barge::oci
