// barge bench run: container start-to-exit latency. `barge run --rm busybox /bin/true` (an image
// imported into a fresh repository from Debian's static busybox) against `crun run` of an OCI
// bundle of the same root file system, alternating in the same run, each as a fresh process (as a
// user would run them). Prints both medians and their ratio, plus two figures for reference:
// `barge run --rm --rootfs DIR` (no image lookup) and the in-process library
// (runtime::RunContainer, what RUN steps and pipeline stages pay).
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "base/subprocess.h"
#include "bench/bench.h"
#include "oci/archive.h"
#include "oci/image_store.h"
#include "oci/transfer.h"
#include "runtime/busybox_rootfs.h"
#include "runtime/process.h"

namespace barge::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

Result<std::string> SelfExe() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n < 0) return ErrnoError("readlink /proc/self/exe");
  return std::string(buf, static_cast<size_t>(n));
}

// Runs `argv` and returns its wall time; a non-zero exit is an error with its stderr.
Result<double> TimeCommand(const std::vector<std::string>& argv) {
  auto start = Clock::now();
  ASSIGN_OR_RETURN(CommandOutput out, RunCommand(argv));
  double ms = Ms(Clock::now() - start);
  if (out.exit_code != 0) {
    return Internal(argv[0] + " exited with " + std::to_string(out.exit_code) + ": " + out.err);
  }
  return ms;
}

// crun refuses a hybrid cgroup host (v1 controllers plus a v2 mount beside them). In a private
// mount namespace of this benchmark process, without the cgroup2 mount, both runtimes see plain
// v1; the host's mounts are untouched.
Result<bool> HideHybridCgroup2() {
  Result<std::string> mountinfo = ReadFile("/proc/self/mountinfo");
  if (!mountinfo.ok()) return mountinfo.status();
  bool v1 = mountinfo->find(" - cgroup ") != std::string::npos;
  size_t v2 = mountinfo->find(" - cgroup2 ");
  if (!v1 || v2 == std::string::npos) return false;
  size_t line_start = mountinfo->rfind('\n', v2) + 1;
  std::istringstream line(mountinfo->substr(line_start, v2 - line_start));
  std::string id, parent, dev, root, mount_point;
  line >> id >> parent >> dev >> root >> mount_point;
  if (::unshare(CLONE_NEWNS) != 0) return ErrnoError("unshare mount namespace");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return ErrnoError("make mounts private");
  }
  if (::umount2(mount_point.c_str(), MNT_DETACH) != 0) return ErrnoError("umount " + mount_point);
  return true;
}

// Stores `rootfs` as the image `busybox` in a repository at `root`, as `barge import` would.
Status ImportBusybox(const std::string& rootfs, const std::string& root) {
  ASSIGN_OR_RETURN(TempDir scratch, TempDir::Make("barge-bench-tar-"));
  const std::string tar = scratch.path() + "/rootfs.tar.gz";
  {
    ASSIGN_OR_RETURN(UniqueFd out, OpenFile(tar, O_WRONLY | O_CREAT | O_TRUNC, 0600));
    auto sink = [&](std::string_view bytes) { return WriteAll(out.get(), bytes, tar); };
    RETURN_IF_ERROR(oci::WriteLayerFromDir(rootfs, sink).status());
  }
  ASSIGN_OR_RETURN(UniqueFd in, OpenFile(tar, O_RDONLY));
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  return oci::ImportRootfs(store, in.get(), "busybox").status();
}

