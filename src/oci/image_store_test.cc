#include "oci/image_store.h"

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <unistd.h>
#include <cstring>

#include "base/file_util.h"
#include "oci/digest.h"
#include "oci/test_util.h"
#include "oci/transfer.h"

namespace barge::oci {
namespace {

using testing::Compression;
using testing::ListTree;
using testing::MakeTar;
using testing::TarEntry;

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::Make("barge-store-test-");
    ASSERT_TRUE(t.ok());
    tmp_ = std::move(*t);
    auto s = ImageStore::Open(tmp_.path() + "/root");
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::make_unique<ImageStore>(std::move(*s));
  }

  Result<Image> Import(const std::string& tar, const std::string& ref) {
    std::string path = tmp_.path() + "/rootfs.tar";
    RETURN_IF_ERROR(WriteFile(path, tar));
    ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
    return ImportRootfs(*store_, fd.get(), ref);
  }

  std::string SimpleTar(const std::string& content = "hello") {
    return MakeTar(
        {{"bin", TarEntry::kDir, "", "", 0755}, {"bin/hello", TarEntry::kFile, content, "", 0755}},
        Compression::kGzip);
  }

  TempDir tmp_;
  std::unique_ptr<ImageStore> store_;
};

TEST_F(ImageStoreTest, ImportThenResolveByNameIdAndDigest) {
  auto image = Import(SimpleTar(), "app:1");
  ASSERT_TRUE(image.ok()) << image.status().message();
  EXPECT_EQ(image->layers.size(), 1u);
  EXPECT_EQ(image->layers[0].media_type, kMediaTypeLayerGzip);
  for (std::string ref : {std::string("app:1"), image->ShortId(), image->config_digest,
                          image->manifest.digest, "app@" + image->manifest.digest}) {
    auto r = store_->Resolve(ref);
    ASSERT_TRUE(r.ok()) << ref << ": " << r.status().message();
    EXPECT_EQ(r->manifest.digest, image->manifest.digest);
    EXPECT_EQ(r->tags, std::vector<std::string>{"app:1"});
  }
  EXPECT_EQ(store_->Resolve("app").status().code(), StatusCode::kNotFound);  // app:latest
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->images.size(), 1u);
  EXPECT_TRUE(PathExists(tmp_.path() + "/root/images/oci-layout"));
}

TEST_F(ImageStoreTest, ImportRejectsEscapingRootfsAndKeepsTheStoreClean) {
  auto image = Import(MakeTar({{"../etc/passwd", TarEntry::kFile, "x"}}), "bad:1");
  ASSERT_FALSE(image.ok());
  EXPECT_NE(image.status().message().find("'..'"), std::string::npos);
  EXPECT_EQ(store_->Resolve("bad:1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ListTree(tmp_.path() + "/root/images/blobs/sha256"), std::vector<std::string>{});
}

TEST_F(ImageStoreTest, CorruptBlobIsNamedAndOtherImagesStayUsable) {
  auto a = Import(SimpleTar("a"), "a:1");
  auto b = Import(SimpleTar("b"), "b:1");
  ASSERT_TRUE(a.ok() && b.ok());
  std::string config = store_->BlobPath(a->config_digest);
  ASSERT_TRUE(WriteFile(config, "{\"tampered\":true}").ok());
  auto r = store_->Resolve("a:1");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(a->config_digest), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("corrupt"), std::string::npos);
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->images.size(), 1u);
  EXPECT_EQ(list->broken.size(), 1u);
  EXPECT_TRUE(store_->Resolve("b:1").ok());
}

