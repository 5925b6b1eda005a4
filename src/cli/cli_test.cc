// Drives the real barge binary the way a user would.
#include <gtest/gtest.h>

#include "base/size.h"
#include "base/subprocess.h"
#include "cli/cli.h"

namespace barge::cli {
namespace {

CommandOutput Barge(std::vector<std::string> args) {
  args.insert(args.begin(), BARGE_BINARY);
  auto r = RunCommand(args);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : CommandOutput{};
}

TEST(CliTest, HelpListsCommands) {
  CommandOutput r = Barge({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("bench"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--root"), std::string::npos) << r.out;
}

TEST(CliTest, VersionPrintsOneLine) {
  CommandOutput r = Barge({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("barge ", 0), 0u) << r.out;
}

TEST(CliTest, UnknownCommandIsAOneLineUsageError) {
  CommandOutput r = Barge({"frobnicate"});
  EXPECT_EQ(r.exit_code, kExitUsage);
  EXPECT_EQ(r.err.rfind("barge: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(CliTest, UnknownBenchmarkNamesIt) {
  CommandOutput r = Barge({"bench", "nope"});
  EXPECT_EQ(r.exit_code, kExitError);
  EXPECT_NE(r.err.find("unknown benchmark 'nope'"), std::string::npos) << r.err;
}

TEST(CliTest, BadOptionValueIsAUsageError) {
  CommandOutput r = Barge({"bench", "p1", "--records", "many"});
  EXPECT_EQ(r.exit_code, kExitUsage);
  EXPECT_NE(r.err.find("--records"), std::string::npos) << r.err;
}

TEST(FormatTableTest, ColumnsAreAsWideAsTheirWidestCell) {
  EXPECT_EQ(FormatTable({{"ID", "STATUS", "NAMES"},
                         {"1", "Exited (unknown: its barge process was killed) 1 second ago", "a"},
                         {"22", "Up", "bb"}}),
            "ID   STATUS                                                        NAMES\n"
            "1    Exited (unknown: its barge process was killed) 1 second ago   a\n"
            "22   Up                                                            bb\n");
}

TEST(ParseSizeTest, UnitsAndErrors) {
  EXPECT_EQ(*ParseSize("512"), 512);
  EXPECT_EQ(*ParseSize("64k"), 64 << 10);
  EXPECT_EQ(*ParseSize("256m"), 256LL << 20);
  EXPECT_EQ(*ParseSize("2g"), 2LL << 30);
  EXPECT_FALSE(ParseSize("12x").ok());
  EXPECT_FALSE(ParseSize("-1").ok());
  EXPECT_FALSE(ParseSize("").ok());
  EXPECT_NE(ParseSize("lots").status().message().find("'lots'"), std::string::npos);
}

}  // namespace
}  // namespace barge::cli
