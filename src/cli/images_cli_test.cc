// End-to-end: the barge binary's image commands, and interop with skopeo and umoci.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <regex>

#include "base/file_util.h"
#include "base/subprocess.h"
#include "oci/digest.h"
#include "oci/test_util.h"

namespace barge {
namespace {

using oci::testing::Compression;
using oci::testing::MakeTar;
using oci::testing::TarEntry;

bool Have(const std::string& tool) {
  auto r = RunCommand({"sh", "-c", "command -v " + tool});
  return r.ok() && r->exit_code == 0;
}

class ImagesCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::Make("barge-images-cli-");
    ASSERT_TRUE(t.ok());
    tmp_ = std::move(*t);
    rootfs_ = tmp_.path() + "/rootfs.tar.gz";
    ASSERT_TRUE(WriteFile(rootfs_, MakeTar({{"etc", TarEntry::kDir, "", "", 0755},
                                            {"etc/motd", TarEntry::kFile, "hello barge\n"}},
                                           Compression::kGzip))
                    .ok());
  }

  CommandOutput Barge(std::vector<std::string> args, const std::string& root = "") {
    args.insert(args.begin(),
                {BARGE_BINARY, "--root", root.empty() ? tmp_.path() + "/root" : root});
    auto r = RunCommand(args);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : CommandOutput{};
  }

  CommandOutput Run(const std::vector<std::string>& args) {
    auto r = RunCommand(args);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : CommandOutput{};
  }

