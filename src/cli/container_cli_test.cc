// End-to-end tests of barge run / ps / logs / stop / kill / rm / volume, driving the real binary
// with a busybox root file system (--rootfs), each with its own --root. After every test no
// mount, cgroup or barge process may be left behind.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string_view>
#include <thread>

#include <gtest/gtest.h>

#include "base/file_util.h"
#include "base/subprocess.h"
#include "runtime/busybox_rootfs.h"
#include "runtime/cgroups.h"
#include "runtime/host_features.h"
#include "runtime/leak_check.h"

namespace barge {
namespace {

class ContainerCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto rootfs = runtime::MakeBusyboxRootfs();
    ASSERT_TRUE(rootfs.ok()) << rootfs.status().message();
    rootfs_ = new TempDir(std::move(rootfs).value());
  }
  static void TearDownTestSuite() {
    delete rootfs_;
    EXPECT_TRUE(runtime::RemoveCgroupParent(CgroupParent()).ok());
  }

  // This test process's own cgroup parent, so that leaks are told apart from parallel tests.
  static std::string CgroupParent() { return "barge-clitest-" + std::to_string(::getpid()); }

  void SetUp() override {
    auto root = TempDir::Make("barge-root-");
    ASSERT_TRUE(root.ok());
    root_ = std::move(root).value();
    // Barge processes (detached monitors) name the root on their command line.
    scope_ = {CgroupParent(), {root_.path(), rootfs_->path()}, root_.path()};
    before_ = runtime::testing::TakeHostSnapshot(scope_);
  }

