// Expressions: every operator and function against expected values (NULLs included), the
// three-valued truth tables, every compile error with its message and offset, row errors and
// masking, batches longer than 64 rows, aggregates, and no allocation once warm.
#include "pipeline/expr.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <random>
#include <thread>

#include "pipeline/expr_test_util.h"

namespace barge::pipeline {
namespace {

using testing::Cell;
using testing::kNull;
using testing::MakeBatch;
using testing::Render;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
// 2024-01-15 10:30:45.123 UTC, a Monday.
constexpr int64_t kTs = 1705314645123;

// One row whose fields the value tests read.
std::shared_ptr<const Schema> RowSchema() {
  static const auto schema = std::make_shared<const Schema>(Schema{{
      {"i", Type::kInt64},         {"j", Type::kInt64},       {"z", Type::kInt64},
      {"big", Type::kInt64},       {"small", Type::kInt64},   {"d", Type::kDouble},
      {"nd2", Type::kDouble},      {"s", Type::kString},      {"u", Type::kString},
      {"e", Type::kString},        {"sp", Type::kString},     {"num", Type::kString},
      {"b", Type::kBool},          {"f", Type::kBool},        {"ts", Type::kTimestamp},
      {"ni", Type::kInt64},        {"nd", Type::kDouble},     {"ns", Type::kString},
      {"nb", Type::kBool},         {"nts", Type::kTimestamp}, {"user.id", Type::kInt64},
      {"my field", Type::kString}, {"none", Type::kNull},
  }});
  return schema;
}

std::vector<Cell> Row() {
  return {int64_t{7},
          int64_t{-3},
          int64_t{0},
          kMax,
          kMin,
          2.5,
          -1.5,
          std::string("Hello"),
          std::string("héllo wörld"),
          std::string(""),
          std::string("  pad  "),
          std::string("42"),
          true,
          false,
          kTs,
          kNull,
          kNull,
          kNull,
          kNull,
          kNull,
          int64_t{11},
          std::string("x"),
          kNull};
}

// Evaluates `text` over three copies of Row() and renders the result of the first (checking
// the others agree): a value as Render() writes it, "error: <message>" for a row error, or
// "compile error @<offset>: <message>".
std::string Eval(std::string_view text) {
  ExprError err;
  std::optional<Expr> e = Expr::Compile(text, *RowSchema(), &err);
  if (!e) return fmt::format("compile error @{}: {}", err.offset, err.message);
  RecordBatch batch = MakeBatch(RowSchema(), {Row(), Row(), Row()});
  ExprState state;
  Column out;
  std::vector<RowError> errors;
  e->Evaluate(batch, state, out, errors);
  EXPECT_EQ(out.size(), 3u) << text;
  EXPECT_EQ(out.type(), e->type()) << text;
  std::vector<std::string> rows;
  for (size_t i = 0; i < 3; ++i) rows.push_back(Render(out, i));
  if (!errors.empty()) {
    EXPECT_EQ(errors.size(), 3u) << text;
    for (size_t i = 0; i < errors.size(); ++i) {
      EXPECT_EQ(errors[i].row, i) << text;
      EXPECT_EQ(errors[i].message, errors[0].message) << text;
      EXPECT_EQ(rows[i], "NULL") << text;
    }
    return "error: " + errors[0].message;
  }
  EXPECT_EQ(rows[1], rows[0]) << text;
  EXPECT_EQ(rows[2], rows[0]) << text;
  return rows[0];
}

struct Case {
  std::string_view text;
  std::string_view expected;
};

void ExpectAll(const std::vector<Case>& cases) {
  for (const Case& c : cases) EXPECT_EQ(Eval(c.text), c.expected) << c.text;
}

TEST(ExprValues, Literals) {
  ExpectAll({
      {"42", "42"},
      {"-42", "-42"},
      {"- 42", "-42"},
      {"-9223372036854775808", "-9223372036854775808"},
      {"1.5", "1.5"},
      {"1e3", "1000.0"},
      {".5", "0.5"},
      {"2.", "2.0"},
      {"'it''s'", "'it's'"},
      {"''", "''"},
      {"TRUE", "TRUE"},
      {"false", "FALSE"},
      {"NULL", "NULL"},
      {"TIMESTAMP '2024-01-15 10:30:45.123'", "ts:1705314645123"},
      {"timestamp '2024-01-15T10:30:45.123Z'", "ts:1705314645123"},
      {"DATE '2024-01-15'", "ts:1705276800000"},
      {"INTERVAL '10' SECOND", "10000"},
      {"INTERVAL '1.5' MINUTE", "90000"},
      {"INTERVAL 2 HOUR", "7200000"},
      {"INTERVAL '3 days'", "259200000"},
      {"INTERVAL '250' MILLISECOND", "250"},
      {"INTERVAL '-1' WEEK", "-604800000"},
      {"INTERVAL ' 3 ' SECOND", "3000"},
      {"INTERVAL '9007199254740993' MILLISECOND", "9007199254740993"},
      {"INTERVAL '10' ms", "10"},
      {"INTERVAL '9223372036854775807' SECOND",
       "compile error @9: interval '9223372036854775807' SECOND is out of range"},
      {"-- a comment\n 1 /* another */ + 1", "2"},
  });
}

TEST(ExprValues, FieldReferences) {
  ExpectAll({
      {"i", "7"},
      {"user.id", "11"},
      {"\"user.id\"", "11"},
      {"\"user\".id", "11"},
      {"`my field`", "'x'"},
      {"\"my field\"", "'x'"},
      {"ni", "NULL"},
      {"ts", "ts:1705314645123"},
      {"none", "NULL"},
      {"I", "compile error @0: unknown field 'I' (did you mean 'i'?)"},
  });
}

TEST(ExprValues, Arithmetic) {
  ExpectAll({
      {"i + 1", "8"},
      {"1 + i", "8"},
      {"i - 10", "-3"},
      {"10 - i", "3"},
      {"i * j", "-21"},
      {"3 * i", "21"},
      {"i / 2", "3"},
      {"-7 / 2", "-3"},
      {"i / j", "-2"},
      {"100 / i", "14"},
      {"i / 3", "2"},
      {"j / 2", "-1"},
      {"small / 3", "-3074457345618258602"},
      {"big / 7", "1317624576693539401"},
      {"small / 2", "-4611686018427387904"},
      {"i % 3", "1"},
      {"-7 % 3", "-1"},
      {"i % j", "1"},
      {"j % 2", "-1"},
      {"7 % -3", "1"},
      {"small % -1", "0"},
      {"big % 1000", "807"},
      {"i / 2.0", "3.5"},
      {"d * 2", "5.0"},
      {"d + i", "9.5"},
      {"i + d", "9.5"},
      {"d - 0.5", "2.0"},
      {"1 - d", "-1.5"},
      {"d / 2", "1.25"},
      {"5 / d", "2.0"},
      {"d % 1", "0.5"},
      {"-d", "-2.5"},
      {"-i", "-7"},
      {"+i", "7"},
      {"- -i", "7"},
      {"2 + 3 * 4", "14"},
      {"(2 + 3) * 4", "20"},
      {"10 - 2 - 3", "5"},
      {"2 * 3 % 4", "2"},
      {"ni + 1", "NULL"},
      {"i + ni", "NULL"},
      {"nd * 2", "NULL"},
      {"1 + NULL", "NULL"},
      {"NULL * NULL", "NULL"},
      {"-ni", "NULL"},
      {"mod(i, 3)", "1"},
      {"mod(d, 1)", "0.5"},
      {"mod(i, z)", "error: division by zero"},
  });
}

TEST(ExprValues, TimestampArithmetic) {
  ExpectAll({
      {"ts + INTERVAL '1' SECOND", "ts:1705314646123"},
      {"INTERVAL '1' SECOND + ts", "ts:1705314646123"},
      {"ts - 123", "ts:1705314645000"},
      {"1000 + ts", "ts:1705314646123"},
      {"ts - TIMESTAMP '2024-01-15 00:00:00'", "37845123"},
      {"ts - nts", "NULL"},
      {"nts + 1", "NULL"},
      {"ts + ni", "NULL"},
  });
}

TEST(ExprValues, Comparison) {
  ExpectAll({
      {"i = 7", "TRUE"},
      {"i <> 7", "FALSE"},
      {"i != 7", "FALSE"},
      {"i == 7", "TRUE"},
      {"i < 8", "TRUE"},
      {"i <= 7", "TRUE"},
      {"i > 7", "FALSE"},
      {"i >= 8", "FALSE"},
      {"8 > i", "TRUE"},
      {"7 <= i", "TRUE"},
      {"7 = i", "TRUE"},
      {"i = j", "FALSE"},
      {"i > j", "TRUE"},
      {"i = 7.0", "TRUE"},
      {"d > i", "FALSE"},
      {"d < 3", "TRUE"},
      {"d = d", "TRUE"},
      {"s = 'Hello'", "TRUE"},
      {"s < 'Help'", "TRUE"},
      {"s > 'hello'", "FALSE"},
      {"s >= s", "TRUE"},
      {"'Hello' = s", "TRUE"},
      {"e = ''", "TRUE"},
      {"u > s", "TRUE"},
      {"b = TRUE", "TRUE"},
      {"f < b", "TRUE"},
      {"b <> f", "TRUE"},
      {"ni = 1", "NULL"},
      {"1 < ni", "NULL"},
      {"ns = s", "NULL"},
      {"NULL = NULL", "NULL"},
      {"ts > '2024-01-15'", "TRUE"},
      {"ts = '2024-01-15 10:30:45.123'", "TRUE"},
      {"'2024-01-16' > ts", "TRUE"},
      {"ts < TIMESTAMP '2024-01-15 10:30:45.124'", "TRUE"},
      {"nts = ts", "NULL"},
  });
}

TEST(ExprValues, Logic) {
  ExpectAll({
      {"b AND f", "FALSE"},
      {"b OR f", "TRUE"},
      {"NOT b", "FALSE"},
      {"NOT f", "TRUE"},
      {"nb AND f", "FALSE"},
      {"f AND nb", "FALSE"},
      {"nb AND b", "NULL"},
      {"nb OR b", "TRUE"},
      {"nb OR f", "NULL"},
      {"NOT nb", "NULL"},
      {"NOT NOT b", "TRUE"},
      {"b AND NOT f", "TRUE"},
      {"i > 5 AND s LIKE 'H%'", "TRUE"},
      {"f OR b AND f", "FALSE"},
      {"(f OR b) AND f", "FALSE"},
      {"f OR b AND b", "TRUE"},
      {"NOT i > 5", "FALSE"},
      {"b AND TRUE", "TRUE"},
      {"b AND NULL", "NULL"},
      {"f AND NULL", "FALSE"},
      {"b OR NULL", "TRUE"},
      {"f OR NULL", "NULL"},
      {"NULL AND FALSE", "FALSE"},
      {"NULL OR TRUE", "TRUE"},
      {"NOT NULL", "NULL"},
  });
}

TEST(ExprValues, IsPredicates) {
  ExpectAll({
      {"ni IS NULL", "TRUE"},
      {"i IS NULL", "FALSE"},
      {"ni IS NOT NULL", "FALSE"},
      {"s IS NOT NULL", "TRUE"},
      {"NULL IS NULL", "TRUE"},
      {"nb IS TRUE", "FALSE"},
      {"nb IS NOT FALSE", "TRUE"},
      {"b IS TRUE", "TRUE"},
      {"f IS FALSE", "TRUE"},
      {"f IS NOT TRUE", "TRUE"},
      {"b IS NOT TRUE", "FALSE"},
      {"ni IS DISTINCT FROM 1", "TRUE"},
      {"ni IS DISTINCT FROM NULL", "FALSE"},
      {"ni IS NOT DISTINCT FROM NULL", "TRUE"},
      {"i IS DISTINCT FROM 7", "FALSE"},
      {"i IS DISTINCT FROM j", "TRUE"},
      {"s IS NOT DISTINCT FROM 'Hello'", "TRUE"},
      {"i = 7 IS TRUE", "TRUE"},
      {"ni = 7 IS NULL", "TRUE"},
  });
}

TEST(ExprValues, In) {
  ExpectAll({
      {"i IN (1, 7)", "TRUE"},
      {"i IN (1, 2)", "FALSE"},
      {"i NOT IN (1, 2)", "TRUE"},
      {"i NOT IN (7)", "FALSE"},
      {"i IN (1, NULL)", "NULL"},
      {"i IN (7, NULL)", "TRUE"},
      {"i NOT IN (2, NULL)", "NULL"},
      {"i NOT IN (7, NULL)", "FALSE"},
      {"ni IN (1, 2)", "NULL"},
      {"NULL IN (1, NULL)", "NULL"},
      {"s IN ('a', 'Hello')", "TRUE"},
      {"s IN ('a', 'hello')", "FALSE"},
      {"i IN (j, 7)", "TRUE"},
      {"i IN (j, ni)", "NULL"},
      {"i NOT IN (j, ni)", "NULL"},
      {"i IN (j, ni, 7)", "TRUE"},
      {"i IN (7.0, 2)", "TRUE"},
      {"d IN (2.5)", "TRUE"},
      {"d IN (1, 2)", "FALSE"},
      {"b IN (FALSE)", "FALSE"},
      {"i IN (1, 2, 3, 4, 5, 6, 8, 9, 10, 7)", "TRUE"},
      {"i IN (1, 2, 3, 4, 5, 6, 8, 9, 10, 11)", "FALSE"},
      {"ts IN ('2024-01-15 10:30:45.123')", "TRUE"},
  });
}

TEST(ExprValues, Between) {
  ExpectAll({
      {"i BETWEEN 1 AND 10", "TRUE"},
      {"i BETWEEN 7 AND 7", "TRUE"},
      {"i BETWEEN 8 AND 10", "FALSE"},
      {"i NOT BETWEEN 8 AND 10", "TRUE"},
      {"i BETWEEN ni AND 10", "NULL"},
      {"i BETWEEN ni AND 5", "FALSE"},
      {"ni BETWEEN 1 AND 10", "NULL"},
      {"d BETWEEN 2 AND 3", "TRUE"},
      {"i BETWEEN 1 AND 10 AND b", "TRUE"},
      {"s BETWEEN 'A' AND 'Z'", "TRUE"},
      {"ts BETWEEN '2024-01-15' AND '2024-01-16'", "TRUE"},
  });
}

TEST(ExprValues, Like) {
  ExpectAll({
      {"s LIKE 'H%'", "TRUE"},
      {"s LIKE '%lo'", "TRUE"},
      {"s LIKE '%ell%'", "TRUE"},
      {"s LIKE 'H_llo'", "TRUE"},
      {"s LIKE 'h%'", "FALSE"},
      {"s ILIKE 'h%'", "TRUE"},
      {"s ILIKE '%LL%'", "TRUE"},
      {"s NOT LIKE 'H%'", "FALSE"},
      {"s NOT ILIKE 'x%'", "TRUE"},
      {"s LIKE 'Hello'", "TRUE"},
      {"s LIKE 'Hell'", "FALSE"},
      {"u LIKE 'h_llo%'", "TRUE"},
      {"u LIKE '%w_rld'", "TRUE"},
      {"'100%' LIKE '100!%' ESCAPE '!'", "TRUE"},
      {"'1000' LIKE '100!%' ESCAPE '!'", "FALSE"},
      {"'a_c' LIKE 'a\\_c' ESCAPE '\\'", "TRUE"},
      {"'abc' LIKE 'a\\_c' ESCAPE '\\'", "FALSE"},
      {"ns LIKE 'a'", "NULL"},
      {"s LIKE '%'", "TRUE"},
      {"e LIKE '%'", "TRUE"},
      {"e LIKE '_'", "FALSE"},
      {"s LIKE '%l%l%'", "TRUE"},
      {"s LIKE '%x%l'", "FALSE"},
      {"s LIKE '_____'", "TRUE"},
      {"s LIKE '______'", "FALSE"},
      {"'aaa' LIKE '%a%a%a%'", "TRUE"},
      {"'aa' LIKE '%a%a%a%'", "FALSE"},
      {"s LIKE s", "TRUE"},
      {"s LIKE lower(s)", "FALSE"},
      {"s ILIKE upper(s)", "TRUE"},
      {"s LIKE ns", "NULL"},
  });
}

TEST(ExprValues, Concatenation) {
  ExpectAll({
      {"s || '!'", "'Hello!'"},
      {"s || ns", "NULL"},
      {"'n=' || i", "'n=7'"},
      {"d || ''", "'2.5'"},
      {"b || ''", "'true'"},
      {"ts || ''", "'2024-01-15 10:30:45.123'"},
      {"'a' || 'b' || 'c'", "'abc'"},
      {"1 + 2 || 'x'", "'3x'"},
      {"concat(s, ns, '!')", "'Hello!'"},
      {"concat(ns)", "''"},
      {"concat(i, '/', d)", "'7/2.5'"},
      {"concat_ws('-', 'a', ns, 'b')", "'a-b'"},
      {"concat_ws(', ', s, u)", "'Hello, héllo wörld'"},
      {"concat_ws(ns, 'a')", "NULL"},
  });
}

TEST(ExprValues, Case) {
  ExpectAll({
      {"CASE WHEN i > 5 THEN 'big' ELSE 'small' END", "'big'"},
      {"CASE WHEN i > 10 THEN 'big' END", "NULL"},
      {"CASE WHEN nb THEN 1 ELSE 2 END", "2"},
      {"CASE WHEN f THEN 1 WHEN b THEN 2 ELSE 3 END", "2"},
      {"CASE i WHEN 1 THEN 'one' WHEN 7 THEN 'seven' END", "'seven'"},
      {"CASE ni WHEN 1 THEN 'one' ELSE 'other' END", "'other'"},
      {"CASE i WHEN 7.0 THEN 'x' END", "'x'"},
      {"CASE WHEN i > 5 THEN 1 ELSE 2.5 END", "1.0"},
      {"CASE WHEN i > 5 THEN NULL ELSE 2 END", "NULL"},
      {"CASE WHEN i > 5 THEN s END", "'Hello'"},
      {"CASE WHEN i > 5 THEN ts END", "ts:1705314645123"},
      {"CASE WHEN i > 5 THEN '2024-01-15' ELSE ts END", "ts:1705276800000"},
      {"CASE WHEN i > 5 THEN ts ELSE '2024-01-15' END", "ts:1705314645123"},
      {"CASE '2024-01-15 10:30:45.123' WHEN ts THEN 'same' ELSE 'other' END", "'same'"},
      {"CASE ts WHEN '2024-01-15 10:30:45.123' THEN 'same' END", "'same'"},
      {"CASE WHEN i > 5 THEN s ELSE ts END",
       "compile error @28: CASE results have incompatible types VARCHAR and TIMESTAMP"},
      {"coalesce('2024-01-15', nts)", "ts:1705276800000"},
      {"'2024-01-15' IN (nts, ts)", "NULL"},
      {"'2024-01-15 10:30:45.123' IN (nts, ts)", "TRUE"},
      {"CASE WHEN b THEN NULL END", "NULL"},
      {"case when i > 5 then 'big' end", "'big'"},
      {"if(b, 'y', 'n')", "'y'"},
      {"if(nb, 'y', 'n')", "'n'"},
  });
}

TEST(ExprValues, Cast) {
  ExpectAll({
      {"CAST(i AS DOUBLE)", "7.0"},
      {"CAST(d AS BIGINT)", "3"},
      {"CAST(-2.5 AS BIGINT)", "-3"},
      {"CAST(nd2 AS BIGINT)", "-2"},
      {"CAST(2.4999 AS BIGINT)", "2"},
      {"CAST(0.5 AS BIGINT)", "1"},
      {"CAST(num AS BIGINT)", "42"},
      {"CAST(' 42 ' AS BIGINT)", "42"},
      {"CAST('-7' AS INT)", "-7"},
      {"CAST('+7' AS INTEGER)", "7"},
      {"CAST('1.5' AS DOUBLE)", "1.5"},
      {"CAST('1e3' AS FLOAT)", "1000.0"},
      {"CAST('-inf' AS DOUBLE)", "-inf"},
      {"CAST('yes' AS BOOLEAN)", "TRUE"},
      {"CAST('off' AS BOOL)", "FALSE"},
      {"CAST('T' AS BOOLEAN)", "TRUE"},
      {"CAST(i AS VARCHAR)", "'7'"},
      {"CAST(j AS STRING)", "'-3'"},
      {"CAST(d AS VARCHAR)", "'2.5'"},
      {"CAST(i * 1.0 AS VARCHAR)", "'7.0'"},
      {"CAST(1e20 AS VARCHAR)", "'1e+20'"},
      {"CAST(0.1 AS TEXT)", "'0.1'"},
      {"CAST(CAST('inf' AS DOUBLE) AS VARCHAR)", "'Infinity'"},
      {"CAST(b AS VARCHAR)", "'true'"},
      {"CAST(i AS BOOLEAN)", "TRUE"},
      {"CAST(z AS BOOLEAN)", "FALSE"},
      {"CAST(d AS BOOLEAN)", "TRUE"},
      {"CAST(b AS BIGINT)", "1"},
      {"CAST(f AS DOUBLE)", "0.0"},
      {"CAST(ts AS BIGINT)", "1705314645123"},
      {"CAST(1705314645123 AS TIMESTAMP)", "ts:1705314645123"},
      {"CAST(ts AS VARCHAR)", "'2024-01-15 10:30:45.123'"},
      {"CAST(TIMESTAMP '2024-01-15 10:30:00' AS VARCHAR)", "'2024-01-15 10:30:00'"},
      {"CAST(TIMESTAMP '1969-12-31 23:59:59.999' AS VARCHAR)", "'1969-12-31 23:59:59.999'"},
      {"CAST('2024-01-15T10:30:45Z' AS TIMESTAMP)", "ts:1705314645000"},
      {"CAST('2024-01-15 12:30:45+02:00' AS TIMESTAMP)", "ts:1705314645000"},
      {"CAST('2024-01-15 05:00:45-0530' AS TIMESTAMP)", "ts:1705314645000"},
      {"CAST('2024-01-15' AS TIMESTAMP)", "ts:1705276800000"},
      {"CAST('2024-01-15 10:30' AS TIMESTAMP)", "ts:1705314600000"},
      {"CAST('2024-01-15 10:30:45.1234567' AS TIMESTAMP)", "ts:1705314645123"},
      {"i::VARCHAR", "'7'"},
      {"'5'::BIGINT + 1", "6"},
      {"-1::VARCHAR", "compile error @0: operator '-' cannot be applied to VARCHAR"},
      {"TRY_CAST('x' AS BIGINT)", "NULL"},
      {"TRY_CAST('5' AS BIGINT)", "5"},
      {"TRY_CAST(1e300 AS BIGINT)", "NULL"},
      {"TRY_CAST(s AS TIMESTAMP)", "NULL"},
      {"CAST(ni AS VARCHAR)", "NULL"},
      {"CAST(NULL AS BIGINT)", "NULL"},
      {"CAST(none AS BIGINT)", "NULL"},
      {"CAST(d AS DECIMAL(10, 2))", "2.5"},
      {"CAST(i AS DOUBLE PRECISION)", "7.0"},
      {"CAST(s AS VARCHAR(3))", "'Hello'"},
      {"CAST(i AS BIGINT)", "7"},
      {"CAST(round(d) AS BIGINT)", "3"},
      {"CAST(round(-2.5) AS BIGINT)", "-3"},
      {"CAST(round(nd2 * 3) AS BIGINT)", "-5"},
      {"CAST(round(1e300) AS BIGINT)", "error: cannot convert 1e+300 to BIGINT"},
      {"CAST(round(d, 1) AS BIGINT)", "3"},
  });
}

TEST(ExprValues, NullHandlingFunctions) {
  ExpectAll({
      {"coalesce(ni, i)", "7"},
      {"coalesce(i, ni)", "7"},
      {"coalesce(ni, nd, d)", "2.5"},
      {"coalesce(ns, 'x')", "'x'"},
      {"coalesce(ni)", "NULL"},
      {"coalesce(ni, NULL)", "NULL"},
      {"coalesce(nts, ts)", "ts:1705314645123"},
      {"coalesce(nb, f)", "FALSE"},
      {"ifnull(ni, 3)", "3"},
      {"nullif(i, 7)", "NULL"},
      {"nullif(i, 8)", "7"},
      {"nullif(i, ni)", "7"},
      {"nullif(ni, 1)", "NULL"},
      {"nullif(s, 'x')", "'Hello'"},
      {"nullif(s, 'Hello')", "NULL"},
      {"typeof(i)", "'BIGINT'"},
      {"typeof(d + i)", "'DOUBLE'"},
      {"typeof(ni)", "'BIGINT'"},
      {"typeof(NULL)", "'NULL'"},
  });
}

TEST(ExprValues, StringFunctions) {
  ExpectAll({
      {"upper(s)", "'HELLO'"},
      {"lower(s)", "'hello'"},
      {"UPPER(s)", "'HELLO'"},
      {"ucase(s)", "'HELLO'"},
      {"lcase(s)", "'hello'"},
      {"upper(u)", "'HÉLLO WÖRLD'"},
      {"lower('ÀÉÎ ΣΑΣ Привет Ёё')", "'àéî σασ привет ёё'"},
      {"upper('àéî σας привет ёё ÿ ā')", "'ÀÉÎ ΣΑΣ ПРИВЕТ ЁЁ Ÿ Ā'"},
      {"upper('straße')", "'STRAßE'"},
      {"upper(ns)", "NULL"},
      {"length(u)", "11"},
      {"length(e)", "0"},
      {"char_length(s)", "5"},
      {"character_length(s)", "5"},
      {"octet_length(u)", "13"},
      {"length(ns)", "NULL"},
      {"substr(s, 2)", "'ello'"},
      {"substr(s, 2, 3)", "'ell'"},
      {"substring(s, 1, 1)", "'H'"},
      {"substring(s, 0, 3)", "'He'"},
      {"substr(s, -3)", "'llo'"},
      {"substr(s, -3, 2)", "'ll'"},
      {"substr(s, -10, 7)", "'He'"},
      {"substr(s, 10)", "''"},
      {"substr(s, 2, -1)", "''"},
      {"substr(s, 2, 0)", "''"},
      {"substr(u, 2, 4)", "'éllo'"},
      {"substring(s FROM 2 FOR 3)", "'ell'"},
      {"substring(s FROM 4)", "'lo'"},
      {"substr(s, ni)", "NULL"},
      {"trim(sp)", "'pad'"},
      {"ltrim(sp)", "'pad  '"},
      {"rtrim(sp)", "'  pad'"},
      {"btrim(sp)", "'pad'"},
      {"trim('xxhixx', 'x')", "'hi'"},
      {"trim('xyhiyx', 'xy')", "'hi'"},
      {"trim(BOTH 'x' FROM 'xxhixx')", "'hi'"},
      {"trim(LEADING 'x' FROM 'xxhixx')", "'hixx'"},
      {"trim(TRAILING 'x' FROM 'xxhixx')", "'xxhi'"},
      {"trim(FROM sp)", "'pad'"},
      {"trim(TRAILING FROM '  a  ')", "'  a'"},
      {"trim('ééaé', 'é')", "'a'"},
      {"trim(e)", "''"},
      {"replace(s, 'l', 'L')", "'HeLLo'"},
      {"replace(s, 'll', '')", "'Heo'"},
      {"replace(s, '', 'x')", "'Hello'"},
      {"replace(s, 'z', 'x')", "'Hello'"},
      {"replace('aaa', 'a', 'bb')", "'bbbbbb'"},
      {"left(s, 2)", "'He'"},
      {"right(s, 3)", "'llo'"},
      {"left(s, -2)", "'Hel'"},
      {"right(s, -2)", "'llo'"},
      {"left(u, 2)", "'hé'"},
      {"left(s, 10)", "'Hello'"},
      {"left(s, -10)", "''"},
      {"right(s, 0)", "''"},
      {"reverse(u)", "'dlröw olléh'"},
      {"reverse(e)", "''"},
      {"repeat('ab', 3)", "'ababab'"},
      {"repeat('ab', 0)", "''"},
      {"repeat('ab', -1)", "''"},
      {"lpad('7', 3, '0')", "'007'"},
      {"rpad('ab', 5, 'xy')", "'abxyx'"},
      {"lpad('hello', 3)", "'hel'"},
      {"lpad('a', 3)", "'  a'"},
      {"lpad('a', 3, '')", "'a'"},
      {"rpad('é', 3, 'ö')", "'éöö'"},
      {"strpos(s, 'l')", "3"},
      {"strpos(u, 'w')", "7"},
      {"strpos(s, 'z')", "0"},
      {"strpos(s, '')", "1"},
      {"position('l' IN s)", "3"},
      {"instr(s, 'lo')", "4"},
      {"starts_with(s, 'He')", "TRUE"},
      {"starts_with(s, 'he')", "FALSE"},
      {"ends_with(s, 'lo')", "TRUE"},
      {"ends_with(s, 'Hello!')", "FALSE"},
      {"contains(s, 'ell')", "TRUE"},
      {"contains(s, 'elo')", "FALSE"},
      {"contains(ns, 'a')", "NULL"},
      {"split_part('a,b,c', ',', 2)", "'b'"},
      {"split_part('a,b,c', ',', 1)", "'a'"},
      {"split_part('a,b,c', ',', 3)", "'c'"},
      {"split_part('a,b,c', ',', 4)", "''"},
      {"split_part('a,b,c', ',', -1)", "'c'"},
      {"split_part('a,b,c', ',', -3)", "'a'"},
      {"split_part('a,b,c', ',', -4)", "''"},
      {"split_part('a::b', '::', 2)", "'b'"},
      {"split_part('abc', '', 1)", "'abc'"},
      {"split_part('abc', '', 2)", "''"},
  });
}

TEST(ExprValues, MathFunctions) {
  ExpectAll({
      {"abs(j)", "3"},
      {"abs(i)", "7"},
      {"abs(nd2)", "1.5"},
      {"abs(ni)", "NULL"},
      {"sign(j)", "-1"},
      {"sign(z)", "0"},
      {"sign(d)", "1.0"},
      {"round(d)", "3.0"},
      {"round(-2.5)", "-3.0"},
      {"round(2.4)", "2.0"},
      {"round(nd2)", "-2.0"},
      {"round(1.2345, 2)", "1.23"},
      {"round(1.5, 0)", "2.0"},
      {"round(1234.5, -2)", "1200.0"},
      {"round(125, -1)", "130"},
      {"round(-125, -1)", "-130"},
      {"round(124, -1)", "120"},
      {"round(i)", "7"},
      {"round(i, 2)", "7"},
      {"round(i, -20)", "0"},
      {"floor(d)", "2.0"},
      {"floor(nd2)", "-2.0"},
      {"floor(i)", "7"},
      {"ceil(d)", "3.0"},
      {"ceiling(nd2)", "-1.0"},
      {"trunc(nd2)", "-1.0"},
      {"trunc(d)", "2.0"},
      {"sqrt(16)", "4.0"},
      {"sqrt(i)", "2.6457513110645907"},
      {"sqrt(nd)", "NULL"},
      {"round(cbrt(27), 12)", "3.0"},
      {"cbrt(-8) < -1.99", "TRUE"},
      {"power(2, 10)", "1024.0"},
      {"pow(i, 2)", "49.0"},
      {"power(d, -1)", "0.4"},
      {"exp(0)", "1.0"},
      {"ln(1)", "0.0"},
      {"log10(1000)", "3.0"},
      {"log2(8)", "3.0"},
      {"log(2, 8)", "3.0"},
      {"greatest(1, i, 3)", "7"},
      {"least(1, i, ni)", "1"},
      {"greatest(ni, nd)", "NULL"},
      {"greatest(1, 2.5)", "2.5"},
      {"greatest('a', s)", "'a'"},
      {"least(s, u, 'Z')", "'Hello'"},
      {"greatest(ts, TIMESTAMP '2030-01-01')", "ts:1893456000000"},
      {"pi()", "3.141592653589793"},
  });
}

TEST(ExprValues, TimeFunctions) {
  ExpectAll({
      {"date_trunc('hour', ts)", "ts:1705312800000"},
      {"date_trunc('HOURS', ts)", "ts:1705312800000"},
      {"date_trunc('day', ts)", "ts:1705276800000"},
      {"date_trunc('minute', ts)", "ts:1705314600000"},
      {"date_trunc('second', ts)", "ts:1705314645000"},
      {"date_trunc('millisecond', ts)", "ts:1705314645123"},
      {"date_trunc('month', ts)", "ts:1704067200000"},
      {"date_trunc('year', ts)", "ts:1704067200000"},
      {"date_trunc('quarter', TIMESTAMP '2024-05-20 08:00:00')", "ts:1711929600000"},
      {"date_trunc('week', ts)", "ts:1705276800000"},
      {"date_trunc('week', TIMESTAMP '2024-01-14 23:00:00')", "ts:1704672000000"},
      {"date_trunc('day', TIMESTAMP '1969-12-31 23:00:00')", "ts:-86400000"},
      {"date_trunc('hour', 1705314645123)", "1705312800000"},
      {"date_trunc('month', 1705314645123)", "1704067200000"},
      {"date_trunc('hour', nts)", "NULL"},
      {"CAST(date_trunc('month', ts) AS VARCHAR)", "'2024-01-01 00:00:00'"},
      {"extract(year FROM ts)", "2024"},
      {"EXTRACT(MONTH FROM ts)", "1"},
      {"extract(day FROM ts)", "15"},
      {"extract(hour FROM ts)", "10"},
      {"extract(minute FROM ts)", "30"},
      {"extract(second FROM ts)", "45"},
      {"extract(millisecond FROM ts)", "45123"},
      {"extract(dow FROM ts)", "1"},
      {"extract(isodow FROM TIMESTAMP '2024-01-14')", "7"},
      {"extract(doy FROM ts)", "15"},
      {"extract(doy FROM TIMESTAMP '2024-12-31')", "366"},
      {"extract(week FROM ts)", "3"},
      {"extract(quarter FROM ts)", "1"},
      {"extract(epoch FROM ts)", "1705314645"},
      {"extract('hour' FROM ts)", "10"},
      {"extract(hour FROM nts)", "NULL"},
      {"date_part('minute', ts)", "30"},
      {"hour(ts)", "10"},
      {"minute(ts)", "30"},
      {"second(ts)", "45"},
      {"millisecond(ts)", "45123"},
      {"year(ts)", "2024"},
      {"quarter(ts)", "1"},
      {"month(ts)", "1"},
      {"day(ts)", "15"},
      {"dayofmonth(ts)", "15"},
      {"dayofweek(TIMESTAMP '2024-01-14')", "0"},
      {"dayofyear(ts)", "15"},
      {"week(TIMESTAMP '2021-01-03')", "53"},
      {"week(TIMESTAMP '2021-01-04')", "1"},
      {"hour(1705314645123)", "10"},
      {"year(TIMESTAMP '1969-07-20 20:17:00')", "1969"},
      {"month(TIMESTAMP '2000-02-29')", "2"},
      {"time_bucket(INTERVAL '10' MINUTE, ts)", "ts:1705314600000"},
      {"time_bucket(INTERVAL '1' HOUR, ts)", "ts:1705312800000"},
      {"time_bucket(INTERVAL '7' DAY, ts)", "ts:1705276800000"},
      {"time_bucket(INTERVAL '7' DAY, TIMESTAMP '2024-01-14')", "ts:1704672000000"},
      {"time_bucket(INTERVAL '10' SECOND, 1705314645123)", "1705314640000"},
      {"time_bucket(INTERVAL '1' DAY, ts, TIMESTAMP '2024-01-01 06:00:00')", "ts:1705298400000"},
      {"time_bucket(INTERVAL '1' HOUR, TIMESTAMP '1969-12-31 23:30:00')", "ts:-3600000"},
      {"epoch_ms(ts)", "1705314645123"},
      {"epoch_ms(0)", "ts:0"},
  });
}

TEST(ExprValues, RowErrors) {
  ExpectAll({
      {"i / z", "error: division by zero"},
      {"i % z", "error: division by zero"},
      {"d / 0", "error: division by zero"},
      {"d / z", "error: division by zero"},
      {"d % 0.0", "error: division by zero"},
      {"1 / 0", "error: division by zero"},
      {"big + 1", "error: BIGINT overflow in 9223372036854775807 + 1"},
      {"1 + big", "error: BIGINT overflow in 9223372036854775807 + 1"},
      {"small - 1", "error: BIGINT overflow in -9223372036854775808 - 1"},
      {"0 - small", "error: BIGINT overflow in 0 - -9223372036854775808"},
      {"big * 2", "error: BIGINT overflow in 9223372036854775807 * 2"},
      {"big * big", "error: BIGINT overflow in 9223372036854775807 * 9223372036854775807"},
      {"small / -1", "error: BIGINT overflow in -9223372036854775808 / -1"},
      {"-small", "error: BIGINT overflow in -(-9223372036854775808)"},
      {"abs(small)", "error: BIGINT overflow in abs(-9223372036854775808)"},
      {"round(big, -1)", "error: BIGINT overflow in round(9223372036854775807, -1)"},
      {"ts + big", "error: TIMESTAMP overflow in 1705314645123 + 9223372036854775807"},
      {"CAST(s AS BIGINT)", "error: cannot convert 'Hello' to BIGINT"},
      {"CAST('1.5' AS BIGINT)", "error: cannot convert '1.5' to BIGINT"},
      {"CAST('99999999999999999999' AS BIGINT)",
       "error: cannot convert '99999999999999999999' to BIGINT"},
      {"CAST(s AS DOUBLE)", "error: cannot convert 'Hello' to DOUBLE"},
      {"CAST(s AS BOOLEAN)", "error: cannot convert 'Hello' to BOOLEAN"},
      {"CAST(s AS TIMESTAMP)", "error: cannot convert 'Hello' to TIMESTAMP"},
      {"CAST('2024-02-30' AS TIMESTAMP)", "error: cannot convert '2024-02-30' to TIMESTAMP"},
      {"CAST(e AS BIGINT)", "error: cannot convert '' to BIGINT"},
      {"CAST(repeat('x', 50) AS BIGINT)",
       "error: cannot convert 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' to BIGINT"},
      {"CAST(1e300 AS BIGINT)", "error: cannot convert 1e+300 to BIGINT"},
      {"CAST(9223372036854775807.0 AS BIGINT)",
       "error: cannot convert 9223372036854775808.0 to BIGINT"},
      {"CAST(CAST('nan' AS DOUBLE) AS BIGINT)", "error: cannot convert NaN to BIGINT"},
      {"sqrt(j)", "error: cannot take the square root of a negative number: -3.0"},
      {"ln(z)", "error: cannot take the logarithm of a non-positive number: 0.0"},
      {"log10(j)", "error: cannot take the logarithm of a non-positive number: -3.0"},
      {"log(1, 8)", "error: cannot take the logarithm of 8.0 in base 1.0"},
      {"time_bucket(z, ts)", "error: time_bucket() width must be positive, found 0"},
      {"split_part(s, 'l', 0)", "error: split_part() field position must not be zero"},
      {"repeat(s, 100000000)", "error: repeat() result is larger than 16 MiB"},
      {"i / z IS NULL", "error: division by zero"},
      {"coalesce(i / z, 1)", "error: division by zero"},
      {"upper(CAST(i / z AS VARCHAR))", "error: division by zero"},
      // The first failure in evaluation order names the row.
      {"CAST(s AS BIGINT) + i / z", "error: cannot convert 'Hello' to BIGINT"},
      {"i / z + CAST(s AS BIGINT)", "error: division by zero"},
      // Masking: no error where the failing part is not evaluated.
      {"CASE WHEN z <> 0 THEN i / z ELSE -1 END", "-1"},
      {"CASE WHEN z = 0 THEN -1 ELSE i / z END", "-1"},
      {"CASE z WHEN 0 THEN -1 ELSE i / z END", "-1"},
      {"z <> 0 AND i / z > 1", "FALSE"},
      {"z = 0 OR i / z > 1", "TRUE"},
      {"coalesce(i, i / z)", "7"},
      {"CASE WHEN FALSE THEN 1 / 0 ELSE 2 END", "2"},
      {"FALSE AND 1 / 0 = 1", "FALSE"},
      {"if(z = 0, 0, i / z)", "0"},
      {"TRY_CAST(s AS BIGINT)", "NULL"},
  });
}

// ---- Three-valued logic over every combination, on dense and masked paths.

struct Truth {
  std::string_view text;
  // Results for (p, q) in the order of kTruthRows.
  std::vector<std::string_view> expected;
};

// (p, q): TRUE/FALSE/NULL x TRUE/FALSE/NULL.
const std::vector<std::pair<Cell, Cell>> kTruthRows = {
    {true, true},   {true, false}, {true, kNull},  {false, true},  {false, false},
    {false, kNull}, {kNull, true}, {kNull, false}, {kNull, kNull},
};

TEST(ExprLogic, ThreeValuedTruthTables) {
  auto schema = std::make_shared<const Schema>(
      Schema{{{"p", Type::kBool}, {"q", Type::kBool}, {"k", Type::kInt64}}});
  // 200 rows cycle through the nine combinations, so bitmaps span several words.
  std::vector<std::vector<Cell>> rows;
  for (size_t r = 0; r < 200; ++r) {
    const auto& [p, q] = kTruthRows[r % kTruthRows.size()];
    rows.push_back({p, q, int64_t{1}});
  }
  RecordBatch batch = MakeBatch(schema, rows);
  const std::vector<Truth> tables = {
      {"p AND q", {"TRUE", "FALSE", "NULL", "FALSE", "FALSE", "FALSE", "NULL", "FALSE", "NULL"}},
      {"p OR q", {"TRUE", "TRUE", "TRUE", "TRUE", "FALSE", "NULL", "TRUE", "NULL", "NULL"}},
      {"NOT p", {"FALSE", "FALSE", "FALSE", "TRUE", "TRUE", "TRUE", "NULL", "NULL", "NULL"}},
      {"p = q", {"TRUE", "FALSE", "NULL", "FALSE", "TRUE", "NULL", "NULL", "NULL", "NULL"}},
      {"p IS NULL", {"FALSE", "FALSE", "FALSE", "FALSE", "FALSE", "FALSE", "TRUE", "TRUE", "TRUE"}},
      {"p IS TRUE", {"TRUE", "TRUE", "TRUE", "FALSE", "FALSE", "FALSE", "FALSE", "FALSE", "FALSE"}},
      {"p IS NOT FALSE",
       {"TRUE", "TRUE", "TRUE", "FALSE", "FALSE", "FALSE", "TRUE", "TRUE", "TRUE"}},
      {"p IS DISTINCT FROM q",
       {"FALSE", "TRUE", "TRUE", "TRUE", "FALSE", "TRUE", "TRUE", "TRUE", "FALSE"}},
      // The right side can fail (k / k), so these take the masked AND/OR paths; k / k = 1
      // is TRUE, so each must equal the plain table.
      {"p AND (q AND k / k = 1)",
       {"TRUE", "FALSE", "NULL", "FALSE", "FALSE", "FALSE", "NULL", "FALSE", "NULL"}},
      {"p OR (q AND k / k = 1)",
       {"TRUE", "TRUE", "TRUE", "TRUE", "FALSE", "NULL", "TRUE", "NULL", "NULL"}},
      // A constant operand.
      {"p AND NULL", {"NULL", "NULL", "NULL", "FALSE", "FALSE", "FALSE", "NULL", "NULL", "NULL"}},
      {"p OR NULL", {"TRUE", "TRUE", "TRUE", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"}},
      {"CASE WHEN p THEN 'a' WHEN q THEN 'b' ELSE 'c' END",
       {"'a'", "'a'", "'a'", "'b'", "'c'", "'c'", "'b'", "'c'", "'c'"}},
      {"p IN (q)", {"TRUE", "FALSE", "NULL", "FALSE", "TRUE", "NULL", "NULL", "NULL", "NULL"}},
      {"p IN (TRUE, NULL)",
       {"TRUE", "TRUE", "TRUE", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"}},
      {"p NOT IN (TRUE, NULL)",
       {"FALSE", "FALSE", "FALSE", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"}},
      {"coalesce(p, q)",
       {"TRUE", "TRUE", "TRUE", "FALSE", "FALSE", "FALSE", "TRUE", "FALSE", "NULL"}},
  };
  ExprState state;
  for (const Truth& t : tables) {
    ExprError err;
    std::optional<Expr> e = Expr::Compile(t.text, *schema, &err);
    ASSERT_TRUE(e) << t.text << ": " << err.message;
    Column out;
    std::vector<RowError> errors;
    e->Evaluate(batch, state, out, errors);
    EXPECT_TRUE(errors.empty()) << t.text;
    ASSERT_EQ(out.size(), rows.size());
    for (size_t r = 0; r < rows.size(); ++r) {
      EXPECT_EQ(Render(out, r), t.expected[r % kTruthRows.size()]) << t.text << " row " << r;
    }
  }
}

// ---- Compile errors: message and offset.

std::shared_ptr<const Schema> SpecSchema() {
  static const auto schema = std::make_shared<const Schema>(Schema{{
      {"amount", Type::kDouble},
      {"country", Type::kString},
      {"user", Type::kString},
      {"ts", Type::kInt64},
      {"user.id", Type::kInt64},
      {"flag", Type::kBool},
      {"t", Type::kTimestamp},
  }});
  return schema;
}

struct CompileCase {
  std::string text;
  size_t offset;
  std::string_view message;
};

TEST(ExprCompile, ErrorsNameTheProblemAndWhereItIs) {
  const std::vector<CompileCase> cases = {
      {"amout > 0", 0, "unknown field 'amout' (did you mean 'amount'?)"},
      {"uper(country)", 0, "unknown function 'uper' (did you mean 'upper'?)"},
      {"amount > 0 AND cuntry = 'x'", 15, "unknown field 'cuntry' (did you mean 'country'?)"},
      {"user.idd", 0, "unknown field 'user.idd' (did you mean 'user.id'?)"},
      {"zzz", 0, "unknown field 'zzz'"},
      {"frobnicate(1)", 0, "unknown function 'frobnicate'"},
      {"country = 1", 8, "cannot compare VARCHAR with BIGINT"},
      {"1 = country", 2, "cannot compare BIGINT with VARCHAR"},
      {"flag < amount", 5, "cannot compare BOOLEAN with DOUBLE"},
      {"t = ts", 2, "cannot compare TIMESTAMP with BIGINT"},
      {"amount IN (1, 'x')", 14, "cannot compare DOUBLE with VARCHAR"},
      {"amount BETWEEN 'a' AND 2", 15, "cannot compare DOUBLE with VARCHAR"},
      {"CASE country WHEN 1 THEN 2 END", 18, "cannot compare VARCHAR with BIGINT"},
      {"amount + country", 7,
       "operator '+' cannot be applied to DOUBLE and VARCHAR (use || to concatenate strings)"},
      {"amount * flag", 7, "operator '*' cannot be applied to DOUBLE and BOOLEAN"},
      {"ts - t", 3, "operator '-' cannot be applied to BIGINT and TIMESTAMP"},
      {"t + t", 2, "operator '+' cannot be applied to TIMESTAMP and TIMESTAMP"},
      {"-country", 0, "operator '-' cannot be applied to VARCHAR"},
      {"amount AND flag", 0, "AND expects a BOOLEAN operand, found DOUBLE"},
      {"flag OR 1", 8, "OR expects a BOOLEAN operand, found BIGINT"},
      {"NOT amount", 4, "NOT expects a BOOLEAN operand, found DOUBLE"},
      {"amount IS TRUE", 0, "IS TRUE expects a BOOLEAN operand, found DOUBLE"},
      {"CASE WHEN amount THEN 1 END", 10, "WHEN expects a BOOLEAN operand, found DOUBLE"},
      {"CASE WHEN flag THEN 1 ELSE 'x' END", 27,
       "CASE results have incompatible types BIGINT and VARCHAR"},
      {"substr(country)", 0, "function 'substr' takes 2 to 3 arguments, found 1"},
      {"upper(country, 1)", 0, "function 'upper' takes 1 argument, found 2"},
      {"pi(1)", 0, "function 'pi' takes 0 arguments, found 1"},
      {"concat()", 0, "function 'concat' takes at least 1 argument, found 0"},
      {"hour(t, t)", 0, "function 'hour' takes 1 argument, found 2"},
      {"upper(amount)", 6, "function 'upper' expects VARCHAR for argument 1, found DOUBLE"},
      {"substr(country, 1.5)", 16, "function 'substr' expects BIGINT for argument 2, found DOUBLE"},
      {"sqrt(country)", 5, "function 'sqrt' expects DOUBLE for argument 1, found VARCHAR"},
      {"abs(flag)", 4, "function 'abs' expects BIGINT or DOUBLE for argument 1, found BOOLEAN"},
      {"hour(country)", 5,
       "function 'hour' expects TIMESTAMP or BIGINT milliseconds for argument 1, found VARCHAR"},
      {"coalesce(amount, country)", 17,
       "function 'coalesce' arguments have incompatible types DOUBLE and VARCHAR"},
      {"if(amount, 1, 2)", 3, "function 'if' expects BOOLEAN for argument 1, found DOUBLE"},
      {"log(amount)", 0,
       "log(x) means ln(x) in some SQL dialects and log10(x) in others: write ln(x), log10(x) "
       "or log(base, x)"},
      {"sum(amount)", 0, "aggregate function 'sum' is not allowed in a scalar expression"},
      {"upper(DISTINCT country)", 0, "DISTINCT is only allowed in aggregate functions"},
      {"upper(*)", 6, "'*' is only allowed in count(*)"},
      {"date_trunc('hr', t)", 11,
       "unknown date_trunc unit 'hr' (expected millisecond, second, minute, hour, day, week, "
       "month, quarter or year)"},
      {"date_trunc(country, t)", 11,
       "function 'date_trunc' expects a constant string for argument 1"},
      {"extract(fortnight FROM t)", 8,
       "unknown date part 'fortnight' (expected year, quarter, month, week, day, dow, isodow, "
       "doy, hour, minute, second, millisecond or epoch)"},
      {"country LIKE 1", 13, "LIKE expects VARCHAR operands, found BIGINT"},
      {"amount ILIKE 'a'", 0, "ILIKE expects VARCHAR operands, found DOUBLE"},
      {"country LIKE 'a' ESCAPE 'ab'", 24, "ESCAPE expects a constant string of one character"},
      {"CAST(amount AS INTEGR)", 15, "unknown type 'INTEGR' (did you mean 'INTEGER'?)"},
      {"CAST(amount AS BLOB)", 15, "unknown type 'BLOB'"},
      {"CAST(flag AS TIMESTAMP)", 0, "cannot cast BOOLEAN to TIMESTAMP"},
      {"amount::TIMESTAMP", 6, "cannot cast DOUBLE to TIMESTAMP"},
      {"CAST(amount AS)", 14, "expected a type name, found ')'"},
      {"CAST(amount, BIGINT)", 11, "expected AS, found ','"},
      {"t > 'yesterday'", 4,
       "invalid TIMESTAMP 'yesterday' (expected YYYY-MM-DD[ HH:MM:SS[.fff]])"},
      {"TIMESTAMP '2024-13-01'", 10,
       "invalid TIMESTAMP '2024-13-01' (expected YYYY-MM-DD[ HH:MM:SS[.fff]])"},
      {"INTERVAL '1' MONTH", 13,
       "INTERVAL MONTH is not supported: it has no fixed length (use date_trunc for calendar "
       "units)"},
      {"INTERVAL '1' FORTNIGHT", 13,
       "unknown interval unit 'FORTNIGHT' (expected MILLISECOND, SECOND, MINUTE, HOUR, DAY or "
       "WEEK)"},
      {"INTERVAL 'x' SECOND", 9, "invalid interval amount 'x'"},
      {"99999999999999999999", 0,
       "integer literal 99999999999999999999 is out of range for BIGINT"},
      {"amount >", 8, "expected an expression, found end of expression"},
      {"", 0, "expected an expression, found end of expression"},
      {"amount > 0 country", 11, "expected an operator or end of expression, found 'country'"},
      {"(amount > 0", 11, "expected ')', found end of expression"},
      {"upper(country", 13, "expected ',' or ')', found end of expression"},
      {"amount IN 1", 10, "expected '(', found '1'"},
      {"amount BETWEEN 1 2", 17, "expected AND, found '2'"},
      {"flag IS 1", 8, "expected NULL, TRUE, FALSE or DISTINCT FROM after IS, found '1'"},
      {"CASE WHEN flag THEN 1", 21, "expected WHEN, ELSE or END, found end of expression"},
      {"CASE WHEN flag THEN 1 ELSE 2", 28, "expected END, found end of expression"},
      {"CASE END", 5, "expected an expression, found 'END'"},
      {"amount > AND", 9, "expected an expression, found 'AND'"},
      {"user.", 5, "expected a field name after '.', found end of expression"},
      {"country = 'abc", 10, "unterminated string literal"},
      {"\"amount", 0, "unterminated quoted name"},
      {"\"\"", 0, "empty quoted name"},
      {"amount # 2", 7, "unexpected character '#'"},
      {"amount /* open", 7, "unterminated comment"},
      {"1abc", 0, "invalid number '1abc'"},
      {std::string(300, '(') + "1" + std::string(300, ')'), 200, "expression nested too deeply"},
  };
  for (const CompileCase& c : cases) {
    ExprError err;
    std::optional<Expr> e = Expr::Compile(c.text, *SpecSchema(), &err);
    EXPECT_FALSE(e) << c.text;
    EXPECT_EQ(err.message, c.message) << c.text;
    EXPECT_EQ(err.offset, c.offset) << c.text;
  }
}

TEST(ExprCompile, PredicatesMustBeBoolean) {
  ExprError err;
  EXPECT_TRUE(Expr::CompilePredicate("amount > 0 AND country <> 'XX'", *SpecSchema(), &err));
  EXPECT_TRUE(Expr::CompilePredicate("NULL", *SpecSchema(), &err));
  EXPECT_FALSE(Expr::CompilePredicate("  amount * 2", *SpecSchema(), &err));
  EXPECT_EQ(err.message, "expected a BOOLEAN condition, found DOUBLE");
  EXPECT_EQ(err.offset, 2u);
  EXPECT_FALSE(Expr::CompilePredicate("/* cents */ (amount * 100)", *SpecSchema(), &err));
  EXPECT_EQ(err.message, "expected a BOOLEAN condition, found DOUBLE");
  EXPECT_EQ(err.offset, 12u);
  EXPECT_FALSE(Expr::CompilePredicate("amout > 0", *SpecSchema(), &err));
  EXPECT_EQ(err.message, "unknown field 'amout' (did you mean 'amount'?)");
}

TEST(ExprCompile, LongChainsAreRefusedNotOverflowingTheStack) {
  ExprError err;
  std::string sum = "amount";
  for (int k = 0; k < 900; ++k) sum += " + amount";
  EXPECT_TRUE(Expr::Compile(sum, *SpecSchema(), &err)) << err.message;
  for (int k = 0; k < 200000; ++k) sum += " + amount";
  EXPECT_FALSE(Expr::Compile(sum, *SpecSchema(), &err));
  EXPECT_EQ(err.message, "expression nested too deeply");
  EXPECT_EQ(err.offset, 8998u);  // the 1000th '+', which makes the chain 1001 high
  // Wide is fine: a long IN list or argument list is not deep.
  std::string in = "ts IN (0";
  for (int k = 1; k < 20000; ++k) in += ", " + std::to_string(k);
  EXPECT_TRUE(Expr::Compile(in + ")", *SpecSchema(), &err)) << err.message;
}

TEST(ExprCompile, NormalizedTextAndProperties) {
  const std::vector<std::pair<std::string_view, std::string_view>> texts = {
      {"CAST(round(amount * 100) AS BIGINT)", "CAST(round((amount * 100)) AS BIGINT)"},
      {"cast(amount as int)", "CAST(amount AS BIGINT)"},
      {"amount::double precision", "CAST(amount AS DOUBLE)"},
      {"UPPER(country)", "upper(country)"},
      {"amount > 0 and not flag", "((amount > 0) AND (NOT flag))"},
      {"\"user.id\" + user.id", "(user.id + user.id)"},
      {"\"user\"", "user"},
      {"'it''s'", "'it''s'"},
      {"-amount", "(-amount)"},
      {"-5", "-5"},
      {"1.50", "1.5"},
      {"ts + INTERVAL '10' seconds", "(ts + INTERVAL '10' SECOND)"},
      {"ts + INTERVAL ' 1.5 minutes '", "(ts + INTERVAL '1.5' MINUTE)"},
      {"t > timestamp '2024-01-01'", "(t > TIMESTAMP '2024-01-01 00:00:00')"},
      {"case when flag then 1 else 2 end", "CASE WHEN flag THEN 1 ELSE 2 END"},
      {"CASE country WHEN 'a' THEN 1 END", "CASE country WHEN 'a' THEN 1 END"},
      {"country not in ('a','b')", "(country NOT IN ('a', 'b'))"},
      {"amount not between 1 and 2", "(amount NOT BETWEEN 1 AND 2)"},
      {"country not ilike 'a%' escape '!'", "(country NOT ILIKE 'a%' ESCAPE '!')"},
      {"flag is not null", "(flag IS NOT NULL)"},
      {"flag is not distinct from true", "(flag IS NOT DISTINCT FROM TRUE)"},
      {"extract(hour from t)", "date_part('hour', t)"},
      {"trim(leading 'x' from country)", "ltrim(country, 'x')"},
      {"position('a' in country)", "strpos(country, 'a')"},
      {"try_cast(country AS BIGINT)", "TRY_CAST(country AS BIGINT)"},
  };
  for (const auto& [text, normalized] : texts) {
    ExprError err;
    std::optional<Expr> e = Expr::Compile(text, *SpecSchema(), &err);
    ASSERT_TRUE(e) << text << ": " << err.message;
    EXPECT_EQ(e->ToString(), normalized) << text;
    // The normalized text compiles to the same thing.
    std::optional<Expr> again = Expr::Compile(e->ToString(), *SpecSchema(), &err);
    ASSERT_TRUE(again) << e->ToString() << ": " << err.message;
    EXPECT_EQ(again->ToString(), normalized);
  }

  ExprError err;
  std::optional<Expr> e = Expr::Compile("country", *SpecSchema(), &err);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->field_ref(), 1);
  EXPECT_EQ(e->type(), Type::kString);
  EXPECT_FALSE(e->can_fail());
  EXPECT_FALSE(e->is_constant());

  e = Expr::Compile("concat(ts / amount, upper(country), user.id)", *SpecSchema(), &err);
  ASSERT_TRUE(e) << err.message;
  EXPECT_EQ(e->inputs(), (std::vector<int>{0, 1, 3, 4}));
  EXPECT_EQ(e->field_ref(), -1);
  EXPECT_TRUE(e->can_fail());

  e = Expr::Compile("1 + 2", *SpecSchema(), &err);
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->is_constant());
  EXPECT_TRUE(e->inputs().empty());
  EXPECT_FALSE(e->can_fail());

  // What can fail: overflow, division by a value that may be zero, text conversions.
  const std::vector<std::pair<std::string_view, bool>> fallible = {
      {"ts + 1", true},
      {"amount + 1", false},
      {"ts / 2", false},
      {"ts / 0", true},
      {"ts / ts", true},
      {"amount / 2", false},
      {"amount / amount", true},
      {"ts % 3", false},
      {"CAST(country AS BIGINT)", true},
      {"CAST(ts AS VARCHAR)", false},
      {"TRY_CAST(country AS BIGINT)", false},
      {"CAST(amount AS BIGINT)", true},
      {"sqrt(amount)", true},
      {"upper(country)", false},
      {"amount > 0 AND ts / ts = 1", true},
      {"NULL", false},
  };
  for (const auto& [text, can_fail] : fallible) {
    e = Expr::Compile(text, *SpecSchema(), &err);
    ASSERT_TRUE(e) << text << ": " << err.message;
    EXPECT_EQ(e->can_fail(), can_fail) << text;
  }
  EXPECT_EQ(Expr::Compile("NULL", *SpecSchema(), &err)->type(), Type::kNull);
  EXPECT_EQ(Expr::Compile("t - t", *SpecSchema(), &err)->type(), Type::kInt64);
  EXPECT_EQ(Expr::Compile("t + 1", *SpecSchema(), &err)->type(), Type::kTimestamp);
  EXPECT_EQ(Expr::Compile("ts + 1.0", *SpecSchema(), &err)->type(), Type::kDouble);
}

// ---- Row errors over a batch: order, masking, NULL results.

TEST(ExprRows, ErrorsAreReportedOncePerRowInRowOrder) {
  auto schema = std::make_shared<const Schema>(
      Schema{{{"v", Type::kInt64}, {"w", Type::kInt64}, {"s", Type::kString}}});
  // v: 1, 0, NULL, 5, 0, 2; w is NULL exactly where v is 0.
  RecordBatch batch = MakeBatch(schema, {
                                            {int64_t{1}, kNull, std::string("1")},
                                            {int64_t{0}, int64_t{9}, std::string("x")},
                                            {kNull, kNull, std::string("3")},
                                            {int64_t{5}, kNull, std::string("y")},
                                            {int64_t{0}, int64_t{8}, std::string("5")},
                                            {int64_t{2}, kNull, kNull},
                                        });
  struct RowCase {
    std::string_view text;
    std::vector<std::string_view> values;
    std::vector<std::pair<uint32_t, std::string_view>> errors;
  };
  const std::vector<RowCase> cases = {
      {"100 / v",
       {"100", "NULL", "NULL", "20", "NULL", "50"},
       {{1, "division by zero"}, {4, "division by zero"}}},
      {"CASE WHEN v <> 0 THEN 100 / v END", {"100", "NULL", "NULL", "20", "NULL", "50"}, {}},
      {"v <> 0 AND 100 / v > 30", {"TRUE", "FALSE", "NULL", "FALSE", "FALSE", "TRUE"}, {}},
      {"v = 0 OR 100 / v > 30", {"TRUE", "TRUE", "NULL", "FALSE", "TRUE", "TRUE"}, {}},
      {"coalesce(w, 100 / v)", {"100", "9", "NULL", "20", "8", "50"}, {}},
      // Errors from two blocks (THEN on v = 5, ELSE on v = 0) still come out in row order.
      {"CASE WHEN v > 2 THEN 100 / (v - 5) ELSE 100 / v END",
       {"100", "NULL", "NULL", "NULL", "NULL", "50"},
       {{1, "division by zero"}, {3, "division by zero"}, {4, "division by zero"}}},
      // A row that fails twice reports its first failure.
      {"CAST(s AS BIGINT) + 100 / v",
       {"101", "NULL", "NULL", "NULL", "NULL", "NULL"},
       {{1, "cannot convert 'x' to BIGINT"},
        {3, "cannot convert 'y' to BIGINT"},
        {4, "division by zero"}}},
      {"TRY_CAST(s AS BIGINT)", {"1", "NULL", "3", "NULL", "5", "NULL"}, {}},
  };
  ExprState state;
  for (const RowCase& c : cases) {
    ExprError err;
    std::optional<Expr> e = Expr::Compile(c.text, *schema, &err);
    ASSERT_TRUE(e) << c.text << ": " << err.message;
    Column out;
    // Errors are appended to what the vector holds.
    std::vector<RowError> errors = {{99, "earlier"}};
    e->Evaluate(batch, state, out, errors);
    ASSERT_EQ(out.size(), batch.rows);
    for (size_t r = 0; r < batch.rows; ++r) {
      EXPECT_EQ(Render(out, r), c.values[r]) << c.text << " row " << r;
    }
    ASSERT_EQ(errors.size(), c.errors.size() + 1) << c.text;
    for (size_t k = 0; k < c.errors.size(); ++k) {
      EXPECT_EQ(errors[k + 1].row, c.errors[k].first) << c.text;
      EXPECT_EQ(errors[k + 1].message, c.errors[k].second) << c.text;
    }
  }
}

// ---- Batches longer than one bitmap word, NULLs at the word edges.

TEST(ExprRows, NullsAtWordBoundaries) {
  auto schema = std::make_shared<const Schema>(
      Schema{{{"x", Type::kInt64}, {"s", Type::kString}, {"d", Type::kDouble}}});
  const std::vector<size_t> null_rows = {0, 63, 64, 65, 127, 128, 191, 192, 255, 256, 299};
  auto is_null = [&](size_t r) {
    return std::find(null_rows.begin(), null_rows.end(), r) != null_rows.end();
  };
  std::vector<std::vector<Cell>> rows;
  for (size_t r = 0; r < 300; ++r) {
    if (is_null(r)) {
      rows.push_back({kNull, kNull, kNull});
    } else {
      rows.push_back({static_cast<int64_t>(r), "s" + std::to_string(r), r * 0.5});
    }
  }
  RecordBatch batch = MakeBatch(schema, rows);
  struct Expected {
    std::string_view text;
    std::function<std::string(size_t)> row;  // for a non-NULL row r
    std::string_view for_null;
  };
  const std::vector<Expected> cases = {
      {"x", [](size_t r) { return std::to_string(r); }, "NULL"},
      {"x + 1", [](size_t r) { return std::to_string(r + 1); }, "NULL"},
      {"x * 2 - d", [](size_t r) { return testing::RenderDouble(r * 2 - r * 0.5); }, "NULL"},
      {"x % 3 = 0", [](size_t r) { return r % 3 == 0 ? "TRUE" : "FALSE"; }, "NULL"},
      {"x > 100 AND d < 140", [](size_t r) { return r > 100 && r < 280 ? "TRUE" : "FALSE"; },
       "NULL"},
      {"x > 100 OR d < 10", [](size_t r) { return r > 100 || r < 20 ? "TRUE" : "FALSE"; }, "NULL"},
      {"x IS NULL", [](size_t) { return "FALSE"; }, "TRUE"},
      {"coalesce(x, -1)", [](size_t r) { return std::to_string(r); }, "-1"},
      {"CASE WHEN x % 2 = 0 THEN 'even' ELSE 'odd' END",
       [](size_t r) { return r % 2 == 0 ? "'even'" : "'odd'"; }, "'odd'"},
      {"upper(s)", [](size_t r) { return "'S" + std::to_string(r) + "'"; }, "NULL"},
      {"s || '!'", [](size_t r) { return "'s" + std::to_string(r) + "!'"; }, "NULL"},
      {"length(s) = 3", [](size_t r) { return r >= 10 && r < 100 ? "TRUE" : "FALSE"; }, "NULL"},
      {"x IN (1, 64, 128, 200)", [](size_t r) { return r == 1 || r == 200 ? "TRUE" : "FALSE"; },
       "NULL"},
      {"100 / (x - 150)",
       [](size_t r) {
         return r == 150 ? "NULL" : std::to_string(100 / (static_cast<int64_t>(r) - 150));
       },
       "NULL"},
  };
  ExprState state;
  for (const Expected& c : cases) {
    ExprError err;
    std::optional<Expr> e = Expr::Compile(c.text, *schema, &err);
    ASSERT_TRUE(e) << c.text << ": " << err.message;
    Column out;
    std::vector<RowError> errors;
    // Twice, so that the second run reuses every buffer of the first.
    for (int run = 0; run < 2; ++run) {
      errors.clear();
      e->Evaluate(batch, state, out, errors);
      ASSERT_EQ(out.size(), rows.size());
      for (size_t r = 0; r < rows.size(); ++r) {
        std::string want = is_null(r) ? std::string(c.for_null) : c.row(r);
        EXPECT_EQ(Render(out, r), want) << c.text << " row " << r;
      }
    }
    if (std::string_view(c.text) == "100 / (x - 150)") {
      ASSERT_EQ(errors.size(), 1u);
      EXPECT_EQ(errors[0].row, 150u);
    } else {
      EXPECT_TRUE(errors.empty()) << c.text;
    }
  }
}

TEST(ExprRows, EmptyBatchAndStateSharedBetweenExpressions) {
  auto schema = RowSchema();
  ExprState state;
  ExprError err;
  std::optional<Expr> a = Expr::Compile("i + 1", *schema, &err);
  std::optional<Expr> b = Expr::Compile("upper(s) || '!'", *schema, &err);
  ASSERT_TRUE(a && b);
  RecordBatch empty = MakeBatch(schema, {});
  Column out;
  std::vector<RowError> errors;
  a->Evaluate(empty, state, out, errors);
  EXPECT_EQ(out.size(), 0u);
  EXPECT_EQ(out.type(), Type::kInt64);
  RecordBatch batch = MakeBatch(schema, {Row(), Row()});
  for (int k = 0; k < 3; ++k) {
    a->Evaluate(batch, state, out, errors);
    EXPECT_EQ(Render(out, 1), "8");
    b->Evaluate(batch, state, out, errors);
    EXPECT_EQ(Render(out, 1), "'HELLO!'");
  }
  // A copy shares the program and evaluates the same.
  Expr copy = *b;
  copy.Evaluate(batch, state, out, errors);
  EXPECT_EQ(Render(out, 0), "'HELLO!'");
  EXPECT_TRUE(errors.empty());
}

TEST(ExprRows, OneExpressionOnManyThreads) {
  auto schema = std::make_shared<const Schema>(Schema{{{"v", Type::kInt64}, {"s", Type::kString}}});
  std::vector<std::vector<Cell>> rows;
  for (int64_t r = 0; r < 3000; ++r) {
    rows.push_back({r % 17 == 0 ? kNull : Cell{r - 1500}, Cell{"s" + std::to_string(r % 100)}});
  }
  RecordBatch batch = MakeBatch(schema, rows);
  ExprError err;
  std::optional<Expr> e = Expr::Compile(
      "CASE WHEN v % 3 = 0 THEN upper(s) || '/' || CAST(1000 / v AS VARCHAR) ELSE s END", *schema,
      &err);
  ASSERT_TRUE(e) << err.message;
  auto run = [&](std::vector<std::string>* rendered, size_t* error_count) {
    ExprState state;
    Column out;
    for (int k = 0; k < 50; ++k) {
      std::vector<RowError> errors;
      e->Evaluate(batch, state, out, errors);
      *error_count = errors.size();
    }
    for (size_t r = 0; r < out.size(); ++r) rendered->push_back(Render(out, r));
  };
  std::vector<std::string> a, b, c;
  size_t ea = 0, eb = 0, ec = 0;
  std::thread t1(run, &a, &ea), t2(run, &b, &eb);
  run(&c, &ec);
  t1.join();
  t2.join();
  EXPECT_EQ(a, c);
  EXPECT_EQ(b, c);
  EXPECT_EQ(ea, 1u);  // v = 0
  EXPECT_EQ(eb, 1u);
  EXPECT_EQ(c[1500], "NULL");
  EXPECT_EQ(c[1503], "'S3/333'");
  EXPECT_EQ(c[1504], "'s4'");
}

TEST(ExprRows, NoAllocationOnceWarm) {
  auto schema = std::make_shared<const Schema>(Schema{{{"amount", Type::kDouble},
                                                       {"country", Type::kString},
                                                       {"value", Type::kInt64},
                                                       {"ts", Type::kTimestamp}}});
  std::vector<std::vector<Cell>> rows;
  for (int64_t r = 0; r < 1000; ++r) {
    rows.push_back({r % 11 == 0 ? kNull : Cell{r * 0.37 - 20},
                    r % 13 == 0 ? kNull : Cell{std::string(r % 3 ? "de" : "XX")}, Cell{r - 500},
                    Cell{kTs + r * 1000}});
  }
  RecordBatch batch = MakeBatch(schema, rows);
  for (std::string_view text : {
           "value * 2",
           "value % 3 <> 0",
           "amount > 0 AND country <> 'XX'",
           "CAST(round(amount * 100) AS BIGINT)",
           "upper(country)",
           "CASE WHEN value <> 0 THEN 1000 / value ELSE 0 END",
           "value <> 0 AND 1000 / value > 3",
           "coalesce(country, 'none') || '-' || CAST(value AS VARCHAR)",
           "country LIKE '%e' OR country ILIKE 'x%'",
           "date_trunc('minute', ts) + INTERVAL '1' HOUR",
           "substr(country, 2) IN ('e', 'X')",
       }) {
    ExprError err;
    std::optional<Expr> e = Expr::Compile(text, *schema, &err);
    ASSERT_TRUE(e) << text << ": " << err.message;
    ExprState state;
    Column out;
    std::vector<RowError> errors;
    e->Evaluate(batch, state, out, errors);
    e->Evaluate(batch, state, out, errors);
    ASSERT_TRUE(errors.empty()) << text;
    testing::CountAllocations(true);
    for (int k = 0; k < 5; ++k) e->Evaluate(batch, state, out, errors);
    testing::CountAllocations(false);
    EXPECT_EQ(testing::CountedAllocations(), 0u) << text;
  }
}

// ---- Specialized kernels against plain computation.

TEST(ExprKernels, DivisibilityTestMatchesModulo) {
  auto schema = std::make_shared<const Schema>(Schema{{{"x", Type::kInt64}}});
  std::vector<int64_t> values = {kMin,     kMin + 1, -(int64_t{1} << 62),
                                 -1000,    -12,      -7,
                                 -6,       -4,       -3,
                                 -2,       -1,       0,
                                 1,        2,        3,
                                 4,        6,        7,
                                 12,       1000,     int64_t{1} << 62,
                                 kMax - 1, kMax};
  std::mt19937_64 rng(5);
  for (int k = 0; k < 200; ++k) values.push_back(static_cast<int64_t>(rng()) >> (rng() % 60));
  std::vector<std::vector<Cell>> rows;
  for (int64_t v : values) rows.push_back({v});
  rows.push_back({kNull});
  RecordBatch batch = MakeBatch(schema, rows);
  const std::vector<int64_t> divisors = {1,
                                         -1,
                                         2,
                                         -2,
                                         3,
                                         -3,
                                         4,
                                         6,
                                         7,
                                         -7,
                                         12,
                                         1000,
                                         1024,
                                         641,
                                         kMax,
                                         kMin,
                                         int64_t{1} << 62,
                                         -(int64_t{1} << 40) * 3};
  ExprState state;
  for (int64_t d : divisors) {
    for (std::string_view form : {"x % {} = 0", "x % {} <> 0", "0 = x % {}", "(x % {}) + 0 = 0"}) {
      std::string text = fmt::format(fmt::runtime(form), d);
      ExprError err;
      std::optional<Expr> e = Expr::Compile(text, *schema, &err);
      ASSERT_TRUE(e) << text << ": " << err.message;
      Column out;
      std::vector<RowError> errors;
      e->Evaluate(batch, state, out, errors);
      ASSERT_TRUE(errors.empty()) << text;
      bool negated = form.find("<>") != std::string_view::npos;
      for (size_t r = 0; r < values.size(); ++r) {
        int64_t x = values[r];
        bool divisible = d == -1 || x % d == 0;
        EXPECT_EQ(Render(out, r), divisible != negated ? "TRUE" : "FALSE") << text << " x=" << x;
      }
      EXPECT_EQ(Render(out, values.size()), "NULL") << text;
    }
  }
}

TEST(ExprKernels, StringEqualsConstant) {
  auto schema = std::make_shared<const Schema>(Schema{{{"s", Type::kString}}});
  const std::vector<std::string> strings = {"",         "a",        "b",         "ab",   "ba",
                                            "abc",      "abd",      "abcd",      "abce", "abcde",
                                            "abcdefgh", "abcdefgi", "abcdefghi", "é",    "aé"};
  std::vector<std::vector<Cell>> rows;
  for (int rep = 0; rep < 5; ++rep) {
    for (const std::string& v : strings) rows.push_back({v});
    rows.push_back({kNull});
  }
  RecordBatch batch = MakeBatch(schema, rows);
  ExprState state;
  for (const std::string& k : strings) {
    // A field (read from the column), an expression (through views), and both operators.
    for (std::string_view form :
         {"s = '{}'", "s <> '{}'", "'{}' = s", "lower(s) = '{}'", "lower(s) <> '{}'"}) {
      std::string text = fmt::format(fmt::runtime(form), k);
      ExprError err;
      std::optional<Expr> e = Expr::Compile(text, *schema, &err);
      ASSERT_TRUE(e) << text << ": " << err.message;
      Column out;
      std::vector<RowError> errors;
      e->Evaluate(batch, state, out, errors);
      bool negated = form.find("<>") != std::string_view::npos;
      for (size_t r = 0; r < rows.size(); ++r) {
        const auto* v = std::get_if<std::string>(&rows[r][0]);
        std::string want = v == nullptr ? "NULL" : ((*v == k) != negated ? "TRUE" : "FALSE");
        EXPECT_EQ(Render(out, r), want) << text << " row " << r;
      }
    }
  }
}

TEST(ExprKernels, UpperAndLowerOfFieldsAsciiOrNot) {
  auto schema = std::make_shared<const Schema>(Schema{{{"s", Type::kString}, {"k", Type::kInt64}}});
  auto run = [&](const std::vector<std::vector<Cell>>& rows, std::string_view text) {
    RecordBatch batch = MakeBatch(schema, rows);
    ExprError err;
    std::optional<Expr> e = Expr::Compile(text, *schema, &err);
    EXPECT_TRUE(e) << err.message;
    ExprState state;
    Column out;
    std::vector<RowError> errors;
    e->Evaluate(batch, state, out, errors);
    std::vector<std::string> got;
    for (size_t r = 0; r < batch.rows; ++r) got.push_back(Render(out, r));
    return got;
  };
  std::vector<std::vector<Cell>> ascii = {{std::string("ab"), int64_t{1}},
                                          {kNull, int64_t{2}},
                                          {std::string(""), int64_t{3}},
                                          {std::string("Mixed Case 9"), int64_t{4}}};
  EXPECT_EQ(run(ascii, "upper(s)"),
            (std::vector<std::string>{"'AB'", "NULL", "''", "'MIXED CASE 9'"}));
  EXPECT_EQ(run(ascii, "lower(s)"),
            (std::vector<std::string>{"'ab'", "NULL", "''", "'mixed case 9'"}));
  // Only some rows selected (inside CASE): row by row.
  EXPECT_EQ(run(ascii, "CASE WHEN k = 4 THEN upper(s) ELSE s END"),
            (std::vector<std::string>{"'ab'", "NULL", "''", "'MIXED CASE 9'"}));
  std::vector<std::vector<Cell>> mixed = {
      {std::string("àb"), int64_t{1}}, {kNull, int64_t{2}}, {std::string("Ωmega"), int64_t{3}}};
  EXPECT_EQ(run(mixed, "upper(s)"), (std::vector<std::string>{"'ÀB'", "NULL", "'ΩMEGA'"}));
  EXPECT_EQ(run(mixed, "lower(s)"), (std::vector<std::string>{"'àb'", "NULL", "'ωmega'"}));
}

// ---- Aggregates.

TEST(ExprAggregate, CallsAndResultTypes) {
  struct AggCase {
    std::string_view text;
    AggregateKind kind;
    Type type;
    std::string_view normalized;
  };
  const std::vector<AggCase> cases = {
      {"count(*)", AggregateKind::kCountStar, Type::kInt64, "count(*)"},
      {"COUNT(*)", AggregateKind::kCountStar, Type::kInt64, "count(*)"},
      {"count(user)", AggregateKind::kCount, Type::kInt64, "count(user)"},
      {"count(DISTINCT user)", AggregateKind::kCountDistinct, Type::kInt64, "count(DISTINCT user)"},
      {"count_distinct(user)", AggregateKind::kCountDistinct, Type::kInt64, "count(DISTINCT user)"},
      {"sum(amount)", AggregateKind::kSum, Type::kDouble, "sum(amount)"},
      {"sum(ts)", AggregateKind::kSum, Type::kInt64, "sum(ts)"},
      {"SUM(ts * 2)", AggregateKind::kSum, Type::kInt64, "sum((ts * 2))"},
      {"avg(ts)", AggregateKind::kAvg, Type::kDouble, "avg(ts)"},
      {"min(country)", AggregateKind::kMin, Type::kString, "min(country)"},
      {"max(t)", AggregateKind::kMax, Type::kTimestamp, "max(t)"},
      {"max((amount + 1) * 2)", AggregateKind::kMax, Type::kDouble, "max(((amount + 1) * 2))"},
      {"first(flag)", AggregateKind::kFirst, Type::kBool, "first(flag)"},
      {"last(upper(country))", AggregateKind::kLast, Type::kString, "last(upper(country))"},
  };
  for (const AggCase& c : cases) {
    ExprError err;
    std::optional<AggregateCall> call = CompileAggregate(c.text, *SpecSchema(), &err);
    ASSERT_TRUE(call) << c.text << ": " << err.message;
    EXPECT_EQ(call->kind, c.kind) << c.text;
    EXPECT_EQ(call->type, c.type) << c.text;
    EXPECT_EQ(call->ToString(), c.normalized) << c.text;
    EXPECT_EQ(call->argument.has_value(), c.kind != AggregateKind::kCountStar) << c.text;
  }
  // The argument evaluates like any expression.
  ExprError err;
  std::optional<AggregateCall> call = CompileAggregate("sum(ts * 2)", *SpecSchema(), &err);
  ASSERT_TRUE(call);
  RecordBatch batch =
      MakeBatch(SpecSchema(),
                {{1.0, std::string("a"), std::string("u"), int64_t{21}, int64_t{1}, true, kTs}});
  ExprState state;
  Column out;
  std::vector<RowError> errors;
  call->argument->Evaluate(batch, state, out, errors);
  EXPECT_EQ(Render(out, 0), "42");
}

TEST(ExprAggregate, Errors) {
  const std::vector<CompileCase> cases = {
      {"summ(amount)", 0, "unknown aggregate function 'summ' (did you mean 'sum'?)"},
      {"frob(amount)", 0,
       "unknown aggregate function 'frob' (expected count, sum, min, max, avg, first, last or "
       "count_distinct)"},
      {"upper(country)", 0,
       "'upper' is not an aggregate function (expected count, sum, min, max, avg, first, last "
       "or count_distinct)"},
      {"sum(amount) + 1", 0,
       "expected an aggregate call such as sum(x): count, sum, min, max, avg, first, last or "
       "count_distinct"},
      {"amount", 0,
       "expected an aggregate call such as sum(x): count, sum, min, max, avg, first, last or "
       "count_distinct"},
      {"sum(country)", 4, "aggregate function 'sum' expects BIGINT or DOUBLE, found VARCHAR"},
      {"avg(t)", 4, "aggregate function 'avg' expects BIGINT or DOUBLE, found TIMESTAMP"},
      {"max(flag)", 4,
       "aggregate function 'max' expects a BIGINT, DOUBLE, VARCHAR or TIMESTAMP value, found "
       "BOOLEAN"},
      {"sum(*)", 4, "'*' is only allowed in count(*)"},
      {"sum(amount, ts)", 0, "aggregate function 'sum' takes 1 argument, found 2"},
      {"count()", 0, "aggregate function 'count' takes 1 argument, found 0"},
      {"count(amout)", 6, "unknown field 'amout' (did you mean 'amount'?)"},
      {"max(amount + )", 13, "expected an expression, found ')'"},
      {"sum(count(amount))", 4, "aggregate function 'count' is not allowed in a scalar expression"},
      {"avg(DISTINCT amount)", 0, "DISTINCT is only supported in count(DISTINCT x), not in 'avg'"},
      {"  sum(country || 1)", 6,
       "aggregate function 'sum' expects BIGINT or DOUBLE, found VARCHAR"},
  };
  for (const CompileCase& c : cases) {
    ExprError err;
    EXPECT_FALSE(CompileAggregate(c.text, *SpecSchema(), &err)) << c.text;
    EXPECT_EQ(err.message, c.message) << c.text;
    EXPECT_EQ(err.offset, c.offset) << c.text;
  }
}

TEST(ExprNames, FunctionListsAreSortedAndSuggestable) {
  const std::vector<std::string>& scalars = ScalarFunctionNames();
  EXPECT_TRUE(std::is_sorted(scalars.begin(), scalars.end()));
  for (std::string_view name : {"upper", "coalesce", "date_trunc", "extract", "substr"}) {
    EXPECT_NE(std::find(scalars.begin(), scalars.end(), name), scalars.end()) << name;
  }
  EXPECT_EQ(AggregateFunctionNames(),
            (std::vector<std::string>{"avg", "count", "count_distinct", "first", "last", "max",
                                      "min", "sum"}));
}

}  // namespace
}  // namespace barge::pipeline