TEST_F(ImageStoreTest, CorruptImageBlocksNeitherRmiNorPrune) {
  auto a = Import(SimpleTar("a"), "a:1");
  auto b = Import(SimpleTar("b"), "b:1");
  auto c = Import(SimpleTar("c"), "c:1");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  ASSERT_TRUE(WriteFile(store_->BlobPath(b->config_digest), "not json").ok());
  // Removing another image frees its blobs and keeps what the broken manifest names.
  auto r = store_->Remove("a:1", false);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->deleted, std::vector<std::string>{a->manifest.digest});
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find(b->config_digest), std::string::npos) << r->warnings[0];
  EXPECT_FALSE(PathExists(store_->BlobPath(a->layers[0].digest)));
  EXPECT_TRUE(PathExists(store_->BlobPath(b->manifest.digest)));
  EXPECT_TRUE(PathExists(store_->BlobPath(b->config_digest)));
  EXPECT_TRUE(PathExists(store_->BlobPath(b->layers[0].digest)));
  auto pruned = store_->Prune();
  ASSERT_TRUE(pruned.ok()) << pruned.status().message();
  EXPECT_EQ(pruned->warnings.size(), 1u);
  EXPECT_TRUE(PathExists(store_->BlobPath(b->layers[0].digest)));
  // The broken image itself goes by name or by digest, without its manifest being read.
  r = store_->Remove("b:1", false);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->untagged, std::vector<std::string>{"b:1"});
  EXPECT_TRUE(r->warnings.empty());
  EXPECT_FALSE(PathExists(store_->BlobPath(b->layers[0].digest)));
  EXPECT_TRUE(store_->Resolve("c:1").ok());
  ASSERT_TRUE(WriteFile(store_->BlobPath(c->manifest.digest), "{").ok());
  r = store_->Remove(c->manifest.digest, false);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->deleted, std::vector<std::string>{c->manifest.digest});
  EXPECT_EQ(ListTree(tmp_.path() + "/root/images/blobs/sha256"), std::vector<std::string>{});
}

TEST_F(ImageStoreTest, LayerDirsUnpackOnceAndCheckDigests) {
  auto image = Import(SimpleTar(), "app:1");
  ASSERT_TRUE(image.ok());
  auto dirs = store_->LayerDirs(*image);
  ASSERT_TRUE(dirs.ok()) << dirs.status().message();
  ASSERT_EQ(dirs->size(), 1u);
  EXPECT_EQ((*dirs)[0], tmp_.path() + "/root/layers/" + DigestHex(image->diff_ids[0]));
  EXPECT_EQ(*ReadFile((*dirs)[0] + "/bin/hello"), "hello");
  ASSERT_TRUE(RemoveTree((*dirs)[0]).ok());
  // A tampered layer blob is caught while unpacking and leaves no cache dir behind.
  std::string blob = store_->BlobPath(image->layers[0].digest);
  ASSERT_TRUE(WriteFile(blob, MakeTar({{"evil", TarEntry::kFile, "x"}}, Compression::kGzip)).ok());
  dirs = store_->LayerDirs(*image);
  ASSERT_FALSE(dirs.ok());
  EXPECT_NE(dirs.status().message().find(image->layers[0].digest), std::string::npos);
  EXPECT_EQ(ListTree(tmp_.path() + "/root/layers"), std::vector<std::string>{});
}

