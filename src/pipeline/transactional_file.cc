#include "pipeline/transactional_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/file_util.h"

namespace barge::pipeline {

TransactionalFile::TransactionalFile(std::string path) : path_(std::move(path)) {
  size_t slash = path_.find_last_of('/');
  dir_ = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
  std::string base = slash == std::string::npos ? path_ : path_.substr(slash + 1);
  part_prefix_ = "." + base + ".barge-part-";
}

std::string TransactionalFile::PartPath(uint64_t seq) const {
  return dir_ + "/" + part_prefix_ + std::to_string(seq);
}

Result<std::unique_ptr<TransactionalFile>> TransactionalFile::Open(std::string path,
                                                                   const std::string* restored) {
  std::unique_ptr<TransactionalFile> f(new TransactionalFile(std::move(path)));
  ASSIGN_OR_RETURN(f->out_, OpenFile(f->path_, O_WRONLY | O_CREAT));
  if (restored != nullptr) {
    RETURN_IF_ERROR(f->Recover(*restored));
  } else {
    if (::ftruncate(f->out_.get(), 0) != 0) return ErrnoError("truncate " + f->path_);
    f->committed_ = 0;
  }
  RETURN_IF_ERROR(f->RemoveParts());
  if (::lseek(f->out_.get(), static_cast<off_t>(f->committed_), SEEK_SET) < 0) {
    return ErrnoError("seek " + f->path_);
  }
  return f;
}

Status TransactionalFile::RemoveParts() const {
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) return ErrnoError("opendir " + dir_);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name.substr(0, part_prefix_.size()) == part_prefix_) names.emplace_back(name);
  }
  ::closedir(d);
  for (const std::string& name : names) {
    std::string p = dir_ + "/" + name;
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) return ErrnoError("remove " + p);
  }
  return names.empty() ? Status::Ok() : SyncDir(dir_);
}

// State: the output's length once every sealed part is in it, then the sealed parts (sequence
// number and size), in order.
Status TransactionalFile::Recover(std::string_view state) {
  stream::StateReader in(state);
  const auto length = in.Get<uint64_t>();
  const auto parts = in.Get<uint64_t>();
  std::vector<Part> sealed;
  uint64_t pending = 0;
  for (uint64_t i = 0; i < parts; ++i) {
    Part p;
    p.seq = in.Get<uint64_t>();
    p.size = in.Get<uint64_t>();
    pending += p.size;
    sealed.push_back(p);
  }
  if (pending > length) return Corruption("output state of " + path_ + " is inconsistent");
  struct stat st {};
  if (::fstat(out_.get(), &st) != 0) return ErrnoError("stat " + path_);
  uint64_t have = static_cast<uint64_t>(st.st_size);
  // A commit the crash interrupted: append what the file lacks of the sealed parts.
  uint64_t at = length - pending;
  if (have < at) {
    return Corruption(path_ + " holds " + std::to_string(have) +
                      " bytes, less than the checkpoint committed (" + std::to_string(at) +
                      "): it was changed outside the pipeline; start over with --fresh");
  }
  for (const Part& p : sealed) {
    if (have < at + p.size) {
      if (::ftruncate(out_.get(), static_cast<off_t>(have)) != 0) {
        return ErrnoError("truncate " + path_);
      }
      if (::lseek(out_.get(), static_cast<off_t>(have), SEEK_SET) < 0) {
        return ErrnoError("seek " + path_);
      }
      RETURN_IF_ERROR(AppendPart(p.seq, have - at, p.size));
      have = at + p.size;
    }
    at += p.size;
  }
  // Output of later checkpoints (one found corrupt, say) is cut off.
  if (have > length && ::ftruncate(out_.get(), static_cast<off_t>(length)) != 0) {
    return ErrnoError("truncate " + path_);
  }
  if (::fsync(out_.get()) != 0) return ErrnoError("fsync " + path_);
  committed_ = length;
  return Status::Ok();
}

Status TransactionalFile::AppendPart(uint64_t seq, uint64_t from, uint64_t size) {
  const std::string part = PartPath(seq);
  Result<UniqueFd> in = OpenFile(part, O_RDONLY);
  if (!in.ok()) return in.status().Wrap("output part of " + path_ + " for the commit");
  off_t off = static_cast<off_t>(from);
  uint64_t left = size - from;
  while (left > 0) {
    ssize_t n = ::copy_file_range(in->get(), &off, out_.get(), nullptr, left, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL)) {
      // Fallback: read and write.
      std::string buf(std::min<uint64_t>(left, uint64_t{1} << 20), '\0');
      ssize_t r = ::pread(in->get(), buf.data(), buf.size(), off);
      if (r <= 0) return ErrnoError("read " + part);
      RETURN_IF_ERROR(
          WriteAll(out_.get(), std::string_view(buf.data(), static_cast<size_t>(r)), path_));
      off += r;
      left -= static_cast<uint64_t>(r);
      continue;
    }
    if (n < 0) return ErrnoError("append " + part + " to " + path_);
    if (n == 0) return Corruption("output part " + part + " is shorter than its checkpoint says");
    left -= static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status TransactionalFile::Write(std::string_view bytes) {
  if (bytes.empty()) return Status::Ok();
  if (!current_) {
    current_seq_ = next_seq_++;
    ASSIGN_OR_RETURN(current_, OpenFile(PartPath(current_seq_), O_WRONLY | O_CREAT | O_TRUNC));
    current_size_ = 0;
  }
  RETURN_IF_ERROR(WriteAll(current_.get(), bytes, PartPath(current_seq_)));
  current_size_ += bytes.size();
  return Status::Ok();
}

Status TransactionalFile::Seal(uint64_t tag, stream::StateWriter& out) {
  if (current_) {
    if (::fsync(current_.get()) != 0) return ErrnoError("fsync " + PartPath(current_seq_));
    current_.Reset();
    RETURN_IF_ERROR(SyncDir(dir_));
  }
  std::lock_guard lock(mu_);
  if (current_size_ > 0) sealed_.push_back({current_seq_, tag, current_size_});
  current_size_ = 0;
  uint64_t length = committed_;
  for (const Part& p : sealed_) length += p.size;
  out.Put(length);
  out.Put<uint64_t>(sealed_.size());
  for (const Part& p : sealed_) {
    out.Put(p.seq);
    out.Put(p.size);
  }
  return Status::Ok();
}

Status TransactionalFile::Commit(uint64_t id) {
  std::lock_guard lock(mu_);
  size_t done = 0;
  for (; done < sealed_.size() && sealed_[done].tag <= id; ++done) {
    RETURN_IF_ERROR(AppendPart(sealed_[done].seq, 0, sealed_[done].size));
    committed_ += sealed_[done].size;
  }
  if (done == 0) return Status::Ok();
  if (::fsync(out_.get()) != 0) return ErrnoError("fsync " + path_);
  for (size_t i = 0; i < done; ++i) {
    std::string p = PartPath(sealed_[i].seq);
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) return ErrnoError("remove " + p);
  }
  sealed_.erase(sealed_.begin(), sealed_.begin() + static_cast<ptrdiff_t>(done));
  return Status::Ok();
}

uint64_t TransactionalFile::committed() const {
  std::lock_guard lock(mu_);
  return committed_;
}

}  // namespace barge::pipeline
