// Two-phase commit of file sinks: what readers see, and recovery after a crash at any point of a
// commit.
#include "pipeline/transactional_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <dirent.h>

#include "base/file_util.h"

namespace barge::pipeline {
namespace {

std::string Read(const std::string& path) {
  Result<std::string> s = ReadFile(path);
  return s.ok() ? *s : "<" + s.status().message() + ">";
}

int Parts(const std::string& dir) {
  int n = 0;
  DIR* d = ::opendir(dir.c_str());
  while (dirent* e = ::readdir(d))
    n += std::string(e->d_name).find(".barge-part-") != std::string::npos;
  ::closedir(d);
  return n;
}

TEST(TransactionalFile, ReadersSeeOnlyCommittedOutput) {
  Result<TempDir> dir = TempDir::Make();
  ASSERT_TRUE(dir.ok());
  const std::string path = dir->path() + "/out.txt";
  ASSERT_TRUE(WriteFile(path, "old content").ok());
  auto f = TransactionalFile::Open(path, nullptr);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(Read(path), "");  // a fresh start empties the output
  ASSERT_TRUE((*f)->Write("abc").ok());
  stream::StateWriter s1;
  ASSERT_TRUE((*f)->Seal(1, s1).ok());
  ASSERT_TRUE((*f)->Write("def").ok());
  EXPECT_EQ(Read(path), "");
  ASSERT_TRUE((*f)->Commit(1).ok());
  EXPECT_EQ(Read(path), "abc");
  stream::StateWriter s2;
  ASSERT_TRUE((*f)->Seal(2, s2).ok());
  EXPECT_EQ(Read(path), "abc");
  ASSERT_TRUE((*f)->Commit(2).ok());
  EXPECT_EQ(Read(path), "abcdef");
  EXPECT_EQ(Parts(dir->path()), 0);
}

TEST(TransactionalFile, RecoveryFinishesAnInterruptedCommitAndDropsLaterOutput) {
  Result<TempDir> dir = TempDir::Make();
  ASSERT_TRUE(dir.ok());
  const std::string path = dir->path() + "/out.txt";
  std::string s1, s2;
  {
    auto f = TransactionalFile::Open(path, nullptr);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Write("abc").ok());
    stream::StateWriter w1;
    ASSERT_TRUE((*f)->Seal(1, w1).ok());
    s1 = w1.bytes();
    ASSERT_TRUE((*f)->Write("defg").ok());
    stream::StateWriter w2;
    ASSERT_TRUE((*f)->Seal(2, w2).ok());
    s2 = w2.bytes();
    ASSERT_TRUE((*f)->Write("uncommitted").ok());
    // Crash: checkpoint 2 was written but nothing committed.
  }
  {
    auto f = TransactionalFile::Open(path, &s2);
    ASSERT_TRUE(f.ok()) << f.status().message();
    EXPECT_EQ(Read(path), "abcdefg");
    EXPECT_EQ(Parts(dir->path()), 0);  // the uncommitted part is gone
  }
  // Falling back to checkpoint 1 (2 found corrupt) cuts the output back.
  {
    auto f = TransactionalFile::Open(path, &s1);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(Read(path), "abc");
    ASSERT_TRUE((*f)->Write("xy").ok());
    stream::StateWriter w;
    ASSERT_TRUE((*f)->Seal(3, w).ok());
    ASSERT_TRUE((*f)->Commit(3).ok());
    EXPECT_EQ(Read(path), "abcxy");
  }
}

TEST(TransactionalFile, RecoveryAfterAPartialAppend) {
  Result<TempDir> dir = TempDir::Make();
  ASSERT_TRUE(dir.ok());
  const std::string path = dir->path() + "/out.txt";
  std::string s2;
  {
    auto f = TransactionalFile::Open(path, nullptr);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Write("abc").ok());
    stream::StateWriter w1;
    ASSERT_TRUE((*f)->Seal(1, w1).ok());
    ASSERT_TRUE((*f)->Write("defg").ok());
    stream::StateWriter w2;
    ASSERT_TRUE((*f)->Seal(2, w2).ok());
    s2 = w2.bytes();
  }
  // The crash came in the middle of appending: "abcde" of "abcdefg".
  ASSERT_TRUE(WriteFile(path, "abcde").ok());
  auto f = TransactionalFile::Open(path, &s2);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(Read(path), "abcdefg");
}

TEST(TransactionalFile, OutputShorterThanCommittedIsRefused) {
  Result<TempDir> dir = TempDir::Make();
  ASSERT_TRUE(dir.ok());
  const std::string path = dir->path() + "/out.txt";
  std::string s2;
  {
    auto f = TransactionalFile::Open(path, nullptr);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Write("abc").ok());
    stream::StateWriter w1;
    ASSERT_TRUE((*f)->Seal(1, w1).ok());
    ASSERT_TRUE((*f)->Commit(1).ok());
    ASSERT_TRUE((*f)->Write("d").ok());
    stream::StateWriter w2;
    ASSERT_TRUE((*f)->Seal(2, w2).ok());
    s2 = w2.bytes();
  }
  ASSERT_TRUE(WriteFile(path, "a").ok());  // someone truncated the output
  auto f = TransactionalFile::Open(path, &s2);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("--fresh"), std::string::npos) << f.status().message();
}

}  // namespace
}  // namespace barge::pipeline
