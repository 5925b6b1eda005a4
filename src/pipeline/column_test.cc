#include "pipeline/column.h"

#include <gtest/gtest.h>

#include <random>

namespace barge::pipeline {
namespace {

// A column's rows as strings ("NULL" for nulls), for comparisons.
std::vector<std::string> Rows(const Column& c) {
  std::vector<std::string> out;
  for (size_t i = 0; i < c.size(); ++i) {
    if (c.IsNull(i)) {
      out.push_back("NULL");
      continue;
    }
    switch (c.type()) {
      case Type::kInt64:
      case Type::kTimestamp:
        out.push_back(std::to_string(c.ints()[i]));
        break;
      case Type::kDouble:
        out.push_back(std::to_string(c.doubles()[i]));
        break;
      case Type::kBool:
        out.push_back(c.bools()[i] ? "true" : "false");
        break;
      case Type::kString:
        out.push_back(std::string(c.String(i)));
        break;
      case Type::kNull:
        out.push_back("NULL");
        break;
    }
  }
  return out;
}

TEST(ColumnTest, AppendsValuesAndNulls) {
  Column c(Type::kInt64);
  c.AppendInt(1);
  EXPECT_FALSE(c.has_validity());
  c.AppendNull();
  c.AppendInt(3);
  EXPECT_EQ(Rows(c), (std::vector<std::string>{"1", "NULL", "3"}));
  EXPECT_EQ(c.NullCount(), 1u);

  Column s(Type::kString);
  s.AppendString("héllo");
  s.AppendNull();
  s.AppendString("");
  EXPECT_EQ(Rows(s), (std::vector<std::string>{"héllo", "NULL", ""}));
  EXPECT_EQ(s.byte_size(), 6u);
}

TEST(ColumnTest, NullsPastSixtyFourRowsKeepTheirPlace) {
  Column c(Type::kDouble);
  for (int i = 0; i < 200; ++i) {
    if (i % 7 == 3) {
      c.AppendNull();
    } else {
      c.AppendDouble(i);
    }
  }
  size_t nulls = 0;
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(c.IsNull(static_cast<size_t>(i)), i % 7 == 3) << i;
    nulls += i % 7 == 3;
  }
  EXPECT_EQ(c.NullCount(), nulls);
}

TEST(ColumnTest, CompactKeepsValuesStringsAndValidityInStep) {
  std::mt19937 rng(7);
  for (Type t : {Type::kInt64, Type::kDouble, Type::kBool, Type::kString}) {
    Column c(t);
    std::vector<std::string> expected;
    std::vector<uint8_t> keep;
    for (int i = 0; i < 300; ++i) {
      bool null = rng() % 5 == 0;
      if (null) {
        c.AppendNull();
      } else if (t == Type::kInt64) {
        c.AppendInt(i);
      } else if (t == Type::kDouble) {
        c.AppendDouble(i);
      } else if (t == Type::kBool) {
        c.AppendBool(i % 2);
      } else {
        c.AppendString(std::string(static_cast<size_t>(i % 5), 'a' + static_cast<char>(i % 26)));
      }
      keep.push_back(rng() % 2);
    }
    std::vector<std::string> before = Rows(c);
    for (size_t i = 0; i < before.size(); ++i) {
      if (keep[i]) expected.push_back(before[i]);
    }
    c.Compact(keep.data());
    EXPECT_EQ(Rows(c), expected) << TypeName(t);
    // Appending after a compaction continues cleanly.
    c.AppendNull();
    expected.push_back("NULL");
    EXPECT_EQ(Rows(c), expected) << TypeName(t);
  }
}

TEST(ColumnTest, AppendRowsAndRangesGatherWithValidity) {
  Column src(Type::kString);
  for (int i = 0; i < 100; ++i) {
    if (i % 10 == 0) {
      src.AppendNull();
    } else {
      src.AppendString(std::to_string(i));
    }
  }
  Column dst(Type::kString);
  dst.AppendString("first");
  std::vector<uint32_t> rows{99, 0, 50, 51, 10};
  dst.AppendRows(src, rows.data(), rows.size());
  dst.AppendRange(src, 8, 12);
  EXPECT_EQ(Rows(dst), (std::vector<std::string>{"first", "99", "NULL", "NULL", "51", "NULL", "8",
                                                 "9", "NULL", "11"}));
}

TEST(ColumnTest, ResizeKeepsTheBitmapLongEnough) {
  Column c(Type::kInt64);
  c.AppendNull();
  c.Resize(130);
  for (size_t i = 1; i < 130; ++i) c.ints()[i] = static_cast<int64_t>(i);
  EXPECT_TRUE(c.IsNull(0));
  EXPECT_TRUE(c.IsValid(129));
  EXPECT_GE(c.validity().size(), 3u);
  EXPECT_EQ(c.NullCount(), 1u);
}

TEST(RecordBatchTest, CompactAndGatherCarryBookkeeping) {
  auto schema = std::make_shared<Schema>(Schema{{{"k", Type::kString}, {"v", Type::kInt64}}});
  RecordBatch b;
  b.Reset(schema);
  for (int i = 0; i < 10; ++i) {
    b.columns[0].AppendString("k" + std::to_string(i));
    b.columns[1].AppendInt(i * 10);
    b.time.push_back(i);
    b.origin.push_back(RecordBatch::MakeOrigin(1, static_cast<uint64_t>(i + 2)));
  }
  b.rows = 10;
  EXPECT_EQ(b.CheckShape(), "");
  std::vector<uint8_t> keep{1, 0, 0, 1, 0, 0, 0, 0, 0, 1};
  b.Compact(keep.data());
  ASSERT_EQ(b.CheckShape(), "");
  EXPECT_EQ(b.rows, 3u);
  EXPECT_EQ(b.columns[0].String(1), "k3");
  EXPECT_EQ(b.time[2], 9);
  EXPECT_EQ(RecordBatch::OriginLine(b.origin[1]), 5u);
  EXPECT_EQ(RecordBatch::OriginInput(b.origin[1]), 1u);

  RecordBatch out;
  out.Reset(schema);
  std::vector<uint32_t> rows{2, 0};
  out.AppendRows(b, rows.data(), rows.size());
  out.AppendRange(b, 1, 2);
  ASSERT_EQ(out.CheckShape(), "");
  EXPECT_EQ(out.columns[1].ints()[0], 90);
  EXPECT_EQ(out.columns[1].ints()[1], 0);
  EXPECT_EQ(out.columns[1].ints()[2], 30);
  EXPECT_EQ(out.time.size(), 3u);
  EXPECT_TRUE(out.watermark.empty());
}

TEST(TypesTest, ParsesTypeNamesAndSuggests) {
  EXPECT_EQ(ParseTypeName("bigint"), Type::kInt64);
  EXPECT_EQ(ParseTypeName("Double  Precision"), Type::kDouble);
  EXPECT_EQ(ParseTypeName("varchar"), Type::kString);
  EXPECT_EQ(ParseTypeName("decimal"), std::nullopt);
  EXPECT_EQ(Suggest("uper", {"upper", "lower", "length"}), "upper");
  EXPECT_EQ(Suggest("zzzzzz", {"upper", "lower"}), std::nullopt);
}

}  // namespace
}  // namespace barge::pipeline
