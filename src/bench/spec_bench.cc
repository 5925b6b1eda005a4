// spec-p1 and spec-p2: the p1 and p2 pipelines written as pipeline specs (YAML + SQL), run by
// barge pipeline's planner on the engine, each against the typed C++ pipeline in the same run.
//
//   spec-p1: generate -> select value * 2 -> filter value % 3 <> 0 -> sum
//   spec-p2: generate -> key_by key -> 1 s tumbling window sum(value) -> sum of the results
//   spec-p2-scraped: spec-p2 with and without its metrics served and scraped every second
//   spec-p2-checkpoint: spec-p2 with checkpoints every second against spec-p2 without, in turns
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "base/file_util.h"
#include "base/unique_fd.h"
#include "bench/bench.h"
#include "bench/pipelines.h"
#include "metrics/http_server.h"
#include "metrics/prometheus.h"
#include "pipeline/metrics.h"
#include "pipeline/planner.h"

namespace barge::bench {
namespace {

constexpr const char* kSpecP1 = R"(name: spec-p1
source:
  generate: {records: RECORDS, keys: 1000}
steps:
  - select: {value: value * 2}
  - filter: value % 3 <> 0
)";

// 1,000,000 records per second of event time: windows of one second hold ~1,000 records for
// each of the 1,000 keys, as in p2.
constexpr const char* kSpecP2 = R"(name: spec-p2
source:
  generate: {records: RECORDS, keys: 1000, records_per_second: 1000000}
steps:
  - key_by: key
  - window: {tumbling: 1s}
    aggregate: {total: sum(value)}
)";

// Bytes of the response to GET /metrics from 127.0.0.1:port, as a scraper reads it; 0 on failure.
size_t Scrape(int port) {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return 0;
  const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
  if (::write(s.get(), req, sizeof(req) - 1) != sizeof(req) - 1) return 0;
  size_t total = 0;
  char buf[16384];
  ssize_t n;
  while ((n = ::read(s.get(), buf, sizeof(buf))) > 0) total += static_cast<size_t>(n);
  return total;
}

// Serves the pipeline's metrics on a free loopback port and scrapes them every second, like a
// Prometheus with scrape_interval: 1s, until destroyed.
class Scraper {
 public:
  static Result<std::unique_ptr<Scraper>> Start(const pipeline::SpecPipeline& p) {
    auto s = std::unique_ptr<Scraper>(new Scraper(p));
    metrics::HttpHandler handler = [m = s->metrics_.get()](const std::string&) {
      return metrics::HttpResponse{200, metrics::kPrometheusContentType, m->Render()};
    };
    ASSIGN_OR_RETURN(s->server_, metrics::HttpServer::Start({"127.0.0.1", 0}, handler));
    s->thread_ = std::thread([raw = s.get()] { raw->Loop(); });
    return s;
  }
  ~Scraper() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  int scrapes() const { return scrapes_; }

 private:
  explicit Scraper(const pipeline::SpecPipeline& p)
      : metrics_(std::make_unique<pipeline::PipelineMetrics>(p)) {}
  void Loop() {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_; })) {
      lock.unlock();
      if (Scrape(server_->port()) > 0) ++scrapes_;
      lock.lock();
    }
  }
  std::unique_ptr<pipeline::PipelineMetrics> metrics_;
  std::unique_ptr<metrics::HttpServer> server_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<int> scrapes_{0};
};

