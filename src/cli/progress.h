// The progress of image transfers on stderr, for pull, push, load, save, import and the pulls of
// run and build: per-blob rows redrawn in place on a terminal; off a terminal, for the commands
// that want it, one line per blob as it completes, worded as podman's ("Copying blob sha256:...").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "oci/progress.h"

namespace barge::cli {

class TransferDisplay {
 public:
  enum class OffTerminal {
    kSilent,  // the command prints a summary of its own (pull, push)
    kLines,   // "Copying blob sha256:<hex> done" per blob (load, save, import)
  };
  // `enabled` false (-q, --format json): nothing at all. `verb` heads each image ("Loading").
  TransferDisplay(bool enabled, std::string verb, OffTerminal off_terminal = OffTerminal::kSilent);
  // nullptr when nothing is shown, so the library skips building events.
  oci::TransferProgress Callback();
  // Leaves the final state on the screen.
  void Finish();

 private:
  struct Row {
    bool image = false;  // a heading: `name` is the image
    std::string digest;  // empty until known (then `name` names the row)
    std::string name;
    std::string state;  // empty: a byte count (a bar when the total is known)
    int64_t done = 0;
    int64_t total = 0;
  };
  void Handle(const oci::TransferEvent& e);
  void PrintLine(const oci::TransferEvent& e);
  Row& RowFor(const oci::TransferEvent& e);
  void Draw(bool force);

  bool terminal_;
  bool lines_;
  std::string verb_;
  std::vector<Row> rows_;
  int drawn_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
};

// "12.3MB" (one decimal), or with `significant`, three significant digits as `docker images`
// prints sizes ("1.23MB", "123MB").
std::string HumanBytes(int64_t bytes, bool significant = false);

}  // namespace barge::cli
