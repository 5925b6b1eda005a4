// barge bench NAME: runs one registered benchmark and prints its figures as one JSON line.
#include <fmt/core.h>

#include "bench/bench.h"
#include "cli/cli.h"

namespace barge::cli {
namespace {

struct BenchArgs {
  std::string name;
  bench::Options options;
  bool list = false;
};

void Run(const BenchArgs& args, Cli& cli) {
  if (args.list || args.name.empty()) {
    for (const bench::Benchmark& b : bench::All()) fmt::print("{:<12} {}\n", b.name, b.summary);
    if (!args.list) cli.SetExitCode(kExitUsage);
    return;
  }
  const bench::Benchmark* b = bench::Find(args.name);
  if (b == nullptr) {
    std::string names;
    for (const bench::Benchmark& x : bench::All()) names += (names.empty() ? "" : ", ") + x.name;
    cli.Finish(NotFound(fmt::format("unknown benchmark '{}' (have: {})", args.name, names)));
    return;
  }
  bench::Options options = args.options;
  options.root = cli.root();
  Result<nlohmann::json> result = b->run(options);
  if (!result.ok()) {
    cli.Finish(result.status().Wrap("bench " + args.name));
    return;
  }
  fmt::print("{}\n", result->dump());
}

const Registration kBench{"bench", "Run a benchmark and print its figures as one JSON line",
                          [](CLI::App& cmd, Cli& cli) {
                            auto args = std::make_shared<BenchArgs>();
                            cmd.add_option("name", args->name, "Benchmark to run (see --list)");
                            cmd.add_option("--records", args->options.records,
                                           "Records to process (default per benchmark)");
                            cmd.add_option("--parallelism", args->options.parallelism,
                                           "Instances per parallel operator (default 1)");
                            cmd.add_option("--iterations", args->options.iterations,
                                           "Repetitions, for benchmarks that time a command");
                            cmd.add_flag("--list", args->list, "List the benchmarks");
                            cmd.callback([args, &cli] { Run(*args, cli); });
                          }};

}  // namespace
}  // namespace barge::cli
