#include "runtime/volumes.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/file_util.h"
#include "runtime/time_util.h"

namespace barge::runtime {

Status ValidateVolumeName(const std::string& name) {
  bool ok =
      !name.empty() && name.size() <= 128 && std::isalnum(static_cast<unsigned char>(name[0]));
  for (char c : name) {
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-');
  }
  if (!ok) {
    return InvalidArgument(
        "invalid volume name '" + name +
        "': use letters, digits, '_', '.' and '-', starting with a letter or digit");
  }
  return Status::Ok();
}

Result<VolumeSpec> ParseVolumeSpec(const std::string& spec) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("invalid volume '" + spec + "': " + why);
  };
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t colon = spec.find(':', start);
    parts.push_back(
        spec.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (parts.size() < 2 || parts.size() > 3) return bad("expected SOURCE:DESTINATION[:ro]");
  VolumeSpec out;
  out.source = parts[0];
  out.destination = parts[1];
  if (parts.size() == 3) {
    if (parts[2] == "ro") {
      out.read_only = true;
    } else if (parts[2] != "rw") {
      return bad("unknown option '" + parts[2] + "' (use ro or rw)");
    }
  }
  if (out.source.empty()) return bad("empty source");
  if (out.destination.empty() || out.destination[0] != '/') {
    return bad("destination must be an absolute path");
  }
  if (out.destination == "/") return bad("cannot mount over /");
  for (size_t at = 0; at != std::string::npos;) {
    size_t next = out.destination.find('/', at + 1);
    std::string_view part = std::string_view(out.destination).substr(at + 1, next - at - 1);
    if (part == "." || part == ".." || (part.empty() && next != std::string::npos)) {
      return bad("the destination must be a plain path, without '.', '..' or '//'");
    }
    at = next;
  }
  if (out.source[0] == '/') return out;
  out.named = true;
  if (Status st = ValidateVolumeName(out.source); !st.ok()) {
    return bad("source is neither an absolute path nor a valid volume name");
  }
  return out;
}

Result<Volume> VolumeStore::Inspect(const std::string& name) const {
  RETURN_IF_ERROR(ValidateVolumeName(name));
  std::string dir = dir_ + "/" + name;
  Result<std::string> meta = ReadRegularFileLimited(dir + "/volume.json", 1 << 20);
  if (!meta.ok() || !PathExists(dir + "/_data")) return NotFound("no such volume: " + name);
  Volume v;
  v.name = name;
  v.mountpoint = dir + "/_data";
  auto json = nlohmann::json::parse(*meta, nullptr, false);
  if (json.is_object()) v.created_at = json.value("created_at", "");
  return v;
}

Result<Volume> VolumeStore::Create(const std::string& name) {
  RETURN_IF_ERROR(ValidateVolumeName(name));
  if (Result<Volume> existing = Inspect(name); existing.ok()) return existing;
  // Only root may enter <root>/volumes: a container's root can leave a set-uid program in a
  // volume, which a host user who reached it could run (CVE-2021-41091). The volume's own
  // directories keep 0755, as the container sees `_data`'s mode at its mount point.
  RETURN_IF_ERROR(MakeDirs(dir_, 0700));
  if (::chmod(dir_.c_str(), 0700) != 0) return ErrnoError("chmod " + dir_);
  std::string dir = dir_ + "/" + name;
  RETURN_IF_ERROR(MakeDirs(dir + "/_data"));
  nlohmann::json meta = {{"name", name}, {"created_at", NowRfc3339()}};
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/volume.json", meta.dump() + "\n"));
  return Inspect(name);
}

Result<std::vector<Volume>> VolumeStore::List() const {
  std::vector<Volume> out;
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return out;
    return ErrnoError("opendir " + dir_);
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    if (Result<Volume> v = Inspect(n); v.ok()) out.push_back(std::move(v).value());
  }
  return out;
}

Status VolumeStore::Remove(const std::string& name) {
  RETURN_IF_ERROR(Inspect(name).status());
  // Metadata first: a half-removed volume is then invisible rather than looking intact.
  std::string dir = dir_ + "/" + name;
  if (::unlink((dir + "/volume.json").c_str()) != 0)
    return ErrnoError("unlink " + dir + "/volume.json");
  return RemoveTree(dir);
}

}  // namespace barge::runtime
