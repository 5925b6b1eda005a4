// barge logs [-f] C: prints what a detached container wrote to stdout and stderr.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "base/file_util.h"
#include "cli/cli.h"
#include "runtime/container_store.h"

namespace barge::cli {
namespace {

// Copies what `fd` has from its offset to stdout.
Status Drain(int fd, const std::string& path) {
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read " + path);
    if (n == 0) return Status::Ok();
    RETURN_IF_ERROR(WriteAll(1, std::string_view(buf, static_cast<size_t>(n)), "stdout"));
  }
}

Status Logs(const std::string& name, bool follow, const std::string& root) {
  runtime::ContainerStore store(root);
  ASSIGN_OR_RETURN(runtime::ContainerRecord record, store.Find(name));
  std::string path = store.LogPath(record.config.id);
  if (!PathExists(path)) {
    if (!record.config.detached) {
      return InvalidArgument("container " + record.config.name +
                             " ran in the foreground: its output went to the terminal, not a log");
    }
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
  RETURN_IF_ERROR(Drain(fd.get(), path));
  while (follow) {
    Result<runtime::ContainerRecord> now = store.Find(record.config.id);
    bool running = now.ok() && now->state.status == runtime::ContainerStatus::kRunning;
    RETURN_IF_ERROR(Drain(fd.get(), path));
    if (!running) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Status::Ok();
}

const Registration kLogs{
    "logs", "Print a container's output", [](CLI::App& cmd, Cli& cli) {
      auto name = std::make_shared<std::string>();
      auto follow = std::make_shared<bool>(false);
      cmd.add_option("container", *name, "Container name or id")->required();
      cmd.add_flag("-f,--follow", *follow, "Keep printing until it exits");
      cmd.callback([name, follow, &cli] { cli.Finish(Logs(*name, *follow, cli.root())); });
    }};

}  // namespace
}  // namespace barge::cli
