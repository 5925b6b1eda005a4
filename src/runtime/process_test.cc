// Runs real containers from a busybox root file system and checks what the process inside sees.
// Every test also checks that nothing (mount, cgroup, process) is left on the host.
#include "runtime/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <random>
#include <sstream>
#include <thread>
#include <tuple>

#include <gtest/gtest.h>

#include "base/file_util.h"
#include "base/subprocess.h"
#include "runtime/busybox_rootfs.h"
#include "runtime/capabilities.h"
#include "runtime/cgroups.h"
#include "runtime/container_store.h"
#include "runtime/host_features.h"
#include "runtime/leak_check.h"

namespace barge::runtime {
namespace {

struct Output {
  ExitInfo exit;
  std::string out;
  std::string err;
};

class ContainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto rootfs = MakeBusyboxRootfs();
    ASSERT_TRUE(rootfs.ok()) << rootfs.status().message();
    rootfs_ = new TempDir(std::move(rootfs).value());
  }
  static void TearDownTestSuite() {
    delete rootfs_;
    rootfs_ = nullptr;
    EXPECT_TRUE(RemoveCgroupParent(CgroupParent()).ok());
  }

  // This test process's own cgroup parent, so that leaks are told apart from parallel tests.
  static std::string CgroupParent() { return "barge-test-" + std::to_string(::getpid()); }

  void SetUp() override {
    auto dir = TempDir::Make("barge-container-");
    ASSERT_TRUE(dir.ok());
    dir_ = std::move(dir).value();
    for (const char* sub : {"upper", "work", "rootfs"}) {
      ASSERT_TRUE(MakeDirs(dir_.path() + "/" + sub).ok());
    }
    scope_ = {CgroupParent(), {dir_.path(), rootfs_->path()}, ""};
    before_ = testing::TakeHostSnapshot(scope_);
  }

  void TearDown() override {
    std::string leaks = testing::DescribeLeaks(before_, testing::TakeHostSnapshot(scope_));
    EXPECT_EQ(leaks, "") << "left behind on the host";
  }

  ContainerSpec Spec(std::vector<std::string> argv) {
    static std::mt19937_64 rng(std::random_device{}());
    ContainerSpec spec;
    char id[17];
    snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(rng()));
    spec.id = std::string("test") + id;
    spec.cgroup_parent = CgroupParent();
    spec.lower_dirs = {rootfs_->path()};
    spec.upper_dir = dir_.path() + "/upper";
    spec.work_dir = dir_.path() + "/work";
    spec.rootfs_dir = dir_.path() + "/rootfs";
    spec.process.argv = std::move(argv);
    return spec;
  }

  // Starts the container with stdout and stderr on pipes and collects both until it exits.
  // `on_start` runs once it is running (to signal it, or inspect its cgroup).
  Output Run(ContainerSpec spec, std::function<void(Container&)> on_start = nullptr) {
    Output result;
    int out[2], err[2];
    EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(err, O_CLOEXEC), 0);
    UniqueFd out_r(out[0]), out_w(out[1]), err_r(err[0]), err_w(err[1]);
    UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    spec.stdio = {null.get(), out_w.get(), err_w.get()};
    auto container = Container::Start(spec);
    out_w.Reset();
    err_w.Reset();
    if (!container.ok()) {
      ADD_FAILURE() << "start: " << container.status().message();
      return result;
    }
    if (on_start) on_start(*container);
    pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
    std::string* sinks[2] = {&result.out, &result.err};
    int open = 2;
    while (open > 0) {
      if (::poll(fds, 2, -1) < 0) break;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        char buf[4096];
        ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
        if (n <= 0) {
          fds[i].fd = -1;
          --open;
        } else {
          sinks[i]->append(buf, static_cast<size_t>(n));
        }
      }
    }
    auto exit = container->Wait();
    EXPECT_TRUE(exit.ok()) << exit.status().message();
    if (exit.ok()) result.exit = *exit;
    return result;
  }

  Output Sh(const std::string& script) { return Run(Spec({"/bin/sh", "-c", script})); }

  static TempDir* rootfs_;
  TempDir dir_;
  testing::LeakScope scope_;
  testing::HostSnapshot before_;
};

TempDir* ContainerTest::rootfs_ = nullptr;

