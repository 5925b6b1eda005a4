// Builds whose RUN steps run for real, through the container runtime (RuntimeRunExecutor), as
// `barge build` runs them: the step's layers as an overlay root, no network, Docker's default
// capabilities and seccomp filter, and nothing of the host reachable.
#include "cli/runtime_run_executor.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <optional>

#include "base/file_util.h"
#include "oci/archive.h"
#include "oci/builder.h"
#include "oci/test_util.h"
#include "oci/transfer.h"
#include "runtime/leak_check.h"

namespace barge::cli {
namespace {

using oci::testing::ListTree;
using oci::testing::MakeTar;
using oci::testing::TarEntry;

class BuildRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0 || !PathExists("/bin/busybox")) {
      GTEST_SKIP() << "needs root and /bin/busybox";
    }
    auto t = TempDir::Make("barge-build-run-test-");
    ASSERT_TRUE(t.ok());
    tmp_ = std::move(*t);
    auto s = oci::ImageStore::Open(tmp_.path() + "/root");
    ASSERT_TRUE(s.ok());
    store_ = std::make_unique<oci::ImageStore>(std::move(*s));
    executor_.emplace(tmp_.path() + "/root", /*quiet=*/true);
    ctx_ = tmp_.path() + "/ctx";
    ASSERT_TRUE(MakeDirs(ctx_).ok());
    scope_ = {"barge-build-run-test-" + std::to_string(::getpid()), {tmp_.path()}, ""};
    before_ = runtime::testing::TakeHostSnapshot(scope_);
  }

  void TearDown() override {
    if (IsSkipped()) return;
    std::string leaks =
        runtime::testing::DescribeLeaks(before_, runtime::testing::TakeHostSnapshot(scope_));
    EXPECT_EQ(leaks, "") << "left behind on the host";
  }

  // A busybox image tagged `tag`, with `extra` entries (e.g. proc and dev dirs) on top.
  void ImportBusybox(const std::string& tag, std::vector<TarEntry> extra = {}) {
    auto busybox = ReadFile("/bin/busybox");
    ASSERT_TRUE(busybox.ok());
    std::vector<TarEntry> entries = {
        {"bin/busybox", TarEntry::kFile, *busybox, "", 0755},
        {"bin/sh", TarEntry::kSymlink, "", "busybox"},
        {"etc/passwd", TarEntry::kFile, "root:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"},
        {"tmp", TarEntry::kDir, "", "", 01777}};
    for (TarEntry& e : extra) entries.push_back(std::move(e));
    std::string rootfs = tmp_.path() + "/" + tag + ".tar";
    ASSERT_TRUE(WriteFile(rootfs, MakeTar(entries)).ok());
    auto fd = OpenFile(rootfs, O_RDONLY);
    ASSERT_TRUE(fd.ok());
    auto image = oci::ImportRootfs(*store_, fd->get(), tag);
    ASSERT_TRUE(image.ok()) << image.status().message();
  }

  Result<oci::BuildResult> Build(const std::string& containerfile) {
    RETURN_IF_ERROR(WriteFile(ctx_ + "/Containerfile", containerfile));
    oci::BuildOptions options;
    options.context_dir = ctx_;
    options.tags = {"out:1"};
    options.executor = &*executor_;
    options.progress = [](const std::string&) {};
    return oci::Build(*store_, options);
  }

  // Whether a one-step build of `command` on `base` fails because the command failed.
  bool RunFails(const std::string& base, const std::string& command) {
    auto r = Build("FROM " + base + "\nRUN " + command + "\n");
    return !r.ok() && r.status().message().find("exited with status") != std::string::npos;
  }

  // The files of layer `i` of `image`, unpacked plainly (whiteouts stay .wh. files).
  std::string UnpackLayer(const oci::Image& image, size_t i) {
    std::string dir = tmp_.path() + "/unpacked-" + std::to_string(unpacked_++);
    EXPECT_TRUE(MakeDirs(dir).ok());
    auto fd = OpenFile(store_->BlobPath(image.layers[i].digest), O_RDONLY);
    EXPECT_TRUE(fd.ok());
    oci::ExtractOptions options;
    options.whiteouts = oci::WhiteoutMode::kPlain;
    auto r = oci::ExtractTar(fd->get(), dir, options);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return dir;
  }

  TempDir tmp_;
  std::unique_ptr<oci::ImageStore> store_;
  std::string ctx_;
  std::optional<RuntimeRunExecutor> executor_;
  runtime::testing::LeakScope scope_;
  runtime::testing::HostSnapshot before_;
  int unpacked_ = 0;
};

