#include "oci/detail/build_fs.h"

#include <gtest/gtest.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "base/file_util.h"

namespace barge::oci::detail {
namespace {

TEST(BuildFsTest, PathsAreCleanedLexically) {
  EXPECT_EQ(JoinPath(SplitPath("/a/./b//c/")), "a/b/c");
  EXPECT_EQ(JoinPath(SplitPath("../../a/../b")), "b");
}

TEST(BuildFsTest, IgnoreRulesLastMatchWinsAndDirectoriesCoverTheirContent) {
  IgnoreRules rules;
  rules.Add("*.log");
  rules.Add("!keep.log");
  rules.Add("build/");
  rules.Add("**/*.o");
  EXPECT_TRUE(rules.Excluded("x.log"));
  EXPECT_FALSE(rules.Excluded("keep.log"));
  EXPECT_FALSE(rules.Excluded("sub/x.log"));  // '*' does not cross '/'
  EXPECT_TRUE(rules.Excluded("build"));
  EXPECT_TRUE(rules.Excluded("build/out/bin"));
  EXPECT_TRUE(rules.Excluded("src/deep/a.o"));
  EXPECT_FALSE(rules.Excluded("src/a.c"));
}

TEST(BuildFsTest, DoubleStarMatchesZeroOrMoreDirectories) {
  IgnoreRules rules;
  rules.Add("**/secret.env");
  rules.Add("a/**/b");
  rules.Add("logs/**");
  EXPECT_TRUE(rules.Excluded("secret.env"));
  EXPECT_TRUE(rules.Excluded("x/secret.env"));
  EXPECT_TRUE(rules.Excluded("x/y/secret.env"));
  EXPECT_FALSE(rules.Excluded("notsecret.env"));
  EXPECT_TRUE(rules.Excluded("a/b"));
  EXPECT_TRUE(rules.Excluded("a/x/y/b"));
  EXPECT_FALSE(rules.Excluded("ab"));
  EXPECT_TRUE(rules.Excluded("logs/x/y"));
  EXPECT_FALSE(rules.Excluded("logs2"));
}

TEST(BuildFsTest, CharacterClassesAndEscapes) {
  IgnoreRules rules;
  rules.Add("file[0-9].txt");
  rules.Add("\\*star");
  EXPECT_TRUE(rules.Excluded("file1.txt"));
  EXPECT_FALSE(rules.Excluded("filex.txt"));
  EXPECT_TRUE(rules.Excluded("*star"));
  EXPECT_FALSE(rules.Excluded("xstar"));
}

TEST(BuildFsTest, NegationBelowAnExcludedDirectoryIsWalkedInto) {
  IgnoreRules rules;
  rules.Add("sub");
  rules.Add("!sub/keep");
  EXPECT_TRUE(rules.Excluded("sub"));
  EXPECT_TRUE(rules.Excluded("sub/other"));
  EXPECT_FALSE(rules.Excluded("sub/keep"));
  EXPECT_TRUE(rules.MayReinclude("sub"));
  EXPECT_FALSE(rules.MayReinclude("other"));
  // Patterns that can only match at the top level never make a directory worth walking.
  rules.Add("!*.md");
  EXPECT_FALSE(rules.MayReinclude("other"));
  rules.Add("!**/keep.md");
  EXPECT_TRUE(rules.MayReinclude("other"));
}

class MergedViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::Make("barge-merged-test-");
    ASSERT_TRUE(t.ok());
    tmp_ = std::move(*t);
    lower_ = tmp_.path() + "/lower";
    upper_ = tmp_.path() + "/upper";
    ASSERT_TRUE(MakeDirs(lower_ + "/etc").ok());
    ASSERT_TRUE(MakeDirs(lower_ + "/opt/sub").ok());
    ASSERT_TRUE(MakeDirs(lower_ + "/usr/lib").ok());
    ASSERT_TRUE(
        WriteFile(lower_ + "/etc/passwd", "root:x:0:0::/:/bin/sh\nalice:x:1001:1002::/:/bin/sh\n")
            .ok());
    ASSERT_TRUE(WriteFile(lower_ + "/etc/group", "root:x:0:\nstaff:x:50:alice\n").ok());
    ASSERT_TRUE(WriteFile(lower_ + "/etc/gone", "x").ok());
    ASSERT_TRUE(WriteFile(lower_ + "/opt/sub/old", "x").ok());
    ASSERT_EQ(::symlink("usr/lib", (lower_ + "/lib").c_str()), 0);
    ASSERT_EQ(::symlink("/lib/../../../usr/lib", (lower_ + "/abs").c_str()), 0);
    ASSERT_TRUE(MakeDirs(upper_ + "/etc").ok());
    ASSERT_TRUE(MakeDirs(upper_ + "/opt").ok());
  }
  TempDir tmp_;
  std::string lower_, upper_;
};

TEST_F(MergedViewTest, ResolvesSymlinksInsideTheImage) {
  MergedView view({lower_, upper_});
  auto r = view.Resolve(SplitPath("/lib/x"), true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(JoinPath(*r), "usr/lib/x");
  r = view.Resolve(SplitPath("/abs"), true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(JoinPath(*r), "usr/lib");  // '..' stops at the image's root
  auto ids = ResolveUser(view, "alice", true);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->uid, 1001u);
  EXPECT_EQ(ids->gid, 1002u);
  EXPECT_EQ(ids->groups, std::vector<gid_t>{50});
  ids = ResolveUser(view, "1234:staff", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->uid, 1234u);
  EXPECT_EQ(ids->gid, 50u);
  EXPECT_FALSE(ResolveUser(view, "bob", false).ok());
}

TEST_F(MergedViewTest, WhiteoutsAndOpaqueDirsHideLowerEntries) {
  if (::geteuid() != 0) GTEST_SKIP() << "whiteouts need root";
  ASSERT_EQ(::mknod((upper_ + "/etc/gone").c_str(), S_IFCHR, makedev(0, 0)), 0);
  ASSERT_EQ(::setxattr((upper_ + "/opt").c_str(), kOpaqueXattr, "y", 1, 0), 0);
  MergedView view({lower_, upper_});
  EXPECT_FALSE(view.Lookup({"etc", "gone"}).has_value());
  EXPECT_TRUE(view.Lookup({"etc", "passwd"}).has_value());
  EXPECT_FALSE(view.Lookup({"opt", "sub", "old"}).has_value());
  std::string flat = tmp_.path() + "/flat";
  ASSERT_TRUE(ApplyLayer(lower_, flat).ok());
  ASSERT_TRUE(ApplyLayer(upper_, flat).ok());
  EXPECT_FALSE(PathExists(flat + "/etc/gone"));
  EXPECT_TRUE(PathExists(flat + "/etc/passwd"));
  EXPECT_FALSE(PathExists(flat + "/opt/sub"));
  EXPECT_TRUE(PathExists(flat + "/opt"));
}

}  // namespace
}  // namespace barge::oci::detail
