#include "barge/status.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace barge {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgument("odd input " + std::to_string(x));
  return x / 2;
}

Status Quarter(int x, int* out) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(int q, Half(h));
  *out = q;
  return Status::Ok();
}

TEST(StatusTest, OkAndErrorCarryCodeAndMessage) {
  EXPECT_TRUE(Status::Ok().ok());
  Status st = NotFound("image busybox:latest");
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.Wrap("run").message(), "run: image busybox:latest");
}

TEST(StatusTest, ErrnoErrorNamesTheCallAndMapsCodes) {
  Status st = ErrnoError("open /nope", ENOENT);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "open /nope: No such file or directory");
  EXPECT_EQ(ErrnoError("write x", EIO).code(), StatusCode::kIoError);
}

TEST(StatusTest, MacrosPropagateTheFirstError) {
  int out = 0;
  EXPECT_TRUE(Quarter(12, &out).ok());
  EXPECT_EQ(out, 3);
  Status st = Quarter(6, &out);
  EXPECT_EQ(st.message(), "odd input 3");
}

}  // namespace
}  // namespace barge
