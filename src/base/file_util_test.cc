#include "base/file_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

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

TEST(FileUtilTest, ReadFileLimitedRefusesDevicesDirectoriesAndLongFiles) {
  auto dir = TempDir::Make();
  ASSERT_TRUE(dir.ok());
  std::string path = dir->path() + "/f";
  ASSERT_TRUE(WriteFile(path, "12345").ok());
  auto ok = ReadFileLimited(path, 5);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(*ok, "12345");
  auto longer = ReadFileLimited(path, 4);
  ASSERT_FALSE(longer.ok());
  EXPECT_EQ(longer.status().message(), path + " is larger than the limit of 4 bytes");
  auto zero = ReadFileLimited("/dev/zero", 1 << 20);
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.status().message(), "/dev/zero is not a regular file or a pipe");
  auto d = ReadFileLimited(dir->path(), 1 << 20);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), dir->path() + " is a directory, not a file");
}

TEST(FileUtilTest, ReadFileLimitedReadsAPipeUpToTheLimit) {
  auto dir = TempDir::Make();
  ASSERT_TRUE(dir.ok());
  std::string fifo = dir->path() + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // A writer that never stops: the reader must give up after the limit.
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int fd = ::open(fifo.c_str(), O_WRONLY);
    char buf[4096] = {};
    while (::write(fd, buf, sizeof buf) > 0) {
    }
    ::_exit(0);
  }
  auto data = ReadFileLimited(fifo, 100000);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().message(), fifo + " is larger than the limit of 100000 bytes");
}

TEST(FileUtilTest, ReadRegularFileLimitedRefusesPipesWithoutWaitingForAWriter) {
  auto dir = TempDir::Make();
  ASSERT_TRUE(dir.ok());
  std::string fifo = dir->path() + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto data = ReadRegularFileLimited(fifo, 100);  // no writer: would block if opened for reading
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().message(), fifo + " is not a regular file");
  ASSERT_TRUE(WriteFile(dir->path() + "/f", "abc").ok());
  auto file = ReadRegularFileLimited(dir->path() + "/f", 3);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(*file, "abc");
  EXPECT_FALSE(ReadRegularFileLimited(dir->path() + "/f", 2).ok());
  EXPECT_FALSE(ReadRegularFileLimited("/dev/zero", 100).ok());
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