// Runs `text` (RECORDS replaced) with its results summed over `column` into the checksum; with
// `scraped`, its metrics are served and scraped every second meanwhile.
Result<PipelineRun> RunSpec(std::string text, uint64_t records, int parallelism,
                            const std::string& column, bool scraped = false,
                            int* scrapes = nullptr) {
  text.replace(text.find("RECORDS"), 7, std::to_string(records));
  ASSIGN_OR_RETURN(pipeline::Spec spec,
                   pipeline::ParseSpec(text, "bench.yaml", {.parallelism = parallelism}));
  std::atomic<uint64_t> checksum{0};
  pipeline::PlanOptions options;
  options.collect = [&checksum, &column](const pipeline::RecordBatch& b) {
    int c = b.schema->Find(column);
    const int64_t* v = b.columns[static_cast<size_t>(c)].ints();
    uint64_t sum = 0;
    for (size_t i = 0; i < b.rows; ++i) sum += static_cast<uint64_t>(v[i]);
    checksum.fetch_add(sum, std::memory_order_relaxed);
  };
  ASSIGN_OR_RETURN(auto p, pipeline::SpecPipeline::Make(spec, options));
  std::unique_ptr<Scraper> scraper;
  if (scraped) {
    ASSIGN_OR_RETURN(scraper, Scraper::Start(*p));
  }
  auto start = std::chrono::steady_clock::now();
  double cpu_start = ProcessCpuSeconds();
  RETURN_IF_ERROR(p->Run());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double cpu = ProcessCpuSeconds() - cpu_start;
  if (scraper && scrapes != nullptr) *scrapes = scraper->scrapes();
  return PipelineRun{seconds, cpu, checksum.load()};
}

nlohmann::json Report(const std::string& name, uint64_t n, int par, const PipelineRun& spec,
                      const PipelineRun& typed) {
  auto per_cpu = [n](const PipelineRun& r) { return static_cast<double>(n) / r.cpu_seconds; };
  auto per_sec = [n](const PipelineRun& r) { return static_cast<double>(n) / r.seconds; };
  return {{"bench", name},
          {"records", n},
          {"parallelism", par},
          {"seconds", spec.seconds},
          {"records_per_sec", per_sec(spec)},
          {"records_per_cpu_sec", per_cpu(spec)},
          {"typed_records_per_sec", per_sec(typed)},
          {"typed_records_per_cpu_sec", per_cpu(typed)},
          {"ratio_to_typed", per_sec(spec) / per_sec(typed)},
          {"ratio_to_typed_per_core", per_cpu(spec) / per_cpu(typed)},
          {"checksum", spec.checksum}};
}

template <class Typed>
Result<nlohmann::json> Compare(const std::string& name, const char* spec_text,
                               const std::string& column, const Options& o, Typed typed) {
  uint64_t n = o.records > 0 ? o.records : 200'000'000;
  int par = o.parallelism > 0 ? o.parallelism : 1;
  ASSIGN_OR_RETURN(PipelineRun s, RunSpec(spec_text, n, par, column));
  ASSIGN_OR_RETURN(PipelineRun t, typed(n, par));
  if (s.checksum != t.checksum) {
    return Internal(name + ": the spec pipeline's checksum " + std::to_string(s.checksum) +
                    " differs from the typed pipeline's " + std::to_string(t.checksum));
  }
  return Report(name, n, par, s, t);
}

Result<nlohmann::json> RunSpecP1(const Options& o) {
  return Compare("spec-p1", kSpecP1, "value", o, TypedP1);
}
Result<nlohmann::json> RunSpecP2(const Options& o) {
  return Compare("spec-p2", kSpecP2, "total", o, TypedP2);
}

