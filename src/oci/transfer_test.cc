// The progress events of import, save and load: what a display is told, and how often.
#include "oci/transfer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>

#include "base/file_util.h"
#include "oci/test_util.h"

namespace barge::oci {
namespace {

using Kind = TransferEvent::Kind;
using testing::MakeTar;
using testing::TarEntry;

int64_t SizeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<int64_t>(st.st_size);
}

class TransferProgressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::Make("barge-transfer-test-");
    ASSERT_TRUE(t.ok());
    tmp_ = std::move(*t);
    // 3 MiB that gzip cannot shrink: the layer stays larger than kProgressStep.
    std::string data(3 << 20, '\0');
    uint64_t x = 88172645463325252ULL;
    for (char& c : data) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      c = static_cast<char>(x);
    }
    rootfs_ = tmp_.path() + "/rootfs.tar";
    ASSERT_TRUE(WriteFile(rootfs_, MakeTar({{"data", TarEntry::kFile, data}})).ok());
  }

  ImageStore Store(const std::string& name) {
    auto s = ImageStore::Open(tmp_.path() + "/" + name);
    EXPECT_TRUE(s.ok()) << s.status().message();
    return std::move(*s);
  }

  TransferProgress Record() {
    events_.clear();
    return [this](const TransferEvent& e) { events_.push_back(e); };
  }

  // The blob events of `digest` ("": those named by `what` alone).
  std::vector<TransferEvent> Of(const std::string& digest) const {
    std::vector<TransferEvent> out;
    for (const TransferEvent& e : events_) {
      if (e.kind != Kind::kImage && e.digest == digest) out.push_back(e);
    }
    return out;
  }

  // kBlob, kBytes at least kProgressStep apart (the last excepted), ending at `size`, one kDone.
  void ExpectCopied(const std::string& digest, int64_t size, bool config) {
    std::vector<TransferEvent> ev = Of(digest);
    ASSERT_GE(ev.size(), 2u) << digest;
    EXPECT_EQ(ev.front().kind, Kind::kBlob) << digest;
    EXPECT_EQ(ev.back().kind, Kind::kDone) << digest;
    EXPECT_EQ(ev.back().config, config) << digest;
    int64_t last = 0;
    int bytes = 0;
    for (size_t i = 1; i + 1 < ev.size(); ++i) {
      ASSERT_EQ(ev[i].kind, Kind::kBytes) << digest;
      EXPECT_EQ(ev[i].total, size);
      if (ev[i].done != size) {
        EXPECT_GE(ev[i].done - last, kProgressStep) << digest;
      }
      last = ev[i].done;
      ++bytes;
    }
    if (size > kProgressStep) {
      EXPECT_GE(bytes, 1) << digest;
    }
    EXPECT_LE(bytes, size / kProgressStep + 1) << digest;
  }

  Image Import(const ImageStore& store, TransferProgress progress = nullptr) {
    auto fd = OpenFile(rootfs_, O_RDONLY);
    EXPECT_TRUE(fd.ok());
    ImportOptions options;
    options.what = "rootfs.tar";
    options.progress = std::move(progress);
    auto image = ImportRootfs(store, fd->get(), "demo:1", options);
    EXPECT_TRUE(image.ok()) << image.status().message();
    return *image;
  }

  TempDir tmp_;
  std::string rootfs_;
  std::vector<TransferEvent> events_;
};

TEST_F(TransferProgressTest, ImportNamesTheLayerByItsInputUntilItsDigestIsKnown) {
  ImageStore store = Store("root");
  Image image = Import(store, Record());
  ASSERT_FALSE(events_.empty());
  EXPECT_EQ(events_.front().kind, Kind::kImage);
  EXPECT_EQ(events_.front().what, "demo:1");
  std::vector<TransferEvent> reading = Of("");
  ASSERT_GE(reading.size(), 2u);
  EXPECT_EQ(reading.front().kind, Kind::kBlob);
  int64_t tar_size = SizeOf(rootfs_);
  for (const TransferEvent& e : reading) {
    EXPECT_EQ(e.what, "rootfs.tar");
    EXPECT_EQ(e.total, tar_size);
  }
  EXPECT_EQ(reading.back().kind, Kind::kBytes);
  EXPECT_EQ(reading.back().done, tar_size);
  std::vector<TransferEvent> layer = Of(image.layers.at(0).digest);
  ASSERT_EQ(layer.size(), 1u);
  EXPECT_EQ(layer[0].kind, Kind::kDone);
  EXPECT_EQ(layer[0].what, "rootfs.tar");  // the row it finishes
  std::vector<TransferEvent> config = Of(image.config_digest);
  ASSERT_EQ(config.size(), 1u);
  EXPECT_TRUE(config[0].config);
}

TEST_F(TransferProgressTest, SaveAndLoadReportConfigAndLayersOnce) {
  ImageStore store = Store("root");
  Image image = Import(store);
  const Descriptor& layer = image.layers.at(0);
  SaveOptions save;
  save.progress = Record();
  // The same image twice: its blobs go into the archive, and are reported, once.
  ASSERT_TRUE(SaveArchive(store, {"demo:1", "demo:1"}, tmp_.path() + "/twice.tar", save).ok());
  ASSERT_FALSE(events_.empty());
  EXPECT_EQ(events_.front().kind, Kind::kImage);
  EXPECT_EQ(events_.front().what, "demo:1");
  ExpectCopied(layer.digest, layer.size, false);
  ExpectCopied(image.config_digest, SizeOf(store.BlobPath(image.config_digest)), true);
  EXPECT_TRUE(Of(image.manifest.digest).empty());  // manifests are not shown

  std::string archive = tmp_.path() + "/demo.tar";
  ASSERT_TRUE(SaveArchive(store, {"demo:1"}, archive).ok());
  ImageStore other = Store("other");
  LoadOptions load;
  load.progress = Record();
  auto loaded = LoadArchive(other, archive, load);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  // First the archive as it is read, named by its path.
  int64_t archive_size = SizeOf(archive);
  ASSERT_FALSE(events_.empty());
  EXPECT_EQ(events_.front().kind, Kind::kBlob);
  EXPECT_EQ(events_.front().what, archive);
  EXPECT_EQ(events_.front().total, archive_size);
  ExpectCopied("", archive_size, false);
  ExpectCopied(layer.digest, layer.size, false);
  ExpectCopied(image.config_digest, SizeOf(store.BlobPath(image.config_digest)), true);

  // Loaded again: nothing is copied, config and layer are there already.
  load.progress = Record();
  ASSERT_TRUE(LoadArchive(other, archive, load).ok());
  for (const std::string& d : {layer.digest, image.config_digest}) {
    std::vector<TransferEvent> ev = Of(d);
    ASSERT_EQ(ev.size(), 1u) << d;
    EXPECT_EQ(ev[0].kind, Kind::kPresent) << d;
  }
}

}  // namespace
}  // namespace barge::oci
