// Container stages end to end: real containers from images in a temporary repository, fed through
// shared memory or their stdio, compared with the same pipeline without the stage; faults (a
// crash with and without restarts, garbage, OOM); and nothing left behind.
#include "pipeline/stage.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <mutex>
#include <thread>
#include <utility>

#include "base/file_util.h"
#include "oci/image_store.h"
#include "oci/test_util.h"
#include "oci/transfer.h"
#include "pipeline/format.h"
#include "pipeline/planner.h"
#include "pipeline/spec_testing.h"
#include "runtime/busybox_rootfs.h"
#include "runtime/cgroups.h"
#include "runtime/host_features.h"
#include "runtime/leak_check.h"

namespace barge::pipeline {
namespace {

// A barge root with the test stages as images: faults:1 (/app/faults, see
// testdata/stage_faults.cc) and busybox (Debian's static busybox).
class StageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto dir = TempDir::Make("barge-stage-test-");
    ASSERT_TRUE(dir.ok());
    root_ = new TempDir(std::move(dir).value());
    auto store = oci::ImageStore::Open(root_->path());
    ASSERT_TRUE(store.ok()) << store.status().message();
    auto binary = ReadFile(STAGE_FAULTS_BINARY);
    ASSERT_TRUE(binary.ok());
    std::string tar =
        oci::testing::MakeTar({{.path = "app", .type = oci::testing::TarEntry::kDir, .mode = 0755},
                               {.path = "app/faults", .data = *binary, .mode = 0755}});
    Import(*store, tar, "faults:1");
    auto busybox = runtime::MakeBusyboxRootfs();
    ASSERT_TRUE(busybox.ok()) << busybox.status().message();
    auto packed = RunTar(busybox->path());
    Import(*store, packed, "busybox:latest");
  }
  static void TearDownTestSuite() {
    delete root_;
    root_ = nullptr;
    EXPECT_TRUE(runtime::RemoveCgroupParent(CgroupParent()).ok());
  }

  // This test process's own cgroup parent, so that its replicas' cgroups are told apart from
  // those of tests running beside it.
  static std::string CgroupParent() { return "barge-test-" + std::to_string(::getpid()); }

  static std::string RunTar(const std::string& dir) {
    std::string out;
    FILE* p = ::popen(("tar -C " + dir + " -c .").c_str(), "r");
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
    return out;
  }

  static void Import(const oci::ImageStore& store, const std::string& tar, const std::string& ref) {
    auto work = TempDir::Make();
    std::string path = work->path() + "/image.tar";
    ASSERT_TRUE(WriteFile(path, tar).ok());
    auto fd = OpenFile(path, O_RDONLY);
    ASSERT_TRUE(fd.ok());
    auto image = oci::ImportRootfs(store, fd->get(), ref);
    ASSERT_TRUE(image.ok()) << image.status().message();
  }

  void SetUp() override {
    scope_.cgroup_parent = CgroupParent();
    scope_.path_prefixes = {root_->path(), "/dev/shm"};
    before_ = runtime::testing::TakeHostSnapshot(scope_);
  }
  void TearDown() override {
    EXPECT_EQ(runtime::testing::DescribeLeaks(before_, runtime::testing::TakeHostSnapshot(scope_)),
              "");
    // No stage directory of this process is left in /dev/shm.
    std::string mine = "barge-stage-" + std::to_string(::getpid()) + "-";
    for (const std::string& e : oci::testing::ListTree("/dev/shm")) {
      EXPECT_NE(e.rfind(mine, 0), 0u) << "left behind: /dev/shm/" << e;
    }
  }

  using Outcome = testing::Outcome;

  // Runs `text` with the test root, collecting the results as sorted JSON lines.
  Outcome Run(const std::string& text) {
    PlanOptions options;
    options.root = root_->path();
    options.cgroup_parent = CgroupParent();
    return testing::RunCollecting(ParseSpec(text, "stage.yaml"), options);
  }