// spec-p2 alternately without and with a scraper, `iterations` rounds (default 5): the medians
// of both and their ratio, so that a slowdown from serving metrics shows against the same run.
Result<nlohmann::json> RunSpecP2Scraped(const Options& o) {
  // Runs of several seconds, so that each is scraped a few times (once a second).
  uint64_t n = o.records > 0 ? o.records : 600'000'000;
  int par = o.parallelism > 0 ? o.parallelism : 1;
  int rounds = o.iterations > 0 ? o.iterations : 5;
  std::vector<double> plain, scraped;
  int scrapes = 0;
  uint64_t checksum = 0;
  for (int i = 0; i < rounds; ++i) {
    for (bool with : {false, true}) {
      int round_scrapes = 0;
      ASSIGN_OR_RETURN(PipelineRun r, RunSpec(kSpecP2, n, par, "total", with, &round_scrapes));
      if (checksum != 0 && r.checksum != checksum) return Internal("spec-p2: checksums differ");
      checksum = r.checksum;
      (with ? scraped : plain).push_back(static_cast<double>(n) / r.seconds);
      scrapes += round_scrapes;
    }
  }
  if (scrapes < rounds) {
    return Internal("spec-p2-scraped: the runs were too short to be scraped (" +
                    std::to_string(scrapes) + " scrapes): give more --records");
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  return nlohmann::json{{"bench", "spec-p2-scraped"},
                        {"records", n},
                        {"parallelism", par},
                        {"rounds", rounds},
                        {"records_per_sec_median", median(plain)},
                        {"scraped_records_per_sec_median", median(scraped)},
                        {"ratio_scraped_to_plain", median(scraped) / median(plain)},
                        {"records_per_sec", plain},
                        {"scraped_records_per_sec", scraped},
                        {"scrapes", scrapes},
                        {"checksum", checksum}};
}

// spec-p2 with `checkpoint: {interval: 1s}` against spec-p2 without, alternating so that both see
// the same machine; the best of each is compared. Results go to memory (no file sink to commit).
Result<nlohmann::json> RunSpecP2Checkpoint(const Options& o) {
  const uint64_t n = o.records > 0 ? o.records : 200'000'000;
  const int par = o.parallelism > 0 ? o.parallelism : 2;
  const int rounds = o.iterations > 0 ? o.iterations : 3;
  ASSIGN_OR_RETURN(TempDir dir, TempDir::Make("barge-bench-ckpt-"));
  const std::string with =
      std::string(kSpecP2) + "checkpoint: {interval: 1s, dir: " + dir.path() + "/ck, keep: 3}\n";
  double best_plain = 1e300, best_ckpt = 1e300;
  uint64_t checksum = 0;
  for (int r = 0; r < rounds; ++r) {
    ASSIGN_OR_RETURN(PipelineRun plain, RunSpec(kSpecP2, n, par, "total"));
    ASSIGN_OR_RETURN(PipelineRun ckpt, RunSpec(with, n, par, "total"));
    if (plain.checksum != ckpt.checksum) {
      return Internal("spec-p2-checkpoint: checksums differ with and without checkpoints");
    }
    checksum = plain.checksum;
    best_plain = std::min(best_plain, plain.seconds);
    best_ckpt = std::min(best_ckpt, ckpt.seconds);
  }
  const double rate_plain = static_cast<double>(n) / best_plain;
  const double rate_ckpt = static_cast<double>(n) / best_ckpt;
  return nlohmann::json{{"bench", "spec-p2-checkpoint"},
                        {"records", n},
                        {"parallelism", par},
                        {"rounds", rounds},
                        {"records_per_sec", rate_ckpt},
                        {"records_per_sec_without_checkpoints", rate_plain},
                        {"ratio_to_without", rate_ckpt / rate_plain},
                        {"slowdown_percent", (1 - rate_ckpt / rate_plain) * 100},
                        {"checksum", checksum}};
}

const Registration kSpecP1Bench{
    "spec-p1", "p1 as a pipeline spec vs the typed pipeline (records/s)", RunSpecP1};
const Registration kSpecP2Bench{
    "spec-p2", "p2 as a pipeline spec vs the typed pipeline (records/s)", RunSpecP2};
const Registration kSpecP2ScrapedBench{
    "spec-p2-scraped",
    "spec-p2 without and with its /metrics served and scraped every second (median records/s)",
    RunSpecP2Scraped};
const Registration kSpecP2CheckpointBench{
    "spec-p2-checkpoint", "spec-p2 with checkpoints every second vs without (records/s)",
    RunSpecP2Checkpoint};

}  // namespace
}  // namespace barge::bench
