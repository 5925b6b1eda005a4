#include "oci/reference.h"

#include <gtest/gtest.h>

namespace barge::oci {
namespace {

TEST(ReferenceTest, HugeInputIsAShortError) {
  for (std::string text : {std::string(200 * 1024, 'a'), "app:" + std::string(200 * 1024, 'a'),
                           std::string(300, 'a') + ":1"}) {
    auto r = ParseReference(text);
    ASSERT_FALSE(r.ok());
    EXPECT_LT(r.status().message().size(), 1000u) << r.status().message().substr(0, 100);
  }
}

TEST(ReferenceTest, DefaultsTheTag) {
  auto r = ParseReference("busybox");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->ToString(), "busybox:latest");
  r = ParseReference("localhost:5000/team/app:1.0");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->name, "localhost:5000/team/app");
  EXPECT_EQ(r->tag, "1.0");
  r = ParseReference("app@sha256:" + std::string(64, 'a'));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->tag, "");
}

TEST(ReferenceTest, RejectsBadNamesWithTheInput) {
  for (const char* bad : {"", "UPPER", "a b", "app:", "app:bad/tag", "-x", "app@sha256:12"}) {
    auto r = ParseReference(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find(std::string("'") + bad + "'"), std::string::npos)
        << r.status().message();
  }
}

}  // namespace
}  // namespace barge::oci
