// Checkpoint files: "BARGECK1", the metadata as JSON (length-prefixed), each operator state
// (length-prefixed, in the metadata's order), then the SHA-256 of everything before it.
#include <dirent.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <nlohmann/json.hpp>

#include "barge/stream/checkpoint.h"
#include "base/file_util.h"

namespace barge::stream {

namespace {

constexpr std::string_view kMagic = "BARGECK1";
constexpr std::string_view kPrefix = "chk-";
constexpr size_t kDigestBytes = SHA256_DIGEST_SIZE;

std::string Sha256(std::string_view data) {
  sha256_ctx ctx;
  sha256_init(&ctx);
  sha256_update(&ctx, data.size(), reinterpret_cast<const uint8_t*>(data.data()));
  std::string out(kDigestBytes, '\0');
  sha256_digest(&ctx, kDigestBytes, reinterpret_cast<uint8_t*>(out.data()));
  return out;
}

void PutU64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }

bool GetU64(std::string_view data, size_t& at, uint64_t* v) {
  if (data.size() - at < 8) return false;
  std::memcpy(v, data.data() + at, 8);
  at += 8;
  return true;
}

// The id of a checkpoint file name ("chk-12"), or nullopt for any other name.
std::optional<uint64_t> IdOf(std::string_view name) {
  if (name.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  name.remove_prefix(kPrefix.size());
  if (name.empty() || name.size() > 19) return std::nullopt;
  uint64_t id = 0;
  for (char c : name) {
    if (c < '0' || c > '9') return std::nullopt;
    id = id * 10 + static_cast<uint64_t>(c - '0');
  }
  return id;
}

}  // namespace

const OperatorState* Checkpoint::Find(const std::string& op, int instance) const {
  for (const OperatorState& s : operators) {
    if (s.op == op && s.instance == instance) return &s;
  }
  return nullptr;
}

uint64_t Checkpoint::StateBytes() const {
  uint64_t n = 0;
  for (const OperatorState& s : operators) n += s.bytes.size();
  return n;
}

std::string EncodeCheckpoint(const Checkpoint& c) {
  nlohmann::json ops = nlohmann::json::array();
  for (const OperatorState& s : c.operators) {
    ops.push_back({{"op", s.op},
                   {"instance", s.instance},
                   {"parallelism", s.parallelism},
                   {"bytes", s.bytes.size()}});
  }
  nlohmann::json meta = {{"id", c.id},       {"savepoint", c.savepoint},
                         {"final", c.final}, {"time", c.unix_ms},
                         {"job", c.job},     {"operators", ops}};
  std::string text = meta.dump();
  std::string out;
  out.reserve(kMagic.size() + 16 + text.size() + c.StateBytes() + 8 * c.operators.size() +
              kDigestBytes);
  out += kMagic;
  PutU64(out, text.size());
  out += text;
  for (const OperatorState& s : c.operators) {
    PutU64(out, s.bytes.size());
    out += s.bytes;
  }
  out += Sha256(out);
  return out;
}

Result<Checkpoint> DecodeCheckpoint(std::string_view data) {
  if (data.size() < kMagic.size() + 8 + kDigestBytes || data.substr(0, kMagic.size()) != kMagic) {
    return Corruption("not a checkpoint file, or truncated");
  }
  std::string_view body = data.substr(0, data.size() - kDigestBytes);
  if (Sha256(body) != data.substr(body.size())) {
    return Corruption("checksum mismatch (truncated or corrupt)");
  }
  size_t at = kMagic.size();
  uint64_t len = 0;
  if (!GetU64(body, at, &len) || len > body.size() - at) return Corruption("bad metadata length");
  nlohmann::json meta = nlohmann::json::parse(body.substr(at, len), nullptr, false);
  at += len;
  if (meta.is_discarded() || !meta.is_object()) return Corruption("metadata is not JSON");
  Checkpoint c;
  try {
    c.id = meta.at("id").get<uint64_t>();
    c.savepoint = meta.at("savepoint").get<bool>();
    c.final = meta.at("final").get<bool>();
    c.unix_ms = meta.at("time").get<int64_t>();
    c.job = meta.at("job").get<std::string>();
    for (const auto& o : meta.at("operators")) {
      OperatorState s;
      s.op = o.at("op").get<std::string>();
      s.instance = o.at("instance").get<int>();
      s.parallelism = o.at("parallelism").get<int>();
      uint64_t n = 0;
      if (!GetU64(body, at, &n) || n != o.at("bytes").get<uint64_t>() || n > body.size() - at) {
        return Corruption("state of " + s.op + "[" + std::to_string(s.instance) + "] is cut");
      }
      s.bytes.assign(body.substr(at, n));
      at += n;
      c.operators.push_back(std::move(s));
    }
  } catch (const nlohmann::json::exception& e) {
    return Corruption(std::string("metadata: ") + e.what());
  }
  if (at != body.size()) return Corruption("trailing bytes after the states");
  return c;
}

Result<CheckpointStore> CheckpointStore::Open(std::string dir, int keep) {
  if (dir.empty()) return InvalidArgument("checkpoint directory is empty");
  if (keep < 1) return InvalidArgument("checkpoint keep must be at least 1");
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  Status made = MakeDirs(dir);
  if (!made.ok()) return made.Wrap("checkpoint directory");
  // Probe: a directory that cannot be written fails now, with the reason.
  std::string probe = dir + "/.probe-" + std::to_string(::getpid());
  Result<UniqueFd> fd = OpenFile(probe, O_WRONLY | O_CREAT | O_TRUNC);
  if (!fd.ok()) return fd.status().Wrap("checkpoint directory " + dir + " is not writable");
  ::unlink(probe.c_str());
  return CheckpointStore(std::move(dir), keep);
}

std::string CheckpointStore::PathOf(uint64_t id) const {
  return dir_ + "/" + std::string(kPrefix) + std::to_string(id);
}

Result<std::vector<uint64_t>> CheckpointStore::List() const {
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) return ErrnoError("opendir " + dir_);
  std::vector<uint64_t> ids;
  while (dirent* e = ::readdir(d)) {
    if (auto id = IdOf(e->d_name)) ids.push_back(*id);
  }
  ::closedir(d);
  std::sort(ids.rbegin(), ids.rend());
  return ids;
}

