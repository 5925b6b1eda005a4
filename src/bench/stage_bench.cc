// stage-shm and stage-lines: records through a container stage and back, against the same
// pipeline without the stage in the same run.
//
//   stage-shm:   eight BIGINT columns through a C++ pass-through stage over shared memory
//                (examples/stages/cpp/passthrough.cc, built next to barge)
//   stage-lines: the same records as JSON lines through busybox `cat`
//
// The stages run as real containers from images imported into the benchmark's root.
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>

#include "base/file_util.h"
#include "bench/bench.h"
#include "bench/pipelines.h"
#include "oci/image_store.h"
#include "oci/transfer.h"
#include "pipeline/planner.h"
#include "runtime/busybox_rootfs.h"

namespace barge::bench {
namespace {

// The pass-through stage's binary: built with barge (the stage_passthrough target), found next
// to it in the build tree, or named by $BARGE_STAGE_PASSTHROUGH.
Result<std::string> PassthroughBinary() {
  if (const char* env = std::getenv("BARGE_STAGE_PASSTHROUGH")) return std::string(env);
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return ErrnoError("readlink /proc/self/exe");
  std::string dir(self, static_cast<size_t>(n));
  dir = dir.substr(0, dir.rfind('/'));
  std::string path = dir + "/../../examples/stages/stage_passthrough";
  if (!PathExists(path)) {
    return NotFound("no pass-through stage at " + path +
                    " (build the stage_passthrough target, or set BARGE_STAGE_PASSTHROUGH)");
  }
  return path;
}

// Imports the directory `dir` as image `ref` into the store at `root`.
Status ImportDir(const std::string& root, const std::string& dir, const std::string& ref) {
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  if (store.Resolve(ref).ok()) return Status::Ok();
  std::string cmd = "tar -C '" + dir + "' -c .";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return ErrnoError("popen tar");
  Result<oci::Image> image = oci::ImportRootfs(store, ::fileno(p), ref);
  ::pclose(p);
  return image.status();
}

Status PrepareImages(const std::string& root) {
  ASSIGN_OR_RETURN(std::string binary, PassthroughBinary());
  ASSIGN_OR_RETURN(TempDir dir, TempDir::Make("barge-bench-stage-"));
  RETURN_IF_ERROR(MakeDirs(dir.path() + "/app"));
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(binary));
  RETURN_IF_ERROR(WriteFile(dir.path() + "/app/passthrough", bytes, 0755));
  RETURN_IF_ERROR(ImportDir(root, dir.path(), "bench-passthrough:1"));
  ASSIGN_OR_RETURN(TempDir busybox, runtime::MakeBusyboxRootfs());
  return ImportDir(root, busybox.path(), "bench-busybox:1");
}

constexpr const char* kColumns =
    "steps:\n  - select: {a: id, b: key, c: value, d: ts, e: id + 1, f: key + 1, g: value + 1, "
    "h: ts + 1}\n";

Result<PipelineRun> RunSpec(const std::string& text, const std::string& root) {
  ASSIGN_OR_RETURN(pipeline::Spec spec, pipeline::ParseSpec(text, "bench.yaml"));
  std::atomic<uint64_t> checksum{0};
  pipeline::PlanOptions options;
  options.root = root;
  options.collect = [&checksum](const pipeline::RecordBatch& b) {
    uint64_t sum = 0;
    for (const pipeline::Column& c : b.columns) {
      const int64_t* v = c.ints();
      for (size_t i = 0; i < b.rows; ++i) sum += static_cast<uint64_t>(v[i]);
    }
    checksum.fetch_add(sum, std::memory_order_relaxed);
  };
  ASSIGN_OR_RETURN(auto p, pipeline::SpecPipeline::Make(spec, options));
  auto start = std::chrono::steady_clock::now();
  double cpu = ProcessCpuSeconds();
  RETURN_IF_ERROR(p->Run());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return PipelineRun{seconds, ProcessCpuSeconds() - cpu, checksum.load()};
}

Result<nlohmann::json> RunStage(const std::string& name, const std::string& stage,
                                uint64_t default_records, const Options& o) {
  if (o.root.empty()) return InvalidArgument("needs a barge root (--root)");
  RETURN_IF_ERROR(PrepareImages(o.root));
  uint64_t n = o.records > 0 ? o.records : default_records;
  int par = o.parallelism > 0 ? o.parallelism : 1;
  std::string source = "parallelism: " + std::to_string(par) +
                       "\nsource:\n  generate: {records: " + std::to_string(n) + "}\n";
  ASSIGN_OR_RETURN(PipelineRun direct, RunSpec(source + kColumns, o.root));
  // A run of a few records times starting and stopping the replicas, which the steady rate
  // leaves out.
  const std::string tiny = "parallelism: " + std::to_string(par) +
                           "\nsource:\n  generate: {records: " + std::to_string(par) + "}\n";
  ASSIGN_OR_RETURN(PipelineRun start, RunSpec(tiny + kColumns + stage, o.root));
  ASSIGN_OR_RETURN(PipelineRun staged, RunSpec(source + kColumns + stage, o.root));
  if (direct.checksum != staged.checksum) {
    return Internal(name + ": the records that came back differ from those sent");
  }
  double rate = static_cast<double>(n) / staged.seconds;
  return nlohmann::json{{"bench", name},
                        {"records", n},
                        {"parallelism", par},
                        {"record_bytes", 64},
                        {"seconds", staged.seconds},
                        {"records_per_sec", rate},
                        {"start_stop_seconds", start.seconds},
                        {"steady_records_per_sec",
                         static_cast<double>(n) / std::max(1e-9, staged.seconds - start.seconds)},
                        {"mb_per_sec", rate * 64 / 1e6},
                        {"cpu_seconds", staged.cpu_seconds},
                        {"without_stage_records_per_sec", static_cast<double>(n) / direct.seconds},
                        {"ratio_to_without_stage", direct.seconds / staged.seconds},
                        {"checksum", staged.checksum}};
}

Result<nlohmann::json> RunStageShm(const Options& o) {
  return RunStage("stage-shm",
                  "  - stage: {image: \"bench-passthrough:1\", command: [/app/passthrough]}\n",
                  50'000'000, o);
}

Result<nlohmann::json> RunStageLines(const Options& o) {
  return RunStage("stage-lines",
                  "  - stage: {image: \"bench-busybox:1\", command: [cat], protocol: lines}\n",
                  5'000'000, o);
}

const Registration kStageShm{
    "stage-shm", "8 BIGINT columns through a C++ shm stage and back (records/s)", RunStageShm};
const Registration kStageLines{"stage-lines", "JSON lines through a busybox cat stage (lines/s)",
                               RunStageLines};

}  // namespace
}  // namespace barge::bench
