// Registry of the benchmarks that `barge bench NAME` runs. A benchmark measures one goal from
// shared/docs/VISION.md and returns its figures as a JSON object, printed as one line.
//
//   static const barge::bench::Registration kP1{"p1", "map/filter/sum pipeline", RunP1};
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "barge/status.h"

namespace barge::bench {

struct Options {
  uint64_t records = 0;  // 0: the benchmark's default
  int parallelism = 0;   // 0: the benchmark's default
  int iterations = 0;    // 0: the benchmark's default (for benchmarks that repeat a command)
  std::string root;      // barge state root, for benchmarks that use images or containers
};

using Fn = std::function<Result<nlohmann::json>(const Options&)>;

struct Benchmark {
  std::string name;
  std::string summary;
  Fn run;
};

struct Registration {
  Registration(std::string name, std::string summary, Fn run);
};

// All registered benchmarks, sorted by name.
const std::vector<Benchmark>& All();
const Benchmark* Find(const std::string& name);

}  // namespace barge::bench
