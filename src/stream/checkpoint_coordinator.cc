#include "barge/stream/detail/checkpoint_coordinator.h"

#include "barge/stream/operator.h"

namespace barge::stream {

void OperatorBase::TakeSnapshot(uint64_t id) {
  if (coordinator_ == nullptr) return;
  StateWriter w;
  Snapshot(id, w);
  coordinator_->Report(checkpoint_index_, id, std::move(w.bytes()));
}

namespace detail {

namespace {
using Clock = std::chrono::steady_clock;

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

CheckpointCoordinator::CheckpointCoordinator(CheckpointOptions options,
                                             std::vector<Instance> instances, uint64_t last_id,
                                             std::function<void(Status)> fail)
    : options_(std::move(options)),
      instances_(std::move(instances)),
      fail_(std::move(fail)),
      last_id_(last_id),
      finished_(instances_.size()) {
  completed_.store(last_id, std::memory_order_relaxed);
}

CheckpointCoordinator::~CheckpointCoordinator() { Stop(); }

void CheckpointCoordinator::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void CheckpointCoordinator::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CheckpointCoordinator::Report(size_t index, uint64_t id, std::string state) {
  std::lock_guard lock(mu_);
  if (!pending_ || pending_->id != id || index >= instances_.size()) return;  // abandoned
  std::optional<std::string>& slot = pending_->states[index];
  if (slot) return;
  slot = std::move(state);
  ++pending_->reported;
  if (CompleteLocked()) cv_.notify_all();
}

void CheckpointCoordinator::Finished(size_t index, std::string state) {
  std::lock_guard lock(mu_);
  finished_[index] = std::move(state);
  if (pending_ && CompleteLocked()) cv_.notify_all();
}

bool CheckpointCoordinator::CompleteLocked() const {
  for (size_t i = 0; i < instances_.size(); ++i) {
    if (!pending_->states[i] && !finished_[i]) return false;
  }
  return true;
}

Status CheckpointCoordinator::Complete(Checkpoint checkpoint, double* write_seconds) {
  const uint64_t id = checkpoint.id;
  const Clock::time_point start = Clock::now();
  Status st = options_.store->Write(checkpoint);
  if (write_seconds != nullptr) {
    *write_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  }
  if (!st.ok()) return st.Wrap("writing checkpoint " + std::to_string(id));
  completed_.store(id, std::memory_order_relaxed);
  for (const Instance& in : instances_) {
    Status c = in.ptr->NotifyCheckpointComplete(id);
    if (!c.ok()) {
      return c.Wrap("operator '" + in.op + "' committing checkpoint " + std::to_string(id));
    }
  }
  return Status::Ok();
}

void CheckpointCoordinator::Loop() {
  const bool periodic = options_.interval.count() > 0;
  Clock::time_point next = Clock::now() + options_.interval;
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (pending_ && CompleteLocked()) {
      Checkpoint c;
      c.id = pending_->id;
      c.savepoint = pending_->savepoint;
      c.job = options_.job;
      c.unix_ms = UnixMs();
      for (size_t i = 0; i < instances_.size(); ++i) {
        std::optional<std::string>& s = pending_->states[i];
        c.operators.push_back({instances_[i].op, instances_[i].instance, instances_[i].parallelism,
                               s ? std::move(*s) : *finished_[i]});
      }
      const Clock::time_point started = pending_->started;
      pending_.reset();
      const uint64_t id = c.id;
      const bool savepoint = c.savepoint;
      const uint64_t state_bytes = c.StateBytes();
      lock.unlock();
      double write_seconds = 0;
      Status st = Complete(std::move(c), &write_seconds);
      const Clock::time_point done = Clock::now();
      lock.lock();
      if (st.ok()) {
        ++stats_.completed;
        stats_.last_id = id;
        stats_.last_duration_seconds = std::chrono::duration<double>(done - started).count();
        stats_.last_write_seconds = write_seconds;
        stats_.last_state_bytes = state_bytes;
        stats_.last_unix_ms = UnixMs();
      } else {
        ++stats_.failed;
      }
      if (savepoint || !st.ok()) {
        savepoint_done_ = id;
        savepoint_error_ = st;
        cv_.notify_all();
      }
      if (!st.ok()) {
        lock.unlock();
        fail_(st);
        return;
      }
      next = Clock::now() + options_.interval;
      continue;
    }
    const Clock::time_point now = Clock::now();
    if (pending_ && now - pending_->started > options_.timeout) {  // abandoned
      pending_.reset();
      ++stats_.failed;
    }
    if (!pending_ && (savepoint_requested_ || (periodic && now >= next))) {
      Pending p;
      p.id = ++last_id_;
      p.savepoint = savepoint_requested_;
      p.started = now;
      p.states.resize(instances_.size());
      if (p.savepoint) {
        savepoint_requested_ = false;
        stop_after_.store(p.id, std::memory_order_release);
      }
      pending_ = std::move(p);
      trigger_.store(last_id_, std::memory_order_release);
      continue;
    }
    if (pending_) {
      cv_.wait_until(lock, pending_->started + options_.timeout);
    } else if (periodic) {
      cv_.wait_until(lock, next);
    } else {
      cv_.wait(lock);
    }
  }
}

Result<uint64_t> CheckpointCoordinator::Savepoint(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (stop_) return Cancelled("the pipeline is not running");
  const uint64_t before = last_id_;
  savepoint_requested_ = true;
  cv_.notify_all();
  bool done = cv_.wait_for(lock, timeout, [&] { return stop_ || savepoint_done_ > before; });
  if (!done) return Cancelled("no savepoint within " + std::to_string(timeout.count()) + " ms");
  if (savepoint_done_ <= before) return Cancelled("the pipeline stopped before the savepoint");
  if (!savepoint_error_.ok()) return savepoint_error_;
  return savepoint_done_;
}

Status CheckpointCoordinator::Final() {
  Checkpoint c;
  {
    std::lock_guard lock(mu_);
    c.id = ++last_id_;
    c.final = true;
    c.job = options_.job;
    c.unix_ms = UnixMs();
    for (size_t i = 0; i < instances_.size(); ++i) {
      if (!finished_[i]) {
        return Internal("final checkpoint: operator '" + instances_[i].op + "' did not end");
      }
      c.operators.push_back(
          {instances_[i].op, instances_[i].instance, instances_[i].parallelism, *finished_[i]});
    }
  }
  return Complete(std::move(c));
}

}  // namespace detail
}  // namespace barge::stream