  // Runs barge with stdin, stdout and stderr on a new pseudo-terminal: `out` is all it printed
  // (with the terminal's "\r\n" line ends).
  CommandOutput OnTerminal(std::vector<std::string> args, const std::string& root = "") {
    args.insert(args.begin(),
                {BARGE_BINARY, "--root", root.empty() ? tmp_.path() + "/root" : root});
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int master = -1;
    pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
    if (pid == 0) {
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    EXPECT_GT(pid, 0) << "forkpty: " << std::strerror(errno);
    CommandOutput r;
    if (pid < 0) return r;
    char buf[4096];
    for (;;) {  // until EIO: the child's side of the terminal is closed
      ssize_t n = ::read(master, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      r.out.append(buf, static_cast<size_t>(n));
    }
    ::close(master);
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
  }

  // The image's config digest (its ID) and its layers' digests.
  std::pair<std::string, std::vector<std::string>> Blobs(const std::string& ref) {
    auto j = nlohmann::json::parse(Barge({"inspect", ref}).out, nullptr, false);
    std::vector<std::string> layers;
    if (!j.is_array() || j.empty()) return {};
    for (const auto& l : j[0]["Layers"]) layers.push_back(l.value("digest", ""));
    return {j[0].value("Id", ""), layers};
  }

  std::string ManifestDigest(const std::string& ref, const std::string& root = "") {
    CommandOutput r = Barge({"inspect", ref}, root);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    return j.is_array() && !j.empty() ? j[0].value("Digest", "") : "";
  }

  TempDir tmp_;
  std::string rootfs_;
};

TEST_F(ImagesCliTest, ImportImagesInspectTagRmiPrune) {
  CommandOutput r = Barge({"import", rootfs_, "demo:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("sha256:", 0), 0u);
  r = Barge({"images"});
  EXPECT_NE(r.out.find("demo"), std::string::npos) << r.out;
  r = Barge({"images", "--format", "json"});
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_array() && j.size() == 1) << r.out;
  EXPECT_EQ(j[0]["RepoTags"], nlohmann::json::array({"demo:1"}));
  EXPECT_EQ(Barge({"tag", "demo:1", "demo:2"}).exit_code, 0);
  r = Barge({"rmi", "demo:1"});
  EXPECT_EQ(r.out, "Untagged: demo:1\n");
  r = Barge({"rmi", "demo:2"});
  EXPECT_NE(r.out.find("Deleted: sha256:"), std::string::npos) << r.out;
  r = Barge({"inspect", "demo:2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "barge: error: no such container or image: demo:2\n");
  r = Barge({"inspect", "--type", "image", "demo:2"});
  EXPECT_EQ(r.err, "barge: error: image 'demo:2' not found\n");
  EXPECT_EQ(Barge({"image", "prune"}).exit_code, 0);
}

TEST_F(ImagesCliTest, ImportFromStdin) {
  auto r = RunCommand(
      {"sh", "-c",
       std::string(BARGE_BINARY) + " --root " + tmp_.path() + "/root import - s:1 < " + rootfs_});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0) << r->err;
  EXPECT_FALSE(ManifestDigest("s:1").empty());
}

// Off a terminal: a line per blob as podman prints it; -q: none. stdout stays what scripts read.
TEST_F(ImagesCliTest, ImportSaveLoadPrintALinePerBlobOffATerminal) {
  CommandOutput r = Barge({"import", rootfs_, "demo:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto [config, layers] = Blobs("demo:1");
  ASSERT_EQ(layers.size(), 1u);
  EXPECT_EQ(r.out, config + "\n");
  EXPECT_EQ(r.err, "Copying blob " + layers[0] + " done\nCopying config " + config + " done\n");
  r = Barge({"import", "-q", rootfs_, "demo:2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("sha256:", 0), 0u) << r.out;
  EXPECT_EQ(r.err, "");

  std::string archive = tmp_.path() + "/demo.tar";
  std::string copied = "Copying config " + config + " done\nCopying blob " + layers[0] + " done\n";
  r = Barge({"save", "demo:1", "-o", archive});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, copied);
  r = Barge({"save", "--quiet", "demo:1", "-o", archive});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");

  std::string other = tmp_.path() + "/other";
  r = Barge({"load", "-i", archive}, other);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Loaded image: demo:1\n");
  EXPECT_EQ(r.err, copied);
  r = Barge({"load", "-i", archive}, other);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Loaded image: demo:1\n");
  EXPECT_EQ(r.err, "Copying config " + config + " skipped: already exists\nCopying blob " +
                       layers[0] + " skipped: already exists\n");
  r = Barge({"load", "-q", "-i", archive}, tmp_.path() + "/third");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Loaded image: demo:1\n");
  EXPECT_EQ(r.err, "");
}

// On a terminal: a heading per image and a row per blob, redrawn in place, left in their final
// state (the layer's short digest, "done" and its size); -q: only what goes to stdout.
TEST_F(ImagesCliTest, ImportSaveLoadRedrawProgressOnATerminal) {
  CommandOutput r = OnTerminal({"import", rootfs_, "demo:1"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto [config, layers] = Blobs("demo:1");
  ASSERT_EQ(layers.size(), 1u);
  std::string layer_row = "\x1b[K  " + layers[0].substr(7, 12) + "  done  ";
  EXPECT_NE(r.out.find("\x1b[KImporting demo:1\r\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(layer_row), std::string::npos) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\x1b\\[[0-9]+A"))) << r.out;  // in place
  EXPECT_NE(r.out.find(config + "\r\n"), std::string::npos) << r.out;

  std::string archive = tmp_.path() + "/demo.tar";
  r = OnTerminal({"save", "demo:1", "-o", archive});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("\x1b[KSaving demo:1\r\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(layer_row), std::string::npos) << r.out;

  std::string other = tmp_.path() + "/other";
  r = OnTerminal({"load", "-i", archive}, other);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  // The archive is read first, then its blobs are copied; a byte count ends each row.
  std::regex archive_row("\x1b\\[K  \\S*demo\\.tar  done  [0-9.]+[kM]?B\r\n");
  EXPECT_TRUE(std::regex_search(r.out, archive_row)) << r.out;
  EXPECT_NE(r.out.find("\x1b[KLoading demo:1\r\n"), std::string::npos) << r.out;
  EXPECT_TRUE(std::regex_search(
      r.out, std::regex("\x1b\\[K  " + layers[0].substr(7, 12) + "  done  [0-9.]+[kM]?B\r\n")))
      << r.out;
  EXPECT_NE(r.out.find("Loaded image: demo:1\r\n"), std::string::npos) << r.out;
  r = OnTerminal({"load", "-i", archive}, other);
  EXPECT_NE(r.out.find("  " + layers[0].substr(7, 12) + "  already there\r\n"), std::string::npos)
      << r.out;

  r = OnTerminal({"load", "-q", "-i", archive}, tmp_.path() + "/third");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "Loaded image: demo:1\r\n");
  r = OnTerminal({"import", "-q", rootfs_, "demo:2"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, Blobs("demo:2").first + "\r\n");
  r = OnTerminal({"save", "-q", "demo:1", "-o", archive});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "");
}

TEST_F(ImagesCliTest, ErrorsAreOneLineAndLoseNothing) {
  ASSERT_EQ(Barge({"import", rootfs_, "demo:1"}).exit_code, 0);
  std::string before = ManifestDigest("demo:1");
  ASSERT_TRUE(WriteFile(tmp_.path() + "/junk.tar", "not an archive at all").ok());
  for (auto args :
       std::vector<std::vector<std::string>>{{"load", "-i", tmp_.path() + "/junk.tar"},
                                             {"load", "-i", tmp_.path() + "/missing.tar"},
                                             {"import", tmp_.path() + "/junk.tar", "demo:1"},
                                             {"tag", "demo:1", "Bad Name"},
                                             {"rmi", "nope:1"},
                                             {"save", "nope:1", "-o", tmp_.path() + "/out.tar"}}) {
    CommandOutput r = Barge(args);
    EXPECT_EQ(r.exit_code, 1) << args[0];
    EXPECT_EQ(r.err.rfind("barge: error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  EXPECT_FALSE(PathExists(tmp_.path() + "/out.tar"));
  EXPECT_EQ(ManifestDigest("demo:1"), before);
}

TEST_F(ImagesCliTest, SavedArchivePassesSkopeoAndUmoci) {
  if (!Have("skopeo") || !Have("umoci"))
    GTEST_SKIP() << "skopeo/umoci not installed (scripts/setup)";
  ASSERT_EQ(Barge({"import", rootfs_, "demo:1"}).exit_code, 0);
  std::string archive = tmp_.path() + "/demo.tar";
  CommandOutput r = Barge({"save", "demo:1", "-o", archive});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Run({"skopeo", "inspect", "oci-archive:" + archive});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_EQ(j.value("Digest", ""), ManifestDigest("demo:1"));
  // umoci works on a layout directory: unpack the archive with tar, then the image.
  std::string layout = tmp_.path() + "/layout";
  ASSERT_TRUE(MakeDirs(layout).ok());
  ASSERT_EQ(Run({"tar", "-C", layout, "-xf", archive}).exit_code, 0);
  r = Run({"umoci", "unpack", "--image", layout + ":demo:1", tmp_.path() + "/bundle"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(*ReadFile(tmp_.path() + "/bundle/rootfs/etc/motd"), "hello barge\n");
}

TEST_F(ImagesCliTest, ImagesWrittenBySkopeoLoadAndKeepTheirDigest) {
  if (!Have("skopeo")) GTEST_SKIP() << "skopeo not installed (scripts/setup)";
  ASSERT_EQ(Barge({"import", rootfs_, "demo:1"}).exit_code, 0);
  std::string archive = tmp_.path() + "/demo.tar";
  ASSERT_EQ(Barge({"save", "demo:1", "-o", archive}).exit_code, 0);
  std::string layout = tmp_.path() + "/sk-layout";
  std::string sk_archive = tmp_.path() + "/sk.tar";
  std::string docker_archive = tmp_.path() + "/docker.tar";
  ASSERT_EQ(
      Run({"skopeo", "copy", "-q", "oci-archive:" + archive, "oci:" + layout + ":app:2"}).exit_code,
      0);
  ASSERT_EQ(Run({"skopeo", "copy", "-q", "oci-archive:" + archive,
                 "oci-archive:" + sk_archive + ":web:3"})
                .exit_code,
            0);
  ASSERT_EQ(Run({"skopeo", "copy", "-q", "oci-archive:" + archive,
                 "docker-archive:" + docker_archive + ":dock:4"})
                .exit_code,
            0);
  CommandOutput raw = Run({"skopeo", "inspect", "--raw", "oci:" + layout + ":app:2"});
  ASSERT_EQ(raw.exit_code, 0);
  std::string skopeo_digest = oci::DigestOf(raw.out);

  std::string other = tmp_.path() + "/other";
  CommandOutput r = Barge({"load", "-i", layout}, other);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Loaded image: app:2\n");
  EXPECT_EQ(ManifestDigest("app:2", other), skopeo_digest);
  r = Barge({"load", "-i", sk_archive}, other);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ManifestDigest("web:3", other), skopeo_digest);
  r = Barge({"load", "-i", docker_archive}, other);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Loaded image: dock:4\n");
  std::string docker_err = r.err;
  r = Barge({"inspect", "dock:4"}, other);
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  auto mine = nlohmann::json::parse(Barge({"inspect", "demo:1"}).out, nullptr, false);
  ASSERT_TRUE(j.is_array() && mine.is_array());
  // A Docker archive's layers are uncompressed tars: shown by their diff_id, as podman does.
  EXPECT_EQ(docker_err, "Copying blob " + j[0]["RootFS"]["Layers"][0].get<std::string>() +
                            " done\nCopying config " + j[0]["Id"].get<std::string>() + " done\n");
  EXPECT_EQ(j[0]["Id"], mine[0]["Id"]);  // the config, hence the image ID, survives
  EXPECT_EQ(j[0]["RootFS"], mine[0]["RootFS"]);

  // skopeo's dir: layout, in OCI and in Docker v2s2 form; it names no image.
  for (const char* format : {"oci", "v2s2"}) {
    std::string dir = tmp_.path() + "/sk-dir-" + format;
    ASSERT_EQ(
        Run({"skopeo", "copy", "-q", "--format", format, "oci-archive:" + archive, "dir:" + dir})
            .exit_code,
        0);
    r = Barge({"load", "-i", dir}, other);
    ASSERT_EQ(r.exit_code, 0) << format << ": " << r.err;
    EXPECT_EQ(r.out.rfind("Loaded image: sha256:", 0), 0u) << r.out;
    std::string digest = r.out.substr(14, 71);
    r = Barge({"inspect", digest}, other);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)[0]["Id"], mine[0]["Id"]) << format;
  }
  // An OCI layout whose image skopeo names by a bare tag takes the directory's name.
  std::string bare = tmp_.path() + "/Bare-Layout";
  ASSERT_EQ(
      Run({"skopeo", "copy", "-q", "oci-archive:" + archive, "oci:" + bare + ":v5"}).exit_code, 0);
  r = Barge({"load", "-i", bare}, other);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Loaded image: bare-layout:v5\n");
  EXPECT_EQ(ManifestDigest("bare-layout:v5", other), skopeo_digest);
  r = Barge({"load", "--platform", "linux/s390x", "-i", bare}, other);
  EXPECT_EQ(r.exit_code, 0) << r.err;  // one image: loaded whatever its platform, as docker does
  r = Barge({"load", "--platform", "nonsense", "-i", bare}, other);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "barge: error: --platform 'nonsense': expected OS/ARCH[/VARIANT]\n");
}

TEST_F(ImagesCliTest, BuildReportsSyntaxErrorsByLineAndBuildsFromContext) {
  ASSERT_EQ(Barge({"import", rootfs_, "base:1"}).exit_code, 0);
  std::string ctx = tmp_.path() + "/ctx";
  ASSERT_TRUE(MakeDirs(ctx).ok());
  ASSERT_TRUE(WriteFile(ctx + "/Containerfile", "FROM base:1\nFOO bar\n").ok());
  CommandOutput r = Barge({"build", "-t", "app:1", ctx});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "barge: error: Containerfile:2: unknown instruction 'FOO'\n");
  ASSERT_TRUE(WriteFile(ctx + "/hello.txt", "hello").ok());
  ASSERT_TRUE(WriteFile(ctx + "/Dockerfile.alt",
                        "FROM base:1\nMAINTAINER Ann <ann@example.com>\nCOPY hello.txt /\n"
                        "CMD [\"cat\", \"/hello.txt\"]\n")
                  .ok());
  r = Barge({"build", "-t", "app:1", "-f", ctx + "/Dockerfile.alt", ctx});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("STEP 3/4: COPY hello.txt /"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.rfind("sha256:", 0), 0u);
  r = Barge({"build", "-q", "-t", "app:1", "-f", ctx + "/Dockerfile.alt", ctx});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  // As docker does, a --build-arg no ARG takes is reported (even with -q), and the build goes on.
  r = Barge(
      {"build", "-q", "--build-arg", "NOPE=1", "-t", "app:1", "-f", ctx + "/Dockerfile.alt", ctx});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "barge: warning: one or more build args were not consumed by an ARG: [NOPE]\n");
  auto j = nlohmann::json::parse(Barge({"inspect", "app:1"}).out, nullptr, false);
  ASSERT_TRUE(j.is_array());
  EXPECT_EQ(j[0]["Config"]["Cmd"], nlohmann::json::array({"cat", "/hello.txt"}));
  EXPECT_EQ(j[0]["Author"], "Ann <ann@example.com>");
}

// Starts barge without waiting; output goes to /dev/null.
pid_t Spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

int Wait(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Every committed blob still matches its name.
void ExpectBlobsIntact(const std::string& root) {
  std::string dir = root + "/images/blobs/sha256";
  for (const std::string& name : oci::testing::ListTree(dir)) {
    if (name.rfind(".tmp-", 0) == 0) continue;
    auto data = ReadFile(dir + "/" + name);
    ASSERT_TRUE(data.ok());
    EXPECT_EQ(oci::DigestOf(*data), "sha256:" + name) << "corrupt blob " << name;
  }
}

class BuildCliTest : public ImagesCliTest {
 protected:
  void SetUp() override {
    ImagesCliTest::SetUp();
    ASSERT_EQ(Barge({"import", rootfs_, "base:1"}).exit_code, 0);
    ctx_ = tmp_.path() + "/ctx";
    ASSERT_TRUE(MakeDirs(ctx_ + "/dir").ok());
    std::string big(6 << 20, 'x');
    for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i / 4096);
    ASSERT_TRUE(WriteFile(ctx_ + "/big", big).ok());
    for (int i = 0; i < 50; ++i)
      ASSERT_TRUE(WriteFile(ctx_ + "/dir/f" + std::to_string(i), std::to_string(i)).ok());
    ASSERT_TRUE(WriteFile(ctx_ + "/Containerfile",
                          "FROM base:1\nCOPY big /big\nCOPY dir /dir/\nCOPY big /big2\n")
                    .ok());
  }
  std::vector<std::string> BuildArgs(const std::string& tag, bool no_cache) {
    std::vector<std::string> a = {BARGE_BINARY, "--root", tmp_.path() + "/root", "build", "-q",
                                  "-t",         tag};
    if (no_cache) a.push_back("--no-cache");
    a.push_back(ctx_);
    return a;
  }
  std::string ctx_;
};

TEST_F(BuildCliTest, KilledBuildsLeaveAConsistentStore) {
  std::string root = tmp_.path() + "/root";
  for (int delay_ms : {2, 10, 30, 60, 100, 200}) {
    pid_t pid = Spawn(BuildArgs("killed:1", true));
    ASSERT_GT(pid, 0);
    ::usleep(static_cast<useconds_t>(delay_ms) * 1000);
    ::kill(pid, SIGKILL);
    Wait(pid);
    ExpectBlobsIntact(root);
    CommandOutput r = Barge({"images"});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(r.err, "") << "after a kill at " << delay_ms << " ms";
    // If the tag exists, everything it points at is there.
    r = Barge({"inspect", "killed:1"});
    if (r.exit_code == 0) {
      EXPECT_EQ(Barge({"save", "killed:1", "-o", tmp_.path() + "/k.tar"}).exit_code, 0);
    }
  }
  EXPECT_EQ(Barge({"image", "prune"}).exit_code, 0);
  for (const std::string& p : oci::testing::ListTree(root)) {
    EXPECT_EQ(p.find(".tmp-"), std::string::npos) << p;
    EXPECT_NE(p.rfind("tmp/", 0), 0u) << p;
  }
  CommandOutput r = Barge({"build", "-q", "-t", "after:1", ctx_});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ExpectBlobsIntact(root);
}

TEST_F(BuildCliTest, ConcurrentBuildsAndPruneDoNotCorruptTheStore) {
  std::vector<pid_t> pids;
  for (int i = 0; i < 3; ++i)
    pids.push_back(Spawn(BuildArgs("par:" + std::to_string(i), i % 2 == 0)));
  pids.push_back(Spawn({BARGE_BINARY, "--root", tmp_.path() + "/root", "image", "prune"}));
  for (pid_t pid : pids) EXPECT_EQ(Wait(pid), 0);
  ExpectBlobsIntact(tmp_.path() + "/root");
  CommandOutput r = Barge({"images", "--format", "json"});
  EXPECT_EQ(r.err, "");
  for (int i = 0; i < 3; ++i) {
    std::string tag = "par:" + std::to_string(i);
    EXPECT_NE(r.out.find(tag), std::string::npos) << tag;
    EXPECT_EQ(Barge({"save", tag, "-o", tmp_.path() + "/p.tar"}).exit_code, 0);
  }
}

}  // namespace
}  // namespace barge