Status CheckpointStore::Write(const Checkpoint& checkpoint) {
  const std::string path = PathOf(checkpoint.id);
  RETURN_IF_ERROR(WriteFileAtomic(path, EncodeCheckpoint(checkpoint), 0644));
  RETURN_IF_ERROR(SyncDir(dir_));
  ASSIGN_OR_RETURN(std::vector<uint64_t> ids, List());
  bool removed = false;
  for (size_t i = static_cast<size_t>(keep_); i < ids.size(); ++i) {
    if (ids[i] >= checkpoint.id) continue;  // never the one just written
    if (::unlink(PathOf(ids[i]).c_str()) != 0 && errno != ENOENT) {
      return ErrnoError("remove old checkpoint " + PathOf(ids[i]));
    }
    removed = true;
  }
  if (removed) RETURN_IF_ERROR(SyncDir(dir_));
  return Status::Ok();
}

Result<std::optional<Checkpoint>> CheckpointStore::LoadLatest(
    std::vector<std::string>* warnings) const {
  ASSIGN_OR_RETURN(std::vector<uint64_t> ids, List());
  for (uint64_t id : ids) {
    Result<std::string> data = ReadFile(PathOf(id));
    if (!data.ok()) {
      if (warnings) warnings->push_back(data.status().message() + ": skipped");
      continue;
    }
    Result<Checkpoint> c = DecodeCheckpoint(*data);
    if (c.ok() && c->id != id) c = Corruption("its id says " + std::to_string(c->id));
    if (!c.ok()) {
      if (warnings) {
        warnings->push_back("checkpoint " + PathOf(id) + " is unusable (" + c.status().message() +
                            "): using an earlier one");
      }
      continue;
    }
    return std::optional<Checkpoint>(std::move(*c));
  }
  return std::optional<Checkpoint>();
}

Status CheckpointStore::Clear() {
  ASSIGN_OR_RETURN(std::vector<uint64_t> ids, List());
  for (uint64_t id : ids) {
    if (::unlink(PathOf(id).c_str()) != 0 && errno != ENOENT) {
      return ErrnoError("remove checkpoint " + PathOf(id));
    }
  }
  return SyncDir(dir_);
}

}  // namespace barge::stream
