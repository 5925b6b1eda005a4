// File and stdout writers for the built-in sinks.
#include <fcntl.h>
#include <unistd.h>

#include <mutex>

#include "barge/stream/io.h"
#include "base/file_util.h"

namespace barge::stream::detail {

namespace {

class FileWriter final : public ByteWriter {
 public:
  FileWriter(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}

  Status Write(std::string_view block) override { return WriteAll(fd_.get(), block, path_); }

  Status Close() override {
    if (::close(fd_.Release()) != 0) return ErrnoError("close " + path_);
    return Status::Ok();
  }

 private:
  UniqueFd fd_;
  std::string path_;
};

// Every stdout sink instance shares the process's stdout; a whole block is written under one
// lock so records of different instances never interleave mid-record.
class StdoutWriter final : public ByteWriter {
 public:
  Status Write(std::string_view block) override {
    static std::mutex mu;
    std::lock_guard lock(mu);
    return WriteAll(STDOUT_FILENO, block, "<stdout>");
  }
  Status Close() override { return Status::Ok(); }
};

}  // namespace

Result<std::unique_ptr<ByteWriter>> OpenFileWriter(const std::string& path, int instance,
                                                   int parallelism, bool append) {
  if (path == "-") return std::unique_ptr<ByteWriter>(std::make_unique<StdoutWriter>());
  std::string target = parallelism > 1 ? path + "." + std::to_string(instance) : path;
  ASSIGN_OR_RETURN(UniqueFd fd,
                   OpenFile(target, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC)));
  return std::unique_ptr<ByteWriter>(std::make_unique<FileWriter>(std::move(fd), target));
}

}  // namespace barge::stream::detail
