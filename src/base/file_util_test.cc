#include "base/file_util.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>

namespace barge {
namespace {

TEST(FileUtilTest, AtomicWriteThenReadBack) {
  auto dir = TempDir::Make();
  ASSERT_TRUE(dir.ok()) << dir.status().message();
  std::string path = dir->path() + "/a/b/file";
  ASSERT_TRUE(MakeDirs(dir->path() + "/a/b").ok());
  ASSERT_TRUE(WriteFileAtomic(path, "hello").ok());
  ASSERT_TRUE(WriteFileAtomic(path, "world").ok());
  auto data = ReadFile(path);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(*data, "world");
}

TEST(FileUtilTest, ReadMissingFileNamesThePath) {
  auto data = ReadFile("/nonexistent/barge-file");
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().message(), "open /nonexistent/barge-file: No such file or directory");
}

TEST(FileUtilTest, TempDirRemovesItsTree) {
  std::string path;
  {
    auto dir = TempDir::Make();
    ASSERT_TRUE(dir.ok());
    path = dir->path();
    ASSERT_TRUE(MakeDirs(path + "/x/y").ok());
    ASSERT_TRUE(WriteFile(path + "/x/y/z", "1").ok());
    ASSERT_EQ(::symlink("/etc", (path + "/x/link").c_str()), 0);
  }
  EXPECT_FALSE(PathExists(path));
  EXPECT_TRUE(PathExists("/etc/hostname") || PathExists("/etc/passwd"));  // link not followed
}

TEST(FileUtilTest, RemoveTreeRefusesToCrossAMountPoint) {
  auto dir = TempDir::Make();
  ASSERT_TRUE(dir.ok());
  std::string mnt = dir->path() + "/mnt";
  ASSERT_TRUE(MakeDirs(mnt).ok());
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, nullptr) != 0) {
    GTEST_SKIP() << "mounting needs root";
  }
  ASSERT_TRUE(WriteFile(mnt + "/keep", "data").ok());
  Status st = RemoveTree(dir->path());
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("mount point"), std::string::npos) << st.message();
  EXPECT_TRUE(PathExists(mnt + "/keep"));
  ASSERT_EQ(::umount2(mnt.c_str(), MNT_DETACH), 0);
}

}  // namespace
}  // namespace barge
