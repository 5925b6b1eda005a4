// Where barge has seen blobs in registries ("localhost:5000/team/app"), so that a push can ask
// a registry to mount a blob from another of its repositories instead of uploading it again.
// Kept in <root>/registry/blob-locations.json (digest -> the last few locations), written
// atomically under flock(<root>/registry/.lock); losing it only costs uploads.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "barge/status.h"
#include "oci/image_store.h"

namespace barge::oci::detail {

// digest -> locations, most recent first.
using BlobLocations = std::map<std::string, std::vector<std::string>>;

// An unreadable or missing file reads as empty.
BlobLocations ReadBlobLocations(const ImageStore& store);

// Records that `location` holds `digests`.
Status RecordBlobLocations(const ImageStore& store, const std::string& location,
                           const std::vector<std::string>& digests);

}  // namespace barge::oci::detail
