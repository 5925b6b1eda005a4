// Runs the examples of docs/expressions.md: in the tables whose header ends with "expression |
// result" or "example | result", every row whose last two cells are an expression in backquotes
// and its result (in backquotes, or "error: <message>") must hold.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "pipeline/expr.h"
#include "pipeline/expr_convert.h"
#include "pipeline/expr_test_util.h"

namespace barge::pipeline {
namespace {

// The cells of a Markdown table row, with "\|" unescaped.
std::vector<std::string> Cells(const std::string& line) {
  std::vector<std::string> cells;
  std::string cell;
  for (size_t i = 1; i < line.size(); ++i) {
    if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '|') {
      cell += '|';
      ++i;
    } else if (line[i] == '|') {
      size_t b = cell.find_first_not_of(' '), e = cell.find_last_not_of(' ');
      cells.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
      cell.clear();
    } else {
      cell += line[i];
    }
  }
  return cells;
}

// The text of a cell that is exactly one code span, or nothing.
std::optional<std::string> CodeSpan(const std::string& cell) {
  if (cell.size() < 2 || cell.front() != '`' || cell.back() != '`') return std::nullopt;
  std::string inner = cell.substr(1, cell.size() - 2);
  if (inner.find('`') != std::string::npos) return std::nullopt;
  return inner;
}

// A result as the page writes it: 42, 2.5, 'it''s', TRUE, NULL, TIMESTAMP '...'.
std::string Written(const Column& c, size_t i) {
  if (c.IsNull(i)) return "NULL";
  switch (c.type()) {
    case Type::kTimestamp:
      return "TIMESTAMP '" + detail::FormatTimestamp(c.ints()[i]) + "'";
    case Type::kString: {
      std::string out = "'";
      for (char ch : c.String(i)) out += ch == '\'' ? std::string("''") : std::string(1, ch);
      return out + "'";
    }
    default:
      return testing::Render(c, i);
  }
}

std::string Evaluate(const std::string& text) {
  static const Schema empty;
  ExprError err;
  std::optional<Expr> e = Expr::Compile(text, empty, &err);
  if (!e) return "error: " + err.message;
  RecordBatch batch;
  batch.rows = 1;
  ExprState state;
  Column out;
  std::vector<RowError> errors;
  e->Evaluate(batch, state, out, errors);
  if (!errors.empty()) return "error: " + errors[0].message;
  return Written(out, 0);
}

TEST(ExprDoc, ExamplesHold) {
  std::ifstream file(std::string(BARGE_SOURCE_DIR) + "/docs/expressions.md");
  ASSERT_TRUE(file) << "docs/expressions.md";
  int examples = 0;
  // Inside a table whose header ends with "expression | result" or "example | result".
  bool example_table = false;
  std::string line;
  for (int number = 1; std::getline(file, line); ++number) {
    if (line.rfind("|", 0) != 0) {
      example_table = false;
      continue;
    }
    std::vector<std::string> cells = Cells(line);
    if (cells.size() < 2) continue;
    const std::string& key = cells[cells.size() - 2];
    if ((key == "expression" || key == "example") && cells.back() == "result") {
      example_table = true;
      continue;
    }
    if (!example_table) continue;
    std::optional<std::string> expression = CodeSpan(cells[cells.size() - 2]);
    const std::string& last = cells.back();
    std::optional<std::string> result = CodeSpan(last);
    if (!result && last.rfind("error: ", 0) == 0) result = last;
    if (!expression || !result) continue;
    ++examples;
    EXPECT_EQ(Evaluate(*expression), *result)
        << "docs/expressions.md:" << number << ": " << *expression;
  }
  // Guards against a page (or a parser) that no longer yields its examples.
  EXPECT_GE(examples, 100);
}

}  // namespace
}  // namespace barge::pipeline
