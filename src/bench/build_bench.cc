// barge bench build: times `barge build` of a small Containerfile (FROM busybox, COPY a 10 MiB
// file, COPY a small directory, RUN echo hi > /x, CMD), cold and fully cached, and buildah's
// time for the same Containerfile in the same run when buildah is installed.
//
// Both tools run as processes with the base image already in their store and unpacked (one
// untimed warm-up build each). "cold" = every layer built anew (--no-cache); "cached" = an
// unchanged rebuild. Figures are medians over --iterations runs (default 5).
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "base/file_util.h"
#include "base/subprocess.h"
#include "bench/bench.h"
#include "bench/bench_util.h"

namespace barge::bench {
namespace {

constexpr const char* kContainerfile =
    "FROM busybox\n"
    "COPY big.bin /big.bin\n"
    "COPY dir /dir/\n"
    "RUN echo hi > /x\n"
    "CMD [\"/bin/sh\"]\n";

Status MakeContext(const std::string& dir) {
  RETURN_IF_ERROR(MakeDirs(dir + "/dir/sub"));
  // 10 MiB that does not compress to nothing: a simple xorshift stream.
  std::string big(10 << 20, '\0');
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i + 8 <= big.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(&big[i], &x, 8);
  }
  RETURN_IF_ERROR(WriteFile(dir + "/big.bin", big));
  for (int i = 0; i < 8; ++i) {
    RETURN_IF_ERROR(
        WriteFile(fmt::format("{}/dir/file{}.txt", dir, i), fmt::format("file {}\n", i)));
  }
  RETURN_IF_ERROR(WriteFile(dir + "/dir/sub/nested.txt", "nested\n"));
  return WriteFile(dir + "/Containerfile", kContainerfile);
}

Status MakeBusyboxRootfs(const std::string& work) {
  if (!PathExists("/bin/busybox"))
    return NotFound("/bin/busybox is missing (install busybox-static: scripts/setup)");
  std::string rootfs = work + "/rootfs";
  RETURN_IF_ERROR(MakeDirs(rootfs + "/bin"));
  RETURN_IF_ERROR(MakeDirs(rootfs + "/tmp"));
  ASSIGN_OR_RETURN(std::string busybox, ReadFile("/bin/busybox"));
  RETURN_IF_ERROR(WriteFile(rootfs + "/bin/busybox", busybox, 0755));
  if (::symlink("busybox", (rootfs + "/bin/sh").c_str()) != 0) return ErrnoError("symlink sh");
  ASSIGN_OR_RETURN(CommandOutput tar,
                   RunCommand({"tar", "-C", rootfs, "-czf", work + "/busybox.tar.gz", "."}));
  if (tar.exit_code != 0) return Internal("tar of the busybox rootfs failed: " + tar.err);
  return Status::Ok();
}

Result<nlohmann::json> RunBuildBench(const Options& options) {
  int iterations = options.iterations > 0 ? options.iterations : 5;
  ASSIGN_OR_RETURN(TempDir work, TempDir::Make("barge-bench-build-"));
  std::string barge = SelfExe();
  std::string ctx = work.path() + "/ctx";
  RETURN_IF_ERROR(MakeContext(ctx));
  RETURN_IF_ERROR(MakeBusyboxRootfs(work.path()));
  std::string root = work.path() + "/barge-root";
  std::vector<std::string> b = {barge, "--root", root};
  auto with = [](std::vector<std::string> base, std::initializer_list<std::string> more) {
    base.insert(base.end(), more);
    return base;
  };
  RETURN_IF_ERROR(
      TimeCommand(with(b, {"import", work.path() + "/busybox.tar.gz", "busybox"})).status());
  RETURN_IF_ERROR(TimeCommand(with(b, {"build", "-q", "-t", "bench:1", ctx})).status());  // warm-up
  std::vector<double> cold, cached;
  for (int i = 0; i < iterations; ++i) {
    ASSIGN_OR_RETURN(double c,
                     TimeCommand(with(b, {"build", "-q", "--no-cache", "-t", "bench:1", ctx})));
    cold.push_back(c);
    ASSIGN_OR_RETURN(double w, TimeCommand(with(b, {"build", "-q", "-t", "bench:1", ctx})));
    cached.push_back(w);
  }
  nlohmann::json out = {
      {"benchmark", "build"},
      {"iterations", iterations},
      {"containerfile", kContainerfile},
      {"barge_cold_ms", Median(cold)},
      {"barge_cached_ms", Median(cached)},
      {"barge_run_executor",
       "the container runtime (as barge run): overlay + pivot_root, mount/pid/net/uts/ipc "
       "namespaces, default caps, no_new_privs, seccomp, no network"},
      {"goal_cold_vs_buildah", 0.5},
      {"goal_cached_ms", 100},
  };

  ASSIGN_OR_RETURN(CommandOutput which, RunCommand({"sh", "-c", "command -v buildah"}));
  if (which.exit_code != 0) {
    out["buildah"] = "not installed";
    return out;
  }
  // buildah gets the same base image (barge save -> buildah pull) in its own storage.
  std::string archive = work.path() + "/busybox-oci.tar";
  RETURN_IF_ERROR(TimeCommand(with(b, {"save", "busybox", "-o", archive})).status());
  std::vector<std::string> bh = {"buildah",
                                 "--root",
                                 work.path() + "/buildah-root",
                                 "--runroot",
                                 work.path() + "/buildah-run",
                                 "--storage-driver",
                                 "overlay"};
  // However this ends, buildah's containers and mounts go before the work dir is removed.
  struct BuildahCleanup {
    std::vector<std::string> bh;
    std::string dir;
    ~BuildahCleanup() {
      std::vector<std::string> rm = bh, umount = bh;
      rm.insert(rm.end(), {"rm", "--all"});
      umount.insert(umount.end(), {"umount", "--all"});
      (void)RunCommand(rm);
      (void)RunCommand(umount);
      UnmountBelow(dir);
    }
  } cleanup{bh, work.path()};
  RETURN_IF_ERROR(TimeCommand(with(bh, {"pull", "-q", "oci-archive:" + archive})).status());
  std::vector<std::string> bud = with(
      bh, {"bud", "-q", "--layers", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"});
  // buildah's default OCI isolation needs a runtime that works with this machine's cgroups;
  // fall back to its chroot isolation, which sets up namespaces and mounts without an OCI
  // runtime (lighter than barge's RUN, which goes through the full container runtime).
  std::string isolation = "oci";
  if (!TimeCommand(with(bud, {"-t", "bench:1", ctx})).ok()) {
    isolation = "chroot";
    bud = with(bud, {"--isolation", "chroot"});
    RETURN_IF_ERROR(TimeCommand(with(bud, {"-t", "bench:1", ctx})).status());
  }
  std::vector<double> bcold, bcached;
  for (int i = 0; i < iterations; ++i) {
    ASSIGN_OR_RETURN(double c, TimeCommand(with(bud, {"--no-cache", "-t", "bench:1", ctx})));
    bcold.push_back(c);
    ASSIGN_OR_RETURN(double w, TimeCommand(with(bud, {"-t", "bench:1", ctx})));
    bcached.push_back(w);
  }
  out["buildah_isolation"] = isolation;
  out["buildah_cold_ms"] = Median(bcold);
  out["buildah_cached_ms"] = Median(bcached);
  out["cold_ratio_barge_to_buildah"] = Median(cold) / Median(bcold);
  out["cached_ratio_barge_to_buildah"] = Median(cached) / Median(bcached);
  return out;
}

const Registration kBuild{
    "build", "barge build (cold, fully cached) vs buildah, same Containerfile", RunBuildBench};

}  // namespace
}  // namespace barge::bench
