#include "bench/bench.h"

#include <algorithm>

namespace barge::bench {
namespace {

std::vector<Benchmark>& Mutable() {
  static std::vector<Benchmark> all;
  return all;
}

}  // namespace

Registration::Registration(std::string name, std::string summary, Fn run) {
  auto& all = Mutable();
  all.push_back({std::move(name), std::move(summary), std::move(run)});
  std::sort(all.begin(), all.end(),
            [](const Benchmark& a, const Benchmark& b) { return a.name < b.name; });
}

const std::vector<Benchmark>& All() { return Mutable(); }

const Benchmark* Find(const std::string& name) {
  for (const Benchmark& b : Mutable()) {
    if (b.name == name) return &b;
  }
  return nullptr;
}

}  // namespace barge::bench
