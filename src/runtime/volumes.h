// Named volumes (<root>/volumes/<name>/_data) and the -v SRC:DST[:ro] syntax.
#pragma once

#include <string>
#include <vector>

#include "barge/status.h"

namespace barge::runtime {

struct Volume {
  std::string name;
  std::string mountpoint;  // the host directory mounted into containers
  std::string created_at;  // RFC 3339
};

// One -v argument, parsed.
struct VolumeSpec {
  std::string source;  // a volume name, or an absolute host path
  std::string destination;
  bool read_only = false;
  bool named = false;  // source is a volume name
};

// NAME:/DST[:ro|rw] or /HOST/PATH:/DST[:ro|rw]. Errors quote the spec.
Result<VolumeSpec> ParseVolumeSpec(const std::string& spec);

// Names: a letter or digit, then letters, digits, '_', '.', '-' (Docker's rule).
Status ValidateVolumeName(const std::string& name);

class VolumeStore {
 public:
  explicit VolumeStore(std::string root) : dir_(std::move(root) + "/volumes") {}

  // Creates the volume; an existing one is returned as it is (like `docker volume create`).
  Result<Volume> Create(const std::string& name);
  Result<Volume> Inspect(const std::string& name) const;
  Result<std::vector<Volume>> List() const;
  // Deletes the volume and its data. The caller checks that no container uses it.
  Status Remove(const std::string& name);

 private:
  std::string dir_;
};

}  // namespace barge::runtime
