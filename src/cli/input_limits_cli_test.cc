// End-to-end: every file a user hands barge (or that an archive or a build context holds) is read
// with a bound, and what is not a regular file (or a pipe the user named on purpose) is refused at
// once with an error that names it, instead of a read without end or a wait for a writer.
// (--env-file is tested with run, in container_cli_test.cc.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/file_util.h"
#include "base/subprocess.h"
#include "oci/digest.h"

namespace barge {
namespace {

constexpr size_t kJsonLimit = 16 << 20;  // ImageStore::kMaxJsonBlobBytes, and build files

class InputLimitsCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::Make("barge-input-limits-");
    ASSERT_TRUE(t.ok());
    tmp_ = std::move(*t);
    context_ = tmp_.path() + "/context";
    ASSERT_TRUE(MakeDirs(context_).ok());
  }

  // Runs barge under timeout(1), so that a regression (a read without end, a wait for a
  // writer) fails the test with 124 instead of hanging it.
  CommandOutput Barge(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(),
                {"timeout", "-k", "5", "20", BARGE_BINARY, "--root", tmp_.path() + "/root"});
    auto r = RunCommand(args, {.input = input});
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : CommandOutput{};
  }

  static bool OneLineError(const CommandOutput& r) {
    return r.err.rfind("barge: error: ", 0) == 0 &&
           std::count(r.err.begin(), r.err.end(), '\n') == 1;
  }

  TempDir tmp_;
  std::string context_;
};

TEST_F(InputLimitsCliTest, ContainerfilesAndIgnoreFilesAreBoundedRegularFiles) {
  // Named with -f: a device is refused, a pipe is read.
  CommandOutput r = Barge({"build", "-f", "/dev/zero", context_});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(OneLineError(r)) << r.err;
  EXPECT_NE(r.err.find("/dev/zero is not a regular file or a pipe"), std::string::npos) << r.err;
  r = Barge({"build", "-q", "-f", "/dev/stdin", context_}, "FROM scratch\nENV A=1\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // Too long.
  ASSERT_TRUE(
      WriteFile(context_ + "/Containerfile", "FROM scratch\n" + std::string(kJsonLimit, '#') + "\n")
          .ok());
  r = Barge({"build", context_});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(OneLineError(r)) << r.err;
  EXPECT_NE(r.err.find("Containerfile is larger than the limit of " + std::to_string(kJsonLimit)),
            std::string::npos)
      << r.err;
  // Found in the context rather than named: a FIFO, which nobody would ever write to, is refused.
  ASSERT_EQ(::unlink((context_ + "/Containerfile").c_str()), 0);
  ASSERT_EQ(::mkfifo((context_ + "/Containerfile").c_str(), 0644), 0);
  r = Barge({"build", context_});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Containerfile is not a regular file"), std::string::npos) << r.err;
  ASSERT_EQ(::unlink((context_ + "/Containerfile").c_str()), 0);
  ASSERT_TRUE(WriteFile(context_ + "/Containerfile", "FROM scratch\nENV A=1\n").ok());
  ASSERT_EQ(::mkfifo((context_ + "/.dockerignore").c_str(), 0644), 0);
  r = Barge({"build", context_});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(OneLineError(r)) << r.err;
  EXPECT_NE(r.err.find(".dockerignore is not a regular file"), std::string::npos) << r.err;
  ASSERT_EQ(::unlink((context_ + "/.dockerignore").c_str()), 0);
  ASSERT_TRUE(WriteFile(context_ + "/.containerignore", std::string(kJsonLimit + 1, '\n')).ok());
  r = Barge({"build", context_});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(".containerignore is larger than the limit"), std::string::npos) << r.err;
}

// An OCI layout directory whose index names one manifest by `descriptor`.
void WriteLayout(const std::string& dir, const nlohmann::json& descriptor) {
  ASSERT_TRUE(MakeDirs(dir + "/blobs/sha256").ok());
  ASSERT_TRUE(WriteFile(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})").ok());
  nlohmann::json index = {{"schemaVersion", 2},
                          {"mediaType", "application/vnd.oci.image.index.v1+json"},
                          {"manifests", {descriptor}}};
  ASSERT_TRUE(WriteFile(dir + "/index.json", index.dump()).ok());
}

// Archives have no size limit (images are large), so what is not a file or a pipe is refused
// before reading starts: /dev/zero would be read forever.
TEST_F(InputLimitsCliTest, ArchivesAreFilesOrPipesNeverDevices) {
  for (std::vector<std::string> args : {std::vector<std::string>{"import", "/dev/zero", "x:1"},
                                        std::vector<std::string>{"load", "-i", "/dev/zero"}}) {
    CommandOutput r = Barge(args);
    EXPECT_EQ(r.exit_code, 1) << args[0] << ": " << r.err;
    EXPECT_TRUE(OneLineError(r)) << r.err;
    EXPECT_NE(r.err.find("/dev/zero is not a regular file or a pipe"), std::string::npos) << r.err;
  }
  // A pipe is still read: a tar of one file through /dev/stdin.
  std::string tar;
  tar.resize(1024, '\0');  // an empty tar: two zero blocks
  CommandOutput r = Barge({"import", "/dev/stdin", "empty:1"}, tar);
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(InputLimitsCliTest, ArchiveJsonIsBounded) {
  // A manifest whose descriptor says 17 MiB is refused before a byte of it is copied or read.
  std::string layout = tmp_.path() + "/layout";
  std::string big(kJsonLimit + 1, ' ');
  big[0] = '{';
  big.back() = '}';
  std::string digest = oci::DigestOf(big);
  WriteLayout(layout, {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                       {"digest", digest},
                       {"size", big.size()}});
  ASSERT_TRUE(WriteFile(layout + "/blobs/sha256/" + digest.substr(7), big).ok());
  CommandOutput r = Barge({"load", "-i", layout});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(OneLineError(r)) << r.err;
  EXPECT_NE(r.err.find("more than the " + std::to_string(kJsonLimit) + " an image's JSON may have"),
            std::string::npos)
      << r.err;
  // A blob longer than its descriptor says is not read beyond that.
  std::string small = R"({"schemaVersion":2})";
  std::string small_digest = oci::DigestOf(small);
  ASSERT_TRUE(RemoveTree(layout).ok());
  WriteLayout(layout, {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                       {"digest", small_digest},
                       {"size", small.size()}});
  ASSERT_TRUE(WriteFile(layout + "/blobs/sha256/" + small_digest.substr(7),
                        small + std::string(1 << 20, ' '))
                  .ok());
  r = Barge({"load", "-i", layout});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is longer than the " + std::to_string(small.size()) +
                       " bytes its descriptor says"),
            std::string::npos)
      << r.err;
  // index.json and a Docker archive's manifest.json are bounded as well.
  ASSERT_TRUE(RemoveTree(layout).ok());
  ASSERT_TRUE(MakeDirs(layout).ok());
  std::string docker_manifest(kJsonLimit + 1, ' ');
  docker_manifest[0] = '[';
  docker_manifest.back() = ']';
  ASSERT_TRUE(WriteFile(layout + "/manifest.json", docker_manifest).ok());
  r = Barge({"load", "-i", layout});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("manifest.json is too large"), std::string::npos) << r.err;
  ASSERT_EQ(::unlink((layout + "/manifest.json").c_str()), 0);
  ASSERT_EQ(::mkfifo((layout + "/index.json").c_str(), 0644), 0);
  r = Barge({"load", "-i", layout});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("index.json is not a regular file"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace barge
