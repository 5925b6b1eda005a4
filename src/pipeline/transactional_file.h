// An output file written with two-phase commit, for sinks under checkpoints: bytes go to hidden
// part files beside it (".NAME.barge-part-N"); a checkpoint's snapshot seals the part being
// written (fsync) and records the length the file will have once every sealed part is in it;
// when that checkpoint completes, Commit appends its parts to the file (kernel-side copy), fsyncs
// it and deletes them. Readers of the file see only output of completed checkpoints. Recovery
// from a checkpoint finishes a commit a crash interrupted, cuts the file back to the checkpoint's
// length, and deletes every part (the output a failed run wrote after its last checkpoint).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "barge/status.h"
#include "barge/stream/checkpoint.h"
#include "base/unique_fd.h"

namespace barge::pipeline {

class TransactionalFile {
 public:
  // Opens `path` for a run: from scratch (emptied) when `restored` is null, else recovered to the
  // state a Seal wrote into it.
  static Result<std::unique_ptr<TransactionalFile>> Open(std::string path,
                                                         const std::string* restored);

  // The task thread: appends to the current part.
  Status Write(std::string_view bytes);
  // The task thread: makes the current part durable and hands it to the commit of checkpoint
  // `tag`; writes the recovery state.
  Status Seal(uint64_t tag, stream::StateWriter& out);
  // Any thread: appends the parts of checkpoints up to `id` to the file, in order.
  Status Commit(uint64_t id);

  // Bytes the file holds (committed).
  uint64_t committed() const;
  const std::string& path() const { return path_; }

 private:
  struct Part {
    uint64_t seq = 0;
    uint64_t tag = 0;
    uint64_t size = 0;
  };

  explicit TransactionalFile(std::string path);
  std::string PartPath(uint64_t seq) const;
  // Deletes every part file of this output.
  Status RemoveParts() const;
  Status Recover(std::string_view state);
  // Appends part file `seq` from byte `from` to the output.
  Status AppendPart(uint64_t seq, uint64_t from, uint64_t size);

  std::string path_;
  std::string dir_;
  std::string part_prefix_;
  UniqueFd out_;  // the output, opened for appending; written under mu_ (Commit)

  // The task thread's part.
  UniqueFd current_;
  uint64_t current_seq_ = 0;
  uint64_t current_size_ = 0;
  uint64_t next_seq_ = 0;

  mutable std::mutex mu_;
  std::vector<Part> sealed_;  // not committed yet, in order
  uint64_t committed_ = 0;    // the output's length
};

}  // namespace barge::pipeline
