#include "runtime/container_store.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/file_util.h"

namespace barge::runtime {
namespace {

// A created (not started) container in `store`.
Result<ContainerRecord> CreateOne(ContainerStore& store, const std::string& root) {
  ContainerConfig config;
  config.lower_dirs = {root};
  config.process.argv = {"/bin/true"};
  return store.Create(config);
}

TEST(ContainerStoreTest, ConcurrentStateWritesDoNotFail) {
  // Several barge processes may reconcile the same container at once (two `barge ps`, or `ps`
  // and `stop`); each rewrites its state. None may fail for the other's temporary file.
  auto root = TempDir::Make();
  ASSERT_TRUE(root.ok());
  ContainerStore store(root->path());
  auto record = CreateOne(store, root->path());
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

// The names of a directory's entries, sorted.
std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(ContainerStoreTest, DeleteRemovesAtOnceAndLeavesNoTrash) {
  auto root = TempDir::Make();
  ASSERT_TRUE(root.ok());
  ContainerStore store(root->path());
  auto record = CreateOne(store, root->path());
  ASSERT_TRUE(record.ok()) << record.status().message();
  ASSERT_TRUE(WriteFile(store.Dir(record->config.id) + "/upper/file", "x").ok());
  ASSERT_TRUE(store.Delete(record->config.id).ok());
  // Gone, not hidden: only empty directories wait in the heap (see trash.h).
  EXPECT_EQ(Entries(root->path() + "/containers"), (std::vector<std::string>{".heap", ".lock"}));
  EXPECT_TRUE(store.Delete(record->config.id).ok()) << "already gone is fine";
}

TEST(ContainerStoreTest, DirectoriesOfProcessesThatDiedAreRemovedByList) {
  // A RUN step's mount point and a container being deleted belong to a process; once that
  // process is gone (a build or an rm killed midway), the next List removes them.
  auto root = TempDir::Make();
  ASSERT_TRUE(root.ok());
  ContainerStore store(root->path());
  auto step = store.MakeStepDir();
  ASSERT_TRUE(step.ok()) << step.status().message();
  std::string dir = root->path() + "/containers";
  EXPECT_EQ(step->path().rfind(dir + "/.step-" + std::to_string(::getpid()) + "-", 0), 0u)
      << step->path();
  // The same names, for a process that has exited.
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  uint64_t start = ProcessStartTime(child);
  ASSERT_NE(start, 0u);
  std::string owner = std::to_string(child) + "-" + std::to_string(start) + "-";
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  for (const std::string& name : {".step-" + owner + "abc123", ".trash-" + owner + "0123abcd"}) {
    ASSERT_TRUE(MakeDirs(dir + "/" + name + "/upper/deep").ok());
  }
  // An old-style trash directory (no owner) is removed once it is 10 s old, not before.
  ASSERT_TRUE(MakeDirs(dir + "/.trash-fedcba").ok());
  auto list = store.List();
  ASSERT_TRUE(list.ok()) << list.status().message();
  std::string mine = step->path().substr(dir.size() + 1);
  EXPECT_EQ(Entries(dir), (std::vector<std::string>{".heap", mine, ".trash-fedcba"}));
  step = TempDir();  // its owner removes it itself
  EXPECT_EQ(Entries(dir), (std::vector<std::string>{".heap", ".trash-fedcba"}));
}

}  // namespace
}  // namespace barge::runtime
