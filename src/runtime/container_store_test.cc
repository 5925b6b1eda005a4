#include "runtime/container_store.h"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/file_util.h"

namespace barge::runtime {
namespace {

TEST(ContainerStoreTest, ConcurrentStateWritesDoNotFail) {
  // Several barge processes may reconcile the same container at once (two `barge ps`, or `ps`
  // and `stop`); each rewrites its state. None may fail for the other's temporary file.
  auto root = TempDir::Make();
  ASSERT_TRUE(root.ok());
  ContainerStore store(root->path());
  ContainerConfig config;
  config.lower_dirs = {root->path()};
  config.process.argv = {"/bin/true"};
  auto record = store.Create(config);
  ASSERT_TRUE(record.ok()) << record.status().message();
  std::atomic<int> failures{0};
  std::string first_error;
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      ContainerState state;
      state.pid = t + 1;
      for (int i = 0; i < 300; ++i) {
        Status st = store.SaveState(record->config.id, state);
        if (!st.ok() && failures.fetch_add(1) == 0) first_error = st.message();
      }
    });
  }
  for (std::thread& w : writers) w.join();
  EXPECT_EQ(failures.load(), 0) << first_error;
  auto found = store.Find(record->config.id);
  ASSERT_TRUE(found.ok()) << found.status().message();
}

}  // namespace
}  // namespace barge::runtime
