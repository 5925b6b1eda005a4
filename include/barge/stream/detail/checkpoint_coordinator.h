// The checkpoint coordinator of one running pipeline (Flink's CheckpointCoordinator, in-process):
// triggers checkpoints at the interval by publishing a barrier id that source tasks inject,
// gathers the state every operator instance reports for it (or the final state of an instance
// that ended before the barrier reached it), writes each completed checkpoint to the store on its
// own thread, and then tells every operator (sinks commit). One checkpoint is in flight at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "barge/status.h"
#include "barge/stream/checkpoint.h"

namespace barge::stream {
class OperatorBase;
}

namespace barge::stream::detail {

class CheckpointCoordinator {
 public:
  struct Instance {
    std::string op;
    int instance = 0;
    int parallelism = 1;
    OperatorBase* ptr = nullptr;
  };

  // Checkpoint ids continue after `last_id` (the checkpoint resumed from, or 0). `fail` stops the
  // pipeline with an error (a checkpoint that cannot be written, a commit that fails).
  CheckpointCoordinator(CheckpointOptions options, std::vector<Instance> instances,
                        uint64_t last_id, std::function<void(Status)> fail);
  ~CheckpointCoordinator();

  // Starts the thread that triggers and writes checkpoints.
  void Start();
  // Stops it (pending checkpoints are dropped). Idempotent.
  void Stop();

  // Source tasks: the newest barrier to inject (0: none yet).
  uint64_t trigger() const { return trigger_.load(std::memory_order_acquire); }
  // Source tasks: stop producing after injecting barrier `injected` (a savepoint before a stop).
  bool StopAfter(uint64_t injected) const {
    uint64_t s = stop_after_.load(std::memory_order_acquire);
    return s != 0 && injected >= s;
  }

  // Task threads: instance `index` wrote its state for barrier `id`.
  void Report(size_t index, uint64_t id, std::string state);
  // Task threads: instance `index` ended; `state` stands for it in every later checkpoint.
  void Finished(size_t index, std::string state);

  // Takes a savepoint: triggers a checkpoint after which sources stop producing, and waits up to
  // `timeout` for it to be written and committed. Any thread.
  Result<uint64_t> Savepoint(std::chrono::milliseconds timeout);
  // After every task ended: writes the final checkpoint (every instance's final state) and
  // commits it. Call after Stop().
  Status Final();

  uint64_t last_completed() const { return completed_.load(std::memory_order_relaxed); }
  CheckpointStats stats() const {
    std::lock_guard lock(mu_);
    return stats_;
  }

 private:
  struct Pending {
    uint64_t id = 0;
    bool savepoint = false;
    std::chrono::steady_clock::time_point started;
    std::vector<std::optional<std::string>> states;
    size_t reported = 0;
  };

  void Loop();
  // Under mu_: whether every instance has a state (reported, or final) for the pending one.
  bool CompleteLocked() const;
  // Writes and commits (without mu_ held); `write_seconds`, if given, is how long the write to
  // the store took.
  Status Complete(Checkpoint checkpoint, double* write_seconds = nullptr);

  CheckpointOptions options_;
  std::vector<Instance> instances_;
  std::function<void(Status)> fail_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool savepoint_requested_ = false;
  uint64_t last_id_ = 0;                              // the last id triggered
  std::optional<Pending> pending_;                    // guarded by mu_
  std::vector<std::optional<std::string>> finished_;  // guarded by mu_
  uint64_t savepoint_done_ = 0;                       // guarded by mu_
  Status savepoint_error_;                            // guarded by mu_
  CheckpointStats stats_;                             // guarded by mu_

  std::atomic<uint64_t> trigger_{0};
  std::atomic<uint64_t> stop_after_{0};
  std::atomic<uint64_t> completed_{0};
  std::thread thread_;
};

}  // namespace barge::stream::detail
