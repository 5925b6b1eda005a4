#include "barge/stream/keyed_table.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <unordered_map>

namespace barge::stream {
namespace {

TEST(KeyedTableTest, BehavesLikeAnUnorderedMapUnderRandomOperations) {
  KeyedTable<uint64_t, int> table;
  std::unordered_map<uint64_t, int> reference;
  std::mt19937_64 rng(7);
  for (int step = 0; step < 200000; ++step) {
    uint64_t key = rng() % 5000;
    switch (rng() % 3) {
      case 0:
      case 1: {
        auto [v, inserted] = table.FindOrInsert(key);
        EXPECT_EQ(inserted, reference.count(key) == 0);
        *v += 1;
        reference[key] += 1;
        break;
      }
      case 2:
        EXPECT_EQ(table.Erase(key), reference.erase(key) == 1);
        break;
    }
  }
  EXPECT_EQ(table.size(), reference.size());
  for (auto& [k, v] : reference) {
    int* got = table.Find(k);
    ASSERT_NE(got, nullptr);
    EXPECT_EQ(*got, v);
  }
  size_t visited = 0;
  table.ForEach([&](const uint64_t& k, int& v) {
    EXPECT_EQ(reference.at(k), v);
    ++visited;
  });
  EXPECT_EQ(visited, reference.size());
  table.Clear();
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.Find(1), nullptr);
}

TEST(KeyedTableTest, StringKeys) {
  KeyedTable<std::string, int> table;
  *table.FindOrInsert("alpha").first = 1;
  *table.FindOrInsert("beta").first = 2;
  EXPECT_EQ(*table.Find("alpha"), 1);
  EXPECT_EQ(table.Find("gamma"), nullptr);
}

}  // namespace
}  // namespace barge::stream
