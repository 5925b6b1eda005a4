// barge pipeline validate|run SPEC.yaml: pipelines written as YAML specs with SQL expressions
// (src/pipeline), run on the stream engine. This file parses options, prints the plan or the live
// status, and turns Ctrl-C into a clean stop.
#include <fmt/core.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>

#include "cli/cli.h"
#include "metrics/http_server.h"
#include "metrics/prometheus.h"
#include "pipeline/format.h"
#include "pipeline/metrics.h"
#include "pipeline/planner.h"
#include "pipeline/stage.h"

namespace barge::cli {
namespace {

struct PipelineArgs {
  std::string spec;
  std::vector<std::string> sets;
  int parallelism = 0;
  std::string format = "text";
  bool quiet = false;
  std::string metrics_addr;  // empty: no metrics endpoint
  bool fresh = false;
};

Result<std::unique_ptr<pipeline::SpecPipeline>> Plan(const PipelineArgs& args, bool validate,
                                                     const std::string& root) {
  pipeline::LoadOptions load{args.sets, args.parallelism};
  ASSIGN_OR_RETURN(pipeline::Spec spec, pipeline::LoadSpec(args.spec, load));
  pipeline::PlanOptions options{.validate_only = validate, .root = root};
  options.fresh = args.fresh;
  options.log = [](const std::string& line) {
    fmt::print(stderr, "barge: {}\n", line);
    std::fflush(stderr);
  };
  return pipeline::SpecPipeline::Make(spec, options);
}

void Validate(const PipelineArgs& args, Cli& cli) {
  if (args.format != "text" && args.format != "json") {
    cli.Finish(InvalidArgument("--format must be text or json, got '" + args.format + "'"));
    return;
  }
  Result<std::unique_ptr<pipeline::SpecPipeline>> p = Plan(args, /*validate=*/true, cli.root());
  if (!p.ok()) {
    // JSON readers get the error as JSON on stdout too (stderr and the exit code as always).
    if (args.format == "json") {
      nlohmann::json error = {{"valid", false}, {"error", p.status().message()}};
      fmt::print("{}\n", error.dump(2));
    }
    cli.Finish(p.status());
    return;
  }
  if (args.format == "json") {
    nlohmann::json plan = (*p)->PlanJson();
    plan["valid"] = true;
    fmt::print("{}\n", plan.dump(2));
  } else {
    fmt::print("{}", (*p)->PlanText());
  }
}

// The signal that asked the pipeline to stop (SIGINT, SIGTERM), or 0; and how many came.
std::atomic<int> g_stop_signal{0};
std::atomic<int> g_stop_count{0};

extern "C" void OnStopSignal(int sig) {
  g_stop_signal.store(sig);
  g_stop_count.fetch_add(1);
}

// After a stop request, how long steps and sinks get to wind down before barge exits anyway (a
// sink blocked on a peer that stopped reading never returns); a second request exits at once.
constexpr auto kStopGrace = std::chrono::seconds(5);

const char* StopName(int sig) { return sig == SIGINT ? "Ctrl-C" : "SIGTERM"; }

// Installs handlers for SIGINT and SIGTERM for its lifetime.
class StopSignals {
 public:
  StopSignals() {
    g_stop_signal.store(0);
    g_stop_count.store(0);
    struct sigaction sa {};
    sa.sa_handler = OnStopSignal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

std::string Count(uint64_t n) {
  if (n >= 1'000'000'000) return fmt::format("{:.1f}G", static_cast<double>(n) / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.1f}M", static_cast<double>(n) / 1e6);
  if (n >= 10'000) return fmt::format("{:.1f}K", static_cast<double>(n) / 1e3);
  return std::to_string(n);
}

std::string Lag(const pipeline::RunProgress& p) {
  if (p.max_event_time == stream::kMinTime || p.watermark == stream::kMinTime) return "-";
  double seconds = static_cast<double>(p.max_event_time - p.watermark) / 1000.0;
  return fmt::format("{:.1f}s", seconds < 0 ? 0.0 : seconds);
}

std::string Watermark(const pipeline::RunProgress& p) {
  if (p.watermark == stream::kMinTime) return "none";
  std::string out;
  pipeline::AppendTimestamp(p.watermark, out);
  return out;
}

// "1.2M in (800K/s), 45K out (30K/s), 3 bad, 10 late, watermark lag 2.0s".
std::string StatusLine(const pipeline::RunProgress& now, const pipeline::RunProgress& before,
                       double seconds) {
  auto rate = [&](uint64_t a, uint64_t b) {
    return seconds > 0 ? Count(static_cast<uint64_t>(static_cast<double>(a - b) / seconds))
                       : std::string("0");
  };
  std::string line = fmt::format("{} in ({}/s), {} out ({}/s)", Count(now.records_in),
                                 rate(now.records_in, before.records_in), Count(now.records_out),
                                 rate(now.records_out, before.records_out));
  if (now.bad > 0) line += fmt::format(", {} bad", Count(now.bad));
  if (now.late > 0) line += fmt::format(", {} late", Count(now.late));
  line += ", watermark lag " + Lag(now);
  return line;
}

void RunPipeline(const PipelineArgs& args, Cli& cli) {
  StopSignals signals;
  Result<std::unique_ptr<pipeline::SpecPipeline>> planned =
      Plan(args, /*validate=*/false, cli.root());
  if (!planned.ok()) {
    if (int sig = g_stop_signal.load(); sig != 0) {
      // Stopped while planning (stdin's first records are sampled for the schema).
      fmt::print(stderr, "barge: pipeline stopped by {} before it started\n", StopName(sig));
      cli.SetExitCode(128 + sig);
      return;
    }
    cli.Finish(planned.status());
    return;
  }
  pipeline::SpecPipeline& p = **planned;
  // /metrics and /healthz for as long as the pipeline runs.
  pipeline::PipelineMetrics exported(p);
  std::unique_ptr<metrics::HttpServer> server;
  if (!args.metrics_addr.empty()) {
    Result<metrics::ListenAddress> addr = metrics::ParseListenAddress(args.metrics_addr);
    if (!addr.ok()) {
      cli.Finish(addr.status().Wrap("--metrics-addr"));
      return;
    }
    Result<std::unique_ptr<metrics::HttpServer>> started =
        metrics::HttpServer::Start(*addr, [&exported](const std::string& path) {
          if (path == "/metrics") {
            return metrics::HttpResponse{200, metrics::kPrometheusContentType, exported.Render()};
          }
          if (path == "/healthz") return metrics::HttpResponse{200, "text/plain", "ok\n"};
          return metrics::HttpResponse{404, "text/plain", "not found: try /metrics or /healthz\n"};
        });
    if (!started.ok()) {
      cli.Finish(started.status());
      return;
    }
    server = std::move(started).value();
    if (!args.quiet) fmt::print(stderr, "barge: metrics on {}/metrics\n", server->url());
  }
  const bool terminal = ::isatty(STDERR_FILENO) == 1;
  const auto start = std::chrono::steady_clock::now();
  std::atomic<bool> done{false};
  Result<uint64_t> savepoint = Cancelled("no savepoint");
  // Watches for Ctrl-C and prints the status: on a terminal one line rewritten twice a second,
  // otherwise a plain line every 10 seconds.
  std::thread watcher([&] {
    pipeline::RunProgress last;
    auto last_time = start, last_print = start;
    bool cancelled = false;
    std::chrono::steady_clock::time_point cancel_time;
    while (!done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (!cancelled && g_stop_signal.load() != 0) {
        cancelled = true;
        cancel_time = std::chrono::steady_clock::now();
        if (p.checkpoint_dir().empty()) {
          p.Cancel();
        } else {
          // A savepoint first, so that the next run resumes where this one stopped. A second
          // signal during it exits at once (below, after it returns or times out).
          savepoint = p.StopWithSavepoint(kStopGrace - std::chrono::seconds(1));
        }
      }
      if (cancelled && (g_stop_count.load() > 1 ||
                        std::chrono::steady_clock::now() - cancel_time > kStopGrace)) {
        // A step or sink does not return (a peer that stopped reading): leave without it.
        int sig = g_stop_signal.load();
        fmt::print(stderr, "\nbarge: pipeline stopped by {} without waiting for blocked steps\n",
                   StopName(sig));
        std::fflush(stderr);
        pipeline::RemoveStageFiles();
        std::_Exit(128 + sig);
      }
      auto now = std::chrono::steady_clock::now();
      auto period = terminal ? std::chrono::milliseconds(500) : std::chrono::seconds(10);
      if (args.quiet || now - last_print < period) continue;
      pipeline::RunProgress progress = p.Progress();
      double seconds = std::chrono::duration<double>(now - last_time).count();
      std::string line = StatusLine(progress, last, seconds);
      if (terminal) {
        fmt::print(stderr, "\r{}\x1b[K", line);
      } else {
        fmt::print(stderr, "barge: pipeline {}: {}\n", args.spec, line);
      }
      std::fflush(stderr);
      last = progress;
      last_time = now;
      last_print = now;
    }
  });
  Status st = p.Run();
  done.store(true);
  watcher.join();
  pipeline::RunProgress progress = p.Progress();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (terminal && !args.quiet) fmt::print(stderr, "\r\x1b[K");
  int sig = g_stop_signal.load();
  if (st.code() == StatusCode::kCancelled && sig != 0) {
    // Stopped on request: say how far it got, whatever -q says.
    if (!p.checkpoint_dir().empty()) {
      if (savepoint.ok()) {
        fmt::print(stderr, "barge: savepoint {} written to {}; the next run resumes from it\n",
                   *savepoint, p.checkpoint_dir());
      } else {
        fmt::print(stderr,
                   "barge: no savepoint ({}); the next run resumes from the last checkpoint\n",
                   savepoint.status().message());
      }
    }
    fmt::print(stderr,
               "barge: pipeline stopped by {}: {} records in, {} out, {} bad, {} late, watermark "
               "{}, after {:.1f}s\n",
               StopName(sig), progress.records_in, progress.records_out, progress.bad,
               progress.late, Watermark(progress), seconds);
    cli.SetExitCode(128 + sig);
    return;
  }
  if (!st.ok()) {
    cli.Finish(st);
    return;
  }
  if (!args.quiet) {
    std::string summary =
        fmt::format("{} records in, {} out", progress.records_in, progress.records_out);
    if (progress.bad > 0) {
      summary += p.dead_letter_path().empty()
                     ? fmt::format(", {} bad (skipped)", progress.bad)
                     : fmt::format(", {} bad (in {})", progress.bad, p.dead_letter_path());
    }
    if (progress.late > 0) summary += fmt::format(", {} late", progress.late);
    fmt::print(stderr, "barge: pipeline done: {} in {:.2f}s\n", summary, seconds);
  }
}

void AddSpecOptions(CLI::App& cmd, PipelineArgs& args) {
  cmd.add_option("spec", args.spec, "The pipeline spec (YAML); - reads it from stdin")->required();
  cmd.add_option("--set", args.sets,
                 "Override a value of the spec: PATH=VALUE, PATH in dots and list indexes "
                 "(source.file.path=in.csv, steps.0.filter=\"x > 1\"), VALUE in YAML; repeatable");
  cmd.add_option("--parallelism", args.parallelism,
                 "Instances of each parallel step, overriding the spec's parallelism")
      ->check(CLI::Range(1, 1024));
}

const Registration kPipeline{
    "pipeline", "Run stream pipelines written as YAML specs with SQL expressions",
    [](CLI::App& cmd, Cli& cli) {
      cmd.require_subcommand(1);
      cmd.footer("Spec format: docs/pipelines.md; expressions: docs/expressions.md.");
      auto args = std::make_shared<PipelineArgs>();

      CLI::App* validate = cmd.add_subcommand(
          "validate", "Check a spec against its inputs' schemas and print the plan");
      AddSpecOptions(*validate, *args);
      validate->add_option("--format", args->format, "text (default) or json");
      validate->callback([args, &cli] { Validate(*args, cli); });

      CLI::App* run = cmd.add_subcommand(
          "run", "Run a pipeline until its input ends (or Ctrl-C); progress on stderr");
      AddSpecOptions(*run, *args);
      run->add_flag("-q,--quiet", args->quiet, "Print no progress or summary, only errors");
      run->add_option("--metrics-addr", args->metrics_addr,
                      "Serve Prometheus metrics at http://HOST:PORT/metrics (and /healthz) while "
                      "the pipeline runs; HOST defaults to 127.0.0.1 (:9464 or 9464 serve on "
                      "loopback, 0.0.0.0:9464 on every interface), PORT 0 picks a free port. "
                      "Metrics: docs/monitoring.md")
          ->type_name("HOST:PORT");
      run->add_flag("--fresh", args->fresh,
                    "With checkpoint: in the spec, start over instead of resuming from the latest "
                    "checkpoint (its checkpoints are removed)");
      run->callback([args, &cli] { RunPipeline(*args, cli); });
    }};

}  // namespace
}  // namespace barge::cli
