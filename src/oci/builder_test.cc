#include "oci/builder.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "base/file_util.h"
#include "oci/digest.h"
#include "oci/test_util.h"
#include "oci/transfer.h"

namespace barge::oci {
namespace {

constexpr const char* kPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

using testing::Compression;
using testing::ListTree;
using testing::MakeTar;
using testing::TarEntry;

// Fakes RUN by writing into the upper dir what the command would have changed, including
// overlay whiteouts, so the upper-dir-to-layer path is exercised for real.
class FakeExecutor : public RunStepExecutor {
 public:
  Result<int> Run(const RunStep& step) override {
    steps.push_back(step);
    if (exit_code != 0) return exit_code;
    RETURN_IF_ERROR(WriteFile(step.upper_dir + "/ran", step.argv.back()));
    if (::geteuid() == 0) {
      // "rm /etc/motd" and "rm -rf /opt; mkdir /opt" as overlayfs records them.
      RETURN_IF_ERROR(MakeDirs(step.upper_dir + "/etc"));
      if (::mknod((step.upper_dir + "/etc/motd").c_str(), S_IFCHR, makedev(0, 0)) != 0)
        return ErrnoError("mknod");
      RETURN_IF_ERROR(MakeDirs(step.upper_dir + "/opt"));
      if (::setxattr((step.upper_dir + "/opt").c_str(), "trusted.overlay.opaque", "y", 1, 0) != 0)
        return ErrnoError("setxattr");
    }
    return 0;
  }
  std::vector<RunStep> steps;
  int exit_code = 0;
};

class BuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::Make("barge-build-test-");
    ASSERT_TRUE(t.ok());
    tmp_ = std::move(*t);
    auto s = ImageStore::Open(tmp_.path() + "/root");
    ASSERT_TRUE(s.ok());
    store_ = std::make_unique<ImageStore>(std::move(*s));
    std::string rootfs = tmp_.path() + "/rootfs.tar";
    ASSERT_TRUE(
        WriteFile(
            rootfs,
            MakeTar({{"etc", TarEntry::kDir, "", "", 0755},
                     {"etc/passwd", TarEntry::kFile,
                      "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"},
                     {"etc/group", TarEntry::kFile, "root:x:0:\napp:x:1000:\nextra:x:2000:app\n"},
                     {"etc/motd", TarEntry::kFile, "motd"},
                     {"opt/old", TarEntry::kFile, "old"},
                     {"usr/lib", TarEntry::kDir, "", "", 0700},
                     {"lib", TarEntry::kSymlink, "", "usr/lib"},
                     {"tmp", TarEntry::kDir, "", "", 01777}},
                    Compression::kGzip))
            .ok());
    auto fd = OpenFile(rootfs, O_RDONLY);
    ASSERT_TRUE(fd.ok());
    auto base = ImportRootfs(*store_, fd->get(), "base:1");
    ASSERT_TRUE(base.ok()) << base.status().message();
    base_ = *base;
    ctx_ = tmp_.path() + "/ctx";
    ASSERT_TRUE(MakeDirs(ctx_ + "/dir/sub").ok());
    ASSERT_TRUE(WriteFile(ctx_ + "/file.txt", "file").ok());
    ASSERT_TRUE(WriteFile(ctx_ + "/dir/a", "a").ok());
    ASSERT_TRUE(WriteFile(ctx_ + "/dir/sub/b", "b", 0600).ok());
  }

  void Containerfile(const std::string& text) {
    ASSERT_TRUE(WriteFile(ctx_ + "/Containerfile", text).ok());
  }

  Result<BuildResult> Build(BuildOptions options = {}) {
    options.context_dir = ctx_;
    if (options.tags.empty()) options.tags = {"out:1"};
    if (options.executor == nullptr) options.executor = &fake_;
    options.progress = [this](const std::string& line) { progress_.push_back(line); };
    return oci::Build(*store_, options);
  }

  // The files of layer `i` of `image`, unpacked plainly (whiteouts stay .wh. files).
  std::string UnpackLayer(const Image& image, size_t i) {
    std::string dir = tmp_.path() + "/unpacked-" + std::to_string(unpacked_++);
    EXPECT_TRUE(MakeDirs(dir).ok());
    auto fd = OpenFile(store_->BlobPath(image.layers[i].digest), O_RDONLY);
    EXPECT_TRUE(fd.ok());
    ExtractOptions options;
    options.whiteouts = WhiteoutMode::kPlain;
    auto r = ExtractTar(fd->get(), dir, options);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return dir;
  }

  size_t BlobCount() { return ListTree(tmp_.path() + "/root/images/blobs/sha256").size(); }

  TempDir tmp_;
  std::unique_ptr<ImageStore> store_;
  Image base_;
  std::string ctx_;
  FakeExecutor fake_;
  std::vector<std::string> progress_;
  int unpacked_ = 0;
};

