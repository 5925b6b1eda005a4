// stage-python: the python-stage example (examples/stages/python: pandas doubles every numeric
// column of each batch) on two DOUBLE and one BIGINT column through the shared-memory protocol,
// against, in the same run, the same doubling done the way the seed document does it: Python's
// concurrent.futures.ThreadPoolExecutor.map over rows, timed inside a container of the same image
// started the same way (the launch library, as stages are).
//
//   examples/stages/python/make-base-image.sh && barge build -t python-double:1
//   examples/stages/python barge bench stage-python [--records N] [--parallelism P] [--iterations
//   K]
//
// The stage's rate is taken from its first reply to the end of the stream (the steady state: a
// replica's start, which imports pandas, is reported apart as `start_seconds`). Every figure is the
// median of K runs of each, alternated.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "bench/bench.h"
#include "launch/container_options.h"
#include "oci/image_store.h"
#include "pipeline/planner.h"
#include "runtime/container_store.h"
#include "runtime/lifecycle.h"

namespace barge::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kImage = "python-double:1";

// a and b are exact multiples of 1/4 and their doubles stay exact, so the checksum is exact.
constexpr const char* kSpec = R"(name: stage-python
batch_size: 65536
source:
  generate: {records: RECORDS}
steps:
  - select: {a: value * 0.5, b: value * 0.25, n: key}
  - stage:
      image: python-double:1
      parallelism: PARALLELISM
      batch: 262144
)";

// The thread pool: the same doubling per row (every number times two), ROWS rows of the same
// shape, timed around the map alone.
constexpr const char* kThreadPool = R"(
import json, time
from concurrent.futures import ThreadPoolExecutor
rows = [(v * 0.5, v * 0.25, v % 1000) for v in (i * 2654435761 % 65536 for i in range(ROWS))]
def double(row):
    return tuple(x * 2 for x in row)
with ThreadPoolExecutor() as pool:
    start = time.perf_counter()
    out = list(pool.map(double, rows))
    seconds = time.perf_counter() - start
assert len(out) == len(rows) and out[1] == tuple(x * 2 for x in rows[1])
print(json.dumps({"rows": len(rows), "seconds": seconds}))
)";

std::string Replace(std::string text, const std::string& what, const std::string& with) {
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at)) {
    text.replace(at, what.size(), with);
    at += with.size();
  }
  return text;
}

struct StageRun {
  double seconds;        // first reply to the end
  double start_seconds;  // the pipeline's start to the first reply
  uint64_t rows_after_first;
  uint64_t checksum;
};

Result<StageRun> RunStage(const std::string& root, const std::string& spec_text, uint64_t n,
                          bool through_stage) {
  std::string text = spec_text;
  if (!through_stage) {
    // The reference: the same doubling in SQL.
    text = text.substr(0, text.find("  - stage:")) + "  - select: {a: a * 2, b: b * 2, n: n * 2}\n";
  }
  ASSIGN_OR_RETURN(pipeline::Spec spec, pipeline::ParseSpec(text, "stage-python.yaml"));
  std::mutex mu;
  uint64_t checksum = 0, rows = 0, rows_at_first = 0;
  Clock::time_point first{};
  pipeline::PlanOptions options;
  options.root = root;
  options.collect = [&](const pipeline::RecordBatch& b) {
    const double* a = b.columns[static_cast<size_t>(b.schema->Find("a"))].doubles();
    const double* bb = b.columns[static_cast<size_t>(b.schema->Find("b"))].doubles();
    const int64_t* k = b.columns[static_cast<size_t>(b.schema->Find("n"))].ints();
    uint64_t sum = 0;
    for (size_t i = 0; i < b.rows; ++i) {
      sum += static_cast<uint64_t>(a[i] * 4) + static_cast<uint64_t>(bb[i] * 4) +
             static_cast<uint64_t>(k[i]);
    }
    std::lock_guard lock(mu);
    if (rows == 0) {
      first = Clock::now();
      rows_at_first = b.rows;
    }
    rows += b.rows;
    checksum += sum;
  };
  ASSIGN_OR_RETURN(auto p, pipeline::SpecPipeline::Make(spec, options));
  auto start = Clock::now();
  RETURN_IF_ERROR(p->Run());
  auto end = Clock::now();
  if (rows != n) {
    return Internal("stage-python: " + std::to_string(rows) + " rows came out of " +
                    std::to_string(n));
  }
  return StageRun{std::chrono::duration<double>(end - first).count(),
                  std::chrono::duration<double>(first - start).count(), rows - rows_at_first,
                  checksum};
}

