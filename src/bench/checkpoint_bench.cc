// checkpoint-state: what checkpoints cost when the state is large. A keyed window that never
// fires (one of 1000 days) holds an open aggregate for every key of a generated stream; with
// checkpoints every second, once every key was seen, the bench reports the duration and size of
// the next complete checkpoints, then stops with a savepoint and times the recovery from it: from
// a new pipeline's start until its sources produce again (reading, verifying and decoding the
// checkpoint, restoring every key's state).
//
// It runs twice: with --records keys (1 M by default), and with the number of keys whose state
// is about 100 MB (scaled from the first run's bytes per key).
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include "base/file_util.h"
#include "bench/bench.h"
#include "pipeline/planner.h"

namespace barge::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kSpec = R"(name: checkpoint-state
source:
  generate: {records: 100000000000, keys: KEYS, records_per_second: 1000}
steps:
  - key_by: key
  - window: {tumbling: 1000d}
    aggregate: {n: count(*), total: sum(value), top: max(value)}
checkpoint: {interval: 1s, dir: DIR, keep: 5}
)";

struct StateFigures {
  uint64_t keys = 0;
  double checkpoint_seconds = 0;        // the last complete checkpoint: trigger to committed
  double checkpoint_write_seconds = 0;  // the part of it spent writing the file
  uint64_t checkpoint_state_bytes = 0;
  uint64_t file_bytes = 0;  // the checkpoint file on disk
  double savepoint_seconds = 0;
  double recovery_seconds = 0;  // a new pipeline's start until its sources produce again
};

Result<pipeline::Spec> MakeSpec(uint64_t keys, const std::string& dir, int parallelism) {
  std::string text = kSpec;
  text.replace(text.find("KEYS"), 4, std::to_string(keys));
  text.replace(text.find("DIR"), 3, dir);
  return pipeline::ParseSpec(text, "bench.yaml", {.parallelism = parallelism});
}

// Polls `done` every millisecond until it holds or `limit` passes.
template <class F>
bool WaitFor(F done, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

Result<StateFigures> Measure(uint64_t keys, int parallelism) {
  ASSIGN_OR_RETURN(TempDir dir, TempDir::Make("barge-bench-ckstate-"));
  const std::string ck = dir.path() + "/ck";
  ASSIGN_OR_RETURN(pipeline::Spec spec, MakeSpec(keys, ck, parallelism));
  StateFigures f;
  f.keys = keys;
  {
    ASSIGN_OR_RETURN(auto p, pipeline::SpecPipeline::Make(spec, {.collect = [](auto&) {}}));
    Status run;
    std::thread runner([&] { run = p->Run(); });
    // Every key has state once twice as many records were read; then two checkpoints that
    // started after that.
    bool ok =
        WaitFor([&] { return p->Progress().records_in >= 2 * keys; }, std::chrono::minutes(5));
    const uint64_t seen = p->CheckpointStats().completed;
    ok = ok && WaitFor([&] { return p->CheckpointStats().completed >= seen + 2; },
                       std::chrono::minutes(5));
    const stream::CheckpointStats s = p->CheckpointStats();
    Result<uint64_t> savepoint = Internal("no savepoint");
    const auto stop = Clock::now();
    if (ok) savepoint = p->StopWithSavepoint(std::chrono::minutes(5));
    f.savepoint_seconds = std::chrono::duration<double>(Clock::now() - stop).count();
    if (!ok) p->Cancel();
    runner.join();
    if (!ok) return run.ok() ? Internal("checkpoint-state: no checkpoint completed") : run;
    if (!savepoint.ok()) return savepoint.status().Wrap("checkpoint-state: savepoint");
    f.checkpoint_seconds = s.last_duration_seconds;
    f.checkpoint_write_seconds = s.last_write_seconds;
    f.checkpoint_state_bytes = s.last_state_bytes;
    struct stat st {};
    const std::string file = ck + "/chk-" + std::to_string(s.last_id);
    if (::stat(file.c_str(), &st) != 0) return ErrnoError("stat " + file);
    f.file_bytes = static_cast<uint64_t>(st.st_size);
  }
  // Recovery: a new pipeline resumes from the savepoint.
  const auto start = Clock::now();
  ASSIGN_OR_RETURN(auto p, pipeline::SpecPipeline::Make(spec, {.collect = [](auto&) {}}));
  Status run;
  std::thread runner([&] { run = p->Run(); });
  bool resumed = WaitFor([&] { return p->Progress().records_in > 0; }, std::chrono::minutes(5));
  f.recovery_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  p->Cancel();
  runner.join();
  if (!resumed) return run.ok() ? Internal("checkpoint-state: the resumed run read nothing") : run;
  if (p->resumed_from() == 0) return Internal("checkpoint-state: the second run did not resume");
  return f;
}

nlohmann::json ToJson(const StateFigures& f) {
  return {{"keys", f.keys},
          {"checkpoint_seconds", f.checkpoint_seconds},
          {"checkpoint_write_seconds", f.checkpoint_write_seconds},
          {"checkpoint_state_bytes", f.checkpoint_state_bytes},
          {"checkpoint_file_bytes", f.file_bytes},
          {"state_bytes_per_key",
           static_cast<double>(f.checkpoint_state_bytes) / static_cast<double>(f.keys)},
          {"savepoint_seconds", f.savepoint_seconds},
          {"recovery_seconds", f.recovery_seconds}};
}

Result<nlohmann::json> RunCheckpointState(const Options& o) {
  const uint64_t keys = o.records > 0 ? o.records : 1'000'000;
  const int par = o.parallelism > 0 ? o.parallelism : 2;
  ASSIGN_OR_RETURN(StateFigures small, Measure(keys, par));
  // About 100 MB of state, from the bytes per key just measured.
  const double per_key =
      static_cast<double>(small.checkpoint_state_bytes) / static_cast<double>(keys);
  const auto big_keys = static_cast<uint64_t>(100e6 / std::max(per_key, 1.0));
  ASSIGN_OR_RETURN(StateFigures big, Measure(big_keys, par));
  return nlohmann::json{{"bench", "checkpoint-state"},
                        {"parallelism", par},
                        {"interval_seconds", 1},
                        {"small", ToJson(small)},
                        {"about_100mb", ToJson(big)}};
}

const Registration kCheckpointStateBench{
    "checkpoint-state",
    "checkpoint duration and size with 1 M keys (--records), and recovery from ~100 MB of state",
    RunCheckpointState};

}  // namespace
}  // namespace barge::bench
