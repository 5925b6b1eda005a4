#include "cli/runtime_run_executor.h"

#include <fcntl.h>
#include <sys/random.h>

#include <cstdio>
#include <optional>

#include "base/file_util.h"
#include "cli/terminal.h"
#include "runtime/container_store.h"
#include "runtime/process.h"

namespace barge::cli {

Result<int> RuntimeRunExecutor::Run(const oci::RunStep& step) {
  unsigned char bytes[8] = {};
  if (::getrandom(bytes, sizeof bytes, 0) != sizeof bytes) return ErrnoError("getrandom");
  char id[32];
  std::snprintf(id, sizeof id, "build-%02x%02x%02x%02x%02x%02x%02x%02x", bytes[0], bytes[1],
                bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]);
  // The overlay's mount point, under the barge root (a build killed now leaves it for the next
  // barge to remove); it is only ever mounted inside the step's own mount namespace.
  ASSIGN_OR_RETURN(TempDir mount_point, runtime::ContainerStore(root_).MakeStepDir());
  ASSIGN_OR_RETURN(UniqueFd null, OpenFile("/dev/null", O_RDWR));
  std::optional<StdioPipes> pipes;
  if (!quiet_) {
    ASSIGN_OR_RETURN(StdioPipes made, StdioPipes::Make(/*input=*/false));
    pipes.emplace(std::move(made));
  }

  runtime::ContainerSpec spec;
  spec.id = id;
  spec.lower_dirs = step.lower_dirs;
  spec.upper_dir = step.upper_dir;
  spec.work_dir = step.work_dir;
  spec.rootfs_dir = mount_point.path();
  spec.process.argv = step.argv;
  spec.process.env = step.env;
  spec.process.cwd = step.working_dir.empty() ? "/" : step.working_dir;
  spec.process.user = step.user;
  spec.network = step.network ? runtime::NetworkMode::kHost : runtime::NetworkMode::kNone;
  spec.stdio = pipes ? pipes->ProcessEnds() : runtime::Stdio{null.get(), null.get(), null.get()};
  spec.remove_created_mount_points = true;
  for (const oci::RunStep::Bind& b : step.read_only_binds) {
    spec.mounts.push_back({runtime::MountSpec::Kind::kBind, b.source, b.destination, true});
  }
  ASSIGN_OR_RETURN(runtime::ExitInfo exit, runtime::RunContainer(spec, [&](runtime::Container& c) {
                     if (pipes) pipes->Relay(c.pid());
                   }));
  return exit.exit_code;
}

}  // namespace barge::cli