// In a forked child running as nobody: bit 0 of the exit status is set when creating a file
// in `writable_dir` worked, bit 1 when `setuid_file` could be reached (stat).
int ProbeAsNobody(const std::string& writable_dir, const std::string& setuid_file) {
  std::string created = writable_dir + "/by-nobody";
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(100);
    int result = 0;
    int fd = ::open(created.c_str(), O_CREAT | O_WRONLY | O_EXCL, 0644);
    if (fd >= 0) {
      result |= 1;
      ::close(fd);
    }
    struct stat st {};
    if (::stat(setuid_file.c_str(), &st) == 0) result |= 2;
    ::_exit(result);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

TEST_F(ImageStoreTest, OtherUsersCannotReachLayerTrees) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (setuid to nobody)";
  // Let others through the test's own temporary dir, so only the store's modes decide.
  ASSERT_EQ(::chmod(tmp_.path().c_str(), 0755), 0);
  auto image = Import(MakeTar({{"tmp", TarEntry::kDir, "", "", 01777},
                               {"bin/su", TarEntry::kFile, "su", "", 04755}},
                              Compression::kGzip),
                      "shared:1");
  ASSERT_TRUE(image.ok()) << image.status().message();
  auto dirs = store_->LayerDirs(*image);
  ASSERT_TRUE(dirs.ok()) << dirs.status().message();
  std::string layer = dirs->at(0);
  struct stat st {};
  ASSERT_EQ(::stat((layer + "/tmp").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);  // the image's own modes are kept
  EXPECT_EQ(ProbeAsNobody(layer + "/tmp", layer + "/bin/su"), 0);
  EXPECT_FALSE(PathExists(layer + "/tmp/by-nobody"));
  for (const char* dir : {"images", "layers", "tmp"}) {
    ASSERT_EQ(::stat((tmp_.path() + "/root/" + dir).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u) << dir;
  }
  ASSERT_EQ(::stat(layer.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  // A store made wider by an older barge is narrowed when opened.
  ASSERT_EQ(::chmod((tmp_.path() + "/root/layers").c_str(), 0755), 0);
  ASSERT_TRUE(ImageStore::Open(tmp_.path() + "/root").ok());
  ASSERT_EQ(::stat((tmp_.path() + "/root/layers").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(ImageStoreTest, RetagLeavesUntaggedImageThatPruneDeletes) {
  auto a = Import(SimpleTar("a"), "app:1");
  auto b = Import(SimpleTar("b"), "app:1");
  ASSERT_TRUE(a.ok() && b.ok());
  auto list = store_->List();
  ASSERT_EQ(list->images.size(), 2u);
  auto old = store_->Resolve(a->manifest.digest);
  ASSERT_TRUE(old.ok());
  EXPECT_TRUE(old->tags.empty());
  ASSERT_TRUE(store_->LayerDirs(*a).ok());
  auto pruned = store_->Prune();
  ASSERT_TRUE(pruned.ok()) << pruned.status().message();
  EXPECT_EQ(pruned->deleted_images, std::vector<std::string>{a->manifest.digest});
  EXPECT_EQ(pruned->blobs, 3u);  // manifest, config, layer
  EXPECT_EQ(pruned->layer_dirs, 1u);
  EXPECT_FALSE(store_->HasBlob(a->layers[0].digest));
  EXPECT_TRUE(store_->Resolve("app:1").ok());
}

TEST_F(ImageStoreTest, LayersOfRunningContainersSurviveRmiAndPrune) {
  if (::geteuid() != 0) GTEST_SKIP() << "overlay mounts need root";
  auto a = Import(SimpleTar(), "app:1");
  ASSERT_TRUE(a.ok());
  auto dirs = store_->LayerDirs(*a);
  ASSERT_TRUE(dirs.ok());
  std::string upper = tmp_.path() + "/upper", work = tmp_.path() + "/work";
  std::string merged = tmp_.path() + "/merged";
  for (const std::string& d : {upper, work, merged}) ASSERT_TRUE(MakeDirs(d).ok());
  std::string options = "lowerdir=" + (*dirs)[0] + ",upperdir=" + upper + ",workdir=" + work;
  ASSERT_EQ(::mount("overlay", merged.c_str(), "overlay", 0, options.c_str()), 0)
      << strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{merged};
  ASSERT_TRUE(store_->Remove("app:1", false).ok());
  EXPECT_TRUE(PathExists((*dirs)[0] + "/bin/hello"));
  EXPECT_EQ(*ReadFile(merged + "/bin/hello"), "hello");
  ASSERT_EQ(::umount2(merged.c_str(), 0), 0);
  auto pruned = store_->Prune();
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(pruned->layer_dirs, 1u);
  EXPECT_FALSE(PathExists((*dirs)[0]));
}

TEST_F(ImageStoreTest, RmiUntagsThenDeletes) {
  auto a = Import(SimpleTar(), "app:1");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(store_->Tag(a->manifest, "app:2").ok());
  auto r = store_->Remove(a->ShortId(), false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--force"), std::string::npos);
  r = store_->Remove("app:1", false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->untagged, std::vector<std::string>{"app:1"});
  EXPECT_TRUE(r->deleted.empty());
  EXPECT_TRUE(store_->HasBlob(a->layers[0].digest));
  r = store_->Remove("app:2", false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->deleted, std::vector<std::string>{a->manifest.digest});
  EXPECT_FALSE(store_->HasBlob(a->layers[0].digest));
  EXPECT_EQ(store_->Remove("app:2", false).status().code(), StatusCode::kNotFound);
}

TEST_F(ImageStoreTest, ConcurrentProcessesDoNotLoseTags) {
  auto a = Import(SimpleTar(), "app:base");
  ASSERT_TRUE(a.ok());
  constexpr int kProcs = 3, kTags = 20;
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto s = ImageStore::Open(tmp_.path() + "/root");
      for (int i = 0; i < kTags && s.ok(); ++i) {
        if (!s->Tag(a->manifest, "app:p" + std::to_string(p) + "-" + std::to_string(i)).ok())
          ::_exit(1);
      }
      ::_exit(s.ok() ? 0 : 1);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  auto image = store_->Resolve("app:base");
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(image->tags.size(), 1u + kProcs * kTags);
}

TEST_F(ImageStoreTest, SaveLoadRoundTripKeepsDigest) {
  auto a = Import(SimpleTar(), "app:1");
  ASSERT_TRUE(a.ok());
  std::string archive = tmp_.path() + "/app.tar";
  ASSERT_TRUE(SaveArchive(*store_, {"app:1"}, archive).ok());
  auto other = ImageStore::Open(tmp_.path() + "/other");
  ASSERT_TRUE(other.ok());
  auto loaded = LoadArchive(*other, archive);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].reference, "app:1");
  EXPECT_EQ((*loaded)[0].manifest_digest, a->manifest.digest);
  auto r = other->Resolve("app:1");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(other->LayerDirs(*r).ok());
  EXPECT_EQ(ListTree(tmp_.path() + "/other/tmp"), std::vector<std::string>{});
}

TEST_F(ImageStoreTest, SaveRefusesACorruptBlobAndLeavesNoFile) {
  auto a = Import(SimpleTar(), "app:1");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(WriteFile(store_->BlobPath(a->layers[0].digest), "garbage").ok());
  std::string archive = tmp_.path() + "/app.tar";
  Status st = SaveArchive(*store_, {"app:1"}, archive);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(a->layers[0].digest), std::string::npos) << st.message();
  EXPECT_FALSE(PathExists(archive));
  for (const std::string& p : ListTree(tmp_.path()))
    EXPECT_EQ(p.find(".tmp-"), std::string::npos) << p;
}

// An OCI layout written by hand, so each part can be broken on purpose.
class LoadTest : public ImageStoreTest {
 protected:
  struct Layout {
    std::vector<TarEntry> entries;
    std::string manifest_digest;
  };

  Layout MakeLayout(std::string config = "", std::string manifest = "",
                    std::string manifest_media = std::string(kMediaTypeManifest)) {
    std::string layer = MakeTar({{"hello", TarEntry::kFile, "hi"}}, Compression::kGzip);
    std::string diff = DigestOf(MakeTar({{"hello", TarEntry::kFile, "hi"}}));
    if (config.empty()) {
      config = nlohmann::json{{"architecture", HostArchitecture()},
                              {"os", "linux"},
                              {"rootfs", {{"type", "layers"}, {"diff_ids", {diff}}}}}
                   .dump();
    }
    if (manifest.empty()) {
      manifest =
          nlohmann::json{
              {"schemaVersion", 2},
              {"mediaType", kMediaTypeManifest},
              {"config",
               Descriptor{
                   std::string(kMediaTypeConfig), DigestOf(config), (int64_t)config.size(), {}}
                   .ToJson()},
              {"layers",
               {Descriptor{
                   std::string(kMediaTypeLayerGzip), DigestOf(layer), (int64_t)layer.size(), {}}
                    .ToJson()}}}
              .dump();
    }
    Descriptor md{manifest_media,
                  DigestOf(manifest),
                  (int64_t)manifest.size(),
                  {{std::string(kAnnotationRefName), "loaded:1"}}};
    nlohmann::json index = {{"schemaVersion", 2}, {"manifests", {md.ToJson()}}};
    Layout l;
    l.manifest_digest = md.digest;
    l.entries = {{"oci-layout", TarEntry::kFile, R"({"imageLayoutVersion":"1.0.0"})"},
                 {"index.json", TarEntry::kFile, index.dump()},
                 {"blobs/sha256/" + DigestHex(DigestOf(config)), TarEntry::kFile, config},
                 {"blobs/sha256/" + DigestHex(DigestOf(layer)), TarEntry::kFile, layer},
                 {"blobs/sha256/" + DigestHex(md.digest), TarEntry::kFile, manifest}};
    return l;
  }

  Result<std::vector<LoadedImage>> Load(const std::vector<TarEntry>& entries,
                                        const std::string& name = "in.tar",
                                        const LoadOptions& options = {}) {
    std::string path = tmp_.path() + "/" + name;
    RETURN_IF_ERROR(WriteFile(path, MakeTar(entries)));
    return LoadArchive(*store_, path, options);
  }

  // A manifest (with its config and a one-file layer) for `arch`, as layout blob entries; its
  // descriptor in `desc`.
  std::vector<TarEntry> Manifest(const std::string& arch, Descriptor* desc,
                                 std::string layer_media = std::string(kMediaTypeLayerGzip)) {
    std::string layer = MakeTar({{"arch", TarEntry::kFile, arch}}, Compression::kGzip);
    std::string diff = DigestOf(MakeTar({{"arch", TarEntry::kFile, arch}}));
    std::string config = nlohmann::json{{"architecture", arch},
                                        {"os", "linux"},
                                        {"rootfs", {{"type", "layers"}, {"diff_ids", {diff}}}}}
                             .dump();
    std::string manifest =
        nlohmann::json{
            {"schemaVersion", 2},
            {"mediaType", kMediaTypeManifest},
            {"config",
             Descriptor{std::string(kMediaTypeConfig), DigestOf(config), (int64_t)config.size(), {}}
                 .ToJson()},
            {"layers",
             {Descriptor{layer_media, DigestOf(layer), (int64_t)layer.size(), {}}.ToJson()}}}
            .dump();
    *desc = Descriptor{
        std::string(kMediaTypeManifest), DigestOf(manifest), (int64_t)manifest.size(), {}};
    return {{"blobs/sha256/" + DigestHex(DigestOf(config)), TarEntry::kFile, config},
            {"blobs/sha256/" + DigestHex(DigestOf(layer)), TarEntry::kFile, layer},
            {"blobs/sha256/" + DigestHex(desc->digest), TarEntry::kFile, manifest}};
  }

  void SetUp() override {
    ImageStoreTest::SetUp();
    auto keep = Import(SimpleTar(), "keep:1");
    ASSERT_TRUE(keep.ok());
  }

  // The repository still works and still has only what it had.
  void ExpectStoreIntact() {
    EXPECT_TRUE(store_->Resolve("keep:1").ok());
    EXPECT_EQ(store_->Resolve("loaded:1").status().code(), StatusCode::kNotFound);
    auto list = store_->List();
    ASSERT_TRUE(list.ok());
    EXPECT_TRUE(list->broken.empty());
  }
};

TEST_F(LoadTest, GoodLayoutLoads) {
  Layout l = MakeLayout();
  auto r = Load(l.entries);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)[0].manifest_digest, l.manifest_digest);
  EXPECT_TRUE(store_->Resolve("loaded:1").ok());
}

TEST_F(LoadTest, DigestMismatchIsNamed) {
  Layout l = MakeLayout();
  std::string layer_path = l.entries[3].path;
  l.entries[3].data[l.entries[3].data.size() - 5] ^= 1;
  auto r = Load(l.entries);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(layer_path.substr(13)), std::string::npos)
      << r.status().message();
  ExpectStoreIntact();
}

TEST_F(LoadTest, MissingBlobIsNamed) {
  Layout l = MakeLayout();
  std::string config = l.entries[2].path.substr(13);
  l.entries.erase(l.entries.begin() + 2);
  auto r = Load(l.entries);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(config), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("missing"), std::string::npos);
  ExpectStoreIntact();
}

TEST_F(LoadTest, BadJsonAndMediaTypesAreErrors) {
  auto r = Load(MakeLayout("{not json").entries);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not valid JSON"), std::string::npos) << r.status().message();
  ExpectStoreIntact();
  r = Load(MakeLayout("", "", "application/x-nonsense").entries);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("application/x-nonsense"), std::string::npos);
  ExpectStoreIntact();
  Layout l = MakeLayout();
  l.entries[1].data = "[]";
  r = Load(l.entries);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("index.json"), std::string::npos) << r.status().message();
  ExpectStoreIntact();
}