TEST_F(BuildRunTest, RunStepsBecomeLayers) {
  ImportBusybox("busybox:test");
  auto r = Build(
      "FROM busybox:test\n"
      "WORKDIR /work\n"
      "RUN echo hi > /x && pwd > /pwd && busybox id -u > /uid\n"
      "USER nobody\n"
      "RUN busybox id -u > /tmp/nobody\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(ListTree(UnpackLayer(r->image, 1)), std::vector<std::string>{"work"});
  std::string l = UnpackLayer(r->image, 2);
  EXPECT_EQ(*ReadFile(l + "/x"), "hi\n");
  EXPECT_EQ(*ReadFile(l + "/pwd"), "/work\n");
  EXPECT_EQ(*ReadFile(l + "/uid"), "0\n");
  // The mount points the runtime made (/proc, /dev, /sys, /etc/hosts, ...) are not in it.
  EXPECT_EQ(ListTree(l), (std::vector<std::string>{"pwd", "uid", "x"}));
  EXPECT_EQ(*ReadFile(UnpackLayer(r->image, 3) + "/tmp/nobody"), "65534\n");
  // No mounts (CAP_SYS_ADMIN is dropped), and no network.
  EXPECT_TRUE(RunFails("busybox:test", "busybox mount -t tmpfs none /tmp"));
  EXPECT_TRUE(RunFails("busybox:test", "busybox wget -q -T 2 http://1.1.1.1/ -O /dev/null"));
}

TEST_F(BuildRunTest, RunCannotReachHostKernelKnobs) {
  ImportBusybox("confined:1");
  // The baseline: /proc is there, /proc/sys is read-only, and the shell works.
  auto r = Build(
      "FROM confined:1\nRUN busybox test -r /proc/self/status && "
      "busybox grep -q '^[^ ]* [^ ]* [^ ]* [^ ]* /proc/sys ro,' /proc/self/mountinfo\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  // Rewrites the current value, so a failure of this test leaves the host as it was.
  EXPECT_TRUE(RunFails("confined:1",
                       "busybox cat /proc/sys/kernel/core_pattern > /tmp/cp && "
                       "busybox cat /tmp/cp > /proc/sys/kernel/core_pattern"));
  // A device node can be made (CAP_MKNOD, as in Docker) but not opened: the root is nodev.
  r = Build("FROM confined:1\nRUN busybox mknod /tmp/zero c 1 5\n");
  EXPECT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(
      RunFails("confined:1", "busybox mknod /tmp/zero c 1 5 && busybox head -c1 /tmp/zero"));
  // Masked: readable (it is /dev/null) but empty. (Some kernels have no /proc/kcore.)
  EXPECT_TRUE(RunFails("confined:1", "busybox test -s /proc/timer_list"));
  EXPECT_TRUE(RunFails("confined:1", "busybox test -s /proc/keys"));
  EXPECT_TRUE(RunFails("confined:1", "busybox test -s /proc/kcore"));
  EXPECT_TRUE(RunFails("confined:1", "busybox ls /proc/scsi/* /proc/acpi/*"));
}

TEST_F(BuildRunTest, SymlinkedMountTargetsResolveInsideTheContainer) {
  // Were /proc and /dev set up before pivot_root, these symlinks would put mounts (or mount
  // points) on the host's directory.
  std::string host_dir = tmp_.path() + "/host-dir";
  ASSERT_TRUE(MakeDirs(host_dir).ok());
  ImportBusybox("evilproc:1", {{"proc", TarEntry::kSymlink, "", host_dir},
                               {"dev", TarEntry::kSymlink, "", "../../../../../../" + host_dir}});
  auto r = Build("FROM evilproc:1\nRUN true\n");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(ListTree(host_dir), std::vector<std::string>{});
}

TEST_F(BuildRunTest, UserOwnsTheWorkdirItCreates) {
  // The directory WORKDIR makes belongs to the USER, so the user can write in it (docker's
  // behaviour; it used to belong to root and `touch` failed).
  ImportBusybox("busybox:test");
  auto r = Build(
      "FROM busybox:test\n"
      "USER nobody\n"
      "WORKDIR /app/data\n"
      "RUN touch x && busybox stat -c '%u %a' /app /app/data > /app/data/owners\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::string l = UnpackLayer(r->image, 2);
  EXPECT_EQ(*ReadFile(l + "/app/data/owners"), "65534 755\n65534 755\n");
  EXPECT_TRUE(PathExists(l + "/app/data/x"));
}

TEST_F(BuildRunTest, HeredocScriptsRunFromDevPipes) {
  // A heredoc starting with #! runs as a program (BuildKit mounts it at /dev/pipes); others run
  // through the shell; neither leaves anything of itself in the layer.
  ImportBusybox("busybox:test");
  auto r = Build(
      "FROM busybox:test\n"
      "RUN <<EOF\n"
      "#!/bin/sh -e\n"
      "echo \"script $0\" > /script\n"
      "EOF\n"
      "RUN <<EOF\n"
      "echo one > /plain\n"
      "echo two >> /plain\n"
      "EOF\n"
      "RUN busybox cat <<A > /cat\n"
      "from cat\n"
      "A\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::string l = UnpackLayer(r->image, 1);
  EXPECT_EQ(ListTree(l), std::vector<std::string>{"script"});
  EXPECT_EQ(*ReadFile(l + "/script"), "script /dev/pipes/EOF\n");
  EXPECT_EQ(*ReadFile(UnpackLayer(r->image, 2) + "/plain"), "one\ntwo\n");
  EXPECT_EQ(*ReadFile(UnpackLayer(r->image, 3) + "/cat"), "from cat\n");
}

}  // namespace
}  // namespace barge::cli