Result<nlohmann::json> RunBench(const Options& options) {
  const int iterations = options.iterations > 0 ? options.iterations : 30;
  ASSIGN_OR_RETURN(std::string barge, SelfExe());
  ASSIGN_OR_RETURN(TempDir rootfs, runtime::MakeBusyboxRootfs());
  ASSIGN_OR_RETURN(TempDir root, TempDir::Make("barge-bench-root-"));
  RETURN_IF_ERROR(ImportBusybox(rootfs.path(), root.path()));
  const std::vector<std::string> barge_argv = {barge,  "--root",  root.path(), "run",
                                               "--rm", "busybox", "/bin/true"};
  const std::vector<std::string> rootfs_argv = {barge,  "--root",   root.path(),   "run",
                                                "--rm", "--rootfs", rootfs.path(), "/bin/true"};

  nlohmann::json result = {{"benchmark", "run"}, {"iterations", iterations}};
  ASSIGN_OR_RETURN(CommandOutput which, RunCommand({"sh", "-c", "command -v crun"}));
  const bool have_crun = which.exit_code == 0;
  TempDir bundle, crun_state;
  if (have_crun) {
    ASSIGN_OR_RETURN(bool hidden, HideHybridCgroup2());
    if (hidden) {
      result["crun_note"] =
          "hybrid cgroups: both runtimes ran in a private mount namespace without the cgroup2 "
          "mount";
    }
    ASSIGN_OR_RETURN(bundle, TempDir::Make("barge-bench-bundle-"));
    ASSIGN_OR_RETURN(crun_state, TempDir::Make("barge-bench-crun-"));
    CommandOptions in_bundle;
    in_bundle.cwd = bundle.path();
    ASSIGN_OR_RETURN(CommandOutput spec, RunCommand({"crun", "spec"}, in_bundle));
    if (spec.exit_code != 0) return Internal("crun spec: " + spec.err);
    ASSIGN_OR_RETURN(std::string text, ReadFile(bundle.path() + "/config.json"));
    nlohmann::json config = nlohmann::json::parse(text);
    config["root"]["path"] = rootfs.path();
    config["process"]["args"] = {"/bin/true"};
    config["process"]["terminal"] = false;
    RETURN_IF_ERROR(WriteFile(bundle.path() + "/config.json", config.dump()));
  } else {
    result["crun_note"] = "crun is not installed: only barge was measured";
  }
  auto crun_argv = [&](int i) {
    return std::vector<std::string>{
        "crun",
        "--root",
        crun_state.path(),
        "run",
        "--bundle",
        bundle.path(),
        "barge-bench-" + std::to_string(::getpid()) + "-" + std::to_string(i)};
  };

  std::vector<double> barge_ms, rootfs_ms, crun_ms;
  const int warmup = 3;
  for (int i = 0; i < warmup + iterations; ++i) {
    ASSIGN_OR_RETURN(double b, TimeCommand(barge_argv));
    if (i >= warmup) barge_ms.push_back(b);
    ASSIGN_OR_RETURN(double r, TimeCommand(rootfs_argv));
    if (i >= warmup) rootfs_ms.push_back(r);
    if (have_crun) {
      ASSIGN_OR_RETURN(double c, TimeCommand(crun_argv(i)));
      if (i >= warmup) crun_ms.push_back(c);
    }
  }

  // The library alone, in this process: what the image builder's RUN step and pipelines pay.
  std::vector<double> library_ms;
  for (int i = 0; i < warmup + iterations; ++i) {
    ASSIGN_OR_RETURN(TempDir dir, TempDir::Make("barge-bench-ctr-"));
    for (const char* sub : {"upper", "work", "rootfs"})
      RETURN_IF_ERROR(MakeDirs(dir.path() + "/" + sub));
    runtime::ContainerSpec spec;
    spec.id = "bench-" + std::to_string(::getpid()) + "-" + std::to_string(i);
    spec.lower_dirs = {rootfs.path()};
    spec.upper_dir = dir.path() + "/upper";
    spec.work_dir = dir.path() + "/work";
    spec.rootfs_dir = dir.path() + "/rootfs";
    spec.process.argv = {"/bin/true"};
    auto start = Clock::now();
    ASSIGN_OR_RETURN(runtime::ExitInfo exit, runtime::RunContainer(spec));
    double ms = Ms(Clock::now() - start);
    if (exit.exit_code != 0) return Internal("library run of /bin/true failed");
    if (i >= warmup) library_ms.push_back(ms);
  }

  result["barge_median_ms"] = Percentile(barge_ms, 0.5);
  result["barge_p90_ms"] = Percentile(barge_ms, 0.9);
  result["barge_rootfs_median_ms"] = Percentile(rootfs_ms, 0.5);
  result["library_median_ms"] = Percentile(library_ms, 0.5);
  if (have_crun) {
    result["crun_median_ms"] = Percentile(crun_ms, 0.5);
    result["crun_p90_ms"] = Percentile(crun_ms, 0.9);
    result["ratio_barge_over_crun"] = Percentile(barge_ms, 0.5) / Percentile(crun_ms, 0.5);
  }
  return result;
}

const Registration kRunBench{
    "run", "barge run --rm busybox /bin/true vs crun run of the same rootfs", RunBench};

}  // namespace
}  // namespace barge::bench
