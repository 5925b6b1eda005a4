// Helpers for the I/O tests: a temporary directory per test and small file helpers.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "barge/stream/io.h"
#include "base/file_util.h"

namespace barge::stream::iotest {

class IoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<TempDir> dir = TempDir::Make("barge-io-test-");
    ASSERT_TRUE(dir.ok()) << dir.status().message();
    dir_ = std::move(dir).value();
  }

  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }

  std::string Write(const std::string& name, std::string_view content) const {
    std::string path = Path(name);
    Status st = WriteFile(path, content);
    EXPECT_TRUE(st.ok()) << st.message();
    return path;
  }

  std::string Read(const std::string& path) const {
    Result<std::string> content = ReadFile(path);
    EXPECT_TRUE(content.ok()) << content.status().message();
    return content.ok() ? *content : std::string();
  }

  // Removed (with everything in it) when the test ends, whether it passed or not.
  TempDir dir_;
};

// The skip counter of the first source in `p` (after Run).
inline uint64_t Skipped(const Pipeline& p) {
  for (const OperatorStats& s : p.Stats()) {
    if (s.skipped > 0) return s.skipped;
  }
  return 0;
}

}  // namespace barge::stream::iotest
