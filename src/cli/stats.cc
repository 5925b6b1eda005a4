// barge stats: live resource usage of containers (CPU %, memory, processes, network and block
// I/O), refreshed every second like `docker stats`, or sampled once with --no-stream.
#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/cli.h"
#include "runtime/usage.h"

namespace barge::cli {
namespace {

struct StatsArgs {
  std::vector<std::string> containers;
  bool no_stream = false;
  std::string format = "table";
};

// Binary units for memory, as docker shows it ("12.5MiB").
std::string Binary(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{}B", bytes) : fmt::format("{:.4g}{}", v, units[u]);
}

// Decimal units for I/O, as docker shows it ("1.2MB").
std::string Decimal(uint64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (v >= 1000 && u + 1 < std::size(units)) {
    v /= 1000;
    ++u;
  }
  return u == 0 ? fmt::format("{}B", bytes) : fmt::format("{:.3g}{}", v, units[u]);
}

double MemPercent(const runtime::ContainerStats& s) {
  return s.usage.memory_limit == 0 ? 0
                                   : static_cast<double>(s.usage.memory_bytes) /
                                         static_cast<double>(s.usage.memory_limit) * 100.0;
}

std::string Table(const std::vector<runtime::ContainerStats>& stats) {
  std::vector<std::vector<std::string>> rows = {{"CONTAINER ID", "NAME", "CPU %",
                                                 "MEM USAGE / LIMIT", "MEM %", "NET I/O",
                                                 "BLOCK I/O", "PIDS"}};
  for (const runtime::ContainerStats& s : stats) {
    if (!s.running) {
      rows.push_back({s.id.substr(0, 12), s.name, "--", "-- / --", "--", "--", "--", "--"});
      continue;
    }
    const runtime::ResourceUsage& u = s.usage;
    rows.push_back({s.id.substr(0, 12), s.name, fmt::format("{:.2f}%", s.cpu_percent),
                    Binary(u.memory_bytes) + " / " + Binary(u.memory_limit),
                    fmt::format("{:.2f}%", MemPercent(s)),
                    Decimal(u.net_rx_bytes) + " / " + Decimal(u.net_tx_bytes),
                    Decimal(u.block_read_bytes) + " / " + Decimal(u.block_write_bytes),
                    std::to_string(u.pids)});
  }
  return FormatTable(rows);
}

// One JSON object per container and sample (JSON Lines), numbers in base units.
std::string Json(const std::vector<runtime::ContainerStats>& stats) {
  std::string out;
  for (const runtime::ContainerStats& s : stats) {
    const runtime::ResourceUsage& u = s.usage;
    nlohmann::json j = {{"id", s.id},
                        {"name", s.name},
                        {"running", s.running},
                        {"cpu_percent", s.cpu_percent},
                        {"cpu_seconds", u.cpu_seconds},
                        {"memory_usage_bytes", u.memory_bytes},
                        {"memory_limit_bytes", u.memory_limit},
                        {"memory_percent", MemPercent(s)},
                        {"pids", u.pids},
                        {"net_rx_bytes", u.net_rx_bytes},
                        {"net_tx_bytes", u.net_tx_bytes},
                        {"block_read_bytes", u.block_read_bytes},
                        {"block_write_bytes", u.block_write_bytes},
                        {"oom_kills", u.oom_kills}};
    out += j.dump() + "\n";
  }
  return out;
}

void Stats(const StatsArgs& args, Cli& cli) {
  if (args.format != "table" && args.format != "json") {
    cli.Finish(InvalidArgument("unknown --format '" + args.format + "' (use table or json)"));
    return;
  }
  runtime::ContainerStore store(cli.root());
  runtime::StatsSampler sampler(store, args.containers);
  // CPU % needs an interval: the first figures come after one.
  Result<std::vector<runtime::ContainerStats>> first = sampler.Sample();
  if (!first.ok()) {
    cli.Finish(first.status());
    return;
  }
  const bool terminal = ::isatty(STDOUT_FILENO) == 1;
  const auto interval =
      args.no_stream ? std::chrono::milliseconds(500) : std::chrono::milliseconds(1000);
  for (;;) {
    std::this_thread::sleep_for(interval);
    Result<std::vector<runtime::ContainerStats>> stats = sampler.Sample();
    if (!stats.ok()) {
      cli.Finish(stats.status());
      return;
    }
    std::string text = args.format == "json" ? Json(*stats) : Table(*stats);
    // Streaming on a terminal redraws in place (docker's way); elsewhere samples follow each
    // other.
    if (terminal && !args.no_stream) text = "\x1b[H\x1b[2J" + text;
    fmt::print("{}", text);
    std::fflush(stdout);
    if (args.no_stream) return;
  }
}

const Registration kStats{
    "stats", "Show containers' CPU, memory, process and I/O usage, live",
    [](CLI::App& cmd, Cli& cli) {
      auto args = std::make_shared<StatsArgs>();
      cmd.add_option("container", args->containers,
                     "Containers by name or id (default: every running container)");
      cmd.add_flag("--no-stream", args->no_stream, "Print one sample and exit");
      cmd.add_option("--format", args->format,
                     "table (default) or json: one object per container and sample, numbers in "
                     "bytes, seconds and percent");
      cmd.footer(
          "CPU % is of one CPU (200% = two busy); memory is the cgroup's usage less inactive file "
          "cache, and the limit is the host's memory for a container without --memory. Without a "
          "cgroup (no limits) CPU, memory and block I/O are summed over the container's "
          "processes. Refreshes every second until Ctrl-C. See docs/monitoring.md.");
      cmd.callback([args, &cli] { Stats(*args, cli); });
    }};

}  // namespace
}  // namespace barge::cli
