// Checkpoints: the state of every operator instance at one consistent cut of the stream, taken
// by asynchronous barrier snapshotting (Carbone et al., "Lightweight Asynchronous Snapshots for
// Distributed Dataflows", 2015, as in Flink). Sources inject numbered barriers at an interval;
// every task aligns them across its inputs (an input that delivered the barrier is not read
// again until all have), each operator writes its state and forwards the barrier; a checkpoint
// completes when every operator instance has written its state. It is then written to storage
// by the coordinator's thread (tasks go on meanwhile), and sinks are told to commit.
//
//   stream::PipelineOptions options;
//   options.checkpoint.interval = std::chrono::seconds(1);
//   ASSIGN_OR_RETURN(auto store, stream::CheckpointStore::Open(dir, /*keep=*/3));
//   options.checkpoint.store = &store;
//   // Resume: stream::Pipeline::Restore(latest checkpoint) before Run().
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "barge/status.h"

namespace barge::stream {

// The bytes an operator instance's state is written to. Values are written in host byte order
// (checkpoints are read back on the machine that wrote them).
class StateWriter {
 public:
  template <class T>
  void Put(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    bytes_.append(reinterpret_cast<const char*>(&value), sizeof value);
  }
  void PutString(std::string_view s) {
    Put<uint64_t>(s.size());
    bytes_.append(s);
  }
  template <class T>
  void PutVector(const std::vector<T>& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    Put<uint64_t>(v.size());
    bytes_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  }
  std::string& bytes() { return bytes_; }

 private:
  std::string bytes_;
};

// Thrown by StateReader when the state ends early or is malformed; the engine turns it into an
// error naming the operator.
class StateFormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads what a StateWriter wrote, in the same order. Reading past the end throws
// StateFormatError (checkpoints are checksummed, so this means a format mismatch).
class StateReader {
 public:
  explicit StateReader(std::string_view bytes) : bytes_(bytes) {}
  template <class T>
  T Get() {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    std::memcpy(&value, Take(sizeof value), sizeof value);
    return value;
  }
  std::string GetString() {
    uint64_t n = Get<uint64_t>();
    if (n > bytes_.size() - at_) throw StateFormatError("state ends inside a string");
    return std::string(Take(n), n);
  }
  template <class T>
  std::vector<T> GetVector() {
    uint64_t n = Get<uint64_t>();
    if (n > (bytes_.size() - at_) / sizeof(T)) throw StateFormatError("state ends inside a list");
    std::vector<T> v(n);
    std::memcpy(v.data(), Take(n * sizeof(T)), n * sizeof(T));
    return v;
  }
  bool done() const { return at_ == bytes_.size(); }
  // Everything not read yet (consumed).
  std::string_view Rest() {
    std::string_view r = bytes_.substr(at_);
    at_ = bytes_.size();
    return r;
  }

 private:
  const char* Take(size_t n) {
    if (n > bytes_.size() - at_) throw StateFormatError("state ends early");
    const char* p = bytes_.data() + at_;
    at_ += n;
    return p;
  }
  std::string_view bytes_;
  size_t at_ = 0;
};

// One operator instance's state in a checkpoint.
struct OperatorState {
  std::string op;  // the operator's name in the graph
  int instance = 0;
  int parallelism = 1;
  std::string bytes;
};

struct Checkpoint {
  uint64_t id = 0;
  // Taken on request before a stop (Flink's savepoint) rather than by the interval.
  bool savepoint = false;
  // Every operator had ended: the input was consumed to its end.
  bool final = false;
  int64_t unix_ms = 0;  // when it completed
  // What the caller ran, as JSON text (a spec pipeline's description), compared on resume.
  std::string job;
  std::vector<OperatorState> operators;

  const OperatorState* Find(const std::string& op, int instance) const;
  uint64_t StateBytes() const;
};

// Checkpoints in a directory, one file each (chk-<id>): written under a temporary name, fsynced,
// renamed into place and the directory fsynced, so a crash leaves the old file or the new one.
// Every file ends with a SHA-256 of its content; a file that is truncated or does not match its
// checksum is skipped (with a warning) for the one before it. The newest `keep` are retained.
// Not thread-safe: one writer (the pipeline's coordinator).
class CheckpointStore {
 public:
  // Creates `dir` if needed and checks that files can be created in it: a checkpoint directory
  // that cannot be written is an error now, not after the first interval.
  static Result<CheckpointStore> Open(std::string dir, int keep);

  // Durable when it returns OK; then drops the oldest beyond `keep`.
  Status Write(const Checkpoint& checkpoint);
  // The newest valid checkpoint, or nullopt when there is none. Files skipped as corrupt or
  // truncated are named in `warnings`.
  Result<std::optional<Checkpoint>> LoadLatest(std::vector<std::string>* warnings) const;
  // Ids of the checkpoint files present, newest first (valid or not).
  Result<std::vector<uint64_t>> List() const;
  // Removes every checkpoint (a pipeline that ran to its end, or a fresh start).
  Status Clear();

  const std::string& dir() const { return dir_; }
  std::string PathOf(uint64_t id) const;

 private:
  CheckpointStore(std::string dir, int keep) : dir_(std::move(dir)), keep_(keep) {}
  std::string dir_;
  int keep_;
};

// How a pipeline takes checkpoints (PipelineOptions::checkpoint).
struct CheckpointOptions {
  // 0: no periodic checkpoints (a savepoint may still be taken when a store is set).
  std::chrono::milliseconds interval{0};
  CheckpointStore* store = nullptr;  // borrowed; null: checkpoints are off
  std::string job;                   // written into every checkpoint (Checkpoint::job)
  // A checkpoint that does not complete within this is abandoned and the next one started
  // (Flink's checkpoint timeout).
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
};

// What a running pipeline's checkpoints did so far (Pipeline::checkpoint_stats), for metrics.
struct CheckpointStats {
  uint64_t completed = 0;  // written and committed by this run (savepoints included)
  uint64_t failed = 0;     // abandoned after the timeout, or failed to write or commit
  uint64_t last_id = 0;    // the last completed (0: none yet)
  // The last completed one: from its trigger until it was written and committed, the part of that
  // spent writing it to the store (checksum, write, fsync, rename), the state it holds, and when
  // it completed (Unix ms).
  double last_duration_seconds = 0;
  double last_write_seconds = 0;
  uint64_t last_state_bytes = 0;
  int64_t last_unix_ms = 0;
};

// Encodes and decodes one checkpoint file's content (for tests and tools).
std::string EncodeCheckpoint(const Checkpoint& checkpoint);
Result<Checkpoint> DecodeCheckpoint(std::string_view data);

}  // namespace barge::stream
