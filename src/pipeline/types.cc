#include "pipeline/types.h"

#include <algorithm>
#include <cctype>

namespace barge::pipeline {

std::string_view TypeName(Type type) {
  switch (type) {
    case Type::kNull:
      return "NULL";
    case Type::kBool:
      return "BOOLEAN";
    case Type::kInt64:
      return "BIGINT";
    case Type::kDouble:
      return "DOUBLE";
    case Type::kString:
      return "VARCHAR";
    case Type::kTimestamp:
      return "TIMESTAMP";
  }
  return "?";
}

std::optional<Type> ParseTypeName(std::string_view name) {
  std::string upper;
  for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  // "DOUBLE PRECISION" and runs of spaces.
  std::string word;
  for (char c : upper) {
    if (c == ' ' && (word.empty() || word.back() == ' ')) continue;
    word += c;
  }
  while (!word.empty() && word.back() == ' ') word.pop_back();
  static const std::pair<std::string_view, Type> kNames[] = {
      {"BIGINT", Type::kInt64},
      {"INT", Type::kInt64},
      {"INTEGER", Type::kInt64},
      {"LONG", Type::kInt64},
      {"SMALLINT", Type::kInt64},
      {"TINYINT", Type::kInt64},
      {"INT64", Type::kInt64},
      {"DOUBLE", Type::kDouble},
      {"FLOAT", Type::kDouble},
      {"REAL", Type::kDouble},
      {"DOUBLE PRECISION", Type::kDouble},
      {"FLOAT64", Type::kDouble},
      {"BOOLEAN", Type::kBool},
      {"BOOL", Type::kBool},
      {"VARCHAR", Type::kString},
      {"STRING", Type::kString},
      {"TEXT", Type::kString},
      {"CHAR", Type::kString},
      {"TIMESTAMP", Type::kTimestamp},
  };
  for (const auto& [n, t] : kNames) {
    if (word == n) return t;
  }
  return std::nullopt;
}

int Schema::Find(std::string_view name) const {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (fields[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::string Schema::ToString() const {
  std::string out;
  for (const Field& f : fields) {
    if (!out.empty()) out += ", ";
    out += f.name;
    out += ' ';
    out += TypeName(f.type);
  }
  return out;
}

namespace {

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                  std::tolower(static_cast<unsigned char>(b[j - 1]));
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (same ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

std::optional<std::string> Suggest(std::string_view word,
                                   const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  size_t best_distance = SIZE_MAX;
  for (const std::string& c : candidates) {
    size_t d = EditDistance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  // A likely typo: at most a third of the word wrong (and at least one edit allowed).
  size_t allowed = std::max<size_t>(1, word.size() / 3);
  if (!best || best_distance > allowed || best_distance == 0) return std::nullopt;
  return best;
}

}  // namespace barge::pipeline