TEST_F(LoadTest, WrongConfigMediaTypeIsNamed) {
  Layout good = MakeLayout();
  // Rewrite the manifest with a config descriptor of the wrong media type.
  auto manifest = nlohmann::json::parse(good.entries[4].data);
  manifest["config"]["mediaType"] = "application/octet-stream";
  auto r = Load(MakeLayout("", manifest.dump()).entries);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("application/octet-stream"), std::string::npos)
      << r.status().message();
  ExpectStoreIntact();
}

TEST_F(LoadTest, ImageIndexPicksThisPlatform) {
  Layout l = MakeLayout();
  Descriptor manifest{std::string(kMediaTypeManifest),
                      l.manifest_digest,
                      static_cast<int64_t>(l.entries[4].data.size()),
                      {}};
  nlohmann::json other = manifest.ToJson();
  other["digest"] = "sha256:" + std::string(64, '0');
  other["platform"] = {{"os", "linux"}, {"architecture", "s390x-not-this-one"}};
  nlohmann::json mine = manifest.ToJson();
  mine["platform"] = {{"os", "linux"}, {"architecture", HostArchitecture()}};
  std::string nested = nlohmann::json{
      {"schemaVersion", 2},
      {"mediaType", kMediaTypeIndex},
      {"manifests",
       {other, mine}}}.dump();
  Descriptor nd{std::string(kMediaTypeIndex),
                DigestOf(nested),
                static_cast<int64_t>(nested.size()),
                {{std::string(kAnnotationRefName), "loaded:1"}}};
  l.entries[1].data = nlohmann::json{{"schemaVersion", 2}, {"manifests", {nd.ToJson()}}}.dump();
  l.entries.push_back({"blobs/sha256/" + DigestHex(nd.digest), TarEntry::kFile, nested});
  auto r = Load(l.entries);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)[0].manifest_digest, l.manifest_digest);
  EXPECT_EQ((*r)[0].reference, "loaded:1");
}