TEST_F(ContainerTest, CommandIsPidOneWithItsOwnHostname) {
  ContainerSpec spec = Spec({"/bin/sh", "-c", "echo $$; hostname"});
  spec.hostname = "boxy";
  Output r = Run(spec);
  EXPECT_EQ(r.exit.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1\nboxy\n");
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  EXPECT_NE(std::string(host), "boxy");
}

TEST_F(ContainerTest, HostProcessesAndFilesAreNotVisible) {
  std::string marker = "/tmp/barge-host-marker-" + std::to_string(::getpid());
  ASSERT_TRUE(WriteFile(marker, "host").ok());
  Output r = Sh("ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; test -e " + marker +
                " && echo visible; echo; ls /");
  ::unlink(marker.c_str());
  EXPECT_EQ(r.exit.exit_code, 0) << r.err;
  // pid 1 (sh) and its two pipeline children at most; none of the host's many processes.
  std::istringstream pids(r.out.substr(0, r.out.find('\n')));
  int pid = 0, count = 0;
  while (pids >> pid) {
    EXPECT_LT(pid, 10) << r.out;
    ++count;
  }
  EXPECT_GE(count, 1);
  EXPECT_LE(count, 5) << r.out;
  EXPECT_EQ(r.out.find("visible"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("work"), std::string::npos) << "host root visible: " << r.out;
}

TEST_F(ContainerTest, ExitCodePropagates) {
  EXPECT_EQ(Sh("exit 7").exit.exit_code, 7);
  EXPECT_EQ(Sh("true").exit.exit_code, 0);
}

TEST_F(ContainerTest, KillSignalIsReportedAs128PlusSignal) {
  Output r =
      Run(Spec({"/bin/sleep", "100"}), [](Container& c) { ASSERT_TRUE(c.Signal(SIGKILL).ok()); });
  EXPECT_EQ(r.exit.signal, SIGKILL);
  EXPECT_EQ(r.exit.exit_code, 137);
  EXPECT_FALSE(r.exit.oom_killed);
}

TEST_F(ContainerTest, SignalReachesTheCommandsHandler) {
  // The script says it is ready on stderr once the trap is set; the signal is sent then.
  ContainerSpec spec = Spec({"/bin/sh", "-c",
                             "trap 'echo got TERM; exit 3' TERM; echo ready >&2; "
                             "while true; do sleep 0.05; done"});
  int err[2];
  ASSERT_EQ(::pipe2(err, O_CLOEXEC), 0);
  UniqueFd err_r(err[0]), err_w(err[1]);
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  UniqueFd out_r(out[0]), out_w(out[1]);
  spec.stdio = {0, out_w.get(), err_w.get()};
  auto c = Container::Start(spec);
  ASSERT_TRUE(c.ok()) << c.status().message();
  err_w.Reset();
  out_w.Reset();
  char buf[16] = {};
  ASSERT_GT(::read(err_r.get(), buf, sizeof buf - 1), 0);
  EXPECT_STREQ(buf, "ready\n");
  ASSERT_TRUE(c->Signal(SIGTERM).ok());
  auto exit = c->Wait();
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->exit_code, 3);
  std::string said(64, '\0');
  said.resize(static_cast<size_t>(std::max<ssize_t>(0, ::read(out_r.get(), said.data(), 63))));
  EXPECT_EQ(said, "got TERM\n");
}

TEST_F(ContainerTest, MissingExecutableIsNotFound) {
  auto c = Container::Start(Spec({"no-such-program"}));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
  EXPECT_NE(c.status().message().find("no-such-program"), std::string::npos)
      << c.status().message();
}

TEST_F(ContainerTest, StartFailuresSayWhereTheyHappened) {
  // Docker's exit codes follow where a start failed, not its errno.
  auto where_and_message = [&](ContainerSpec spec) {
    StartFailure where = StartFailure::kSetUp;
    auto c = Container::Start(spec, &where);
    EXPECT_FALSE(c.ok());
    return std::pair(where, c.ok() ? std::string() : c.status().message());
  };
  auto [where, message] = where_and_message(Spec({"no-such-program"}));
  EXPECT_EQ(where, StartFailure::kNotFound) << message;
  std::tie(where, message) = where_and_message(Spec({"/no/such/program"}));
  EXPECT_EQ(where, StartFailure::kNotFound) << message;
  EXPECT_NE(message.find("/no/such/program: no such file or directory"), std::string::npos)
      << message;
  for (const char* not_runnable : {"/etc/passwd", "/bin"}) {
    std::tie(where, message) = where_and_message(Spec({not_runnable}));
    EXPECT_EQ(where, StartFailure::kCannotInvoke) << message;
    EXPECT_NE(message.find(not_runnable), std::string::npos) << message;
  }
  // A missing bind source is an ENOENT too, but one of setting the container up.
  ContainerSpec spec = Spec({"/bin/true"});
  spec.mounts = {{MountSpec::Kind::kBind, dir_.path() + "/no-such-dir", "/x", false}};
  std::tie(where, message) = where_and_message(spec);
  EXPECT_EQ(where, StartFailure::kSetUp) << message;
  spec = Spec({"/bin/true"});
  spec.process.user = "0:nosuchgroup";
  std::tie(where, message) = where_and_message(spec);
  EXPECT_EQ(where, StartFailure::kSetUp) << message;
  EXPECT_NE(message.find("/etc/group: nosuchgroup"), std::string::npos) << message;
  spec = Spec({"/bin/true"});
  spec.process.cwd = "/etc/passwd";
  std::tie(where, message) = where_and_message(spec);
  EXPECT_EQ(where, StartFailure::kSetUp) << message;
  EXPECT_NE(message.find("working directory /etc/passwd"), std::string::npos) << message;
}

TEST_F(ContainerTest, CommandIsFoundInTheContainersPath) {
  ContainerSpec spec = Spec({"echo", "hi"});
  spec.process.env = {"PATH=/bin"};
  Output r = Run(spec);
  EXPECT_EQ(r.exit.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hi\n");
}

TEST_F(ContainerTest, OnlyStandardDescriptorsAreOpen) {
  // A descriptor barge forgot to mark close-on-exec must not reach the container.
  int leaked = ::open("/etc/hostname", O_RDONLY);
  ASSERT_GE(leaked, 0);
  // ls is pid 1; besides 0, 1 and 2 it holds only the directory it lists, as fd 3.
  Output r = Run(Spec({"/bin/ls", "/proc/self/fd"}));
  ::close(leaked);
  EXPECT_EQ(r.exit.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "0\n1\n2\n3\n");
}

TEST_F(ContainerTest, InheritedDirectoryIsNoWayToTheHost) {
  // CVE-2024-21626: a working directory (from the image, or a Containerfile's WORKDIR) or a
  // symlink in the image naming /proc/self/fd/N reaches a host directory that the runtime (here,
  // the builder, which holds directory fds while it runs steps) had open when it cloned.
  ASSERT_TRUE(WriteFile(dir_.path() + "/host-secret", "secret\n").ok());
  UniqueFd host_dir(::open(dir_.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(host_dir);
  std::string via_fd = "/proc/self/fd/" + std::to_string(host_dir.get());

  ContainerSpec spec = Spec({"/bin/cat", "host-secret"});
  spec.process.cwd = via_fd;
  auto c = Container::Start(spec);
  if (c.ok()) {
    auto exit = c->Wait();
    ASSERT_TRUE(exit.ok());
    EXPECT_NE(exit->exit_code, 0) << "the container read a host file from its working directory";
  }

  // An image symlink as a mount destination: the tmpfs's mount point would be made on the host.
  ASSERT_EQ(::symlink(via_fd.c_str(), (dir_.path() + "/upper/data").c_str()), 0);
  spec = Spec({"/bin/true"});
  spec.mounts.push_back({MountSpec::Kind::kTmpfs, "", "/data/escaped", false});
  c = Container::Start(spec);
  if (c.ok()) {
    ASSERT_TRUE(c->Wait().ok());
  }
  EXPECT_FALSE(PathExists(dir_.path() + "/escaped")) << "mount point created on the host";
}

TEST_F(ContainerTest, RuntimeBinaryIsNotRunInTheContainer) {
  // CVE-2019-5736: /proc/self/exe in the child before exec is barge's (here the test's) binary.
  auto c = Container::Start(Spec({"/proc/self/exe", "--gtest_list_tests"}));
  ASSERT_FALSE(c.ok()) << "the runtime's own binary ran inside the container";
  EXPECT_NE(c.status().message().find("own binary"), std::string::npos) << c.status().message();
  ASSERT_EQ(::symlink("/proc/1/exe", (dir_.path() + "/upper/sh2").c_str()), 0);
  c = Container::Start(Spec({"/sh2", "--gtest_list_tests"}));
  ASSERT_FALSE(c.ok()) << "the runtime's own binary ran inside the container";
}

TEST_F(ContainerTest, ScriptsNamingProcSelfExeDoNotRunTheRuntimesBinary) {
  // CVE-2019-5736 by a "#!" line: the kernel resolves the interpreter /proc/self/exe in the
  // process that execs the script. That is barge's exec shim (a sealed memfd), never barge's
  // binary on the host, and the shim refuses to be a command.
  if (std::string why = testing::WhyNoExecShim(); !why.empty()) {
    GTEST_SKIP() << why << " (and this defence with it; see src/runtime/README.md)";
  }
  ASSERT_TRUE(WriteFile(dir_.path() + "/upper/evil", "#!/proc/self/exe\n", 0755).ok());
  ASSERT_EQ(::symlink("/proc/self/exe", (dir_.path() + "/upper/interp").c_str()), 0);
  ASSERT_TRUE(WriteFile(dir_.path() + "/upper/evil2", "#!/interp\n", 0755).ok());
  for (const char* script : {"/evil", "/evil2"}) {
    Output r = Run(Spec({script}));
    EXPECT_EQ(r.exit.exit_code, 126) << script << ": " << r.out << r.err;
    EXPECT_NE(r.err.find("refusing to run barge's exec shim"), std::string::npos) << r.err;
  }
}

// Zombie children of the host's process `pid`.
int ZombieChildren(pid_t pid) {
  int zombies = 0;
  auto children =
      ReadFile("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  if (!children.ok()) return -1;
  std::istringstream in(*children);
  for (pid_t child = 0; in >> child;) {
    auto stat = ReadFile("/proc/" + std::to_string(child) + "/stat");
    if (stat.ok() && stat->find(") Z ") != std::string::npos) ++zombies;
  }
  return zombies;
}

// Without the shim there is no --init: starting one is refused with the reason.
void ExpectInitRefusedWithoutTheShim(ContainerSpec spec) {
  spec.process.init = true;
  auto c = Container::Start(spec);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kUnsupported) << c.status().message();
  EXPECT_NE(c.status().message().find("memfd_noexec"), std::string::npos) << c.status().message();
}

TEST_F(ContainerTest, InitReapsOrphansWhichAPlainPidOneLeavesAsZombies) {
  // The orphaned sleep becomes pid 1's child; the command then execs a program that never waits.
  for (bool init : {false, true}) {
    ContainerSpec spec = Spec({"/bin/sh", "-c", "sh -c 'sleep 0.05 &'; exec sleep 5"});
    if (std::string why = testing::WhyNoExecShim(); init && !why.empty()) {
      ExpectInitRefusedWithoutTheShim(spec);
      GTEST_SKIP() << why << ": --init is refused, as checked";
    }
    spec.process.init = init;
    auto c = Container::Start(spec);
    ASSERT_TRUE(c.ok()) << c.status().message();
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    EXPECT_EQ(ZombieChildren(c->pid()), init ? 0 : 1) << "init " << init;
    ASSERT_TRUE(c->Signal(SIGKILL).ok());
    ASSERT_TRUE(c->Wait().ok());
  }
}

TEST_F(ContainerTest, InitForwardsSignalsWhichAPlainPidOneIgnores) {
  // pid 1 of a namespace gets no signal it has no handler for; with --init, sleep is pid 2.
  for (bool init : {false, true}) {
    ContainerSpec spec = Spec({"sleep", "30"});
    if (std::string why = testing::WhyNoExecShim(); init && !why.empty()) {
      ExpectInitRefusedWithoutTheShim(spec);
      GTEST_SKIP() << why << ": --init is refused, as checked";
    }
    spec.process.init = init;
    auto c = Container::Start(spec);
    ASSERT_TRUE(c.ok()) << c.status().message();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(c->Signal(SIGTERM).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    if (!init) {
      ASSERT_TRUE(c->Signal(SIGKILL).ok());  // still running: TERM was ignored
    }
    auto exit = c->Wait();
    ASSERT_TRUE(exit.ok()) << exit.status().message();
    EXPECT_EQ(exit->exit_code, init ? 128 + SIGTERM : 128 + SIGKILL) << "init " << init;
  }
  // The command's status is the container's, and pid 1 is the init.
  ContainerSpec spec = Spec({"/bin/sh", "-c", "cat /proc/1/comm; echo $$; exit 3"});
  spec.process.init = true;
  Output r = Run(spec);
  EXPECT_EQ(r.exit.exit_code, 3) << r.err;
  EXPECT_EQ(r.out, "barge-init\n2\n");
  // A stopped command (^Z under -it) is continued: nothing else could.
  spec = Spec({"/bin/sh", "-c", "kill -STOP $$; echo resumed"});
  spec.process.init = true;
  r = Run(spec);
  EXPECT_EQ(r.exit.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "resumed\n");
  // A command that cannot be run is still reported as such.
  spec = Spec({"/no/such/program"});
  spec.process.init = true;
  auto c = Container::Start(spec);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("/no/such/program"), std::string::npos)
      << c.status().message();
}

TEST_F(ContainerTest, CapabilitiesAreDockersDefaultSet) {
  auto expected = MakeCapabilitySet(DefaultCapabilities());
  ASSERT_TRUE(expected.ok());
  // Docker's documented CapEff for root.
  EXPECT_EQ(expected->mask, 0xa80425fbull);
  Output r = Sh("grep -E '^(CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status");
  EXPECT_EQ(r.exit.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("CapEff:\t00000000a80425fb"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CapBnd:\t00000000a80425fb"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CapAmb:\t0000000000000000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("NoNewPrivs:\t1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Seccomp:\t2"), std::string::npos) << r.out;
}

TEST_F(ContainerTest, DeviceNodesCanBeMadeButNotOpened) {
  // CAP_MKNOD without a device cgroup: every writable file system is nodev, so a device node is
  // made (an image may carry one) but never opens, wherever the container puts it: its root,
  // /dev, a volume, a tmpfs. The node is /dev/zero's (1:5), which exists on every host, so a
  // mount without nodev would let it open. The container's own devices still work.
  auto host = TempDir::Make("barge-volume-");
  ASSERT_TRUE(host.ok());
  ContainerSpec spec = Spec({"/bin/sh", "-c",
                             "for d in /zero /dev/zero2 /vol/zero /scratch/zero; do "
                             "  mknod $d c 1 5 && echo made $d; "
                             "  head -c1 $d >/dev/null && echo opened $d; "
                             "done; echo x >/dev/null && head -c4 /dev/zero | wc -c"});
  spec.mounts.push_back({MountSpec::Kind::kBind, host->path(), "/vol", false});
  spec.mounts.push_back({MountSpec::Kind::kTmpfs, "", "/scratch", false});
  Output r = Run(spec);
  EXPECT_EQ(r.exit.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "made /zero\nmade /dev/zero2\nmade /vol/zero\nmade /scratch/zero\n4\n") << r.err;
  EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
}

TEST_F(ContainerTest, InheritableCapabilitiesAreEmpty) {
  // CVE-2022-24769: with inheritable capabilities, a non-root user gains them by executing a
  // program that carries inheritable file capabilities.
  ContainerSpec spec = Spec({"/bin/sh", "-c", "grep CapInh /proc/self/status"});
  Output r = Run(spec);
  EXPECT_EQ(r.out, "CapInh:\t0000000000000000\n") << r.err;
  spec.process.user = "1000";
  r = Run(spec);
  EXPECT_EQ(r.out, "CapInh:\t0000000000000000\n") << r.err;
}

TEST_F(ContainerTest, UserByNameHasNoCapabilitiesAndItsHome) {
  ContainerSpec spec = Spec({"/bin/sh", "-c", "id; echo $HOME; grep CapEff /proc/self/status"});
  spec.process.user = "app";
  Output r = Run(spec);
  EXPECT_EQ(r.exit.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("/home/app\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CapEff:\t0000000000000000"), std::string::npos) << r.out;
}

TEST_F(ContainerTest, NumericUserAndUnknownUser) {
  ContainerSpec spec = Spec({"/bin/sh", "-c", "id -u; id -g"});
  spec.process.user = "4242:4343";
  Output r = Run(spec);
  EXPECT_EQ(r.out, "4242\n4343\n") << r.err;
  // Empty parts are the defaults, as runc reads them: "4242:" keeps the user's default group 0,
  // ":4343" is root with that group.
  spec.process.user = "4242:";
  r = Run(spec);
  EXPECT_EQ(r.out, "4242\n0\n") << r.err;
  spec.process.user = ":4343";
  r = Run(spec);
  EXPECT_EQ(r.out, "0\n4343\n") << r.err;
  spec = Spec({"/bin/true"});
  spec.process.user = "nosuchuser";
  auto c = Container::Start(spec);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("nosuchuser"), std::string::npos) << c.status().message();
}

// The children of every thread of this process.
std::vector<pid_t> OurChildren() {
  std::vector<pid_t> out;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      auto text = ReadFile(std::string("/proc/self/task/") + e->d_name + "/children");
      std::istringstream in(text.ok() ? *text : "");
      for (pid_t pid = 0; in >> pid;) out.push_back(pid);
    }
    ::closedir(d);
  }
  return out;
}

TEST_F(ContainerTest, ImageFilesThatBlockDoNotHangTheStart) {
  // The child reads the image's /etc/passwd with full capabilities: a FIFO there (or a symlink
  // to /proc/kmsg) would block it forever, before barge could watch it.
  ASSERT_TRUE(MakeDirs(dir_.path() + "/upper/etc").ok());
  ASSERT_EQ(::mkfifo((dir_.path() + "/upper/etc/passwd").c_str(), 0644), 0);
  ContainerSpec spec = Spec({"/bin/true"});
  spec.process.user = "app";
  auto started = std::async(std::launch::async, [&] { return Container::Start(spec); });
  bool hung = started.wait_for(std::chrono::seconds(5)) != std::future_status::ready;
  if (hung) {
    // Unblock it: kill the hung child (our only child meanwhile), so Start returns.
    for (pid_t child : OurChildren()) ::kill(child, SIGKILL);
  }
  auto c = started.get();
  EXPECT_FALSE(hung) << "the container's start hung on a FIFO";
  EXPECT_FALSE(c.ok());
  if (!c.ok()) {
    EXPECT_NE(c.status().message().find("app"), std::string::npos) << c.status().message();
  }
}

TEST_F(ContainerTest, ContainerDiesWithABargeKilledDuringItsSetUp) {
  // A barge process killed while the child is still setting up (Ctrl-C during a start, say) must
  // not leave a container running that nobody watches. Thousands of tmpfs mounts make the set-up
  // long enough to kill the parent in the middle of it.
  ContainerSpec spec = Spec({"/bin/sleep", "100"});
  for (int i = 0; i < 3000; ++i) {
    spec.mounts.push_back({MountSpec::Kind::kTmpfs, "", "/t/" + std::to_string(i), false});
  }
  // Where the host has a pids controller, the container's cgroup shows its processes too.
  const bool with_cgroup = testing::WhyNoController("pids").empty();
  std::string procs;
  if (with_cgroup) {
    spec.limits.pids = 10;
    auto controllers = DetectControllers();
    ASSERT_TRUE(controllers.ok());
    for (const ControllerMount& c : *controllers) {
      if (c.controller == "pids") procs = c.mount + "/" + spec.cgroup_parent + "/" + spec.id;
    }
  }
  pid_t barge = ::fork();
  ASSERT_GE(barge, 0);
  if (barge == 0) {
    auto c = Container::Start(spec);
    if (c.ok()) (void)c->Wait();
    ::_exit(0);
  }
  // The container's first process: barge's child.
  std::string children =
      "/proc/" + std::to_string(barge) + "/task/" + std::to_string(barge) + "/children";
  pid_t container = 0;
  for (int i = 0; i < 4000 && container == 0; ++i) {
    auto text = ReadFile(children);
    if (text.ok()) std::istringstream(*text) >> container;
    if (container == 0) std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  uint64_t start = ProcessStartTime(container);
  ASSERT_EQ(::kill(barge, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(barge, &status, 0), barge);
  ASSERT_NE(container, 0) << "barge never started the container";
  for (int i = 0; i < 300 && ProcessAlive(container, start); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(ProcessAlive(container, start)) << "the container outlived its barge process";
  if (with_cgroup) {
    auto members = ReadFile(procs + "/cgroup.procs");
    EXPECT_EQ(members.ok() ? *members : "", "") << "the container outlived its barge process";
    // The killed barge could not remove the cgroup (nor, before the fix, the container in it).
    EXPECT_TRUE(Cgroup::Adopt({procs}).Remove().ok());
  }
}

TEST_F(ContainerTest, OpenFileLimitIsClampedToOurHardLimit) {
  rlimit ours{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &ours), 0);
  rlim_t expected = std::min<rlim_t>(1048576, ours.rlim_max);
  Output r = Sh("ulimit -n; ulimit -Hn");
  EXPECT_EQ(r.exit.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, std::to_string(expected) + "\n" + std::to_string(expected) + "\n");
}

TEST_F(ContainerTest, DevIsMinimalAndProcIsMasked) {
  Output r =
      Sh("ls /dev | tr '\\n' ' '; echo; cat /proc/kcore | wc -c; "
         "echo 1 > /proc/sys/vm/drop_caches && echo wrote-sys; "
         "touch /sys/x 2>/dev/null && echo wrote-sysfs; echo x > /dev/null && echo devnull-ok");
  EXPECT_EQ(r.exit.exit_code, 0) << r.err;
  std::string first = r.out.substr(0, r.out.find('\n'));
  for (const char* dev : {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm",
                          "fd", "stdin", "stdout", "stderr"}) {
    EXPECT_NE(first.find(std::string(dev) + " "), std::string::npos) << dev << " in " << first;
  }
  EXPECT_EQ(first.find("sda"), std::string::npos) << first;
  EXPECT_EQ(first.find("vda"), std::string::npos) << first;
  EXPECT_NE(r.out.find("\n0\n"), std::string::npos) << "kcore not masked: " << r.out << r.err;
  EXPECT_EQ(r.out.find("wrote-sys"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("wrote-sysfs"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("devnull-ok"), std::string::npos) << r.out;
}

TEST_F(ContainerTest, NetworkNoneHasOnlyLoopbackUp) {
  // Only the interfaces that are up: a kernel with tunnel modules loaded (ipip, sit, gre, ...)
  // puts their fallback devices (tunl0, sit0, ...), down, in every new network namespace.
  Output r =
      Sh("for i in /sys/class/net/*; do [ $(( $(cat $i/flags) & 1 )) = 1 ] && basename $i; done; "
         "ping -c1 -W1 127.0.0.1 >/dev/null && echo ping-ok");
  EXPECT_EQ(r.exit.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "lo\nping-ok\n");
}

TEST_F(ContainerTest, NetworkHostSeesTheHostsInterfaces) {
  ContainerSpec spec =
      Spec({"/bin/sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort"});
  spec.network = NetworkMode::kHost;
  Output r = Run(spec);
  EXPECT_EQ(r.exit.exit_code, 0) << r.err;
  auto host = RunCommand({"sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort"});
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(r.out, host->out);
}

TEST_F(ContainerTest, WritesGoToTheUpperLayerOnly) {
  Output r = Sh("echo data > /newfile && rm /bin/true && ls /bin/true 2>/dev/null; cat /newfile");
  EXPECT_EQ(r.out, "data\n") << r.err;
  EXPECT_TRUE(PathExists(dir_.path() + "/upper/newfile"));
  EXPECT_FALSE(PathExists(rootfs_->path() + "/newfile"));
  EXPECT_TRUE(PathExists(rootfs_->path() + "/bin/true"));
}

TEST_F(ContainerTest, BuildStepLeavesOnlyItsOwnWritesInTheUpperLayer) {
  // A layer without /proc, /dev, /sys or /etc/hosts, like many image layers.
  auto layer = MakeBusyboxRootfs();
  ASSERT_TRUE(layer.ok());
  for (const char* dir : {"/proc", "/dev", "/sys"})
    ASSERT_TRUE(RemoveTree(layer->path() + dir).ok());
  auto hosts = TempDir::Make("barge-hosts-");
  ASSERT_TRUE(hosts.ok());
  ASSERT_TRUE(WriteFile(hosts->path() + "/hosts", "127.0.0.1 localhost\n").ok());
  ContainerSpec spec =
      Spec({"/bin/sh", "-c", "mkdir -p /out && echo built > /out/file && ls /proc/1 >/dev/null"});
  spec.lower_dirs = {layer->path()};
  spec.hosts_file = hosts->path() + "/hosts";
  spec.mounts.push_back({MountSpec::Kind::kTmpfs, "", "/cache/deep", false});
  spec.remove_created_mount_points = true;
  auto exit = RunContainer(spec);
  ASSERT_TRUE(exit.ok()) << exit.status().message();
  EXPECT_EQ(exit->exit_code, 0);
  auto listing = RunCommand({"sh", "-c", "find \"$0\" -mindepth 1 | sort", spec.upper_dir});
  ASSERT_TRUE(listing.ok());
  std::string tree = listing->out;
  for (std::string& prefix : std::vector<std::string>{spec.upper_dir}) {
    for (size_t at; (at = tree.find(prefix)) != std::string::npos;) tree.erase(at, prefix.size());
  }
  // /etc stays: overlay copied it up to hold the mount point, as a plain directory entry.
  EXPECT_EQ(tree, "/etc\n/out\n/out/file\n");
}

TEST_F(ContainerTest, BuildStepTidyingDoesNotFollowTheCommandsSymlinks) {
  // The command may replace a mount point's parent with a symlink to a host path; tidying the
  // upper layer afterwards must not remove what that names on the host.
  auto host = TempDir::Make("barge-host-");
  ASSERT_TRUE(host.ok());
  ASSERT_TRUE(WriteFile(host->path() + "/deep", "").ok());
  ContainerSpec spec = Spec(
      {"/bin/sh", "-c", "mv /cache /moved && ln -s " + host->path() + " /cache && echo swapped"});
  spec.mounts.push_back({MountSpec::Kind::kTmpfs, "", "/cache/deep", false});
  spec.remove_created_mount_points = true;
  auto exit = RunContainer(spec);
  ASSERT_TRUE(exit.ok()) << exit.status().message();
  EXPECT_TRUE(PathExists(host->path() + "/deep")) << "a host file was removed";
}

TEST_F(ContainerTest, ReadOnlyRootRefusesWrites) {
  ContainerSpec spec =
      Spec({"/bin/sh", "-c", "touch /x && echo wrote; touch /data/y && echo tmpfs-ok"});
  spec.read_only_root = true;
  spec.mounts.push_back({MountSpec::Kind::kTmpfs, "", "/data", false});
  Output r = Run(spec);
  EXPECT_EQ(r.out, "tmpfs-ok\n");
  EXPECT_NE(r.err.find("Read-only file system"), std::string::npos) << r.err;
  EXPECT_FALSE(PathExists(dir_.path() + "/upper/x"));
}

TEST_F(ContainerTest, BindMountsReadOnlyAndReadWrite) {
  auto host = TempDir::Make("barge-vol-");
  ASSERT_TRUE(host.ok());
  ASSERT_TRUE(WriteFile(host->path() + "/in", "from host\n").ok());
  ContainerSpec spec =
      Spec({"/bin/sh", "-c", "cat /ro/in; touch /ro/x && echo wrote-ro; echo out > /rw/out"});
  spec.mounts.push_back({MountSpec::Kind::kBind, host->path(), "/ro", true});
  spec.mounts.push_back({MountSpec::Kind::kBind, host->path(), "/deep/rw", false});
  spec.mounts.back().destination = "/rw";
  Output r = Run(spec);
  EXPECT_EQ(r.out, "from host\n") << r.err;
  EXPECT_NE(r.err.find("Read-only file system"), std::string::npos) << r.err;
  EXPECT_FALSE(PathExists(host->path() + "/x"));
  auto written = ReadFile(host->path() + "/out");
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(*written, "out\n");
}

TEST_F(ContainerTest, BadMountDestinationIsRejected) {
  ContainerSpec spec = Spec({"/bin/true"});
  spec.mounts.push_back({MountSpec::Kind::kTmpfs, "", "relative", false});
  auto c = Container::Start(spec);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("'relative'"), std::string::npos);
  spec.mounts = {{MountSpec::Kind::kBind, "/no/such/dir", "/x", false}};
  c = Container::Start(spec);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("/no/such/dir"), std::string::npos);
}

TEST_F(ContainerTest, WorkingDirectoryIsCreated) {
  ContainerSpec spec = Spec({"/bin/pwd"});
  spec.process.cwd = "/srv/app";
  Output r = Run(spec);
  EXPECT_EQ(r.out, "/srv/app\n") << r.err;
}

TEST_F(ContainerTest, MemoryHogIsOomKilledInsideItsLimit) {
  if (std::string why = testing::WhySwapUnbounded(); !why.empty()) GTEST_SKIP() << why;
  ContainerSpec spec =
      Spec({"/bin/sh", "-c", "awk 'BEGIN { s = \"x\"; while (1) s = s s }'; exit 5"});
  spec.limits.memory_bytes = 32 << 20;
  Output r = Run(spec);
  // The OOM killer picks awk, the biggest task; sh sees it killed and exits.
  EXPECT_TRUE(r.exit.oom_killed) << r.exit.exit_code << " " << r.err;
  EXPECT_EQ(r.exit.exit_code, 5) << r.err;

  spec = Spec({"/bin/sh", "-c", "exec awk 'BEGIN { s = \"x\"; while (1) s = s s }'"});
  spec.limits.memory_bytes = 32 << 20;
  r = Run(spec);
  EXPECT_TRUE(r.exit.oom_killed);
  EXPECT_EQ(r.exit.exit_code, 137);
}

TEST_F(ContainerTest, ForkBombStopsAtThePidsLimit) {
  if (std::string why = testing::WhyNoController("pids"); !why.empty()) GTEST_SKIP() << why;
  // The shell forks only before the bomb goes off (sleep, then the subshell that sets it off)
  // and then uses builtins: a fork it needed later could be refused under the limit too, and
  // that would end it (seen when the machine was loaded).
  ContainerSpec spec =
      Spec({"/bin/sh", "-c", "f() { f | f & }; sleep 1 & s=$!; (f); wait $s; echo survived"});
  spec.limits.pids = 20;
  long long peak = 0;
  long long refused = 0;
  Output r = Run(spec, [&](Container& c) {
    std::string pids_dir;
    for (const std::string& d : c.cgroup().dirs()) {
      if (PathExists(d + "/pids.max")) pids_dir = d;
    }
    ASSERT_FALSE(pids_dir.empty());
    auto max = ReadFile(pids_dir + "/pids.max");
    ASSERT_TRUE(max.ok());
    EXPECT_EQ(*max, "20\n");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (std::chrono::steady_clock::now() < deadline && refused == 0) {
      if (auto current = ReadFile(pids_dir + "/pids.current"); current.ok()) {
        peak = std::max(peak, std::stoll(*current));
      }
      if (auto events = ReadFile(pids_dir + "/pids.events"); events.ok()) {
        refused = std::stoll(events->substr(events->find(' ') + 1));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  EXPECT_GT(refused, 0) << "the pids limit never refused a fork";
  EXPECT_LE(peak, 20);
  EXPECT_NE(r.out.find("survived"), std::string::npos) << r.err.substr(0, 300);
}

TEST_F(ContainerTest, CpuLimitIsWritten) {
  if (std::string why = testing::WhyNoController("cpu"); !why.empty()) GTEST_SKIP() << why;
  ContainerSpec spec = Spec({"/bin/true"});
  spec.limits.cpus = 0.5;
  bool checked = false;
  Run(spec, [&](Container& c) {
    for (const std::string& d : c.cgroup().dirs()) {
      if (auto quota = ReadFile(d + "/cpu.cfs_quota_us"); quota.ok()) {
        EXPECT_EQ(*quota, "50000\n");
        checked = true;
      } else if (auto max = ReadFile(d + "/cpu.max"); max.ok()) {
        EXPECT_EQ(*max, "50000 100000\n");
        checked = true;
      }
    }
  });
  EXPECT_TRUE(checked);
}

}  // namespace
}  // namespace barge::runtime
