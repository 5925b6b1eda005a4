// What the benchmarks that time commands share.
#pragma once

#include <string>
#include <vector>

#include "barge/status.h"

namespace barge::bench {

double Median(std::vector<double> v);

// Runs `argv` and returns its wall time in milliseconds; a failure names the command and the
// last line it printed on stderr.
Result<double> TimeCommand(const std::vector<std::string>& argv);

// Unmounts what is still mounted below `dir` (buildah's or podman's storage in a benchmark's
// work dir), deepest first, so that removing the work dir never has to cross a mount.
void UnmountBelow(const std::string& dir);

// The path of the running barge executable.
std::string SelfExe();

}  // namespace barge::bench
