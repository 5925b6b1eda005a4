#include "base/subprocess.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>

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

TEST(SubprocessTest, EnvEntriesReplaceInheritedOnes) {
  ::setenv("BARGE_SUBPROCESS_TEST", "inherited", 1);
  auto r = RunCommand({"sh", "-c", "env | grep ^BARGE_SUBPROCESS_TEST="},
                      {.env = {"BARGE_SUBPROCESS_TEST=first", "BARGE_SUBPROCESS_TEST=given"}});
  ::unsetenv("BARGE_SUBPROCESS_TEST");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->out, "BARGE_SUBPROCESS_TEST=given\n");
}

TEST(SubprocessTest, TimeoutKillsTheProgramAndItsChildren) {
  auto start = std::chrono::steady_clock::now();
  // The shell's child holds stdout open: only killing the whole group ends the wait.
  auto r = RunCommand({"sh", "-c", "echo started; sleep 30 & sleep 30"},
                      {.timeout = std::chrono::milliseconds(300)});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->exit_code, 128 + SIGKILL);
  EXPECT_EQ(r->out, "started\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));

  // One that closes its output and goes on running is bound by the timeout too.
  r = RunCommand({"sh", "-c", "exec >/dev/null 2>&1; sleep 30"},
                 {.timeout = std::chrono::milliseconds(300)});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->timed_out);

  // Within the timeout: an ordinary run.
  r = RunCommand({"sh", "-c", "cat; exit 4"},
                 {.input = "x", .timeout = std::chrono::milliseconds(10000)});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->exit_code, 4);
  EXPECT_EQ(r->out, "x");
}

}  // namespace
}  // namespace barge
