#include "base/subprocess.h"

#include <gtest/gtest.h>

namespace barge {
namespace {

TEST(SubprocessTest, CapturesOutputAndExitCode) {
  auto r = RunCommand({"sh", "-c", "cat; echo oops >&2; exit 3"}, {.input = "in\n"});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "in\n");
  EXPECT_EQ(r->err, "oops\n");
}

TEST(SubprocessTest, MissingProgramIsAnError) {
  auto r = RunCommand({"barge-no-such-program"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("barge-no-such-program"), std::string::npos);
}

}  // namespace
}  // namespace barge
