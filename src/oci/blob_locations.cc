#include "oci/detail/blob_locations.h"

#include <fcntl.h>
#include <sys/file.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/file_util.h"

namespace barge::oci::detail {
namespace {

using nlohmann::json;

constexpr size_t kLocationsPerBlob = 8;
constexpr size_t kMaxBlobs = 50000;

std::string Dir(const ImageStore& store) { return store.root() + "/registry"; }
std::string File(const ImageStore& store) { return Dir(store) + "/blob-locations.json"; }

}  // namespace

BlobLocations ReadBlobLocations(const ImageStore& store) {
  BlobLocations out;
  Result<std::string> text = ReadRegularFileLimited(File(store), 64 << 20);
  if (!text.ok()) return out;
  json j = json::parse(*text, nullptr, false);
  if (!j.is_object()) return out;
  for (const auto& [digest, list] : j.items()) {
    if (!list.is_array()) continue;
    for (const json& l : list) {
      if (l.is_string()) out[digest].push_back(l.get<std::string>());
    }
  }
  return out;
}

Status RecordBlobLocations(const ImageStore& store, const std::string& location,
                           const std::vector<std::string>& digests) {
  RETURN_IF_ERROR(MakeDirs(Dir(store), 0700));
  std::string lock_path = Dir(store) + "/.lock";
  ASSIGN_OR_RETURN(UniqueFd lock, OpenFile(lock_path, O_RDWR | O_CREAT, 0600));
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return ErrnoError("flock " + lock_path);
  }
  BlobLocations all = ReadBlobLocations(store);
  bool known = std::all_of(digests.begin(), digests.end(), [&](const std::string& d) {
    auto it = all.find(d);
    return it != all.end() && !it->second.empty() && it->second.front() == location;
  });
  if (known) return Status::Ok();
  if (all.size() + digests.size() > kMaxBlobs) all.clear();  // a cache: start over
  for (const std::string& d : digests) {
    std::vector<std::string>& list = all[d];
    list.erase(std::remove(list.begin(), list.end(), location), list.end());
    list.insert(list.begin(), location);
    if (list.size() > kLocationsPerBlob) list.resize(kLocationsPerBlob);
  }
  json j = json::object();
  for (const auto& [d, list] : all) j[d] = list;
  return WriteFileAtomic(File(store), j.dump(), 0600);
}

}  // namespace barge::oci::detail