  // Plans `text` as `barge pipeline validate` does: nothing is run or created.
  Status Validate(const std::string& text) {
    Result<Spec> spec = ParseSpec(text, "stage.yaml");
    if (!spec.ok()) return spec.status();
    return SpecPipeline::Make(
               *spec,
               {.validate_only = true, .root = root_->path(), .cgroup_parent = CgroupParent()})
        .status();
  }

  static std::string Stage(const std::string& fault, const std::string& extra = "") {
    return "  - stage:\n      image: faults:1\n      command: [/app/faults]\n      env: {FAULT: " +
           fault + "}\n" + extra;
  }

  // Out of order by up to 20 ms, within the watermark's delay: no record is late, so the results
  // do not depend on how replicas interleave (with late records they would, as in Flink).
  static constexpr const char* kSource =
      "source:\n  generate: {records: 200000, keys: 50, records_per_second: 100000, "
      "max_disorder: 20ms}\n  event_time: {field: ts, max_delay: 30ms}\n"
      "steps:\n  - select: {key: key, value: value, ts: ts}\n";
  static constexpr const char* kWindow =
      "  - key_by: key\n  - window: {tumbling: 100ms, allowed_lateness: 5ms}\n"
      "    aggregate: {n: count(*), s: sum(value), f: first(value), l: last(value)}\n";

  static TempDir* root_;
  runtime::testing::LeakScope scope_;
  runtime::testing::HostSnapshot before_;
};

TempDir* StageTest::root_ = nullptr;

TEST_F(StageTest, ShmStagePassesRecordsAndEventTimeThrough) {
  Outcome want = Run(std::string(kSource) + kWindow);
  ASSERT_TRUE(want.status.ok()) << want.status.message();
  ASSERT_GT(want.rows.size(), 1000u);
  for (int replicas : {1, 2}) {
    Outcome got =
        Run(std::string(kSource) +
            Stage("pass", "      parallelism: " + std::to_string(replicas) + "\n") + kWindow);
    ASSERT_TRUE(got.status.ok()) << got.status.message();
    EXPECT_EQ(got.rows, want.rows) << replicas << " replicas";
  }
}

TEST_F(StageTest, ASlowStageBehindAFullRingAnswersEverything) {
  // barge waits for room in a small ring and reuses each input's space as soon as its reply is
  // published: the SDK must have read all it needs of the input by then (it once read the size
  // afterwards, and lost its place in the ring).
  Outcome want = Run(std::string(kSource) + kWindow);
  ASSERT_TRUE(want.status.ok()) << want.status.message();
  Outcome got =
      Run(std::string(kSource) +
          Stage("pass, SLOW_US: \"1000\"", "      ring: 1m\n      parallelism: 2\n") + kWindow);
  ASSERT_TRUE(got.status.ok()) << got.status.message();
  EXPECT_EQ(got.rows, want.rows);
}

TEST_F(StageTest, RowsAStageDropsKeepTheirOwnTimes) {
  // The stage keeps even keys, saying which input row each output row is (__row).
  Outcome want = Run(std::string(kSource) + "  - filter: key % 2 = 0\n" + kWindow);
  ASSERT_TRUE(want.status.ok());
  Outcome got = Run(std::string(kSource) + Stage("even") + kWindow);
  ASSERT_TRUE(got.status.ok()) << got.status.message();
  EXPECT_EQ(got.rows, want.rows);
}

TEST_F(StageTest, ACrashedReplicaRestartsWithoutLosingOrRepeatingRecords) {
  Outcome want = Run(std::string(kSource) + kWindow);
  Outcome got = Run(std::string(kSource) +
                    Stage("crash_once", "      parallelism: 2\n      restart: 1\n") + kWindow);
  ASSERT_TRUE(got.status.ok()) << got.status.message();
  EXPECT_EQ(got.rows, want.rows);
}

TEST_F(StageTest, WithoutRestartsACrashStopsThePipelineNamingTheReplica) {
  Outcome got = Run(std::string(kSource) + Stage("crash", "      restart: 2\n") + kWindow);
  ASSERT_FALSE(got.status.ok());
  EXPECT_NE(got.status.message().find(
                "(stage 'faults:1') replica 0 exited with code 3 before the end of its input; last "
                "output: faulty stage: giving up on batch 1 (after 2 restarts)"),
            std::string::npos)
      << got.status.message();
}

