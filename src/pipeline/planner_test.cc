#include "pipeline/planner.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "base/file_util.h"
#include "pipeline/format.h"
#include "pipeline/spec_testing.h"

namespace barge::pipeline {
namespace {

using testing::Outcome;
using testing::Workdir;

// Plans `text` (written as s.yaml) and runs it, collecting every result row as JSON.
Outcome RunSpec(Workdir& w, const std::string& text, int parallelism = 0, bool collect = true) {
  return testing::RunCollecting(LoadSpec(w.Write("s.yaml", text), {.parallelism = parallelism}), {},
                                collect);
}

Status Validate(Workdir& w, const std::string& text) {
  std::string path = w.Write("s.yaml", text);
  Result<Spec> spec = LoadSpec(path);
  if (!spec.ok()) return spec.status();
  return SpecPipeline::Make(*spec, {.validate_only = true}).status();
}

const char* kOrdersCsv =
    "ts,user,country,amount\n"
    "1000,u1,de,10.00\n"
    "2000,u2,fr,5.50\n"
    "3000,u1,de,2.25\n"
    "12500,u3,de,1.00\n"
    "11000,u2,XX,9.00\n"
    "14000,u2,fr,-1.00\n"
    "25000,u1,fr,3.00\n";

TEST(PlannerTest, BadSpecsNameTheirPosition) {
  Workdir w;
  w.Write("orders.csv", kOrdersCsv);
  const std::string src =
      "source:\n  file: orders.csv\n  event_time: {field: ts, max_delay: 2s}\nsteps:\n";
  struct Case {
    std::string steps;
    std::string message;
  };
  std::vector<Case> cases = {
      {"  - filter: amout > 0\n", "5:13: unknown field 'amout' (did you mean 'amount'?)"},
      {"  - select: {c: uper(country)}\n", "5:17: unknown function 'uper' (did you mean 'upper'?)"},
      {"  - filter: amount + 1\n",
       "5:13: filter needs a BOOLEAN condition, but 'amount + 1' is DOUBLE"},
      {"  - key_by: [contry]\n  - aggregate: {n: count(*)}\n",
       "5:14: unknown field 'contry' in key_by (did you mean 'country'?)"},
      {"  - key_by: [country]\n  - aggregate: {n: summ(amount)}\n",
       "6:20: unknown aggregate function 'summ' (did you mean 'sum'?)"},
      {"  - key_by: [country]\n  - filter: amount > 1\n",
       "6:5: key_by must be followed by window, aggregate or stage (put filter before key_by)"},
      {"  - key_by: [country]\n  - window: {tumbling: 1s}\n    aggregate: {country: count(*)}\n",
       "7:17: 'country' is already a key field of this step"},
  };
  for (const Case& c : cases) {
    Status st = Validate(w, src + c.steps);
    ASSERT_FALSE(st.ok()) << c.steps;
    EXPECT_NE(st.message().find(w.path() + "/s.yaml:" + c.message), std::string::npos)
        << st.message() << "\nwant: " << c.message;
  }
  // Event time: the field must exist and hold times.
  Status st = Validate(w, "source:\n  file: orders.csv\n  event_time: {field: user}\n");
  EXPECT_EQ(st.message(),
            w.path() +
                "/s.yaml:3:23: event_time field 'user' must be BIGINT (milliseconds) "
                "or TIMESTAMP, but it is VARCHAR (inferred; declare schema: to set it)");
  st = Validate(w,
                "source:\n  file: orders.csv\nsteps:\n  - key_by: [country]\n"
                "  - window: {tumbling: 1s}\n    aggregate: {n: count(*)}\n");
  EXPECT_EQ(st.message(), w.path() +
                              "/s.yaml:5:5: window needs event time: add event_time: {field: ..., "
                              "max_delay: ...} to the source");
  st = Validate(w, "source:\n  file: missing/*.csv\n");
  EXPECT_EQ(st.message(), w.path() + "/s.yaml:2:9: no file matches " + w.path() + "/missing/*.csv");
}

TEST(PlannerTest, TheIssueSpecPlansAndPrints) {
  Workdir w;
  w.Write("orders.csv", kOrdersCsv);
  std::string spec =
      "name: orders\nparallelism: 2\nsource:\n  file: {path: orders.csv, format: csv}\n"
      "  event_time: {field: ts, max_delay: 2s}\nsteps:\n"
      "  - filter: amount > 0 AND country <> 'XX'\n  - select:\n      user: user\n"
      "      country: upper(country)\n      cents: CAST(round(amount * 100) AS BIGINT)\n"
      "      ts: ts\n  - key_by: [country]\n  - window: {tumbling: 10s, allowed_lateness: 1s}\n"
      "    aggregate:\n      orders: count(*)\n      total_cents: sum(cents)\n"
      "      biggest: max(cents)\n      mean: avg(cents)\nsink:\n"
      "  file: {path: out.jsonl, format: jsonl}\non_error: fail\n";
  std::string path = w.Write("orders.yaml", spec);
  Result<Spec> s = LoadSpec(path);
  ASSERT_TRUE(s.ok()) << s.status().message();
  auto p = SpecPipeline::Make(*s, {.validate_only = true});
  ASSERT_TRUE(p.ok()) << p.status().message();
  std::string text = (*p)->PlanText();
  EXPECT_NE(text.find("pipeline orders (parallelism 2)"), std::string::npos) << text;
  EXPECT_NE(
      text.find("schema: ts BIGINT, user VARCHAR, country VARCHAR, amount DOUBLE  [inferred]"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("schema: user VARCHAR, country VARCHAR, cents BIGINT, ts BIGINT"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("schema: country VARCHAR, window_start BIGINT, window_end BIGINT, orders "
                      "BIGINT, total_cents BIGINT, biggest BIGINT, mean DOUBLE"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("parallelism 2, input by key (country)"), std::string::npos) << text;
  EXPECT_NE(text.find("source -> event_time -> filter -> select x1"), std::string::npos) << text;
  EXPECT_NE(text.find("  window x2"), std::string::npos) << text;
  EXPECT_NE(text.find("  sink x1"), std::string::npos) << text;
  nlohmann::json j = (*p)->PlanJson();
  EXPECT_EQ(j["name"], "orders");
  ASSERT_EQ(j["tasks"].size(), 3u);
  EXPECT_EQ(j["tasks"][1]["parallelism"], 2);
  EXPECT_EQ(j["steps"][0]["schema"][3]["type"], "DOUBLE");
  // Validation wrote nothing.
  EXPECT_EQ(w.Read("out.jsonl"), "<missing>");

  // Running it gives the windows of this small input.
  ASSERT_TRUE((*SpecPipeline::Make(*s, {}))->Run().ok());
  std::string out = w.Read("out.jsonl");
  EXPECT_NE(
      out.find(
          R"({"country":"DE","window_start":0,"window_end":10000,"orders":2,"total_cents":1225,"biggest":1000,"mean":612.5})"),
      std::string::npos)
      << out;
  EXPECT_NE(
      out.find(
          R"({"country":"FR","window_start":0,"window_end":10000,"orders":1,"total_cents":550,"biggest":550,"mean":550.0})"),
      std::string::npos)
      << out;
  EXPECT_NE(out.find(R"({"country":"DE","window_start":10000,"window_end":20000,"orders":1,)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(R"({"country":"FR","window_start":20000,"window_end":30000,"orders":1,)"),
            std::string::npos)
      << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 4);
}

TEST(PlannerTest, SelectStarRollingAggregateAndFirstLast) {
  Workdir w;
  w.Write("in.jsonl", R"({"k": "a", "v": 1, "n": {"x": 10}})"
                      "\n"
                      R"({"k": "b", "v": 2, "n": {"x": 20}})"
                      "\n"
                      R"({"k": "a", "v": 3, "n": {"x": null}})"
                      "\n");
  Outcome o = RunSpec(w,
                      "source: {file: in.jsonl}\nsteps:\n"
                      "  - select: {\"*\": true, v: v * 10, w: n.x + 1}\n"
                      "  - key_by: k\n"
                      "  - aggregate: {total: sum(v), n: count(*), f: first(w), l: last(w)}\n");
  ASSERT_TRUE(o.status.ok()) << o.status.message();
  EXPECT_EQ(o.rows, (std::vector<std::string>{R"({"k":"a","total":10,"n":1,"f":11,"l":11})",
                                              R"({"k":"a","total":40,"n":2,"f":11,"l":11})",
                                              R"({"k":"b","total":20,"n":1,"f":21,"l":21})"}));
}

TEST(PlannerTest, UnionOfSourcesUnifiesFields) {
  Workdir w;
  w.Write("a.csv", "id,x\n1,1\n2,2\n");
  w.Write("b.jsonl", R"({"id": 3, "x": 2.5, "y": "only b"})"
                     "\n");
  Outcome o = RunSpec(w, "sources:\n  - file: a.csv\n  - file: b.jsonl\n", 2);
  ASSERT_TRUE(o.status.ok()) << o.status.message();
  EXPECT_EQ(o.rows, (std::vector<std::string>{R"({"id":1,"x":1.0,"y":null})",
                                              R"({"id":2,"x":2.0,"y":null})",
                                              R"({"id":3,"x":2.5,"y":"only b"})"}));
}

TEST(PlannerTest, AUnionStepMergesMoreSourcesByFieldName) {
  Workdir w;
  w.Write("a.csv", "ts,k,v\n1,a,1\n2,b,2\n");
  w.Write("b.jsonl", R"({"ts": 3, "v": 4.5, "extra": true})"
                     "\n"
                     R"({"ts": 4, "k": "a", "v": 1})"
                     "\n");
  Outcome o = RunSpec(w,
                      "source:\n  file: a.csv\n  event_time: ts\nsteps:\n"
                      "  - select: {\"*\": true, v: v * 1.0}\n"
                      "  - union:\n      file: b.jsonl\n      event_time: ts\n"
                      "  - key_by: k\n  - window: {tumbling: 10}\n    aggregate: {s: sum(v)}\n");
  ASSERT_TRUE(o.status.ok()) << o.status.message();
  EXPECT_EQ(o.rows,
            (std::vector<std::string>{R"({"k":"a","window_start":0,"window_end":10,"s":2.0})",
                                      R"({"k":"b","window_start":0,"window_end":10,"s":2.0})",
                                      R"({"k":null,"window_start":0,"window_end":10,"s":4.5})"}));
  EXPECT_NE(o.plan.find("fields extra are not in the stream and are left out"), std::string::npos)
      << o.plan;
  Status st =
      Validate(w, "source: {file: a.csv}\nsteps:\n  - union: {file: b.jsonl, event_time: ts}\n");
  EXPECT_EQ(st.message(), w.path() +
                              "/s.yaml:3:12: the pipeline's sources have no event_time: "
                              "this one cannot have one either");
}

TEST(PlannerTest, BadRecordsFailSkipAndDeadLetter) {
  Workdir w;
  w.Write("in.csv", "a,b\n1,2\n2,0\n3,x\n4,4\n5,5\n");
  std::string steps = "steps:\n  - select: {q: a / b}\n";
  // fail: the first bad record, named by file, line and step. Line 4 has b = 'x' (a source
  // error); line 3 divides by zero.
  Outcome o = RunSpec(w, "source: {file: in.csv}\n" + steps);
  ASSERT_FALSE(o.status.ok());
  EXPECT_TRUE(o.status.message() == "in.csv:3: step 1 (select): q: division by zero" ||
              o.status.message() == "in.csv:4: source: field 'b': cannot read 'x' as BIGINT")
      << o.status.message();
  o = RunSpec(w, "source: {file: in.csv}\n" + steps + "on_error: skip\n");
  ASSERT_TRUE(o.status.ok()) << o.status.message();
  EXPECT_EQ(o.rows, (std::vector<std::string>{R"({"q":0})", R"({"q":1})", R"({"q":1})"}));
  o = RunSpec(w, "source: {file: in.csv}\n" + steps + "on_error: {dead_letter: dead.jsonl}\n");
  ASSERT_TRUE(o.status.ok()) << o.status.message();
  std::string dead = w.Read("dead.jsonl");
  EXPECT_NE(
      dead.find(
          R"x({"input":"in.csv","line":3,"step":"step 1 (select)","error":"q: division by zero","record":{"a":2,"b":0}})x"),
      std::string::npos)
      << dead;
  EXPECT_NE(
      dead.find(
          R"({"input":"in.csv","line":4,"step":"source","error":"field 'b': cannot read 'x' as BIGINT","raw":"3,x"})"),
      std::string::npos)
      << dead;
}

// ---- Windows against a reference simulation, record by record, of Flink's rules.

struct Event {
  int64_t ts;
  int key;
  int64_t value;
};

struct RefWindow {
  int64_t start, end;
  bool fired = false;
  std::map<int, std::vector<int64_t>> keys;  // values in arrival order
};

std::string Result(int key, int64_t start, int64_t end, const std::vector<int64_t>& v) {
  int64_t sum = 0, mn = v[0], mx = v[0];
  for (int64_t x : v) {
    sum += x;
    mn = std::min(mn, x);
    mx = std::max(mx, x);
  }
  return "{\"k\":" + std::to_string(key) + ",\"window_start\":" + std::to_string(start) +
         ",\"window_end\":" + std::to_string(end) + ",\"n\":" + std::to_string(v.size()) +
         ",\"s\":" + std::to_string(sum) + ",\"lo\":" + std::to_string(mn) +
         ",\"hi\":" + std::to_string(mx) + ",\"f\":" + std::to_string(v.front()) +
         ",\"l\":" + std::to_string(v.back()) + "}";
}

// Tumbling and sliding windows (size, slide), watermark = max - delay - 1 after each record.
std::vector<std::string> ReferenceWindows(const std::vector<Event>& events, int64_t size,
                                          int64_t slide, int64_t delay, int64_t lateness,
                                          int* late) {
  std::vector<std::string> out;
  std::map<int64_t, RefWindow> windows;
  int64_t max = INT64_MIN;
  auto advance = [&](int64_t wm) {
    for (auto it = windows.begin(); it != windows.end();) {
      RefWindow& w = it->second;
      if (w.end - 1 > wm) break;
      if (!w.fired) {
        for (auto& [k, v] : w.keys) out.push_back(Result(k, w.start, w.end, v));
        w.fired = true;
      }
      if (w.end - 1 + lateness <= wm) {
        it = windows.erase(it);
      } else {
        ++it;
      }
    }
  };
  *late = 0;
  for (const Event& e : events) {
    max = std::max(max, e.ts);
    int64_t wm = max - delay - 1;
    advance(wm);
    int64_t last = e.ts - ((e.ts % slide) + slide) % slide;
    bool accepted = false;
    for (int64_t s = last; s > e.ts - size; s -= slide) {
      auto it = windows.find(s);
      if (it == windows.end()) {
        if (s + size - 1 + lateness <= wm) continue;
        it = windows.emplace(s, RefWindow{s, s + size}).first;
        it->second.fired = s + size - 1 <= wm;
      }
      accepted = true;
      auto& v = it->second.keys[e.key];
      v.push_back(e.value);
      if (it->second.fired) out.push_back(Result(e.key, s, s + size, v));
    }
    if (!accepted && e.ts + lateness <= wm) ++*late;
  }
  advance(INT64_MAX);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(PlannerTest, WindowsMatchAReferenceRecordByRecordAtAnyParallelismAndBatchSize) {
  Workdir w;
  std::mt19937_64 rng(42);
  std::vector<Event> events;
  std::string csv = "ts,k,v\n";
  int64_t clock = 0;
  for (int i = 0; i < 3000; ++i) {
    clock += static_cast<int64_t>(rng() % 7);
    int64_t ts = clock;
    if (rng() % 10 == 0) ts -= static_cast<int64_t>(rng() % 120);  // out of order, some late
    Event e{ts, static_cast<int>(rng() % 5), static_cast<int64_t>(rng() % 1000) - 100};
    events.push_back(e);
    csv +=
        std::to_string(e.ts) + "," + std::to_string(e.key) + "," + std::to_string(e.value) + "\n";
  }
  w.Write("in.csv", csv);
  struct Shape {
    std::string window;
    int64_t size, slide, lateness;
  };
  for (const Shape& shape :
       {Shape{"{tumbling: 50, allowed_lateness: 20}", 50, 50, 20},
        Shape{"{sliding: {size: 60, slide: 20}, allowed_lateness: 10}", 60, 20, 10},
        Shape{"{sliding: {size: 20, slide: 30}}", 20, 30, 0}}) {
    int late = 0;
    std::vector<std::string> want =
        ReferenceWindows(events, shape.size, shape.slide, /*delay=*/30, shape.lateness, &late);
    ASSERT_GT(late, 0) << shape.window;
    for (int parallelism : {1, 2, 3}) {
      for (int batch : {1, 7, 1024}) {
        Outcome o = RunSpec(
            w,
            "batch_size: " + std::to_string(batch) +
                "\nsource:\n  file: in.csv\n  event_time: {field: ts, max_delay: 30ms}\n"
                "steps:\n  - key_by: k\n  - window: " +
                shape.window +
                "\n    aggregate: {n: count(*), s: sum(v), lo: min(v), hi: max(v), f: first(v), "
                "l: last(v)}\n",
            parallelism);
        ASSERT_TRUE(o.status.ok()) << o.status.message();
        EXPECT_EQ(o.rows, want) << shape.window << " P=" << parallelism << " batch " << batch;
      }
    }
  }
}

TEST(PlannerTest, SessionWindowsMergeAndFireOnceTheGapPassed) {
  Workdir w;
  // Gap 10 ms, watermark 200 ms behind. a: [0,15) from 0 and 5, [30,40), [200,210); then 12
  // extends the first to [0,22), 25 joins [30,40) as [25,40), and 20 bridges both: [0,40) with
  // six records. b: [100,110) and [400,410).
  w.Write("in.csv", "ts,k\n0,a\n5,a\n100,b\n30,a\n200,a\n12,a\n25,a\n20,a\n400,b\n");
  Outcome o = RunSpec(w,
                      "source:\n  file: in.csv\n  event_time: {field: ts, max_delay: 200ms}\n"
                      "steps:\n  - key_by: k\n  - window: {session: {gap: 10ms}}\n"
                      "    aggregate: {n: count(*)}\n",
                      2);
  ASSERT_TRUE(o.status.ok()) << o.status.message();
  EXPECT_EQ(o.rows,
            (std::vector<std::string>{R"({"k":"a","window_start":0,"window_end":40,"n":6})",
                                      R"({"k":"a","window_start":200,"window_end":210,"n":1})",
                                      R"({"k":"b","window_start":100,"window_end":110,"n":1})",
                                      R"({"k":"b","window_start":400,"window_end":410,"n":1})"}));
}

TEST(PlannerTest, LateRecordsGoToTheirFile) {
  Workdir w;
  w.Write("in.csv", "ts,k\n100,a\n5000,a\n50,a\n");
  Outcome o = RunSpec(w,
                      "source:\n  file: in.csv\n  event_time: {field: ts}\nsteps:\n"
                      "  - key_by: k\n  - window: {tumbling: 1s, late: late.jsonl}\n"
                      "    aggregate: {n: count(*)}\n");
  ASSERT_TRUE(o.status.ok()) << o.status.message();
  EXPECT_EQ(w.Read("late.jsonl"), "{\"ts\":50,\"k\":\"a\"}\n");
  EXPECT_EQ(o.rows.size(), 2u);
}

// The ends of the int64 range, as the engine treats them (src/stream/window.h): windows never
// wrap, each has one end, and event time INT64_MAX is a bad record.
TEST(PlannerTest, WindowsAtTheEndsOfTheTimeRange) {
  Workdir w;
  w.Write("in.csv",
          "ts,k\n-9223372036854775808,a\n-9223372036854775803,a\n9223372036854775806,a\n"
          "9223372036854775807,a\n");
  const std::string source = "source:\n  file: in.csv\n  event_time: {field: ts}\n";
  Outcome o = RunSpec(w,
                      source +
                          "on_error: skip\nsteps:\n  - key_by: k\n"
                          "  - window: {sliding: {size: 100, slide: 30}}\n"
                          "    aggregate: {n: count(*)}\n",
                      2);
  ASSERT_TRUE(o.status.ok()) << o.status.message();
  auto row = [](const char* start, const char* end, int n) {
    return std::string(R"({"k":"a","window_start":)") + start + R"(,"window_end":)" + end +
           R"(,"n":)" + std::to_string(n) + "}";
  };
  // MIN and MIN + 5 share the windows starting at MIN - 22, MIN - 52 and MIN - 82; MAX - 1 is in
  // the four starting at MAX - 97 .. MAX - 7, all ending at MAX.
  std::vector<std::string> want = {row("-9223372036854775808", "-9223372036854775730", 2),
                                   row("-9223372036854775808", "-9223372036854775760", 2),
                                   row("-9223372036854775808", "-9223372036854775790", 2),
                                   row("9223372036854775710", "9223372036854775807", 1),
                                   row("9223372036854775740", "9223372036854775807", 1),
                                   row("9223372036854775770", "9223372036854775807", 1),
                                   row("9223372036854775800", "9223372036854775807", 1)};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(o.rows, want);
  o = RunSpec(w, source +
                     "steps:\n  - key_by: k\n  - window: {tumbling: 100}\n"
                     "    aggregate: {n: count(*)}\n");
  EXPECT_EQ(o.status.message(),
            "in.csv:5: source: event time field 'ts' is 9223372036854775807 (INT64_MAX), which "
            "is reserved for the end of input");
}

// A loopback TCP server on an ephemeral port, for one connection.
class Server {
 public:
  Server() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Server() {
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // Serves one connection: sends `text`, then reads until the peer closes.
  void Serve(std::string text) {
    thread_ = std::thread([this, text] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      if (!text.empty()) (void)::write(c, text.data(), text.size());
      ::shutdown(c, SHUT_WR);
      char buf[4096];
      for (ssize_t n; (n = ::read(c, buf, sizeof buf)) > 0;)
        received_.append(buf, static_cast<size_t>(n));
      ::close(c);
    });
  }
  std::string received() {
    if (thread_.joinable()) thread_.join();
    return received_;
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::string received_;
};

TEST(PlannerTest, TcpSourceAndSinkCarryRecords) {
  Workdir w;
  Server in, out;
  in.Serve(
      "{\"k\": \"a\", \"v\": 1}\n{\"k\": \"b\", \"v\": 2}\nnot json\n{\"k\": \"c\", \"v\": 3}\n");
  out.Serve("");
  Outcome o = RunSpec(w,
                      "source:\n  tcp: {connect: \"" + in.address() +
                          "\", format: jsonl}\n  schema: {k: VARCHAR, v: BIGINT}\n"
                          "steps:\n  - filter: v > 1\nsink:\n  tcp: {connect: \"" +
                          out.address() + "\", format: csv}\non_error: skip\n",
                      1, /*collect=*/false);
  ASSERT_TRUE(o.status.ok()) << o.status.message();
  EXPECT_EQ(out.received(), "k,v\nb,2\nc,3\n");
  // Without a declared schema a TCP source cannot know its fields.
  Status st = Validate(w, "source:\n  tcp: {listen: \"127.0.0.1:1\", format: jsonl}\n");
  EXPECT_EQ(st.message(), w.path() +
                              "/s.yaml:2:3: a tcp source needs a declared schema: for format jsonl "
                              "(nothing can be sampled before connections arrive)");
}

}  // namespace
}  // namespace barge::pipeline