// Runs the thread-pool script in a container of the image, started as stages are; its one line.
Result<nlohmann::json> RunThreadPool(const std::string& root, uint64_t rows) {
  launch::ContainerOptions o;
  o.image = kImage;
  o.command = {"python3", "-c", Replace(kThreadPool, "ROWS", std::to_string(rows))};
  o.rm = true;
  ASSIGN_OR_RETURN(runtime::ContainerConfig cfg, launch::MakeContainerConfig(root, o));
  runtime::ContainerStore store(root);
  ASSIGN_OR_RETURN(runtime::ContainerRecord record, store.Create(std::move(cfg)));
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return ErrnoError("pipe");
  UniqueFd read_end(out[0]), write_end(out[1]);
  ASSIGN_OR_RETURN(UniqueFd null, OpenFile("/dev/null", O_RDWR));
  runtime::Stdio stdio{null.get(), write_end.get(), STDERR_FILENO};
  ASSIGN_OR_RETURN(runtime::OwnedContainer c,
                   runtime::OwnedContainer::Start(store, std::move(record), stdio));
  write_end.Reset();
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t got = ::read(read_end.get(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    text.append(buf, static_cast<size_t>(got));
  }
  ASSIGN_OR_RETURN(runtime::ExitInfo exit, c.Finish());
  if (exit.exit_code != 0) {
    return Internal("the thread-pool container exited with code " + std::to_string(exit.exit_code));
  }
  nlohmann::json line = nlohmann::json::parse(text, nullptr, false);
  if (line.is_discarded() || !line.contains("seconds")) {
    return Internal("the thread-pool container printed '" + text + "'");
  }
  return line;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

Result<nlohmann::json> RunStagePython(const Options& o) {
  if (o.root.empty()) return InvalidArgument("stage-python needs barge's root (--root)");
  ASSIGN_OR_RETURN(oci::ImageStore images, oci::ImageStore::Open(o.root));
  if (!images.Resolve(kImage).ok()) {
    return NotFound(std::string("stage-python runs the image ") + kImage +
                    " of the python-stage example, which is not in " + o.root +
                    ": make it with examples/stages/python/make-base-image.sh and barge build -t " +
                    kImage + " examples/stages/python");
  }
  const uint64_t n = o.records > 0 ? o.records : 40'000'000;
  const int par = o.parallelism > 0 ? o.parallelism : 1;
  const int iterations = o.iterations > 0 ? o.iterations : 3;
  const uint64_t pool_rows = std::min<uint64_t>(n, 200'000);
  std::string spec =
      Replace(Replace(kSpec, "RECORDS", std::to_string(n)), "PARALLELISM", std::to_string(par));

  ASSIGN_OR_RETURN(StageRun reference, RunStage(o.root, spec, n, false));
  std::vector<double> stage_rates, wall_rates, starts, pool_rates;
  for (int i = 0; i < iterations; ++i) {
    ASSIGN_OR_RETURN(StageRun s, RunStage(o.root, spec, n, true));
    if (s.checksum != reference.checksum) {
      return Internal("stage-python: the stage's checksum " + std::to_string(s.checksum) +
                      " differs from the same doubling in SQL, " +
                      std::to_string(reference.checksum));
    }
    stage_rates.push_back(static_cast<double>(s.rows_after_first) / s.seconds);
    wall_rates.push_back(static_cast<double>(n) / (s.seconds + s.start_seconds));
    starts.push_back(s.start_seconds);
    ASSIGN_OR_RETURN(nlohmann::json pool, RunThreadPool(o.root, pool_rows));
    pool_rates.push_back(static_cast<double>(pool_rows) / pool["seconds"].get<double>());
  }
  double stage = Median(stage_rates), pool = Median(pool_rates);
  return nlohmann::json{{"bench", "stage-python"},
                        {"records", n},
                        {"parallelism", par},
                        {"iterations", iterations},
                        {"rows_per_sec", stage},
                        {"rows_per_sec_with_start", Median(wall_rates)},
                        {"start_seconds", Median(starts)},
                        {"thread_pool_rows", pool_rows},
                        {"thread_pool_rows_per_sec", pool},
                        {"ratio_to_thread_pool", stage / pool},
                        {"goal_rows_per_sec", 20e6},
                        {"checksum", reference.checksum}};
}

const Registration kStagePython{
    "stage-python",
    "python-stage example (pandas over shm) vs ThreadPoolExecutor.map in the same image",
    RunStagePython};

}  // namespace
}  // namespace barge::bench
