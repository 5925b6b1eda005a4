#include "runtime/trash.h"

#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "base/file_util.h"

namespace barge::runtime {
namespace {

size_t CountEntries(const std::string& dir) {
  size_t n = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n;
}

// A container-like tree: files, nested and unreadable directories, a big file.
void MakeTree(const std::string& root) {
  ASSERT_TRUE(MakeDirs(root + "/upper/etc/deep/er").ok());
  ASSERT_TRUE(MakeDirs(root + "/work/work").ok());
  ASSERT_TRUE(MakeDirs(root + "/rootfs").ok());
  ASSERT_TRUE(WriteFile(root + "/config.json", "{}").ok());
  ASSERT_TRUE(WriteFile(root + "/upper/etc/big", std::string(1 << 20, 'x')).ok());
  ASSERT_EQ(::symlink("/etc/passwd", (root + "/upper/etc/link").c_str()), 0);
  ASSERT_EQ(::chmod((root + "/upper/etc/deep").c_str(), 0), 0);
}

TEST(TrashTest, TreesGoAndTheHeapStaysSmall) {
  auto dir = TempDir::Make();
  ASSERT_TRUE(dir.ok());
  std::string heap = dir->path() + "/.heap";
  for (int i = 0; i < 10; ++i) {
    std::string tree = dir->path() + "/c" + std::to_string(i);
    ASSERT_NO_FATAL_FAILURE(MakeTree(tree));
    Status st = RemoveTreeThroughHeap(tree, heap);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_FALSE(PathExists(tree));
    // Only empty directories wait, and fewer than a batch of them.
    EXPECT_LT(CountEntries(heap), kHeapBatch);
  }
  EXPECT_EQ(CountEntries(dir->path()), 0u);  // .heap only
  ASSERT_TRUE(EmptyHeap(heap).ok());
  EXPECT_EQ(CountEntries(heap), 0u);
  EXPECT_TRUE(RemoveTreeThroughHeap(dir->path() + "/missing", heap).ok());
}

TEST(TrashTest, MountPointsAreNotCrossed) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting needs root";
  auto dir = TempDir::Make();
  ASSERT_TRUE(dir.ok());
  std::string tree = dir->path() + "/c";
  ASSERT_TRUE(MakeDirs(tree + "/mnt").ok());
  ASSERT_EQ(::mount("tmpfs", (tree + "/mnt").c_str(), "tmpfs", 0, nullptr), 0);
  ASSERT_TRUE(WriteFile(tree + "/mnt/kept", "x").ok());
  Status st = RemoveTreeThroughHeap(tree, dir->path() + "/.heap");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("mount point"), std::string::npos) << st.message();
  EXPECT_TRUE(PathExists(tree + "/mnt/kept"));
  ASSERT_EQ(::umount(((tree + "/mnt").c_str())), 0);
}

}  // namespace
}  // namespace barge::runtime