TEST_F(StageTest, GarbageIsAProtocolErrorNamingTheReplica) {
  Outcome got = Run(std::string(kSource) + Stage("garbage") + kWindow);
  ASSERT_FALSE(got.status.ok());
  EXPECT_NE(
      got.status.message().find("(stage 'faults:1') replica 0 broke the protocol: a message of "
                                "unknown kind 77"),
      std::string::npos)
      << got.status.message();
}

// A stage writes the memory barge reads its replies from: whatever it writes there, barge stops
// with a protocol error naming the replica, never reading outside the ring or hanging.
TEST_F(StageTest, MalformedRepliesAreProtocolErrorsNotCrashes) {
  for (const char* how :
       {"padzero", "padhuge", "nameovf", "rowsovf", "columnsovf", "offsets", "tailjump"}) {
    Outcome got = Run(std::string(kSource) + Stage(std::string("evil, EVIL: ") + how) + kWindow);
    ASSERT_FALSE(got.status.ok()) << how;
    EXPECT_NE(got.status.message().find("(stage 'faults:1') replica 0 broke the protocol: "),
              std::string::npos)
        << how << ": " << got.status.message();
  }
}

// The rings are barge's and the replica's only: the group's directory in /dev/shm is closed to
// every other user, and a forced stop removes it (RemoveStageFiles).
TEST_F(StageTest, RingDirectoriesAreClosedToOthersAndRemovedOnAForcedStop) {
  RunContext ctx;
  StageConfig config;
  config.root = root_->path();
  auto group = std::make_unique<StageGroup>(config, ctx, 0);
  Result<std::string> dir = group->Dir();
  ASSERT_TRUE(dir.ok()) << dir.status().message();
  struct stat st {};
  ASSERT_EQ(::stat(dir->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  RemoveStageFiles();
  EXPECT_NE(::stat(dir->c_str(), &st), 0);
  group.reset();  // its directory is already gone: nothing left to do
}

// The lines protocol's contract, checked: one line back per line in, the declared fields and no
// others, a bounded answer, a clean exit; a replica that stops reading is a replica failure,
// never a SIGPIPE for barge.
TEST_F(StageTest, LinesStagesThatBreakTheContractAreErrors) {
  const std::string source =
      "source:\n  generate: {records: 5000, keys: 10}\nsteps:\n  - select: {id: id, key: key}\n";
  auto stage = [](const std::string& command, const std::string& extra = "") {
    return "  - stage:\n      image: busybox\n      protocol: lines\n      command: [sh, -c, '" +
           command + "']\n" + extra;
  };
  struct Case {
    std::string what, stage, want;
  };
  const std::vector<Case> cases = {
      {"two lines per line", stage("awk \"{print; print; fflush()}\""),
       "broke the protocol: wrote more lines than it was given records"},
      {"a missing field", stage("awk \"{print \\\"{\\\\\\\"id\\\\\\\":7}\\\"; fflush()}\""),
       "missing field 'key'"},
      {"an undeclared field",
       stage("awk \"{print "
             "\\\"{\\\\\\\"id\\\\\\\":7,\\\\\\\"key\\\\\\\":1,\\\\\\\"extra\\\\\\\":1}\\\"; "
             "fflush()}\""),
       "field 'extra' is not declared"},
      {"an endless answer", stage("exec tr -d \"\\\\n\" </dev/zero"),
       "wrote an answer longer than"},
      {"a failing exit after the end", stage("cat; exit 4"),
       "exited with code 4 after the end of its input"},
      {"stdin closed early", stage("exec 0<&-; sleep 2"), "exited with code 0 before the end"},
  };
  for (const Case& c : cases) {
    Outcome got = Run(source + c.stage);
    ASSERT_FALSE(got.status.ok()) << c.what;
    EXPECT_NE(got.status.message().find(c.want), std::string::npos)
        << c.what << ": " << got.status.message();
    EXPECT_NE(got.status.message().find("step 2 (stage 'busybox') replica 0"), std::string::npos)
        << c.what << ": " << got.status.message();
  }
}

TEST_F(StageTest, AnOomKillIsReported) {
  if (std::string why = runtime::testing::WhyNoController("memory"); !why.empty()) {
    GTEST_SKIP() << why;
  }
  if (std::string why = runtime::testing::WhySwapUnbounded(); !why.empty()) GTEST_SKIP() << why;
  Outcome got = Run(std::string(kSource) + Stage("oom", "      memory: 32m\n") + kWindow);
  ASSERT_FALSE(got.status.ok());
  EXPECT_NE(
      got.status.message().find("(stage 'faults:1') replica 0 was OOM-killed (memory limit 32m)"),
      std::string::npos)
      << got.status.message();
}

TEST_F(StageTest, LinesStagesAnswerEachLineAndMayDropOrReshape) {
  Outcome want = Run(std::string(kSource) + kWindow);
  Outcome cat = Run(
      std::string(kSource) +
      "  - stage: {image: busybox, command: [cat], protocol: lines, parallelism: 2}\n" + kWindow);
  ASSERT_TRUE(cat.status.ok()) << cat.status.message();
  EXPECT_EQ(cat.rows, want.rows);
  // awk keeps key 3 and answers an empty line for the others; then a stage that returns other
  // fields than it was given.
  Outcome awk = Run(
      "source:\n  generate: {records: 1000, keys: 10}\nsteps:\n"
      "  - select: {key: key}\n"
      "  - stage:\n      image: busybox\n      protocol: lines\n"
      "      command: \"awk '{ if ($0 ~ /\\\"key\\\":3}/) print \\\"{\\\\\\\"k\\\\\\\": 30}\\\"; "
      "else print \\\"\\\" }'\"\n"
      "      output: {k: BIGINT}\n"
      "  - aggregate: {n: count(*), s: sum(k)}\n");
  ASSERT_TRUE(awk.status.ok()) << awk.status.message();
  ASSERT_FALSE(awk.rows.empty());
  EXPECT_EQ(awk.rows.back().find("\"n\":"), 1u) << awk.rows.back();
}

TEST_F(StageTest, BatchCoalescesRowsIntoMessagesOfThatSizeKeepingEventTime) {
  Outcome want = Run(std::string(kSource) + kWindow);
  // MAX_ROWS: the stage fails on a larger message, or when none had exactly that many rows.
  auto stage = [](const std::string& max_rows) {
    return "  - stage:\n      image: faults:1\n      command: [/app/faults]\n"
           "      batch: 5000\n      parallelism: 2\n      env: {FAULT: pass, MAX_ROWS: \"" +
           max_rows + "\"}\n";
  };
  Outcome got = Run(std::string(kSource) + stage("5000") + kWindow);
  ASSERT_TRUE(got.status.ok()) << got.status.message();
  EXPECT_EQ(got.rows, want.rows);
  Outcome small = Run(std::string(kSource) + stage("4999") + kWindow);
  ASSERT_FALSE(small.status.ok());
  EXPECT_NE(small.status.message().find("a batch of 5000 rows"), std::string::npos)
      << small.status.message();
}

TEST_F(StageTest, EveryReplicaFindsThePythonSdkReadOnlyFirstOnPythonPath) {
  // A busybox lines stage reports its PYTHONPATH, whether BARGE_STAGE_OUTPUT lists the declared
  // fields, and whether /run/barge/sdk holds sdk/python/barge_stage.py, read-only.
  Outcome got = Run(R"(source:
  generate: {records: 3}
steps:
  - select: {id: id}
  - stage:
      image: busybox
      protocol: lines
      env: {PYTHONPATH: /mine}
      volumes: [")" BARGE_PYTHON_SDK_DIR R"(:/host:ro"]
      output: {id: BIGINT, p: VARCHAR, o: BIGINT, same: BIGINT, ro: BIGINT}
      command: |
        o=0; [ "$BARGE_STAGE_OUTPUT" = '[{"name":"id","type":"BIGINT"},{"name":"p","type":"VARCHAR"},{"name":"o","type":"BIGINT"},{"name":"same","type":"BIGINT"},{"name":"ro","type":"BIGINT"}]' ] && o=1
        same=0; cmp -s /run/barge/sdk/barge_stage.py /host/barge_stage.py && same=1
        ro=0; touch /run/barge/sdk/x 2>/dev/null || ro=1
        while IFS= read -r line; do
          id=${line#*:}; id=${id%\}}
          printf '{"id": %s, "p": "%s", "o": %s, "same": %s, "ro": %s}\n' "$id" "$PYTHONPATH" $o $same $ro
        done
)");
  ASSERT_TRUE(got.status.ok()) << got.status.message();
  ASSERT_EQ(got.rows.size(), 3u);
  EXPECT_EQ(got.rows[0], R"({"id":0,"p":"/run/barge/sdk:/mine","o":1,"same":1,"ro":1})");
}

TEST_F(StageTest, AnUnknownImageIsAPlanError) {
  Outcome got = Run(std::string(kSource) + "  - stage: {image: nosuch:1}\n");
  ASSERT_FALSE(got.status.ok());
  EXPECT_EQ(got.status.message(),
            "stage.yaml:6:20: unknown image 'nosuch:1': not in the local repository (see 'barge "
            "images', 'barge build', 'barge load')");
}

TEST_F(StageTest, OptionsCheckedAgainstTheHostFailValidateAtTheirValue) {
  const std::string head =
      "source:\n  generate: {records: 3}\nsteps:\n  - stage:\n      image: busybox\n"
      "      protocol: lines\n      command: [cat]\n";
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  EXPECT_EQ(Validate(head + "      cpus: 1000\n").message(),
            fmt::format("stage.yaml:8:13: invalid cpus '1000': more than the {} CPU{} of this "
                        "machine (the range is 0.01 to {})",
                        cpus, cpus == 1 ? "" : "s", cpus));
  EXPECT_EQ(Validate(head + "      volumes: [/tmp:/a, \"/nonexistent/host:/m\"]\n").message(),
            "stage.yaml:8:26: invalid volume '/nonexistent/host:/m': /nonexistent/host does not "
            "exist on the host");
  // The image has neither Entrypoint nor Cmd: the stage must say what to run.
  EXPECT_EQ(Validate("source:\n  generate: {records: 3}\nsteps:\n"
                     "  - stage: {image: busybox, protocol: lines}\n")
                .message(),
            "stage.yaml:4:20: no command given and the image 'busybox' has no Entrypoint or Cmd "
            "(give the stage a command:)");
  Status ok = Validate(head + "      cpus: 1\n      memory: 64m\n      volumes: [/tmp:/a:ro]\n");
  EXPECT_TRUE(ok.ok()) << ok.message();
}

TEST_F(StageTest, AProgramMissingFromTheImageIsOneLineNamingTheStepReplicaAndProgram) {
  // Only running finds what is in the image; restarts would not help.
  Outcome got = Run(std::string(kSource) +
                    "  - stage:\n      image: busybox\n      protocol: lines\n"
                    "      command: [/nonexistent]\n      restart: 2\n");
  ASSERT_FALSE(got.status.ok());
  const std::string& m = got.status.message();
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  EXPECT_NE(m.find("step 2 (stage 'busybox') replica 0: exec /nonexistent: no such file or "
                   "directory"),
            std::string::npos)
      << m;
}

TEST_F(StageTest, ASavepointPassesThroughBothProtocolsAndStageStateFollowsIt) {
  // A million records pass a shared-memory stage that keeps state as docs/checkpoints.md says
  // (the count and sum of the ids it saw, saved at each barrier on a volume, loaded at start from
  // $BARGE_STAGE_CHECKPOINT), then a lines stage that tags each record with that checkpoint. The
  // first run stops with a savepoint part way through; the second resumes from it. Together they
  // hold every record exactly once, and the stage's own state counts each record once.
  testing::Workdir work;
  ASSERT_EQ(::mkdir((work.path() + "/state").c_str(), 0755), 0);
  const std::string spec_text = R"(name: stages-savepoint
source:
  generate: {records: 1000000}
steps:
  - select: {id: id}
  - stage:
      image: faults:1
      command: [/app/faults]
      env: {FAULT: state, STATE_DIR: /state, SLOW_US: "3000"}
      volumes: [")" + work.path() +
                                R"(/state:/state"]
      ring: 1m
      parallelism: 2
  - stage:
      image: busybox
      protocol: lines
      parallelism: 2
      output: {id: BIGINT, ck: BIGINT}
      command: "awk '{ sub(/}$/, \",\\\"ck\\\":\" ENVIRON[\"BARGE_STAGE_CHECKPOINT\"] \"}\"); print; fflush() }'"
checkpoint: {interval: 50ms, dir: )" +
                                work.path() + "/ck}\n";
  Result<Spec> spec = ParseSpec(spec_text, work.path() + "/stage.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> rows[2];  // (id, ck) of each run
  auto run = [&](int k, bool stop) -> std::pair<Status, uint64_t> {
    PlanOptions options;
    options.root = root_->path();
    options.cgroup_parent = CgroupParent();
    options.collect = [&, k](const RecordBatch& b) {
      std::lock_guard lock(mu);
      for (size_t i = 0; i < b.rows; ++i) {
        rows[k].emplace_back(b.columns[0].ints()[i], b.columns[1].ints()[i]);
      }
    };
    Result<std::unique_ptr<SpecPipeline>> p = SpecPipeline::Make(*spec, options);
    if (!p.ok()) return {p.status(), 0};
    Status st;
    std::thread runner([&] { st = (*p)->Run(); });
    uint64_t savepoint = 0;
    if (stop) {
      // Part way through, well before the source ends (the slow stage holds it back): once the
      // input has ended, a checkpoint waits until the stages answered all they were sent.
      for (int i = 0; i < 10000 && (*p)->Progress().records_out < 20000; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      Result<uint64_t> id = (*p)->StopWithSavepoint(std::chrono::seconds(10));
      EXPECT_TRUE(id.ok()) << id.status().message();
      if (id.ok()) savepoint = *id;
    }
    runner.join();
    return {st, savepoint};
  };
  auto [stopped, savepoint] = run(0, true);
  ASSERT_EQ(stopped.code(), StatusCode::kCancelled) << stopped.message();
  ASSERT_GT(savepoint, 0u) << stopped.message();
  auto [resumed, unused] = run(1, false);
  ASSERT_TRUE(resumed.ok()) << resumed.message();
  ASSERT_FALSE(rows[0].empty());
  ASSERT_FALSE(rows[1].empty());
  std::vector<int64_t> ids;
  for (int k : {0, 1}) {
    for (auto [id, ck] : rows[k]) {
      ASSERT_EQ(ck, k == 0 ? 0 : static_cast<int64_t>(savepoint)) << "run " << k << " id " << id;
      ids.push_back(id);
    }
  }
  std::sort(ids.begin(), ids.end());
  ASSERT_EQ(ids.size(), 1000000u);
  for (size_t i = 0; i < ids.size(); ++i) ASSERT_EQ(ids[i], static_cast<int64_t>(i));
  int64_t count = 0, sum = 0;
  for (int replica : {0, 1}) {
    std::string text = work.Read("state/replica-" + std::to_string(replica) + "/final");
    int64_t c = 0, s = 0;
    ASSERT_EQ(std::sscanf(text.c_str(), "%" SCNd64 " %" SCNd64, &c, &s), 2) << text;
    count += c;
    sum += s;
  }
  EXPECT_EQ(count, 1000000);
  EXPECT_EQ(sum, int64_t{999999} * 1000000 / 2);
}

}  // namespace
}  // namespace barge::pipeline