TEST_F(BuilderTest, BuildsConfigAndLayersThenReusesEveryLayer) {
  Containerfile(
      "FROM base:1\n"
      "ARG VERSION=1.0\n"
      "ENV APP_HOME=/srv/app \\\n    MODE=prod\n"
      "LABEL version=$VERSION org.example.name=\"demo app\"\n"
      "WORKDIR $APP_HOME\n"
      "COPY file.txt ./\n"
      "COPY dir /data/\n"
      "RUN make all\n"
      "EXPOSE 8080 53/udp\n"
      "USER app\n"
      "ENTRYPOINT [\"/bin/app\"]\n"
      "HEALTHCHECK CMD true\n"
      "CMD serve --port 80\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Image& image = r->image;
  EXPECT_EQ(r->built_layers, 4);  // WORKDIR (the base lacks /srv/app), 2 COPY, RUN
  EXPECT_EQ(r->cached_layers, 0);
  ASSERT_EQ(image.layers.size(), 5u);
  const ImageConfig& c = image.config;
  // Every stage gets a PATH when its base has none, as in BuildKit.
  EXPECT_EQ(c.env, (std::vector<std::string>{std::string("PATH=") + kPath, "APP_HOME=/srv/app",
                                             "MODE=prod"}));
  EXPECT_EQ(c.labels.at("version"), "1.0");
  EXPECT_EQ(c.labels.at("org.example.name"), "demo app");
  EXPECT_EQ(c.working_dir, "/srv/app");
  EXPECT_EQ(c.user, "app");
  EXPECT_EQ(c.exposed_ports, (std::vector<std::string>{"53/udp", "8080/tcp"}));
  EXPECT_EQ(c.entrypoint, std::vector<std::string>{"/bin/app"});
  EXPECT_EQ(c.cmd, (std::vector<std::string>{"/bin/sh", "-c", "serve --port 80"}));
  EXPECT_EQ(image.tags, std::vector<std::string>{"out:1"});
  EXPECT_EQ(progress_.front(), "STEP 1/13: FROM base:1");
  EXPECT_EQ(image.config_document["config"]["Healthcheck"],
            nlohmann::json({{"Test", {"CMD-SHELL", "true"}}}));

  EXPECT_EQ(ListTree(UnpackLayer(image, 1)), (std::vector<std::string>{"srv", "srv/app"}));
  std::string l1 = UnpackLayer(image, 2);
  EXPECT_EQ(*ReadFile(l1 + "/srv/app/file.txt"), "file");
  std::string l2 = UnpackLayer(image, 3);
  EXPECT_EQ(*ReadFile(l2 + "/data/sub/b"), "b");
  struct stat st {};
  ASSERT_EQ(::stat((l2 + "/data/sub/b").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // The RUN step saw the layers lowest first, the env and the working dir.
  ASSERT_EQ(fake_.steps.size(), 1u);
  const RunStep& step = fake_.steps[0];
  EXPECT_EQ(step.argv, (std::vector<std::string>{"/bin/sh", "-c", "make all"}));
  ASSERT_EQ(step.lower_dirs.size(), 4u);
  EXPECT_EQ(step.lower_dirs[0], store_->LayerDirPath(base_.diff_ids[0]));
  EXPECT_EQ(step.working_dir, "/srv/app");
  EXPECT_FALSE(step.network);
  bool has_path = false, has_arg = false;
  for (const std::string& e : step.env) {
    has_path |= e.rfind("PATH=", 0) == 0;
    has_arg |= e == "VERSION=1.0";
  }
  EXPECT_TRUE(has_path && has_arg);

  // Nothing changed: every layer comes from the cache and the image is the same.
  progress_.clear();
  auto again = Build();
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->cached_layers, 4);
  EXPECT_EQ(again->built_layers, 0);
  EXPECT_EQ(again->image.manifest.digest, image.manifest.digest);
  EXPECT_EQ(fake_.steps.size(), 1u);
  EXPECT_NE(std::find(progress_.begin(), progress_.end(),
                      " --> Using cache " + DigestHex(image.layers[3].digest).substr(0, 12)),
            progress_.end());

  // A changed file rebuilds its layer and those after it, not those before.
  ASSERT_TRUE(WriteFile(ctx_ + "/dir/a", "changed").ok());
  auto changed = Build();
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(changed->cached_layers, 2);
  EXPECT_EQ(changed->built_layers, 2);
  EXPECT_EQ(fake_.steps.size(), 2u);
  // --no-cache builds everything again.
  BuildOptions no_cache;
  no_cache.no_cache = true;
  auto fresh = Build(no_cache);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->built_layers, 4);
}

TEST_F(BuilderTest, RunUpperDirBecomesALayerWithWhiteouts) {
  if (::geteuid() != 0) GTEST_SKIP() << "whiteout devices need root";
  Containerfile("FROM base:1\nRUN rm /etc/motd && rm -rf /opt && mkdir /opt\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::string l = UnpackLayer(r->image, 1);
  EXPECT_EQ(ListTree(l),
            (std::vector<std::string>{"etc", "etc/.wh.motd", "opt", "opt/.wh..wh..opq", "ran"}));
  // In the layer cache the same layer is back in overlay form.
  auto dirs = store_->LayerDirs(r->image);
  ASSERT_TRUE(dirs.ok());
  struct stat st {};
  ASSERT_EQ(::lstat(((*dirs)[1] + "/etc/motd").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST_F(BuilderTest, SyntaxErrorsComeBeforeAnyWork) {
  Containerfile("FROM base:1\nCOPY file.txt /f\nRUN true\nBOGUS instruction\n");
  size_t blobs = BlobCount();
  auto r = Build();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "Containerfile:4: unknown instruction 'BOGUS'");
  EXPECT_EQ(BlobCount(), blobs);
  EXPECT_TRUE(fake_.steps.empty());
  EXPECT_TRUE(progress_.empty());
  Containerfile("FROM base:1\nCOPY file.txt /f\nCOPY --from=nothere:1 /x /x\n");
  r = Build();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "Containerfile:3: COPY --from=nothere:1: image 'nothere:1' not found");
  EXPECT_EQ(BlobCount(), blobs);
  Containerfile("FROM missing:1\nRUN true\n");
  r = Build();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(
      r.status().message().rfind("Containerfile:1: FROM missing:1: image 'missing:1' not found", 0),
      0u)
      << r.status().message();
  EXPECT_TRUE(progress_.empty());
}

TEST_F(BuilderTest, RunWithoutExecutorOrFailingCommandIsAClearError) {
  Containerfile("FROM base:1\nRUN make\n");
  BuildOptions options;
  struct NoExecutor : RunStepExecutor {
    Result<int> Run(const RunStep&) override { return Internal("unused"); }
  };
  options.context_dir = ctx_;
  options.tags = {"out:1"};
  auto r = oci::Build(*store_, options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "Containerfile:2: RUN needs the container runtime, which this build of barge does "
            "not have");
  fake_.exit_code = 2;
  r = Build();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "Containerfile:2: RUN: 'make' exited with status 2");
  EXPECT_EQ(store_->Resolve("out:1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ListTree(tmp_.path() + "/root/tmp"), std::vector<std::string>{});
  for (const std::string& p : ListTree(tmp_.path() + "/root/layers"))
    EXPECT_EQ(p.find(".tmp"), std::string::npos) << p;
}

TEST_F(BuilderTest, IgnoreFileExcludesFromCopies) {
  ASSERT_TRUE(WriteFile(ctx_ + "/secret.txt", "secret").ok());
  ASSERT_TRUE(MakeDirs(ctx_ + "/logs").ok());
  ASSERT_TRUE(WriteFile(ctx_ + "/logs/x.log", "log").ok());
  ASSERT_TRUE(WriteFile(ctx_ + "/dir/a.tmp", "tmp").ok());
  ASSERT_TRUE(
      WriteFile(ctx_ + "/.containerignore", "# comment\nsecret.txt\nlogs\n**/*.tmp\n").ok());
  Containerfile("FROM base:1\nCOPY . /app/\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::string l = UnpackLayer(r->image, 1);
  auto tree = ListTree(l + "/app");
  EXPECT_EQ(std::count(tree.begin(), tree.end(), "secret.txt"), 0);
  EXPECT_EQ(std::count(tree.begin(), tree.end(), "logs"), 0);
  EXPECT_EQ(std::count(tree.begin(), tree.end(), "dir/a.tmp"), 0);
  EXPECT_EQ(std::count(tree.begin(), tree.end(), "dir/a"), 1);
  Containerfile("FROM base:1\nCOPY secret.txt /s\n");
  r = Build();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("source 'secret.txt' not found"), std::string::npos)
      << r.status().message();
  // Not through a symlink either.
  ASSERT_EQ(::symlink("secret.txt", (ctx_ + "/alias").c_str()), 0);
  ASSERT_EQ(::symlink("logs", (ctx_ + "/logdir").c_str()), 0);
  ASSERT_EQ(::symlink("file.txt", (ctx_ + "/good-alias").c_str()), 0);
  Containerfile("FROM base:1\nCOPY good-alias /etc/\n");
  r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*ReadFile(UnpackLayer(r->image, 1) + "/etc/good-alias"), "file");
  for (const char* src : {"alias", "logdir"}) {
    Containerfile(std::string("FROM base:1\nCOPY ") + src + " /s\n");
    r = Build();
    ASSERT_FALSE(r.ok()) << src;
    EXPECT_NE(r.status().message().find("not found"), std::string::npos) << r.status().message();
  }
}

TEST_F(BuilderTest, CopySourcesCannotEscapeTheContext) {
  ASSERT_TRUE(WriteFile(tmp_.path() + "/outside.txt", "outside").ok());
  Containerfile("FROM base:1\nCOPY ../outside.txt /o\n");
  auto r = Build();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "Containerfile:2: COPY: source '../outside.txt' is outside the build context");
  // A symlink out of the context resolves inside it (where there is nothing).
  ASSERT_EQ(::symlink((tmp_.path() + "/outside.txt").c_str(), (ctx_ + "/abs-link").c_str()), 0);
  ASSERT_EQ(::symlink("../outside.txt", (ctx_ + "/rel-link").c_str()), 0);
  for (const char* link : {"abs-link", "rel-link"}) {
    Containerfile(std::string("FROM base:1\nCOPY ") + link + " /o\n");
    r = Build();
    ASSERT_FALSE(r.ok()) << link;
    EXPECT_NE(r.status().message().find("not found"), std::string::npos) << r.status().message();
  }
  // Inside a copied directory a symlink is copied as a symlink, never followed.
  ASSERT_EQ(::symlink("/etc", (ctx_ + "/dir/etc-link").c_str()), 0);
  Containerfile("FROM base:1\nCOPY dir /d/\n");
  r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::string l = UnpackLayer(r->image, 1);
  struct stat st {};
  ASSERT_EQ(::lstat((l + "/d/etc-link").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

TEST_F(BuilderTest, ChownGlobsAndDestinationThroughImageSymlink) {
  if (::geteuid() != 0) GTEST_SKIP() << "chown needs root";
  ASSERT_TRUE(WriteFile(ctx_ + "/x1.conf", "1").ok());
  ASSERT_TRUE(WriteFile(ctx_ + "/x2.conf", "2").ok());
  Containerfile("FROM base:1\nCOPY --chown=app:extra x*.conf /lib/conf/\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::string l = UnpackLayer(r->image, 1);
  // /lib is a symlink to usr/lib in the image: the files land in usr/lib, which keeps its mode.
  EXPECT_EQ(ListTree(l),
            (std::vector<std::string>{"usr", "usr/lib", "usr/lib/conf", "usr/lib/conf/x1.conf",
                                      "usr/lib/conf/x2.conf"}));
  struct stat st {};
  ASSERT_EQ(::stat((l + "/usr/lib/conf/x1.conf").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 2000u);
  ASSERT_EQ(::stat((l + "/usr/lib").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  Containerfile("FROM base:1\nCOPY --chown=nobody file.txt /f\n");
  r = Build();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("user 'nobody' is not in the image's /etc/passwd"),
            std::string::npos);
}

TEST_F(BuilderTest, MultiStageCopyFrom) {
  Containerfile(
      "FROM base:1 AS build\n"
      "COPY dir /out/\n"
      "RUN compile\n"
      "FROM scratch\n"
      "COPY --from=build /out/sub/b /b\n"
      "COPY --from=build /ran /ran\n"
      "COPY --from=base:1 /etc/motd /motd\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->image.layers.size(), 3u);
  EXPECT_EQ(*ReadFile(UnpackLayer(r->image, 0) + "/b"), "b");
  EXPECT_EQ(*ReadFile(UnpackLayer(r->image, 1) + "/ran"), "compile");
  EXPECT_EQ(*ReadFile(UnpackLayer(r->image, 2) + "/motd"), "motd");
  // The RUN of the build stage must not have removed what later stages copy (it whites out
  // /etc/motd in the build stage only).
  Containerfile("FROM base:1 AS build\nRUN x\nFROM scratch\nCOPY --from=build /etc/motd /motd\n");
  r = Build();
  if (::geteuid() == 0) {
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("not found in the stage 'build'"), std::string::npos)
        << r.status().message();
  }
}

TEST_F(BuilderTest, AddExtractsLocalArchives) {
  ASSERT_TRUE(
      WriteFile(ctx_ + "/app.tar.gz",
                MakeTar({{"bin/app", TarEntry::kFile, "app", "", 0755}}, Compression::kGzip))
          .ok());
  Containerfile("FROM base:1\nADD app.tar.gz /opt/\nADD file.txt /f.txt\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*ReadFile(UnpackLayer(r->image, 1) + "/opt/bin/app"), "app");
  EXPECT_EQ(*ReadFile(UnpackLayer(r->image, 2) + "/f.txt"), "file");
  // A hostile archive is refused like any layer.
  ASSERT_TRUE(WriteFile(ctx_ + "/evil.tar", MakeTar({{"../../evil", TarEntry::kFile, "x"}})).ok());
  Containerfile("FROM base:1\nADD evil.tar /opt/\n");
  r = Build();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("contains '..'"), std::string::npos) << r.status().message();
}

TEST_F(BuilderTest, MistypedBaseConfigFieldsAreIgnored) {
  nlohmann::json config = base_.config_document;
  config["config"]["WorkingDir"] = 5;
  config["config"]["User"] = nlohmann::json::array();
  config["config"]["Labels"] = "x";
  auto odd = store_->WriteImage(config, base_.layers);
  ASSERT_TRUE(odd.ok()) << odd.status().message();
  ASSERT_TRUE(store_->Tag(odd->manifest, "odd:1").ok());
  Containerfile("FROM odd:1\nCOPY file.txt rel.txt\nLABEL a=b\nRUN true\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*ReadFile(UnpackLayer(r->image, 1) + "/rel.txt"), "file");
  EXPECT_EQ(r->image.config.labels.at("a"), "b");
}

TEST_F(BuilderTest, NonNumericUidInPasswdIsAnError) {
  std::string rootfs = tmp_.path() + "/badpasswd.tar";
  ASSERT_TRUE(WriteFile(rootfs, MakeTar({{"etc/passwd", TarEntry::kFile,
                                          "root:x:0:0::/:/bin/sh\napp:x:abc:1000::/:/bin/sh\n"}}))
                  .ok());
  auto fd = OpenFile(rootfs, O_RDONLY);
  ASSERT_TRUE(ImportRootfs(*store_, fd->get(), "badpasswd:1").ok());
  Containerfile("FROM badpasswd:1\nCOPY --chown=app file.txt /f\n");
  auto r = Build();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("uid 'abc', which is not a number"), std::string::npos)
      << r.status().message();
}

TEST_F(BuilderTest, DockerignoreFollowsMobySemantics) {
  ASSERT_TRUE(WriteFile(ctx_ + "/secret.env", "s").ok());
  ASSERT_TRUE(WriteFile(ctx_ + "/dir/secret.env", "s").ok());
  ASSERT_TRUE(MakeDirs(ctx_ + "/skip/deep").ok());
  ASSERT_TRUE(WriteFile(ctx_ + "/skip/keep", "k").ok());
  ASSERT_TRUE(WriteFile(ctx_ + "/skip/drop", "d").ok());
  ASSERT_TRUE(WriteFile(ctx_ + "/skip/deep/drop", "d").ok());
  ASSERT_TRUE(WriteFile(ctx_ + "/.dockerignore", "**/secret.env\nskip\n!skip/keep\n").ok());
  Containerfile("FROM base:1\nCOPY . /ctx/\nCOPY skip /only/\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::vector<std::string> tree = ListTree(UnpackLayer(r->image, 1));
  auto has = [&](const std::string& p) {
    return std::find(tree.begin(), tree.end(), p) != tree.end();
  };
  EXPECT_FALSE(has("ctx/secret.env"));
  EXPECT_FALSE(has("ctx/dir/secret.env"));
  EXPECT_TRUE(has("ctx/dir/a"));
  EXPECT_TRUE(has("ctx/skip/keep"));
  EXPECT_FALSE(has("ctx/skip/drop"));
  EXPECT_FALSE(has("ctx/skip/deep"));
  EXPECT_EQ(ListTree(UnpackLayer(r->image, 2)), (std::vector<std::string>{"only", "only/keep"}));
}

// The value of xattr `name` on `path`, or "" when it has none.
std::string Xattr(const std::string& path, const char* name) {
  char buf[256];
  ssize_t n = ::lgetxattr(path.c_str(), name, buf, sizeof buf);
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

TEST_F(BuilderTest, CopyKeepsFileCapabilitiesAndUserXattrs) {
  if (::geteuid() != 0) GTEST_SKIP() << "security.capability needs CAP_SETFCAP";
  // What `setcap cap_net_raw+ep` writes: VFS_CAP_REVISION_2 | EFFECTIVE, permitted bit 13.
  const unsigned char cap[20] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0,
                                 0,    0,    0,    0,    0,    0,    0,    0,    0, 0};
  std::string caps(reinterpret_cast<const char*>(cap), sizeof cap);
  std::string ping = ctx_ + "/ping";
  ASSERT_TRUE(WriteFile(ping, "ping", 0755).ok());
  ASSERT_EQ(::setxattr(ping.c_str(), "security.capability", caps.data(), caps.size(), 0), 0)
      << strerror(errno);
  ASSERT_EQ(::setxattr(ping.c_str(), "user.origin", "ctx", 3, 0), 0) << strerror(errno);
  Containerfile("FROM base:1\nCOPY ping /bin/ping\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  // In the layer blob (SCHILY.xattr records, applied on unpack) ...
  std::string unpacked = UnpackLayer(r->image, 1) + "/bin/ping";
  EXPECT_EQ(Xattr(unpacked, "security.capability"), caps);
  EXPECT_EQ(Xattr(unpacked, "user.origin"), "ctx");
  // ... and in this host's layer cache, which RUN steps use as overlay lower dirs.
  std::string cached = store_->LayerDirPath(r->image.diff_ids[1]) + "/bin/ping";
  EXPECT_EQ(Xattr(cached, "security.capability"), caps);
  EXPECT_EQ(Xattr(cached, "user.origin"), "ctx");
  // A changed capability is a changed layer, not a cache hit.
  ASSERT_EQ(::removexattr(ping.c_str(), "security.capability"), 0);
  auto again = Build();
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_NE(again->image.diff_ids[1], r->image.diff_ids[1]);
}

TEST_F(BuilderTest, WhiteoutNamedFilesAreRefused) {
  // Kept as a plain file in this host's layer cache, it would delete /app/a on every other host.
  ASSERT_TRUE(WriteFile(ctx_ + "/dir/.wh.a", "").ok());
  Containerfile("FROM base:1\nCOPY dir /app/\n");
  auto r = Build();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'/app/.wh.a': names starting with '.wh.' are reserved"),
            std::string::npos)
      << r.status().message();
  // Nothing of the step reached the layer cache.
  for (const std::string& l : ListTree(tmp_.path() + "/root/layers")) {
    EXPECT_EQ(l.find(".wh."), std::string::npos) << l;
    EXPECT_EQ(l.find(".tmp-"), std::string::npos) << l;
  }
}

TEST_F(BuilderTest, BuildArgsAndVariables) {
  Containerfile(
      "ARG TAG=1\nFROM base:${TAG}\nARG WHO=world\nENV GREETING=\"hello ${WHO}\"\nCOPY file.txt "
      "/${WHO}.txt\n");
  BuildOptions options;
  options.build_args = {{"WHO", "barge"}};
  auto r = Build(options);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->image.config.env,
            (std::vector<std::string>{std::string("PATH=") + kPath, "GREETING=hello barge"}));
  EXPECT_TRUE(PathExists(UnpackLayer(r->image, 1) + "/barge.txt"));
}

TEST_F(BuilderTest, NonAsciiNamesReachTheLayer) {
  // File names are bytes: UTF-8 (as users write them) and not (old Latin-1 trees).
  ASSERT_TRUE(MakeDirs(ctx_ + "/donn\xc3\xa9"
                              "es")
                  .ok());
  ASSERT_TRUE(WriteFile(ctx_ + "/donn\xc3\xa9"
                               "es/\xc3\xbc"
                               "ber.txt",
                        "u")
                  .ok());
  ASSERT_TRUE(WriteFile(ctx_ + "/donn\xc3\xa9"
                               "es/latin1-\xe9",
                        "l")
                  .ok());
  Containerfile(
      "FROM base:1\nCOPY donn\xc3\xa9"
      "es /donn\xc3\xa9"
      "es/\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(ListTree(UnpackLayer(r->image, 1)), (std::vector<std::string>{"donn\xc3\xa9"
                                                                          "es",
                                                                          "donn\xc3\xa9"
                                                                          "es/latin1-\xe9",
                                                                          "donn\xc3\xa9"
                                                                          "es/\xc3\xbc"
                                                                          "ber.txt"}));
}

// A named pipe in the context is copied as a pipe (as BuildKit's copier does), named or inside a
// directory, and never opened: opening it for reading would wait for a writer forever.
TEST_F(BuilderTest, NamedPipesAreCopiedAsPipesNotRead) {
  ASSERT_TRUE(MakeDirs(ctx_ + "/d").ok());
  ASSERT_EQ(::mkfifo((ctx_ + "/f").c_str(), 0640), 0);
  ASSERT_EQ(::mkfifo((ctx_ + "/d/inner").c_str(), 0600), 0);
  Containerfile("FROM base:1\nCOPY f /f\nCOPY d /d/\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  struct stat st {};
  std::string one = UnpackLayer(r->image, 1), two = UnpackLayer(r->image, 2);
  ASSERT_EQ(::lstat((one + "/f").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  ASSERT_EQ(::lstat((two + "/d/inner").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

TEST_F(BuilderTest, CreatedDirectoriesBelongToChownAndUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "chown needs root";
  // As BuildKit's mkdir -p: what COPY --chown and WORKDIR create belongs to that user, 0755 (or
  // --chmod); what the image has keeps its metadata; a directory source's own mode is not used.
  ASSERT_EQ(::chmod((ctx_ + "/dir").c_str(), 0700), 0);
  Containerfile(
      "FROM base:1\n"
      "COPY --chown=app file.txt /new/sub/\n"
      "COPY --chown=app:extra dir /data/\n"
      "COPY --chmod=0750 file.txt /modes/f\n"
      "COPY file.txt /usr/lib/x/\n"
      "USER app\n"
      "WORKDIR /srv/app\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto expect = [&](const std::string& path, uid_t uid, gid_t gid, mode_t mode) {
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_uid, uid) << path;
    EXPECT_EQ(st.st_gid, gid) << path;
    EXPECT_EQ(st.st_mode & 07777, mode) << path;
  };
  std::string l1 = UnpackLayer(r->image, 1);
  expect(l1 + "/new", 1000, 1000, 0755);
  expect(l1 + "/new/sub", 1000, 1000, 0755);
  expect(l1 + "/new/sub/file.txt", 1000, 1000, 0644);
  std::string l2 = UnpackLayer(r->image, 2);
  expect(l2 + "/data", 1000, 2000, 0755);
  expect(l2 + "/data/sub", 1000, 2000, 0755);
  expect(l2 + "/data/sub/b", 1000, 2000, 0600);
  std::string l3 = UnpackLayer(r->image, 3);
  expect(l3 + "/modes", 0, 0, 0750);
  expect(l3 + "/modes/f", 0, 0, 0750);
  std::string l4 = UnpackLayer(r->image, 4);
  expect(l4 + "/usr/lib", 0, 0, 0700);  // the image's own directory (through /lib)
  expect(l4 + "/usr/lib/x", 0, 0, 0755);
  std::string l5 = UnpackLayer(r->image, 5);
  expect(l5 + "/srv", 1000, 1000, 0755);
  expect(l5 + "/srv/app", 1000, 1000, 0755);
}

TEST_F(BuilderTest, QuotesAndEscapesStopExpansion) {
  Containerfile(
      "FROM base:1\n"
      "ENV A=x\n"
      "ENV S='$A' D=\"$A\" E=\\$A F=\"\\$A\" G=${A}y H=\"a b\"\n"
      "LABEL d='$A' e=\"${A:+set}\" \"quoted key\"=1\n"
      "ENV OLD quoted \"$A\" and '$A'\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->image.config.env,
            (std::vector<std::string>{std::string("PATH=") + kPath, "A=x", "S=$A", "D=x", "E=$A",
                                      "F=$A", "G=xy", "H=a b", "OLD=quoted x and $A"}));
  EXPECT_EQ(r->image.config.labels.at("d"), "$A");
  EXPECT_EQ(r->image.config.labels.at("e"), "set");
  EXPECT_EQ(r->image.config.labels.at("quoted key"), "1");
  Containerfile("FROM base:1\nENV A=\"${B:?B must be set}\"\n");
  r = Build();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "Containerfile:2: ENV: '\"${B:?B must be set}\"': B: B must be set");
}

TEST_F(BuilderTest, TheLastOfArgAndEnvWinsAsInBuildKit) {
  // BuildKit keeps one environment for a stage: an ARG after an ENV of the same name overrides it
  // for expansion and for RUN (the config keeps the ENV); an ENV after an ARG overrides that.
  Containerfile(
      "FROM base:1 AS first\n"
      "ENV V=env\n"
      "ARG V=arg\n"
      "ARG W=arg\n"
      "ENV W=env\n"
      "LABEL v=$V w=$W\n"
      "RUN step\n"
      "FROM first\n"
      "LABEL inherited=$V\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->image.config.labels.at("v"), "arg");
  EXPECT_EQ(r->image.config.labels.at("w"), "env");
  // A stage FROM a stage starts from that state with the config's Env applied again.
  EXPECT_EQ(r->image.config.labels.at("inherited"), "env");
  ASSERT_EQ(fake_.steps.size(), 1u);
  const auto& env = fake_.steps[0].env;
  EXPECT_NE(std::find(env.begin(), env.end(), "V=arg"), env.end());
  EXPECT_NE(std::find(env.begin(), env.end(), "W=env"), env.end());
  EXPECT_EQ(r->image.config.env,
            (std::vector<std::string>{std::string("PATH=") + kPath, "V=env", "W=env"}));
}

TEST_F(BuilderTest, CopyKeepsHardLinksOfTheTreeItCopies) {
  ASSERT_EQ(::link((ctx_ + "/dir/a").c_str(), (ctx_ + "/dir/sub/a-again").c_str()), 0);
  Containerfile("FROM base:1\nCOPY dir /d/\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::string l = UnpackLayer(r->image, 1);
  struct stat a {
  }, b{};
  ASSERT_EQ(::stat((l + "/d/a").c_str(), &a), 0);
  ASSERT_EQ(::stat((l + "/d/sub/a-again").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 2u);
}

TEST_F(BuilderTest, PlatformArgs) {
  std::string arch = HostArchitecture();
  Containerfile(
      "FROM --platform=$BUILDPLATFORM base:1 AS build\n"
      "ARG TARGETARCH\n"
      "ARG TARGETPLATFORM\n"
      "ENV T=$TARGETARCH P=$TARGETPLATFORM B=${BUILDARCH:-unset}\n"
      "FROM build\n"
      "ARG TARGETOS\n"
      "LABEL os=$TARGETOS stage=${TARGETSTAGE:-none}\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  const auto& env = r->image.config.env;
  EXPECT_NE(std::find(env.begin(), env.end(), "T=" + arch), env.end());
  EXPECT_NE(std::find(env.begin(), env.end(), "P=linux/" + arch), env.end());
  EXPECT_NE(std::find(env.begin(), env.end(), "B=unset"), env.end());  // not declared here
  EXPECT_EQ(r->image.config.labels.at("os"), "linux");
  EXPECT_EQ(r->image.config.labels.at("stage"), "none");
  Containerfile("FROM --platform=linux/s390x base:1\n");
  r = Build();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--platform=linux/s390x: barge builds for this machine"),
            std::string::npos)
      << r.status().message();
}

TEST_F(BuilderTest, ConfigAsDockerWritesIt) {
  Containerfile(
      "FROM scratch AS empty\n"
      "COPY file.txt /f\n"
      "FROM base:1\n"
      "MAINTAINER Jane <jane@example.com>\n"
      "ENV A=1 B=2\n"
      "ENV A=3\n"
      "EXPOSE 8000-8002 53/UDP 9000/tcp\n"
      "SHELL [\"/bin/bash\", \"-eu\", \"-c\"]\n"
      "HEALTHCHECK --interval=30s --timeout=5s --start-period=1m --retries=3 CMD curl -f x\n"
      "ONBUILD COPY file.txt /onbuild.txt\n"
      "ONBUILD RUN touch /onbuild\n"
      "STOPSIGNAL SIGQUIT\n"
      "CMD serve\n");
  BuildOptions options;
  options.build_args = {{"UNUSED", "1"}, {"HTTP_PROXY", "http://proxy:3128"}};
  options.target = "empty";
  auto scratch = Build(options);
  ASSERT_TRUE(scratch.ok()) << scratch.status().message();
  EXPECT_EQ(scratch->image.config.env, std::vector<std::string>{std::string("PATH=") + kPath});
  EXPECT_EQ(scratch->image.config.working_dir, "/");
  EXPECT_EQ(scratch->warnings, std::vector<std::string>{
                                   "one or more build args were not consumed by an ARG: [UNUSED]"});
  options.target.clear();
  auto r = Build(options);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const nlohmann::json& doc = r->image.config_document;
  const nlohmann::json& cfg = doc["config"];
  EXPECT_EQ(doc["author"], "Jane <jane@example.com>");
  EXPECT_FALSE(cfg.contains("Labels") && cfg["Labels"].contains("maintainer"));
  EXPECT_EQ(r->image.config.env,
            (std::vector<std::string>{std::string("PATH=") + kPath, "A=3", "B=2"}));
  EXPECT_EQ(r->image.config.exposed_ports,
            (std::vector<std::string>{"53/udp", "8000/tcp", "8001/tcp", "8002/tcp", "9000/tcp"}));
  EXPECT_EQ(cfg["Shell"], nlohmann::json({"/bin/bash", "-eu", "-c"}));
  EXPECT_EQ(r->image.config.cmd, (std::vector<std::string>{"/bin/bash", "-eu", "-c", "serve"}));
  EXPECT_EQ(cfg["Healthcheck"], nlohmann::json({{"Test", {"CMD-SHELL", "curl -f x"}},
                                                {"Interval", 30'000'000'000LL},
                                                {"Timeout", 5'000'000'000LL},
                                                {"StartPeriod", 60'000'000'000LL},
                                                {"Retries", 3}}));
  EXPECT_EQ(cfg["OnBuild"], nlohmann::json({"COPY file.txt /onbuild.txt", "RUN touch /onbuild"}));
  EXPECT_EQ(cfg["StopSignal"], "SIGQUIT");
  // HTTP_PROXY is one of the proxy args RUN gets without an ARG; UNUSED is reported.
  EXPECT_EQ(r->warnings, scratch->warnings);
  ASSERT_TRUE(store_->Tag(r->image.manifest, "parent:1").ok());

  // A build FROM that image runs its triggers first, with the shell it inherits, and passes
  // them on to no one.
  size_t runs = fake_.steps.size();
  Containerfile("FROM parent:1\nRUN echo child\n");
  auto child = Build();
  ASSERT_TRUE(child.ok()) << child.status().message();
  EXPECT_FALSE(child->image.config_document["config"].contains("OnBuild"));
  ASSERT_EQ(fake_.steps.size(), runs + 2);
  EXPECT_EQ(fake_.steps[runs].argv,
            (std::vector<std::string>{"/bin/bash", "-eu", "-c", "touch /onbuild"}));
  EXPECT_EQ(fake_.steps[runs + 1].argv.back(), "echo child");
  size_t n = child->image.layers.size();
  EXPECT_EQ(*ReadFile(UnpackLayer(child->image, n - 3) + "/onbuild.txt"), "file");
  Containerfile("FROM scratch\nSTOPSIGNAL SIGNOPE\n");
  auto bad = Build();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "Containerfile:2: STOPSIGNAL: invalid signal 'SIGNOPE'");
}

TEST_F(BuilderTest, OnbuildOfAnEarlierStageRunsInTheStageBuiltFromIt) {
  Containerfile(
      "FROM base:1 AS tmpl\n"
      "ONBUILD COPY file.txt /from-trigger\n"
      "FROM tmpl\n"
      "RUN true\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*ReadFile(UnpackLayer(r->image, 1) + "/from-trigger"), "file");
  EXPECT_FALSE(r->image.config_document["config"].contains("OnBuild"));
}

TEST_F(BuilderTest, HeredocsRunAndCopy) {
  Containerfile(
      "FROM base:1\n"
      "ARG WHO=world\n"
      "RUN <<EOF\n"
      "echo one\n"
      "echo two\n"
      "EOF\n"
      "RUN <<EOF\n"
      "#!/usr/bin/env python3\n"
      "print('hi')\n"
      "EOF\n"
      "RUN cat <<A > /a && cat <<'B' > /b\n"
      "$WHO\n"
      "A\n"
      "$WHO\n"
      "B\n"
      "COPY --chmod=0755 <<EOF <<'RAW' /etc/\n"
      "hello $WHO\n"
      "EOF\n"
      "hello $WHO\n"
      "RAW\n"
      "COPY <<-EOF /greeting\n"
      "\t\thi $WHO\n"
      "\tEOF\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(fake_.steps.size(), 3u);
  EXPECT_EQ(fake_.steps[0].argv,
            (std::vector<std::string>{"/bin/sh", "-c", "echo one\necho two\n"}));
  EXPECT_EQ(fake_.steps[1].argv, std::vector<std::string>{"/dev/pipes/EOF"});
  ASSERT_EQ(fake_.steps[1].read_only_binds.size(), 1u);
  EXPECT_EQ(fake_.steps[1].read_only_binds[0].destination, "/dev/pipes");
  EXPECT_EQ(fake_.steps[2].argv,
            (std::vector<std::string>{"/bin/sh", "-c",
                                      "cat <<A > /a && cat <<'B' > /b\n$WHO\nA\n$WHO\nB"}));
  std::string l = UnpackLayer(r->image, 4);
  EXPECT_EQ(*ReadFile(l + "/etc/EOF"), "hello world\n");
  EXPECT_EQ(*ReadFile(l + "/etc/RAW"), "hello $WHO\n");
  struct stat st {};
  ASSERT_EQ(::stat((l + "/etc/EOF").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(*ReadFile(UnpackLayer(r->image, 5) + "/greeting"), "hi world\n");
}

TEST_F(BuilderTest, OnlyStagesTheTargetNeedsAreBuilt) {
  Containerfile(
      "FROM base:1 AS unused\n"
      "RUN never\n"
      "FROM base:1 AS dep\n"
      "RUN dep\n"
      "FROM base:1\n"
      "COPY --from=dep /ran /dep-ran\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(fake_.steps.size(), 1u);
  EXPECT_EQ(fake_.steps[0].argv.back(), "dep");
}

TEST_F(BuilderTest, ParserWarningsAndDirectivesReachTheBuild) {
  Containerfile(
      "# escape=`\n"
      "FROM base:1\n"
      "RUN echo a `\n"
      "\n"
      "    b\n"
      "COPY file.txt C:\\x\n");
  auto r = Build();
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(fake_.steps.size(), 1u);
  EXPECT_EQ(fake_.steps[0].argv.back(), "echo a     b");
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_EQ(r->warnings[0].rfind("Containerfile:3: empty continuation line", 0), 0u);
  EXPECT_EQ(*ReadFile(UnpackLayer(r->image, 2) + "/C:\\x"), "file");
}

}  // namespace
}  // namespace barge::oci