  void TearDown() override {
    // Containers a failed test left running are removed the way a user would.
    CommandOutput ids = Barge({"ps", "-aq"});
    std::istringstream in(ids.out);
    std::string id;
    while (in >> id) Barge({"rm", "-f", id});
    // Detached monitors of containers removed just now exit on their own; give them a moment.
    for (int i = 0; i < 500 && !runtime::testing::TakeHostSnapshot(scope_).processes.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(runtime::testing::DescribeLeaks(before_, runtime::testing::TakeHostSnapshot(scope_)),
              "")
        << "left behind on the host";
  }

  CommandOutput Barge(std::vector<std::string> args) {
    args.insert(args.begin(), {BARGE_BINARY, "--root", root_.path()});
    auto r = RunCommand(args);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : CommandOutput{};
  }

  // barge run OPTIONS... --rootfs <busybox> COMMAND...
  CommandOutput Run(std::vector<std::string> options, std::vector<std::string> command) {
    std::vector<std::string> args = {"run", "--cgroup-parent", CgroupParent()};
    args.insert(args.end(), options.begin(), options.end());
    args.push_back("--rootfs");
    args.push_back(rootfs_->path());
    args.insert(args.end(), command.begin(), command.end());
    return Barge(args);
  }

  nlohmann::json PsJson() {
    CommandOutput r = Barge({"ps", "-a", "--format", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out, nullptr, false);
  }

  // The busybox tree as the image busybox:latest, imported the way a user would.
  void ImportBusybox() {
    CommandOutput tar = RunCommand({"tar", "-C", rootfs_->path(), "-c", "."}).value();
    ASSERT_EQ(tar.exit_code, 0) << tar.err;
    auto import =
        RunCommand({BARGE_BINARY, "--root", root_.path(), "import", "-", "busybox:latest"},
                   {.input = tar.out});
    ASSERT_TRUE(import.ok());
    ASSERT_EQ(import->exit_code, 0) << import->err;
  }

  static bool OneLineError(const CommandOutput& r) {
    return r.err.rfind("barge: error: ", 0) == 0 &&
           std::count(r.err.begin(), r.err.end(), '\n') == 1;
  }

  static TempDir* rootfs_;
  TempDir root_;
  runtime::testing::LeakScope scope_;
  runtime::testing::HostSnapshot before_;
};

TempDir* ContainerCliTest::rootfs_ = nullptr;

TEST_F(ContainerCliTest, RunShowsPidOneOwnHostnameAndExitCode) {
  CommandOutput r =
      Run({"--rm", "--hostname", "inside"}, {"sh", "-c", "echo $$; hostname; exit 7"});
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_EQ(r.out, "1\ninside\n");
  EXPECT_TRUE(PsJson().empty()) << "--rm left the container";
}

TEST_F(ContainerCliTest, OptionsAfterTheCommandBelongToIt) {
  // -e, -w and -v are also options of barge run; after the command they are its own.
  // Nor does any other word change: "--" stays, and "[a,b]" is not split as a list.
  CommandOutput r =
      Run({"--rm"}, {"echo", "-e", "a=b", "-w", "-v", "--", "[x,y]", "[]", "[ -f /x ]"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "a=b -w -v -- [x,y] [] [ -f /x ]\n");
  r = Barge({"run", "--rm", "--no-such-option", "--rootfs", rootfs_->path(), "true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_TRUE(OneLineError(r)) << r.err;
}

TEST_F(ContainerCliTest, RepeatableOptionsTakeOneValueEach) {
  // As with docker run: -e and -v right before IMAGE take one value each, IMAGE stays the image.
  auto vol = TempDir::Make("barge-vol-");
  ASSERT_TRUE(vol.ok());
  ASSERT_TRUE(WriteFile(vol->path() + "/f", "in volume\n").ok());
  CommandOutput r =
      Barge({"run", "--cgroup-parent", CgroupParent(), "--rm", "--rootfs", "-e", "A=1", "-e", "B=2",
             "-v", vol->path() + ":/v:ro", rootfs_->path(), "sh", "-c", "echo $A $B; cat /v/f"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 2\nin volume\n");
}

TEST_F(ContainerCliTest, RunsWhenBargeIsStartedWithoutStandardDescriptors) {
  // With 0, 1 and 2 closed, barge's own files (the exec shim's memfd, the container's /dev/null)
  // would take those numbers and be replaced by the container's stdio.
  std::string script = std::string("exec ") + BARGE_BINARY + " --root " + root_.path() +
                       " run --rm --cgroup-parent " + CgroupParent() + " --rootfs " +
                       rootfs_->path() + " sh -c 'cat; echo done > /dev/stderr' <&- >&-";
  auto r = RunCommand({"sh", "-c", script});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->exit_code, 0) << r->err;
  EXPECT_EQ(r->err, "done\n");
}

TEST_F(ContainerCliTest, BadInputGetsAOneLineError) {
  CommandOutput r = Barge({"run", "no-such-image:latest", "true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_TRUE(OneLineError(r)) << r.err;
  EXPECT_NE(r.err.find("no-such-image"), std::string::npos) << r.err;

  for (const auto& [option, value, quoted] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"-v", "justaname", "'justaname'"},
           {"-v", "data:relative", "'data:relative'"},
           {"-v", "/no/such/host/dir:/x", "/no/such/host/dir"},
           {"--memory", "12q", "'12q'"},
           {"--cpus", "100000", "'100000'"},
           {"--cpus", "1e300", "invalid --cpus"},
           {"--cpus", "-1", "invalid --cpus"},
           {"--network", "bridge", "'bridge'"}}) {
    r = Run({option, value}, {"true"});
    EXPECT_EQ(r.exit_code, 125) << option << " " << value;
    EXPECT_TRUE(OneLineError(r)) << r.err;
    EXPECT_NE(r.err.find(quoted), std::string::npos) << r.err;
  }
  r = Run({}, {"no-such-command"});
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_TRUE(OneLineError(r)) << r.err;
  ASSERT_EQ(Run({"--name", "taken"}, {"true"}).exit_code, 0);
  r = Run({"--name", "taken"}, {"true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_TRUE(OneLineError(r)) << r.err;
  EXPECT_NE(r.err.find("'taken' is already in use"), std::string::npos) << r.err;
  EXPECT_EQ(Barge({"rm", "taken"}).exit_code, 0);
  r = Barge({"stop", "nothing-by-this-name"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(OneLineError(r)) << r.err;
  // Nothing was created by the failures, except the stopped container of the missing command.
  EXPECT_EQ(PsJson().size(), 1u);
}

TEST_F(ContainerCliTest, ExitCodesSayWhereTheFailureHappened) {
  // Docker's contract: 125 when barge itself failed (the command line, the image, the mounts),
  // 126 when the command cannot be invoked, 127 when it does not exist; decided by where the
  // failure happened, not by its errno (a missing bind source is an ENOENT, and barge's).
  auto expect = [&](const CommandOutput& r, int code, const std::string& names) {
    EXPECT_EQ(r.exit_code, code) << names << ": " << r.err;
    EXPECT_TRUE(OneLineError(r)) << r.err;
    EXPECT_NE(r.err.find(names), std::string::npos) << r.err;
  };
  expect(Barge({"run", "--bogus", "--rootfs", rootfs_->path(), "true"}), 125, "'--bogus'");
  expect(Barge({"run"}), 125, "needs an IMAGE");
  expect(Barge({"run", "--cpus"}), 125, "--cpus");
  expect(Barge({"run", "--cpus", "abc", "--rootfs", rootfs_->path(), "true"}), 125, "abc");
  auto host = TempDir::Make("barge-vol-");
  ASSERT_TRUE(host.ok());
  ASSERT_EQ(::symlink("/nonexistent/barge-target", (host->path() + "/dangling").c_str()), 0);
  expect(Run({"--rm", "-v", host->path() + "/dangling:/d"}, {"true"}), 125,
         host->path() + "/dangling:/d");
  expect(Run({"--rm", "-v", host->path() + ":/d/../../x"}, {"true"}), 125,
         host->path() + ":/d/../../x");
  std::vector<std::string> many;
  for (int i = 0; i < 70; ++i) {
    many.push_back("-v");
    many.push_back(host->path() + ":/d" + std::to_string(i));
  }
  many.push_back("--rm");
  expect(Run(many, {"true"}), 125, "too many bind mounts");
  expect(Run({"--rm", "-u", "0:nosuchgroup"}, {"true"}), 125, "nosuchgroup");
  expect(Run({"--rm", "-u", "nosuchuser"}, {"true"}), 125, "nosuchuser");
  expect(Run({"--rm", "-w", "/etc/passwd"}, {"true"}), 125, "working directory /etc/passwd");
  expect(Run({"--rm", "--pids-limit", "-3"}, {"true"}), 125, "'-3'");
  expect(Run({"--rm"}, {"/bin"}), 126, "/bin");
  expect(Run({"--rm"}, {"/etc/passwd"}), 126, "/etc/passwd");
  expect(Run({"--rm"}, {"no-such-command"}), 127, "no-such-command");
  expect(Run({"--rm"}, {"/no/such/command"}), 127, "/no/such/command");
  expect(Run({"--rm", "-d"}, {"no-such-command"}), 127, "no-such-command");
  expect(Run({"--rm", "-d", "-v", host->path() + "/dangling:/d"}, {"true"}), 125, "dangling");
  // Docker's -1 means no limit, as 0 does.
  EXPECT_EQ(Run({"--rm", "--pids-limit", "-1"}, {"true"}).exit_code, 0);

  ASSERT_EQ(Run({"-d", "--name", "box"}, {"sleep", "100"}).exit_code, 0);
  expect(Barge({"exec", "box", "no-such-command"}), 127, "no-such-command");
  expect(Barge({"exec", "box", "/etc/passwd"}), 126, "/etc/passwd");
  expect(Barge({"exec", "-u", "0:nosuchgroup", "box", "true"}), 125, "nosuchgroup");
  expect(Barge({"exec", "--bogus", "box", "true"}), 125, "'--bogus'");
  expect(Barge({"exec", "-w"}), 125, "-w");
  EXPECT_EQ(Barge({"rm", "-f", "box"}).exit_code, 0);
  EXPECT_TRUE(PsJson().empty());
}

TEST_F(ContainerCliTest, ForegroundRunRelaysStdioThroughPipes) {
  // As with Docker and Podman, the container's stdio are pipes that barge relays, never barge's
  // own descriptors: here a host file, which the container could otherwise reopen through
  // /proc/self/fd and read or change.
  std::string out = root_.path() + "/out.txt";
  std::string err = root_.path() + "/err.txt";
  std::string command = std::string(BARGE_BINARY) + " --root " + root_.path() +
                        " run --rm --cgroup-parent " + CgroupParent() + " --rootfs " +
                        rootfs_->path() +
                        " sh -c 'readlink /proc/self/fd/0; readlink /proc/self/fd/1; "
                        "readlink /proc/self/fd/2 >&2; echo to-stdout; echo to-stderr >&2; "
                        "exit 4' >" +
                        out + " 2>" + err;
  auto r = RunCommand({"sh", "-c", command});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 4) << r->err;
  std::string stdout_text = ReadFile(out).value();
  std::string stderr_text = ReadFile(err).value();
  EXPECT_EQ(stdout_text.find(out), std::string::npos) << stdout_text;
  EXPECT_EQ(stdout_text.rfind("/dev/null\npipe:[", 0), 0u) << stdout_text;
  EXPECT_NE(stdout_text.find("]\nto-stdout\n"), std::string::npos) << stdout_text;
  EXPECT_EQ(stderr_text.rfind("pipe:[", 0), 0u) << stderr_text;
  EXPECT_NE(stderr_text.find("]\nto-stderr\n"), std::string::npos) << stderr_text;

  // From a terminal (script(1) gives barge one): the container neither reads what the user
  // types nor changes the terminal's modes; both work on barge's own descriptors only.
  std::string run = std::string(BARGE_BINARY) + " --root " + root_.path() +
                    " run --rm --cgroup-parent " + CgroupParent() + " --rootfs " + rootfs_->path() +
                    " sh -c 'read -t 2 x <&1; echo got=\\$x; stty -echo <&1 2>/dev/null; true'";
  std::string check =
      "stty -a | tr ' ;' '\\n\\n' | grep -qx -- -echo && echo echo-off || echo echo-on";
  std::string pipeline = "(sleep 0.5; printf 'SECRET\\n'; sleep 2) | script -qec \"" + run + "; " +
                         check + "\" /dev/null";
  r = RunCommand({"sh", "-c", pipeline});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out.find("got=SECRET"), std::string::npos) << r->out;
  EXPECT_NE(r->out.find("got="), std::string::npos) << r->out;
  EXPECT_NE(r->out.find("echo-on"), std::string::npos) << r->out;

  // A reader that stops (head) ends the container's writes as it would without barge between.
  r = RunCommand({"sh", "-c",
                  std::string(BARGE_BINARY) + " --root " + root_.path() +
                      " run --rm --cgroup-parent " + CgroupParent() + " --rootfs " +
                      rootfs_->path() + " sh -c 'yes; echo yes-ended=$? >&2' | head -2"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "y\ny\n");
  EXPECT_NE(r->err.find("yes-ended=141"), std::string::npos) << r->err;  // SIGPIPE
}

TEST_F(ContainerCliTest, RunRmLeavesNoProcessForAnyoneToReap) {
  // barge run --rm deletes the container before it returns, as Docker and Podman do, rather than
  // leaving a detached process that nobody waits for. Whatever barge left would be reparented
  // to the nearest subreaper: this helper.
  std::vector<std::string> args = {BARGE_BINARY, "--root",   root_.path(),    "run",
                                   "--rm",       "--rootfs", rootfs_->path(), "true"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t helper = ::fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) ::_exit(100);
    for (int i = 0; i < 5; ++i) {
      pid_t barge = ::fork();
      if (barge == 0) {
        ::execv(BARGE_BINARY, argv.data());
        ::_exit(127);
      }
      int status = 0;
      if (::waitpid(barge, &status, 0) != barge || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        ::_exit(101);
      }
    }
    // Anything else is a left-over of barge's: wait for it (it must not exist).
    ::_exit(::waitpid(-1, nullptr, 0) == -1 && errno == ECHILD ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(helper, &status, 0), helper);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: barge left a process behind; 100+: the helper failed";
  EXPECT_TRUE(PsJson().empty());
  // Nor a directory: the container's is gone, not hidden.
  std::vector<std::string> left;
  if (DIR* d = ::opendir((root_.path() + "/containers").c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.' || std::string_view(e->d_name).starts_with(".trash"))
        left.push_back(e->d_name);
    }
    ::closedir(d);
  }
  EXPECT_TRUE(left.empty()) << left[0];
}

TEST_F(ContainerCliTest, EnvFileIsBoundedAndNamed) {
  // /dev/zero would be read forever; a directory is not a file; too long is refused.
  CommandOutput r = Run({"--rm", "--env-file", "/dev/zero"}, {"true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_TRUE(OneLineError(r)) << r.err;
  EXPECT_NE(r.err.find("--env-file: /dev/zero is not a regular file or a pipe"), std::string::npos)
      << r.err;
  r = Run({"--rm", "--env-file", root_.path()}, {"true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find(root_.path() + " is a directory"), std::string::npos) << r.err;
  ASSERT_TRUE(WriteFile(root_.path() + "/big.env", "A=" + std::string(2 << 20, 'x') + "\n").ok());
  r = Run({"--rm", "--env-file", root_.path() + "/big.env"}, {"true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("big.env is larger than the limit of 1048576 bytes"), std::string::npos)
      << r.err;
  // A pipe the user named on purpose works, as for Docker (`--env-file <(...)`).
  auto piped = RunCommand({"sh", "-c",
                           "printf 'FROM_PIPE=yes\\n' | " + std::string(BARGE_BINARY) + " --root " +
                               root_.path() + " run --rm --env-file /dev/stdin --rootfs " +
                               rootfs_->path() + " sh -c 'echo $FROM_PIPE'"});
  ASSERT_TRUE(piped.ok());
  EXPECT_EQ(piped->exit_code, 0) << piped->err;
  EXPECT_EQ(piped->out, "yes\n");
  r = Barge({"exec", "--env-file", "/dev/zero", "nosuch", "true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_TRUE(OneLineError(r)) << r.err;
}

TEST_F(ContainerCliTest, MemoryHogIsOomKilledAndReported) {
  if (std::string why = runtime::testing::WhySwapUnbounded(); !why.empty()) GTEST_SKIP() << why;
  CommandOutput r = Run({"--memory", "32m", "--name", "hog"},
                        {"sh", "-c", "exec awk 'BEGIN { s = \"x\"; while (1) s = s s }'"});
  EXPECT_EQ(r.exit_code, 137) << r.err;
  EXPECT_NE(r.err.find("OOM"), std::string::npos) << r.err;
  nlohmann::json ps = PsJson();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0]["exit_code"], 137);
  EXPECT_EQ(ps[0]["oom_killed"], true);
  EXPECT_EQ(Barge({"rm", "hog"}).exit_code, 0);
}

TEST_F(ContainerCliTest, PidsLimitRefusesForks) {
  if (std::string why = runtime::testing::WhyNoController("pids"); !why.empty()) {
    GTEST_SKIP() << why;
  }
  CommandOutput r =
      Run({"--rm", "--pids-limit", "5"},
          {"sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 2 & done; wait; echo done"});
  EXPECT_NE(r.err.find("can't fork"), std::string::npos) << r.err;
}

TEST_F(ContainerCliTest, ReadOnlyRootAndReadOnlyVolumeRefuseWrites) {
  CommandOutput r = Run({"--rm", "--read-only"}, {"touch", "/x"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("Read-only file system"), std::string::npos) << r.err;
  r = Run({"--rm", "-v", "data:/data:ro"}, {"touch", "/data/x"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("Read-only file system"), std::string::npos) << r.err;
  EXPECT_FALSE(PathExists(root_.path() + "/volumes/data/_data/x"));
}

TEST_F(ContainerCliTest, TmpfsTakesPodmansOptionsAndDefaults) {
  // Podman's defaults: rw, noexec, nosuid, nodev; options after the destination, as Podman.
  CommandOutput r =
      Run({"--rm", "--tmpfs", "/t:size=1m,mode=700", "--tmpfs", "/x", "--tmpfs", "/e:exec"},
          {"sh", "-c",
           "grep -E ' /(t|x|e) ' /proc/mounts | cut -d' ' -f2,4 | sort; "
           "stat -c %a /t; cp /bin/busybox /x/true && /x/true && echo ran-noexec; "
           "cp /bin/busybox /e/true && /e/true && echo ran-exec"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("/e rw,nosuid,nodev,relatime"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("/t rw,nosuid,nodev,noexec,relatime,size=1024k,mode=700"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("/x rw,nosuid,nodev,noexec"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("ran-noexec"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ran-exec"), std::string::npos) << r.out;
  r = Run({"--rm", "--tmpfs", "/t:bogus"}, {"true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_TRUE(OneLineError(r)) << r.err;
  EXPECT_NE(r.err.find("'bogus'"), std::string::npos) << r.err;
}

TEST_F(ContainerCliTest, NamedVolumeKeepsDataAcrossRuns) {
  ASSERT_EQ(Barge({"volume", "create", "keep"}).exit_code, 0);
  CommandOutput r = Run({"--rm", "-v", "keep:/data"}, {"sh", "-c", "echo first > /data/f"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Run({"--rm", "-v", "keep:/elsewhere"}, {"cat", "/elsewhere/f"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "first\n");
  EXPECT_NE(Barge({"volume", "ls"}).out.find("keep"), std::string::npos);
  EXPECT_EQ(Barge({"volume", "rm", "keep"}).exit_code, 0);
  EXPECT_EQ(Barge({"volume", "inspect", "keep"}).exit_code, 1);
}

TEST_F(ContainerCliTest, VolumeInUseCannotBeRemoved) {
  ASSERT_EQ(Run({"--name", "user", "-v", "busy:/b"}, {"true"}).exit_code, 0);
  CommandOutput r = Barge({"volume", "rm", "busy"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("in use by container user"), std::string::npos) << r.err;
  EXPECT_EQ(Barge({"rm", "user"}).exit_code, 0);
  EXPECT_EQ(Barge({"volume", "rm", "busy"}).exit_code, 0);
}

TEST_F(ContainerCliTest, TwoRunningContainersShareAVolume) {
  // A writes, then waits for B's file; B waits for A's file, then writes. Each prints the other's.
  CommandOutput a = Run({"-d", "--name", "a", "-v", "shared:/s"},
                        {"sh", "-c",
                         "echo from-a > /s/a; for i in $(seq 200); do [ -f /s/b ] && break; "
                         "sleep 0.05; done; cat /s/b"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  CommandOutput b = Run({"--rm", "-v", "shared:/s"},
                        {"sh", "-c",
                         "for i in $(seq 200); do [ -f /s/a ] && break; sleep 0.05; done; "
                         "cat /s/a; echo from-b > /s/b"});
  EXPECT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(b.out, "from-a\n");
  // a exits by itself once it has read b's file.
  for (int i = 0; i < 200; ++i) {
    nlohmann::json ps = PsJson();
    if (!ps.empty() && ps[0]["status"] == "exited") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_EQ(Barge({"logs", "a"}).out, "from-b\n");
  EXPECT_EQ(Barge({"rm", "a"}).exit_code, 0);
}

TEST_F(ContainerCliTest, DetachedLifecyclePsLogsStopRm) {
  CommandOutput r = Run({"-d", "--name", "svc"}, {"sh", "-c",
                                                  "trap 'echo stopping; exit 0' TERM; echo up; "
                                                  "while true; do sleep 0.05; done"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(r.out.size(), 65u) << r.out;  // the id and a newline
  CommandOutput ps = Barge({"ps"});
  EXPECT_NE(ps.out.find("svc"), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find("Up "), std::string::npos) << ps.out;
  r = Barge({"rm", "svc"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is running"), std::string::npos) << r.err;
  // Give the trap time to be set before asking it to stop.
  for (int i = 0; i < 100 && Barge({"logs", "svc"}).out.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  r = Barge({"stop", "-t", "5", "svc"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Barge({"logs", "svc"}).out, "up\nstopping\n");
  EXPECT_EQ(Barge({"logs", "-f", "svc"}).out, "up\nstopping\n");  // returns: it has exited
  nlohmann::json state = PsJson();
  ASSERT_EQ(state.size(), 1u);
  EXPECT_EQ(state[0]["status"], "exited");
  EXPECT_EQ(state[0]["exit_code"], 0);
  EXPECT_EQ(Barge({"ps"}).out.find("svc"), std::string::npos);
  EXPECT_EQ(Barge({"rm", "svc"}).exit_code, 0);
  EXPECT_TRUE(PsJson().empty());
}

TEST_F(ContainerCliTest, LogsFollowUntilTheContainerExits) {
  ASSERT_EQ(
      Run({"-d", "--name", "talker"}, {"sh", "-c", "echo one; sleep 0.3; echo two"}).exit_code, 0);
  CommandOutput r = Barge({"logs", "-f", "talker"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "one\ntwo\n");
  EXPECT_EQ(Barge({"rm", "talker"}).exit_code, 0);
}

TEST_F(ContainerCliTest, StopKillsWhatIgnoresTermAndKillSignals) {
  ASSERT_EQ(Run({"-d", "--name", "stubborn"}, {"sleep", "100"}).exit_code, 0);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Barge({"stop", "-t", "1", "stubborn"}).exit_code, 0);  // pid 1 ignores TERM
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(PsJson()[0]["exit_code"], 137);
  ASSERT_EQ(Run({"-d", "--name", "victim"}, {"sleep", "100"}).exit_code, 0);
  EXPECT_EQ(Barge({"kill", "-s", "KILL", "victim"}).exit_code, 0);
  EXPECT_EQ(Barge({"rm", "-f", "victim", "stubborn"}).exit_code, 0);
  EXPECT_TRUE(PsJson().empty());
}

TEST_F(ContainerCliTest, WaitPrintsTheExitCodeOnceTheContainerExits) {
  ASSERT_EQ(Run({"-d", "--name", "job"}, {"sh", "-c", "sleep 0.3; exit 3"}).exit_code, 0);
  auto start = std::chrono::steady_clock::now();
  CommandOutput r = Barge({"wait", "job"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "3\n");
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
  EXPECT_EQ(Barge({"wait", "job"}).out, "3\n");  // already exited
  r = Barge({"wait", "nosuch"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(OneLineError(r)) << r.err;
  EXPECT_EQ(Barge({"rm", "job"}).exit_code, 0);
}

TEST_F(ContainerCliTest, StartRunsAStoppedContainerAgainWithItsLayer) {
  ASSERT_EQ(Run({"-d", "--name", "again"},
                {"sh", "-c", "echo run >> /runs; echo runs=$(cat /runs | wc -l); exit 4"})
                .exit_code,
            0);
  EXPECT_EQ(Barge({"wait", "again"}).out, "4\n");
  CommandOutput r = Barge({"start", "again"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "again\n");
  EXPECT_EQ(Barge({"wait", "again"}).out, "4\n");
  // What it wrote the first time is still in its layer; both runs log to the same file.
  EXPECT_EQ(Barge({"logs", "again"}).out, "runs=1\nruns=2\n");
  r = Barge({"start", "nosuch"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(OneLineError(r)) << r.err;
  EXPECT_EQ(Barge({"rm", "again"}).exit_code, 0);
}

TEST_F(ContainerCliTest, DetachedWithATerminalKeepsAShellRunning) {
  // docker run -dit: the shell waits on a terminal nobody types into; its prompt goes to the log.
  ASSERT_EQ(Run({"-dit", "--name", "shell"}, {"sh"}).exit_code, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(PsJson()[0]["status"], "running");
  CommandOutput r = Barge({"exec", "shell", "sh", "-c", "tty <&0 || echo no-tty; echo hi"});
  EXPECT_EQ(r.out, "not a tty\nno-tty\nhi\n") << r.err;
  EXPECT_NE(Barge({"logs", "shell"}).out.find("# "), std::string::npos);  // the prompt
  EXPECT_EQ(Barge({"rm", "-f", "shell"}).exit_code, 0);
}

TEST_F(ContainerCliTest, ExecRunsACommandInTheRunningContainer) {
  // With a limit (where the host can set one) the container has cgroups of its own to join.
  std::vector<std::string> options = {"-d",         "--name",     "box",    "-e",
                                      "FROM_RUN=1", "--hostname", "boxhost"};
  if (runtime::testing::WhyNoController("pids").empty()) {
    options.insert(options.end(), {"--pids-limit", "50"});
  }
  ASSERT_EQ(Run(options, {"sleep", "100"}).exit_code, 0);
  // Its namespaces (pid 1 is the container's, the hostname its own), cgroups and environment.
  CommandOutput r =
      Barge({"exec", "-e", "FROM_EXEC=2", "box", "sh", "-c",
             "echo $$ $(hostname) $FROM_RUN $FROM_EXEC; cat /proc/1/cmdline; echo; "
             "[ \"$(cat /proc/self/cgroup)\" = \"$(cat /proc/1/cgroup)\" ] && echo "
             "same-cgroups; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("boxhost 1 2\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("1 boxhost"), std::string::npos) << r.out;  // not pid 1
  EXPECT_NE(r.out.find(std::string("sleep\0"
                                   "100",
                                   9)),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("same-cgroups\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CapEff:\t00000000a80425fb\nNoNewPrivs:\t1\nSeccomp:\t2\n"),
            std::string::npos)
      << r.out;
  // Its exit code, its user and working directory, and its own terminal.
  EXPECT_EQ(Barge({"exec", "box", "sh", "-c", "exit 7"}).exit_code, 7);
  r = Barge({"exec", "-u", "65534", "-w", "/bin", "box", "sh", "-c", "id -u; pwd"});
  EXPECT_EQ(r.out, "65534\n/bin\n") << r.err;
  auto typed = RunCommand(
      {"script", "-qec", std::string(BARGE_BINARY) + " --root " + root_.path() + " exec -it box sh",
       "/dev/null"},
      {.input = "tty; exit 5\n"});
  ASSERT_TRUE(typed.ok());
  EXPECT_EQ(typed->exit_code, 5) << typed->out;
  EXPECT_NE(typed->out.find("/dev/pts/"), std::string::npos) << typed->out;
  // Its stdio are pipes barge relays, never barge's own descriptors (which processes of the
  // container could reopen through /proc and keep); input passes with -i.
  r = Barge({"exec", "box", "sh", "-c", "for fd in 0 1 2; do readlink /proc/self/fd/$fd; done"});
  EXPECT_EQ(r.out.substr(0, 10), "/dev/null\n") << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '['), 2) << r.out;  // pipe:[N], twice
  auto piped = RunCommand({BARGE_BINARY, "--root", root_.path(), "exec", "-i", "box", "wc", "-c"},
                          {.input = "12345"});
  ASSERT_TRUE(piped.ok());
  EXPECT_EQ(piped->out, "5\n");
  // barge exec returns when its command exits, though a background process keeps the output
  // (or the terminal) open.
  for (const char* tty : {"", "-t "}) {
    auto start = std::chrono::steady_clock::now();
    auto bg = RunCommand({"script", "-qec",
                          std::string(BARGE_BINARY) + " --root " + root_.path() + " exec " + tty +
                              "box sh -c 'sleep 5 & echo started'",
                          "/dev/null"});
    ASSERT_TRUE(bg.ok());
    EXPECT_NE(bg->out.find("started"), std::string::npos) << bg->out;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3)) << tty;
  }
  // barge inspect shows the container (a container before an image of the same name).
  r = Barge({"inspect", "box"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json inspected = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(inspected.is_array() && inspected.size() == 1) << r.out;
  EXPECT_EQ(inspected[0]["Name"], "box");
  EXPECT_EQ(inspected[0]["State"]["status"], "running");
  EXPECT_EQ(inspected[0]["Config"]["hostname"], "boxhost");
  EXPECT_EQ(inspected[0]["Config"]["process"]["env"], nlohmann::json::array({"FROM_RUN=1"}));
  EXPECT_EQ(Barge({"inspect", "--type", "image", "box"}).exit_code, 1);
  // Failures: 127 for a missing command, 125 with one line for a container that is not there
  // or not running.
  r = Barge({"exec", "box", "/no/such/command"});
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_TRUE(OneLineError(r)) << r.err;
  r = Barge({"exec", "nosuch", "true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_TRUE(OneLineError(r)) << r.err;
  ASSERT_EQ(Barge({"kill", "box"}).exit_code, 0);
  for (int i = 0; i < 100 && PsJson()[0]["status"] != "exited"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  r = Barge({"exec", "box", "true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("is not running"), std::string::npos) << r.err;
  EXPECT_EQ(Barge({"rm", "box"}).exit_code, 0);
}

TEST_F(ContainerCliTest, ForegroundRunForwardsSignals) {
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  const std::string cgroup_parent = CgroupParent();  // names our pid, not the child's
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::execl(BARGE_BINARY, BARGE_BINARY, "--root", root_.path().c_str(), "run", "--cgroup-parent",
            cgroup_parent.c_str(), "--rm", "--rootfs", rootfs_->path().c_str(), "sh", "-c",
            "trap 'echo got-term; exit 3' TERM; echo ready; while true; do sleep 0.05; done",
            nullptr);
    ::_exit(127);
  }
  ::close(out[1]);
  UniqueFd out_r(out[0]);
  char buf[64] = {};
  ASSERT_GT(::read(out_r.get(), buf, sizeof buf - 1), 0);
  EXPECT_STREQ(buf, "ready\n");
  ::kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);
  std::string rest(64, '\0');
  rest.resize(static_cast<size_t>(std::max<ssize_t>(0, ::read(out_r.get(), rest.data(), 63))));
  EXPECT_EQ(rest, "got-term\n");
}

TEST_F(ContainerCliTest, StateOfAKilledBargeIsCleanedUp) {
  // With a limit (where the host can set one), so that there are cgroups to clean up too.
  const bool with_cgroup = runtime::testing::WhyNoController("memory").empty();
  std::vector<std::string> options = {"-d", "--name", "orphan"};
  if (with_cgroup) options.insert(options.end(), {"--memory", "64m"});
  ASSERT_EQ(Run(options, {"sleep", "100"}).exit_code, 0);
  nlohmann::json ps = PsJson();
  ASSERT_EQ(ps.size(), 1u);
  std::string id = ps[0]["id"];
  auto state = nlohmann::json::parse(*ReadFile(root_.path() + "/containers/" + id + "/state.json"));
  pid_t monitor = state["monitor_pid"];
  pid_t container = state["pid"];
  std::vector<std::string> cgroups = state["cgroup_dirs"];
  ASSERT_EQ(cgroups.empty(), !with_cgroup);
  ASSERT_EQ(::kill(monitor, SIGKILL), 0);
  // The container dies with its monitor (parent-death signal).
  for (int i = 0; i < 200 && ::kill(container, 0) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ps = PsJson();  // notices the dead monitor, records the exit and removes the cgroups
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0]["status"], "exited");
  EXPECT_EQ(ps[0]["exit_code"], -1);
  for (const std::string& dir : cgroups) EXPECT_FALSE(PathExists(dir)) << dir;
  // The long status widens its column instead of running into the name.
  std::string table = Barge({"ps", "-a"}).out;
  EXPECT_NE(table.find("barge process was killed"), std::string::npos);
  std::string header = table.substr(0, table.find('\n'));
  std::string row = table.substr(header.size() + 1);
  size_t names = header.find("NAMES");
  ASSERT_NE(names, std::string::npos) << table;
  EXPECT_EQ(row.substr(names), "orphan\n") << table;
  EXPECT_EQ(row.substr(names - 3, 3), "   ") << table;
  EXPECT_EQ(Barge({"rm", "orphan"}).exit_code, 0);
}

TEST_F(ContainerCliTest, CgroupOfABargeKilledWhileStartingIsCleanedUp) {
  if (std::string why = runtime::testing::WhyNoController("pids"); !why.empty()) {
    GTEST_SKIP() << why;
  }
  // Killed while the container is still being set up (thousands of tmpfs mounts make that long),
  // barge has not yet recorded the container running; a later barge must still remove its cgroup.
  std::vector<std::string> args = {BARGE_BINARY,   "--root",   root_.path(),      "run",
                                   "--name",       "starting", "--cgroup-parent", CgroupParent(),
                                   "--pids-limit", "10"};
  for (int i = 0; i < 3000; ++i) {
    args.push_back("--tmpfs");
    args.push_back("/t/" + std::to_string(i));
  }
  for (const std::string& a :
       {std::string("--rootfs"), rootfs_->path(), std::string("sleep"), std::string("100")}) {
    args.push_back(a);
  }
  auto controllers = runtime::DetectControllers();
  ASSERT_TRUE(controllers.ok());
  std::string pids_parent;
  for (const auto& c : *controllers) {
    if (c.controller == "pids") pids_parent = c.mount + "/" + CgroupParent();
  }
  ASSERT_FALSE(pids_parent.empty());
  auto cgroup_dirs = [&] {
    std::vector<std::string> dirs;
    if (DIR* d = ::opendir(pids_parent.c_str())) {
      while (dirent* e = ::readdir(d)) {
        if (e->d_type == DT_DIR && e->d_name[0] != '.')
          dirs.push_back(pids_parent + "/" + e->d_name);
      }
      ::closedir(d);
    }
    return dirs;
  };
  pid_t barge = ::fork();
  ASSERT_GE(barge, 0);
  if (barge == 0) {
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::execv(BARGE_BINARY, argv.data());
    ::_exit(127);
  }
  for (int i = 0; i < 4000 && cgroup_dirs().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  std::vector<std::string> dirs = cgroup_dirs();
  ASSERT_EQ(::kill(barge, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(barge, &status, 0), barge);
  ASSERT_EQ(dirs.size(), 1u);
  nlohmann::json ps = PsJson();  // notices the dead barge and removes what it left
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0]["status"], "exited");
  EXPECT_TRUE(cgroup_dirs().empty()) << "cgroup left behind: " << dirs[0];
  // Whatever happens above, leave nothing behind.
  (void)runtime::Cgroup::Adopt(cgroup_dirs()).Remove();
  EXPECT_EQ(Barge({"rm", "-f", "starting"}).exit_code, 0);
}

TEST_F(ContainerCliTest, ContainerSeesOnlyStdioAndDefaultCapabilities) {
  // ls is pid 1 itself; besides 0, 1 and 2 it holds only the directory it is listing (3).
  CommandOutput r = Run({"--rm"}, {"ls", "/proc/self/fd"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "0\n1\n2\n3\n");
  r = Run({"--rm"}, {"grep", "CapEff", "/proc/self/status"});
  EXPECT_EQ(r.out, "CapEff:\t00000000a80425fb\n");
}

TEST_F(ContainerCliTest, EnvWorkdirUserAndEntrypoint) {
  ASSERT_TRUE(WriteFile(root_.path() + "/env", "# comment\nFROM_FILE=1\nB=file\n").ok());
  CommandOutput r = Run({"--rm", "-e", "A=1", "--env-file", root_.path() + "/env", "-e", "B=flag",
                         "-w", "/work/dir", "-u", "app", "--entrypoint", "/bin/sh"},
                        {"-c", "echo $A $FROM_FILE $B $(pwd) $(whoami) $HOME"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 1 flag /work/dir app /home/app\n");
}

TEST_F(ContainerCliTest, InteractiveStdinReachesTheCommand) {
  std::vector<std::string> args = {BARGE_BINARY, "--root",   root_.path(),    "run", "--rm",
                                   "-i",         "--rootfs", rootfs_->path(), "wc",  "-l"};
  auto r = RunCommand(args, {.input = "one\ntwo\nthree\n"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0) << r->err;
  EXPECT_EQ(r->out, "3\n");
  // A command that writes more than a pipe holds while it does not read its input: barge keeps
  // relaying its output while the input waits (timeout(1) fails the test instead of hanging it).
  auto busy = RunCommand(
      {"timeout", "-k", "5", "20", BARGE_BINARY, "--root", root_.path(), "run", "--rm", "-i",
       "--rootfs", rootfs_->path(), "sh", "-c", "head -c 1 >/dev/null; yes | head -c 500000"},
      {.input = std::string(1 << 20, 'x')});
  ASSERT_TRUE(busy.ok());
  EXPECT_EQ(busy->exit_code, 0) << busy->err;
  EXPECT_EQ(busy->out.size(), 500000u);
  // Without -i the command reads /dev/null.
  args.erase(args.begin() + 5);
  r = RunCommand(args, {.input = "ignored\n"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "0\n");
}

TEST_F(ContainerCliTest, TerminalComesFromTheContainersDevpts) {
  // script(1) (util-linux) gives barge a terminal, as a user's shell would.
  std::string command = std::string(BARGE_BINARY) + " --root " + root_.path() +
                        " run --rm -it --rootfs " + rootfs_->path() +
                        " sh -c 'tty; test -t 0 && echo stdin-is-a-tty; echo $TERM; exit 3'";
  auto r = RunCommand({"script", "-qec", command, "/dev/null"});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->exit_code, 3) << r->err;
  EXPECT_NE(r->out.find("/dev/pts/0\r\n"), std::string::npos) << r->out;
  EXPECT_NE(r->out.find("stdin-is-a-tty"), std::string::npos) << r->out;
  EXPECT_NE(r->out.find("xterm"), std::string::npos) << r->out;
  // Typed input reaches the container's shell through its terminal.
  r = RunCommand({"script", "-qec",
                  std::string(BARGE_BINARY) + " --root " + root_.path() +
                      " run --rm -it --rootfs " + rootfs_->path() + " sh",
                  "/dev/null"},
                 {.input = "echo typed-$((6*7))\nexit 5\n"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 5) << r->out;
  EXPECT_NE(r->out.find("typed-42"), std::string::npos) << r->out;
  // With --init the command, not pid 1, is the terminal's foreground process group (so ^C
  // reaches it once), and its input and status still pass through.
  if (std::string why = runtime::testing::WhyNoExecShim(); !why.empty()) {
    CommandOutput refused = Run({"--rm", "--init"}, {"true"});
    EXPECT_EQ(refused.exit_code, 125);
    EXPECT_NE(refused.err.find("memfd_noexec"), std::string::npos) << refused.err;
    GTEST_SKIP() << why << ": no --init (refused, as checked)";
  }
  r = RunCommand({"script", "-qec",
                  std::string(BARGE_BINARY) + " --root " + root_.path() +
                      " run --rm -it --init --rootfs " + rootfs_->path() + " sh",
                  "/dev/null"},
                 {.input = "cut -d' ' -f5,8 /proc/self/stat | sed 's/^\\(.*\\) \\1$/fg-&/'\n"
                           "cat /proc/1/comm\nexit 6\n"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 6) << r->out;
  size_t fg = r->out.find("\nfg-");  // the typed line echoes "fg-&", not "fg-<digit>"
  EXPECT_TRUE(fg != std::string::npos && std::isdigit(static_cast<unsigned char>(r->out[fg + 4])))
      << r->out;
  EXPECT_NE(r->out.find("barge-init"), std::string::npos) << r->out;
}

TEST_F(ContainerCliTest, BuildRunStepsRelayTheirOutputAndLeaveNothingWhenKilled) {
  ASSERT_NO_FATAL_FAILURE(ImportBusybox());
  // A RUN step's stdout and stderr are pipes barge relays, not barge's own (here a host file).
  auto context = TempDir::Make("barge-context-");
  ASSERT_TRUE(context.ok());
  ASSERT_TRUE(WriteFile(context->path() + "/Containerfile",
                        "FROM busybox\nRUN readlink /proc/self/fd/1; echo step-out\n")
                  .ok());
  std::string out = root_.path() + "/build-out.txt";
  auto built = RunCommand({"sh", "-c",
                           std::string(BARGE_BINARY) + " --root " + root_.path() + " build " +
                               context->path() + " >" + out + " 2>&1"});
  ASSERT_TRUE(built.ok());
  std::string text = ReadFile(out).value();
  EXPECT_EQ(built->exit_code, 0) << text;
  EXPECT_NE(text.find("pipe:["), std::string::npos) << text;
  EXPECT_NE(text.find("step-out"), std::string::npos) << text;
  EXPECT_EQ(text.find(out), std::string::npos) << text;

  // A build killed during a RUN step: its mount point is under the root, not in $TMPDIR, and the
  // next barge removes it, as it reconciles containers.
  auto tmpdir = TempDir::Make("barge-tmpdir-");
  ASSERT_TRUE(tmpdir.ok());
  ASSERT_TRUE(WriteFile(context->path() + "/Containerfile", "FROM busybox\nRUN sleep 100\n").ok());
  std::string containers = root_.path() + "/containers";
  auto step_dirs = [&] {
    std::vector<std::string> found;
    if (DIR* d = ::opendir(containers.c_str())) {
      while (dirent* e = ::readdir(d)) {
        if (std::string_view(e->d_name).starts_with(".step-")) found.push_back(e->d_name);
      }
      ::closedir(d);
    }
    return found;
  };
  pid_t barge = ::fork();
  ASSERT_GE(barge, 0);
  if (barge == 0) {
    ::setenv("TMPDIR", tmpdir->path().c_str(), 1);
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::execl(BARGE_BINARY, BARGE_BINARY, "--root", root_.path().c_str(), "build", "--no-cache",
            context->path().c_str(), nullptr);
    ::_exit(127);
  }
  for (int i = 0; i < 1000 && step_dirs().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::vector<std::string> during = step_dirs();
  ASSERT_EQ(::kill(barge, SIGKILL), 0);
  ASSERT_EQ(::waitpid(barge, nullptr, 0), barge);
  ASSERT_EQ(during.size(), 1u) << "no RUN step mount point under " << containers;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the step dies with barge
  EXPECT_EQ(Barge({"ps", "-a"}).exit_code, 0);
  EXPECT_TRUE(step_dirs().empty()) << during[0] << " was left behind";
  DIR* d = ::opendir(tmpdir->path().c_str());
  ASSERT_NE(d, nullptr);
  std::vector<std::string> in_tmp;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') in_tmp.push_back(e->d_name);
  }
  ::closedir(d);
  EXPECT_TRUE(in_tmp.empty()) << in_tmp[0] << " was left in $TMPDIR";
}

TEST_F(ContainerCliTest, RunsAnImageWithItsConfig) {
  // An image made the way a user would: import the busybox tree, then build on it.
  ASSERT_NO_FATAL_FAILURE(ImportBusybox());
  ASSERT_TRUE(WriteFile(root_.path() + "/Containerfile",
                        "FROM busybox\nENV GREETING=hello\nWORKDIR /srv\n"
                        "ENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD [\"echo $GREETING from $(pwd)\"]\n")
                  .ok());
  CommandOutput build = Barge({"build", "-t", "greeter", root_.path()});
  ASSERT_EQ(build.exit_code, 0) << build.err;

  std::vector<std::string> run = {"run", "--cgroup-parent", CgroupParent(), "--rm"};
  auto with = [&](std::vector<std::string> more) {
    std::vector<std::string> args = run;
    args.insert(args.end(), more.begin(), more.end());
    return Barge(args);
  };
  CommandOutput r = with({"greeter"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hello from /srv\n");
  r = with({"-e", "GREETING=hi", "-w", "/tmp", "greeter", "echo $GREETING in $(pwd)"});
  EXPECT_EQ(r.out, "hi in /tmp\n") << r.err;
  r = with({"--entrypoint", "/bin/echo", "greeter", "plain"});
  EXPECT_EQ(r.out, "plain\n") << r.err;
  // RUN steps run in the runtime's containers: same capabilities and filter as barge run.
  ASSERT_TRUE(
      WriteFile(root_.path() + "/Containerfile",
                "FROM busybox\nRUN grep -E '^(CapEff|Seccomp):' /proc/self/status > /status "
                "&& hostname > /host\n")
          .ok());
  build = Barge({"build", "-t", "ran", root_.path()});
  ASSERT_EQ(build.exit_code, 0) << build.err;
  r = with({"ran", "cat", "/status"});
  EXPECT_EQ(r.out, "CapEff:\t00000000a80425fb\nSeccomp:\t2\n") << r.err;
  r = with({"busybox", "cat", "/etc/hostname"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.size(), 13u) << r.out;  // the short id
}

// Imports the busybox tree as busybox:latest into the root `root` (as barge sees it from `cwd`).
void ImportBusyboxInto(const std::string& rootfs, const std::string& root,
                       const std::string& cwd = "", std::vector<std::string> env = {}) {
  CommandOutput tar = RunCommand({"tar", "-C", rootfs, "-c", "."}).value();
  ASSERT_EQ(tar.exit_code, 0) << tar.err;
  std::vector<std::string> argv = {BARGE_BINARY};
  if (!root.empty()) argv.insert(argv.end(), {"--root", root});
  argv.insert(argv.end(), {"import", "-", "busybox:latest"});
  auto import = RunCommand(argv, {.input = tar.out, .env = env, .cwd = cwd});
  ASSERT_TRUE(import.ok());
  ASSERT_EQ(import->exit_code, 0) << import->err;
}

TEST_F(ContainerCliTest, RelativeRootWorksForRunAndBuild) {
  // The overlay and RUN steps are set up from other working directories than barge's own.
  std::string parent = root_.path().substr(0, root_.path().rfind('/'));
  std::string name = root_.path().substr(parent.size() + 1);
  ImportBusyboxInto(rootfs_->path(), name, parent);
  ASSERT_TRUE(MakeDirs(root_.path() + "/ctx").ok());
  ASSERT_TRUE(
      WriteFile(root_.path() + "/ctx/Containerfile", "FROM busybox\nRUN echo built > /x\n").ok());
  auto build = RunCommand({BARGE_BINARY, "--root", name, "build", "-q", "-t", "rel", name + "/ctx"},
                          {.cwd = parent});
  ASSERT_TRUE(build.ok());
  EXPECT_EQ(build->exit_code, 0) << build->err;
  // BARGE_ROOT too.
  auto run = RunCommand(
      {BARGE_BINARY, "run", "--rm", "--cgroup-parent", CgroupParent(), "rel", "cat", "/x"},
      {.env = {"BARGE_ROOT=" + name}, .cwd = parent});
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->exit_code, 0) << run->err;
  EXPECT_EQ(run->out, "built\n");
}

TEST_F(ContainerCliTest, RepeatedIdenticalLayersBuildAndRun) {
  // Each `RUN true` leaves the same empty layer: overlayfs refuses a lower dir listed twice
  // (ELOOP), so the runtime must list it once, where its topmost copy is.
  ImportBusyboxInto(rootfs_->path(), root_.path());
  ASSERT_TRUE(MakeDirs(root_.path() + "/ctx").ok());
  ASSERT_TRUE(WriteFile(root_.path() + "/ctx/Containerfile",
                        "FROM busybox\nRUN true\nRUN true\nRUN echo after > /x\n")
                  .ok());
  CommandOutput build = Barge({"build", "-q", "-t", "twice", root_.path() + "/ctx"});
  ASSERT_EQ(build.exit_code, 0) << build.err;
  auto inspect = nlohmann::json::parse(Barge({"inspect", "twice"}).out, nullptr, false);
  ASSERT_TRUE(inspect.is_array() && !inspect.empty()) << inspect.dump();
  auto layers = inspect[0]["RootFS"]["Layers"];
  ASSERT_EQ(layers.size(), 4u) << inspect.dump();
  EXPECT_EQ(layers[1], layers[2]);
  CommandOutput r = Barge({"run", "--rm", "--cgroup-parent", CgroupParent(), "twice", "cat", "/x"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "after\n");
}

}  // namespace
}  // namespace barge