TEST_F(LoadTest, StringSchemaVersionIsAnError) {
  Layout good = MakeLayout();
  auto manifest = nlohmann::json::parse(good.entries[4].data);
  manifest["schemaVersion"] = "2";
  auto r = Load(MakeLayout("", manifest.dump()).entries);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("schemaVersion is not 2"), std::string::npos)
      << r.status().message();
  ExpectStoreIntact();
}

TEST_F(LoadTest, NumericManifestMediaTypeIsAnError) {
  Layout good = MakeLayout();
  auto manifest = nlohmann::json::parse(good.entries[4].data);
  manifest["mediaType"] = 5;
  auto r = Load(MakeLayout("", manifest.dump()).entries);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("mediaType is not a string"), std::string::npos)
      << r.status().message();
  ExpectStoreIntact();
}

TEST_F(LoadTest, NonObjectPlatformInIndexIsIgnored) {
  Layout l = MakeLayout();
  nlohmann::json mine = Descriptor{
      std::string(kMediaTypeManifest),
      l.manifest_digest,
      static_cast<int64_t>(l.entries[4].data.size()),
      {}}.ToJson();
  mine["platform"] = "linux/" + HostArchitecture();
  std::string nested =
      nlohmann::json{{"schemaVersion", 2}, {"mediaType", kMediaTypeIndex}, {"manifests", {mine}}}
          .dump();
  Descriptor nd{std::string(kMediaTypeIndex),
                DigestOf(nested),
                static_cast<int64_t>(nested.size()),
                {{std::string(kAnnotationRefName), "loaded:1"}}};
  l.entries[1].data = nlohmann::json{{"schemaVersion", 2}, {"manifests", {nd.ToJson()}}}.dump();
  l.entries.push_back({"blobs/sha256/" + DigestHex(nd.digest), TarEntry::kFile, nested});
  auto r = Load(l.entries);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)[0].manifest_digest, l.manifest_digest);
}

