#include "runtime/volumes.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "base/file_util.h"

namespace barge::runtime {
namespace {

TEST(VolumeSpecTest, ParsesNamedAndBindVolumes) {
  auto named = ParseVolumeSpec("data:/var/data:ro");
  ASSERT_TRUE(named.ok());
  EXPECT_TRUE(named->named);
  EXPECT_TRUE(named->read_only);
  EXPECT_EQ(named->source, "data");
  EXPECT_EQ(named->destination, "/var/data");
  auto bind = ParseVolumeSpec("/srv/in:/in");
  ASSERT_TRUE(bind.ok());
  EXPECT_FALSE(bind->named);
  EXPECT_FALSE(bind->read_only);
}

TEST(VolumeSpecTest, BadSpecsAreRejectedWithTheSpecQuoted) {
  for (const char* bad : {"data", "data:relative", ":/x", "data:/x:rx", "a:/b:ro:extra", "-bad:/x",
                          "data:/", "/tmp:/d/../../x", "/tmp:/d/./x", "/tmp:/d//x"}) {
    auto r = ParseVolumeSpec(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find(std::string("'") + bad + "'"), std::string::npos)
        << r.status().message();
  }
}

TEST(VolumeStoreTest, CreateListInspectRemove) {
  auto root = TempDir::Make();
  ASSERT_TRUE(root.ok());
  VolumeStore store(root->path());
  auto v = store.Create("cache");
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(v->mountpoint, root->path() + "/volumes/cache/_data");
  ASSERT_TRUE(WriteFile(v->mountpoint + "/kept", "x").ok());
  auto again = store.Create("cache");  // idempotent, data untouched
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(PathExists(v->mountpoint + "/kept"));
  auto list = store.List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, "cache");
  EXPECT_FALSE(store.Create("no/slash").ok());
  EXPECT_EQ(store.Inspect("missing").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(store.Remove("cache").ok());
  EXPECT_FALSE(PathExists(v->mountpoint));
  EXPECT_EQ(store.Remove("cache").code(), StatusCode::kNotFound);
}

TEST(VolumeStoreTest, VolumesAreNotReachableByOtherHostUsers) {
  // A container's root may leave a set-uid root program in a volume (it has CAP_FSETID and
  // CAP_CHOWN); a host user who can reach the volume's directory could run it
  // (CVE-2021-41091). Only root may enter <root>/volumes.
  auto root = TempDir::Make();
  ASSERT_TRUE(root.ok());
  ASSERT_EQ(::chmod(root->path().c_str(), 0755), 0);
  ASSERT_TRUE(VolumeStore(root->path()).Create("cache").ok());
  struct stat st {};
  ASSERT_EQ(::stat((root->path() + "/volumes").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u) << std::oct << (st.st_mode & 07777);
  // A volumes directory an older barge made open is closed too.
  ASSERT_EQ(::chmod((root->path() + "/volumes").c_str(), 0755), 0);
  ASSERT_TRUE(VolumeStore(root->path()).Create("other").ok());
  ASSERT_EQ(::stat((root->path() + "/volumes").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u) << std::oct << (st.st_mode & 07777);
}

}  // namespace
}  // namespace barge::runtime