TEST_F(LoadTest, HugeNameAnnotationIsAnError) {
  Layout l = MakeLayout();
  auto index = nlohmann::json::parse(l.entries[1].data);
  index["manifests"][0]["annotations"][std::string(kAnnotationRefName)] =
      std::string(200 * 1024, 'a') + ":1";
  l.entries[1].data = index.dump();
  auto r = Load(l.entries);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("longer than"), std::string::npos);
  EXPECT_LT(r.status().message().size(), 1000u);
  ExpectStoreIntact();
}

TEST_F(LoadTest, HugeRepoTagIsAnError) {
  std::string layer = MakeTar({{"hello", TarEntry::kFile, "hi"}});
  std::string config =
      nlohmann::json{{"architecture", "amd64"},
                     {"os", "linux"},
                     {"rootfs", {{"type", "layers"}, {"diff_ids", {DigestOf(layer)}}}}}
          .dump();
  nlohmann::json manifest = {{{"Config", "config.json"},
                              {"RepoTags", {std::string(200 * 1024, 'a') + ":1"}},
                              {"Layers", {"layer.tar"}}}};
  auto r = Load({{"manifest.json", TarEntry::kFile, manifest.dump()},
                 {"config.json", TarEntry::kFile, config},
                 {"layer.tar", TarEntry::kFile, layer}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("longer than"), std::string::npos);
  EXPECT_LT(r.status().message().size(), 1000u);
}

TEST_F(LoadTest, FifoEntriesAreRefusedNotWaitedOn) {
  for (size_t victim : {size_t{1}, size_t{4}}) {  // index.json, then the manifest blob
    Layout l = MakeLayout();
    l.entries[victim] = {l.entries[victim].path, TarEntry::kFifo};
    // In a child, so a hang fails the test (by the alarm) instead of stalling the suite.
    pid_t pid = ::fork();
    if (pid == 0) {
      ::alarm(10);
      auto r = Load(l.entries);
      bool named = !r.ok() && r.status().message().find("not a regular file") != std::string::npos;
      ::_exit(named ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "entry " << l.entries[victim].path << ": status " << status;
  }
  ExpectStoreIntact();
}

TEST_F(LoadTest, SymlinkedBlobCannotReadHostFiles) {
  Layout l = MakeLayout();
  l.entries[2] = {l.entries[2].path, TarEntry::kSymlink, "", "", 0777};
  l.entries[2].link = "/etc/passwd";
  auto r = Load(l.entries);
  ASSERT_FALSE(r.ok());
  ExpectStoreIntact();
}

TEST_F(LoadTest, DockerArchiveLoadsAndKeepsImageId) {
  std::string layer = MakeTar({{"hello", TarEntry::kFile, "hi"}});
  std::string config =
      nlohmann::json{{"architecture", "amd64"},
                     {"os", "linux"},
                     {"config", {{"Cmd", {"/hello"}}}},
                     {"rootfs", {{"type", "layers"}, {"diff_ids", {DigestOf(layer)}}}}}
          .dump();
  std::string config_name = DigestHex(DigestOf(config)) + ".json";
  nlohmann::json manifest = {{{"Config", config_name},
                              {"RepoTags", {"docker.io/library/dock:1"}},
                              {"Layers", {"abc/layer.tar", "def/layer.tar"}}}};
  manifest[0]["Layers"] = {"abc/layer.tar"};
  auto r = Load({{"manifest.json", TarEntry::kFile, manifest.dump()},
                 {config_name, TarEntry::kFile, config},
                 {"abc/layer.tar", TarEntry::kFile, layer}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto image = store_->Resolve("dock:1");
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(image->config_digest, DigestOf(config));
  EXPECT_EQ(image->config.cmd, std::vector<std::string>{"/hello"});
  // A layer that does not match the config's diff_id is refused.
  r = Load({{"manifest.json", TarEntry::kFile, manifest.dump()},
            {config_name, TarEntry::kFile, config},
            {"abc/layer.tar", TarEntry::kFile, MakeTar({{"other", TarEntry::kFile, "x"}})}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("abc/layer.tar"), std::string::npos) << r.status().message();
}

TEST_F(LoadTest, BareTagRefNameGoesWithTheArchiveName) {
  // skopeo's oci:DIR:latest and umoci name images by tag alone.
  Layout l = MakeLayout();
  auto index = nlohmann::json::parse(l.entries[1].data);
  index["manifests"][0]["annotations"][std::string(kAnnotationRefName)] = "3.19";
  l.entries[1].data = index.dump();
  auto r = Load(l.entries, "Alpine.tar");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].reference, "alpine:3.19");
  EXPECT_TRUE(store_->Resolve("alpine:3.19").ok());
}

TEST_F(LoadTest, SeveralManifestsUnderOneNameLoadThePlatformsOne) {
  // A flat index: this platform's image first, another's after it, then an attestation manifest
  // (BuildKit's provenance, whose layer is not an image layer) under the same name.
  std::string host = HostArchitecture();
  std::string other = host == "arm64" ? "amd64" : "arm64";
  Descriptor mine, theirs, attestation;
  Layout l = MakeLayout();
  l.entries.resize(2);
  for (TarEntry& e : Manifest(host, &mine)) l.entries.push_back(e);
  for (TarEntry& e : Manifest(other, &theirs)) l.entries.push_back(e);
  for (TarEntry& e : Manifest("unknown", &attestation, "application/vnd.in-toto+json"))
    l.entries.push_back(e);
  auto named = [](Descriptor d) {
    d.annotations[std::string(kAnnotationRefName)] = "multi:1";
    return d.ToJson();
  };
  nlohmann::json att = named(attestation);
  att["annotations"]["vnd.docker.reference.type"] = "attestation-manifest";
  att["platform"] = {{"os", "unknown"}, {"architecture", "unknown"}};
  nlohmann::json theirs_entry = named(theirs);
  theirs_entry["platform"] = {{"os", "linux"}, {"architecture", other}};
  // This platform's entry names no platform: its config does.
  l.entries[1].data =
      nlohmann::json{{"schemaVersion", 2}, {"manifests", {named(mine), theirs_entry, att}}}.dump();
  auto r = Load(l.entries);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].manifest_digest, mine.digest);
  EXPECT_EQ(store_->Resolve("multi:1")->manifest.digest, mine.digest);
  // --platform chooses the other one.
  r = Load(l.entries, "in.tar", {.platform = "linux/" + other});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(store_->Resolve("multi:1")->manifest.digest, theirs.digest);
  // A platform none of them is for is an error naming it; a malformed one too.
  r = Load(l.entries, "in.tar", {.platform = "linux/s390x"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("none is for linux/s390x"), std::string::npos)
      << r.status().message();
  r = Load(l.entries, "in.tar", {.platform = "linux"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "--platform 'linux': expected OS/ARCH[/VARIANT]");
}

TEST_F(LoadTest, SkopeoDirLayoutLoads) {
  // `skopeo copy ... dir:D`: manifest.json is the manifest itself, blobs are named by hex.
  Layout l = MakeLayout();
  std::string dir = tmp_.path() + "/skopeo-dir";
  ASSERT_TRUE(MakeDirs(dir).ok());
  ASSERT_TRUE(WriteFile(dir + "/version", "Directory Transport Version: 1.1\n").ok());
  ASSERT_TRUE(WriteFile(dir + "/manifest.json", l.entries[4].data).ok());
  for (int i : {2, 3}) {
    ASSERT_TRUE(WriteFile(dir + "/" + l.entries[i].path.substr(13), l.entries[i].data).ok());
  }
  auto r = LoadArchive(*store_, dir);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].manifest_digest, l.manifest_digest);
  EXPECT_EQ((*r)[0].reference, "");
  auto image = store_->Resolve(l.manifest_digest);
  ASSERT_TRUE(image.ok()) << image.status().message();
  EXPECT_TRUE(store_->LayerDirs(*image).ok());
  // A missing blob is named, not "manifest.json is not an array".
  ASSERT_EQ(::unlink((dir + "/" + l.entries[3].path.substr(13)).c_str()), 0);
  auto other = ImageStore::Open(tmp_.path() + "/other");
  ASSERT_TRUE(other.ok());
  r = LoadArchive(*other, dir);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("is missing from the archive"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace barge::oci
