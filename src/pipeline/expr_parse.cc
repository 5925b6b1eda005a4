// Lexer and recursive-descent parser for SQL expressions. Precedence, loosest first, as
// PostgreSQL: OR; AND; NOT; IS; comparison; [NOT] IN / BETWEEN / LIKE / ILIKE; ||; + -; * / %;
// unary + -; ::.
#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "pipeline/expr_ast.h"
#include "pipeline/expr_convert.h"

namespace barge::pipeline::detail {

namespace {

constexpr std::string_view kReserved[] = {
    "and",     "or",   "not",      "is",     "null",     "true", "false", "in",
    "between", "like", "ilike",    "escape", "case",     "when", "then",  "else",
    "end",     "cast", "try_cast", "as",     "distinct", "from",
};

// Nesting deeper than this is refused rather than risking the stack: kMaxDepth bounds the
// parser's recursion, kMaxHeight the trees it builds (a chain a + b + c + ... is parsed in a
// loop but is as tall as it is long, and later passes recurse over it).
constexpr int kMaxDepth = 200;
constexpr uint32_t kMaxHeight = 1000;

bool IsIdentStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool IsIdentChar(char c) {
  return IsIdentStart(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '$';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string_view TrimBlanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsLower(std::string_view word, std::string_view lower) {
  if (word.size() != lower.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(word[i])) != lower[i]) return false;
  }
  return true;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string ToUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

enum class TokKind : uint8_t {
  kEnd,
  kError,    // text: the message
  kIdent,    // text: as written
  kQuoted,   // "name" or `name`; text: the name
  kInteger,  // text: the digits
  kDecimal,  // text: as written
  kString,   // text: the value ('' unescaped)
  kSymbol,   // text: the operator or punctuation
};

struct Token {
  TokKind kind = TokKind::kEnd;
  size_t offset = 0;
  size_t length = 0;
  std::string text;
};

class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}

  std::vector<Token> Run() {
    std::vector<Token> tokens;
    for (;;) {
      Token t = Next();
      bool stop = t.kind == TokKind::kEnd || t.kind == TokKind::kError;
      tokens.push_back(std::move(t));
      if (stop) break;
    }
    return tokens;
  }

 private:
  Token Make(TokKind kind, size_t begin, std::string text) {
    return Token{kind, begin, pos_ - begin, std::move(text)};
  }
  Token Error(size_t at, std::string message) {
    return Token{TokKind::kError, at, 0, std::move(message)};
  }

  Token Next() {
    // Whitespace and comments.
    for (;;) {
      while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
      if (text_.substr(pos_, 2) == "--") {
        while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
        continue;
      }
      if (text_.substr(pos_, 2) == "/*") {
        size_t close = text_.find("*/", pos_ + 2);
        if (close == std::string_view::npos) return Error(pos_, "unterminated comment");
        pos_ = close + 2;
        continue;
      }
      break;
    }
    size_t begin = pos_;
    if (pos_ >= text_.size()) return Make(TokKind::kEnd, begin, {});
    char c = text_[pos_];
    if (IsIdentStart(c)) {
      while (pos_ < text_.size() && IsIdentChar(text_[pos_])) ++pos_;
      return Make(TokKind::kIdent, begin, std::string(text_.substr(begin, pos_ - begin)));
    }
    if (c == '"' || c == '`') return Quoted(c, begin);
    if (c == '\'') return String(begin);
    if (IsDigit(c) || (c == '.' && pos_ + 1 < text_.size() && IsDigit(text_[pos_ + 1]))) {
      return Number(begin);
    }
    static constexpr std::string_view kTwo[] = {"<=", ">=", "<>", "!=", "==", "::", "||"};
    for (std::string_view op : kTwo) {
      if (text_.substr(pos_, 2) == op) {
        pos_ += 2;
        return Make(TokKind::kSymbol, begin, std::string(op));
      }
    }
    if (std::string_view("+-*/%=<>(),.").find(c) != std::string_view::npos) {
      ++pos_;
      return Make(TokKind::kSymbol, begin, std::string(1, c));
    }
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return Error(begin, fmt::format("unexpected character '\\x{:02x}'", c));
    }
    return Error(begin, fmt::format("unexpected character '{}'", c));
  }

  Token Quoted(char quote, size_t begin) {
    std::string name;
    ++pos_;
    for (;;) {
      if (pos_ >= text_.size()) return Error(begin, "unterminated quoted name");
      char c = text_[pos_++];
      if (c == quote) {
        if (pos_ < text_.size() && text_[pos_] == quote) {
          name += quote;
          ++pos_;
          continue;
        }
        break;
      }
      name += c;
    }
    if (name.empty()) return Error(begin, "empty quoted name");
    return Make(TokKind::kQuoted, begin, std::move(name));
  }

  Token String(size_t begin) {
    std::string value;
    ++pos_;
    for (;;) {
      if (pos_ >= text_.size()) return Error(begin, "unterminated string literal");
      char c = text_[pos_++];
      if (c == '\'') {
        if (pos_ < text_.size() && text_[pos_] == '\'') {
          value += '\'';
          ++pos_;
          continue;
        }
        break;
      }
      value += c;
    }
    return Make(TokKind::kString, begin, std::move(value));
  }

  Token Number(size_t begin) {
    bool decimal = false;
    while (pos_ < text_.size() && IsDigit(text_[pos_])) ++pos_;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      decimal = true;
      ++pos_;
      while (pos_ < text_.size() && IsDigit(text_[pos_])) ++pos_;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      size_t p = pos_ + 1;
      if (p < text_.size() && (text_[p] == '+' || text_[p] == '-')) ++p;
      if (p < text_.size() && IsDigit(text_[p])) {
        decimal = true;
        pos_ = p;
        while (pos_ < text_.size() && IsDigit(text_[pos_])) ++pos_;
      }
    }
    if (pos_ < text_.size() && IsIdentStart(text_[pos_])) {
      size_t end = pos_;
      while (end < text_.size() && IsIdentChar(text_[end])) ++end;
      return Error(begin, fmt::format("invalid number '{}'", text_.substr(begin, end - begin)));
    }
    return Make(decimal ? TokKind::kDecimal : TokKind::kInteger, begin,
                std::string(text_.substr(begin, pos_ - begin)));
  }

  std::string_view text_;
  size_t pos_ = 0;
};

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text), tokens_(Lexer(text).Run()) {}

  AstPtr ParseAll(ExprError* error) {
    AstPtr ast = ParseOr();
    if (ast && Peek().kind != TokKind::kEnd) {
      ast = Expected("an operator or end of expression");
    }
    if (!ast) {
      *error = error_;
      return nullptr;
    }
    return ast;
  }

 private:
  // ---- Tokens.

  const Token& Peek(size_t ahead = 0) const {
    size_t i = std::min(pos_ + ahead, tokens_.size() - 1);
    return tokens_[i];
  }
  const Token& Advance() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    prev_end_ = t.offset + t.length;
    return t;
  }
  static bool IsKeyword(const Token& t, std::string_view lower) {
    return t.kind == TokKind::kIdent && EqualsLower(t.text, lower);
  }
  static bool IsSymbol(const Token& t, std::string_view s) {
    return t.kind == TokKind::kSymbol && t.text == s;
  }
  bool AcceptKeyword(std::string_view lower) {
    if (!IsKeyword(Peek(), lower)) return false;
    Advance();
    return true;
  }
  bool AcceptSymbol(std::string_view s) {
    if (!IsSymbol(Peek(), s)) return false;
    Advance();
    return true;
  }

  // How a token is named in "found ..." messages.
  std::string Describe(const Token& t) const {
    if (t.kind == TokKind::kEnd) return "end of expression";
    std::string_view written = text_.substr(t.offset, t.length);
    if (written.size() > 24) return fmt::format("'{}...'", written.substr(0, 21));
    return fmt::format("'{}'", written);
  }

  // ---- Errors: the first one wins; every parse function returns null after it.

  AstPtr Fail(size_t offset, std::string message) {
    if (!failed_) {
      failed_ = true;
      error_.offset = offset;
      error_.message = std::move(message);
    }
    return nullptr;
  }
  AstPtr Expected(std::string_view what) {
    const Token& t = Peek();
    if (t.kind == TokKind::kError) return Fail(t.offset, t.text);
    return Fail(t.offset, fmt::format("expected {}, found {}", what, Describe(t)));
  }
  bool ExpectSymbol(std::string_view s) {
    if (AcceptSymbol(s)) return true;
    Expected(fmt::format("'{}'", s));
    return false;
  }
  bool ExpectKeyword(std::string_view lower) {
    if (AcceptKeyword(lower)) return true;
    Expected(ToUpper(lower));
    return false;
  }

  AstPtr Node(AstKind kind, size_t offset, size_t begin) {
    auto n = std::make_unique<Ast>();
    n->kind = kind;
    n->offset = offset;
    n->begin = begin;
    return n;
  }
  AstPtr Finish(AstPtr n) {
    n->end = prev_end_;
    for (const AstPtr& a : n->args) n->height = std::max(n->height, a->height + 1);
    if (n->height > kMaxHeight) return Fail(n->offset, "expression nested too deeply");
    return n;
  }
  AstPtr Binary(Op op, size_t offset, AstPtr l, AstPtr r) {
    AstPtr n = Node(AstKind::kBinary, offset, l->begin);
    n->op = op;
    n->args.push_back(std::move(l));
    n->args.push_back(std::move(r));
    return Finish(std::move(n));
  }

  struct DepthGuard {
    explicit DepthGuard(int& d) : depth(d) { ++depth; }
    ~DepthGuard() { --depth; }
    int& depth;
  };
  bool TooDeep() {
    if (depth_ <= kMaxDepth) return false;
    Fail(Peek().offset, "expression nested too deeply");
    return true;
  }

  // ---- Grammar.

  AstPtr ParseOr() {
    DepthGuard guard(depth_);
    if (TooDeep()) return nullptr;
    AstPtr left = ParseAnd();
    while (left && IsKeyword(Peek(), "or")) {
      size_t at = Advance().offset;
      AstPtr right = ParseAnd();
      if (!right) return nullptr;
      left = Binary(Op::kOr, at, std::move(left), std::move(right));
    }
    return left;
  }

  AstPtr ParseAnd() {
    AstPtr left = ParseNot();
    while (left && IsKeyword(Peek(), "and")) {
      size_t at = Advance().offset;
      AstPtr right = ParseNot();
      if (!right) return nullptr;
      left = Binary(Op::kAnd, at, std::move(left), std::move(right));
    }
    return left;
  }

  AstPtr ParseNot() {
    if (!IsKeyword(Peek(), "not")) return ParseIs();
    DepthGuard guard(depth_);
    if (TooDeep()) return nullptr;
    size_t at = Advance().offset;
    AstPtr operand = ParseNot();
    if (!operand) return nullptr;
    AstPtr n = Node(AstKind::kUnary, at, at);
    n->op = Op::kNot;
    n->args.push_back(std::move(operand));
    return Finish(std::move(n));
  }

  AstPtr ParseIs() {
    AstPtr left = ParseComparison();
    while (left && IsKeyword(Peek(), "is")) {
      size_t at = Advance().offset;
      bool negated = AcceptKeyword("not");
      AstPtr n;
      if (AcceptKeyword("null")) {
        n = Node(AstKind::kIsNull, at, left->begin);
      } else if (IsKeyword(Peek(), "true") || IsKeyword(Peek(), "false")) {
        n = Node(AstKind::kIsBool, at, left->begin);
        n->flag = IsKeyword(Advance(), "true");
      } else if (AcceptKeyword("distinct")) {
        if (!ExpectKeyword("from")) return nullptr;
        AstPtr right = ParseComparison();
        if (!right) return nullptr;
        n = Node(AstKind::kDistinct, at, left->begin);
        n->args.push_back(std::move(left));
        n->args.push_back(std::move(right));
        n->negated = negated;
        left = Finish(std::move(n));
        continue;
      } else {
        return Expected("NULL, TRUE, FALSE or DISTINCT FROM after IS");
      }
      n->negated = negated;
      n->args.push_back(std::move(left));
      left = Finish(std::move(n));
    }
    return left;
  }

  AstPtr ParseComparison() {
    AstPtr left = ParsePredicate();
    for (;;) {
      if (!left) return nullptr;
      const Token& t = Peek();
      if (t.kind != TokKind::kSymbol) return left;
      Op op;
      if (t.text == "=" || t.text == "==") {
        op = Op::kEq;
      } else if (t.text == "<>" || t.text == "!=") {
        op = Op::kNe;
      } else if (t.text == "<") {
        op = Op::kLt;
      } else if (t.text == "<=") {
        op = Op::kLe;
      } else if (t.text == ">") {
        op = Op::kGt;
      } else if (t.text == ">=") {
        op = Op::kGe;
      } else {
        return left;
      }
      size_t at = Advance().offset;
      AstPtr right = ParsePredicate();
      if (!right) return nullptr;
      left = Binary(op, at, std::move(left), std::move(right));
    }
  }

  AstPtr ParsePredicate() {
    AstPtr left = ParseConcat();
    if (!left) return nullptr;
    // [NOT] IN / BETWEEN / LIKE / ILIKE.
    bool negated = false;
    size_t at = Peek().offset;
    if (IsKeyword(Peek(), "not") && (IsKeyword(Peek(1), "in") || IsKeyword(Peek(1), "between") ||
                                     IsKeyword(Peek(1), "like") || IsKeyword(Peek(1), "ilike"))) {
      Advance();
      negated = true;
    }
    if (AcceptKeyword("in")) {
      AstPtr n = Node(AstKind::kIn, at, left->begin);
      n->negated = negated;
      n->args.push_back(std::move(left));
      if (!ExpectSymbol("(")) return nullptr;
      do {
        AstPtr item = ParseOr();
        if (!item) return nullptr;
        n->args.push_back(std::move(item));
      } while (AcceptSymbol(","));
      if (!ExpectSymbol(")")) return nullptr;
      return Finish(std::move(n));
    }
    if (AcceptKeyword("between")) {
      AstPtr n = Node(AstKind::kBetween, at, left->begin);
      n->negated = negated;
      n->args.push_back(std::move(left));
      AstPtr low = ParseConcat();
      if (!low) return nullptr;
      if (!ExpectKeyword("and")) return nullptr;
      AstPtr high = ParseConcat();
      if (!high) return nullptr;
      n->args.push_back(std::move(low));
      n->args.push_back(std::move(high));
      return Finish(std::move(n));
    }
    if (IsKeyword(Peek(), "like") || IsKeyword(Peek(), "ilike")) {
      AstPtr n = Node(AstKind::kLike, at, left->begin);
      n->flag = IsKeyword(Advance(), "ilike");
      n->negated = negated;
      n->args.push_back(std::move(left));
      AstPtr pattern = ParseConcat();
      if (!pattern) return nullptr;
      n->args.push_back(std::move(pattern));
      if (AcceptKeyword("escape")) {
        AstPtr escape = ParseConcat();
        if (!escape) return nullptr;
        n->args.push_back(std::move(escape));
      }
      return Finish(std::move(n));
    }
    return left;
  }

  AstPtr ParseConcat() {
    AstPtr left = ParseAdditive();
    while (left && IsSymbol(Peek(), "||")) {
      size_t at = Advance().offset;
      AstPtr right = ParseAdditive();
      if (!right) return nullptr;
      left = Binary(Op::kConcat, at, std::move(left), std::move(right));
    }
    return left;
  }

  AstPtr ParseAdditive() {
    AstPtr left = ParseMultiplicative();
    while (left && (IsSymbol(Peek(), "+") || IsSymbol(Peek(), "-"))) {
      Op op = Peek().text == "+" ? Op::kAdd : Op::kSub;
      size_t at = Advance().offset;
      AstPtr right = ParseMultiplicative();
      if (!right) return nullptr;
      left = Binary(op, at, std::move(left), std::move(right));
    }
    return left;
  }

  AstPtr ParseMultiplicative() {
    AstPtr left = ParseUnary();
    while (left && (IsSymbol(Peek(), "*") || IsSymbol(Peek(), "/") || IsSymbol(Peek(), "%"))) {
      Op op = Peek().text == "*" ? Op::kMul : Peek().text == "/" ? Op::kDiv : Op::kMod;
      size_t at = Advance().offset;
      AstPtr right = ParseUnary();
      if (!right) return nullptr;
      left = Binary(op, at, std::move(left), std::move(right));
    }
    return left;
  }

  AstPtr ParseUnary() {
    if (!IsSymbol(Peek(), "-") && !IsSymbol(Peek(), "+")) return ParsePostfix();
    DepthGuard guard(depth_);
    if (TooDeep()) return nullptr;
    bool minus = Peek().text == "-";
    size_t at = Advance().offset;
    // A minus sign directly before a number is part of the literal, so that the smallest
    // BIGINT can be written.
    if (minus && (Peek().kind == TokKind::kInteger || Peek().kind == TokKind::kDecimal) &&
        !IsSymbol(Peek(1), "::")) {
      AstPtr lit = Number(Advance(), true);
      if (lit) {
        lit->begin = at;
        lit->offset = at;
      }
      return lit;
    }
    AstPtr operand = ParseUnary();
    if (!operand || !minus) return operand;
    AstPtr n = Node(AstKind::kUnary, at, at);
    n->op = Op::kNeg;
    n->args.push_back(std::move(operand));
    return Finish(std::move(n));
  }

  AstPtr ParsePostfix() {
    AstPtr left = ParsePrimary();
    while (left && IsSymbol(Peek(), "::")) {
      size_t at = Advance().offset;
      AstPtr n = Node(AstKind::kCast, at, left->begin);
      n->args.push_back(std::move(left));
      if (!ParseType(n.get())) return nullptr;
      left = Finish(std::move(n));
    }
    return left;
  }

  AstPtr Number(const Token& t, bool negative) {
    AstPtr n = Node(AstKind::kLiteral, t.offset, t.offset);
    std::string text = negative ? "-" + t.text : t.text;
    if (t.kind == TokKind::kInteger) {
      int64_t v;
      if (!ParseInt64(text, &v)) {
        return Fail(t.offset, fmt::format("integer literal {} is out of range for BIGINT", text));
      }
      n->value = Value::Int(v);
    } else {
      double v;
      if (!ParseDouble(text, &v) || std::isinf(v)) {
        return Fail(t.offset, fmt::format("number {} is out of range for DOUBLE", text));
      }
      n->value = Value::Double(v);
    }
    return Finish(std::move(n));
  }

  AstPtr ParsePrimary() {
    const Token& t = Peek();
    size_t begin = t.offset;
    switch (t.kind) {
      case TokKind::kError:
        return Fail(t.offset, t.text);
      case TokKind::kEnd:
        return Expected("an expression");
      case TokKind::kInteger:
      case TokKind::kDecimal:
        return Number(Advance(), false);
      case TokKind::kString: {
        AstPtr n = Node(AstKind::kLiteral, begin, begin);
        n->value = Value::String(Advance().text);
        return Finish(std::move(n));
      }
      case TokKind::kQuoted:
        return ParseName();
      case TokKind::kSymbol:
        if (IsSymbol(t, "(")) {
          Advance();
          AstPtr inner = ParseOr();
          if (!inner || !ExpectSymbol(")")) return nullptr;
          // The span covers the parentheses, so that the text of an enclosing node is whole.
          inner->begin = begin;
          inner->end = prev_end_;
          return inner;
        }
        return Expected("an expression");
      case TokKind::kIdent:
        break;
    }
    // Keywords that start an expression.
    if (IsKeyword(t, "null") || IsKeyword(t, "true") || IsKeyword(t, "false")) {
      AstPtr n = Node(AstKind::kLiteral, begin, begin);
      n->value = IsKeyword(t, "null")   ? Value::Null()
                 : IsKeyword(t, "true") ? Value::Bool(true)
                                        : Value::Bool(false);
      Advance();
      return Finish(std::move(n));
    }
    if (IsKeyword(t, "case")) return ParseCase();
    if (IsKeyword(t, "cast") || IsKeyword(t, "try_cast")) return ParseCast();
    if ((IsKeyword(t, "timestamp") || IsKeyword(t, "date")) && Peek(1).kind == TokKind::kString) {
      return ParseTimestampLiteral();
    }
    if (IsKeyword(t, "interval") &&
        (Peek(1).kind == TokKind::kString || Peek(1).kind == TokKind::kInteger ||
         Peek(1).kind == TokKind::kDecimal || IsSymbol(Peek(1), "-"))) {
      return ParseInterval();
    }
    if (IsReservedWord(t.text)) return Expected("an expression");
    return ParseName();
  }

  // A field reference (dotted parts joined with '.') or, for a bare name followed by '(', a
  // function call.
  AstPtr ParseName() {
    const Token& first = Advance();
    size_t begin = first.offset;
    std::string name = first.text;
    bool bare = first.kind == TokKind::kIdent;
    while (IsSymbol(Peek(), ".")) {
      Advance();
      const Token& part = Peek();
      if (part.kind != TokKind::kIdent && part.kind != TokKind::kQuoted) {
        return Expected("a field name after '.'");
      }
      name += '.';
      name += Advance().text;
      bare = false;
    }
    if (bare && IsSymbol(Peek(), "(")) return ParseCall(ToLower(name), begin);
    AstPtr n = Node(AstKind::kField, begin, begin);
    n->name = std::move(name);
    return Finish(std::move(n));
  }

  AstPtr ParseCall(std::string name, size_t begin) {
    Advance();  // (
    AstPtr n = Node(AstKind::kCall, begin, begin);
    n->name = std::move(name);
    if (n->name == "extract") return ParseExtract(std::move(n));
    if (n->name == "position") return ParsePosition(std::move(n));
    if (n->name == "trim" && !IsSymbol(Peek(1), ",") && !IsSymbol(Peek(1), ")") &&
        (IsKeyword(Peek(), "both") || IsKeyword(Peek(), "leading") ||
         IsKeyword(Peek(), "trailing") || IsKeyword(Peek(), "from"))) {
      return ParseTrim(std::move(n));
    }
    if (IsSymbol(Peek(), "*")) {
      size_t at = Advance().offset;
      AstPtr star = Node(AstKind::kStar, at, at);
      n->args.push_back(Finish(std::move(star)));
      if (!ExpectSymbol(")")) return nullptr;
      return Finish(std::move(n));
    }
    if (AcceptSymbol(")")) return Finish(std::move(n));
    n->flag = AcceptKeyword("distinct");
    for (;;) {
      AstPtr arg = ParseOr();
      if (!arg) return nullptr;
      n->args.push_back(std::move(arg));
      // substring(s FROM start [FOR length]).
      if ((n->name == "substring" || n->name == "substr") && n->args.size() == 1 &&
          AcceptKeyword("from")) {
        AstPtr start = ParseOr();
        if (!start) return nullptr;
        n->args.push_back(std::move(start));
        if (AcceptKeyword("for")) {
          AstPtr length = ParseOr();
          if (!length) return nullptr;
          n->args.push_back(std::move(length));
        }
        if (!ExpectSymbol(")")) return nullptr;
        return Finish(std::move(n));
      }
      if (AcceptSymbol(",")) continue;
      if (AcceptSymbol(")")) break;
      return Expected("',' or ')'");
    }
    return Finish(std::move(n));
  }

  // EXTRACT(part FROM x) is date_part('part', x).
  AstPtr ParseExtract(AstPtr n) {
    const Token& part = Peek();
    if (part.kind != TokKind::kIdent && part.kind != TokKind::kString) {
      return Expected("a date part such as HOUR");
    }
    AstPtr lit = Node(AstKind::kLiteral, part.offset, part.offset);
    lit->value = Value::String(ToLower(Advance().text));
    n->args.push_back(Finish(std::move(lit)));
    if (!ExpectKeyword("from")) return nullptr;
    AstPtr x = ParseOr();
    if (!x || !ExpectSymbol(")")) return nullptr;
    n->args.push_back(std::move(x));
    n->name = "date_part";
    return Finish(std::move(n));
  }

  // POSITION(needle IN haystack) is strpos(haystack, needle).
  AstPtr ParsePosition(AstPtr n) {
    AstPtr needle = ParseConcat();
    if (!needle) return nullptr;
    if (IsSymbol(Peek(), ",")) {
      // position(haystack, needle) is not SQL, but reads clearly enough as strpos.
      Advance();
      AstPtr second = ParseOr();
      if (!second || !ExpectSymbol(")")) return nullptr;
      n->args.push_back(std::move(needle));
      n->args.push_back(std::move(second));
    } else {
      if (!ExpectKeyword("in")) return nullptr;
      AstPtr haystack = ParseConcat();
      if (!haystack || !ExpectSymbol(")")) return nullptr;
      n->args.push_back(std::move(haystack));
      n->args.push_back(std::move(needle));
    }
    n->name = "strpos";
    return Finish(std::move(n));
  }

  // TRIM([BOTH | LEADING | TRAILING] [characters] FROM s) is trim/ltrim/rtrim(s[, characters]).
  AstPtr ParseTrim(AstPtr n) {
    std::string name = "trim";
    if (AcceptKeyword("leading")) {
      name = "ltrim";
    } else if (AcceptKeyword("trailing")) {
      name = "rtrim";
    } else {
      AcceptKeyword("both");
    }
    AstPtr characters;
    if (!AcceptKeyword("from")) {
      characters = ParseConcat();
      if (!characters || !ExpectKeyword("from")) return nullptr;
    }
    AstPtr s = ParseOr();
    if (!s || !ExpectSymbol(")")) return nullptr;
    n->args.push_back(std::move(s));
    if (characters) n->args.push_back(std::move(characters));
    n->name = std::move(name);
    return Finish(std::move(n));
  }

  AstPtr ParseCase() {
    size_t at = Advance().offset;
    AstPtr n = Node(AstKind::kCase, at, at);
    if (!IsKeyword(Peek(), "when")) {
      AstPtr operand = ParseOr();
      if (!operand) return nullptr;
      n->args.push_back(std::move(operand));
      n->case_operand = true;
    }
    if (!IsKeyword(Peek(), "when")) return Expected("WHEN");
    while (AcceptKeyword("when")) {
      AstPtr when = ParseOr();
      if (!when || !ExpectKeyword("then")) return nullptr;
      AstPtr then = ParseOr();
      if (!then) return nullptr;
      n->args.push_back(std::move(when));
      n->args.push_back(std::move(then));
    }
    if (AcceptKeyword("else")) {
      AstPtr otherwise = ParseOr();
      if (!otherwise) return nullptr;
      n->args.push_back(std::move(otherwise));
      n->case_else = true;
    }
    if (!IsKeyword(Peek(), "end")) {
      return Expected(n->case_else ? "END" : "WHEN, ELSE or END");
    }
    Advance();
    return Finish(std::move(n));
  }

  AstPtr ParseCast() {
    const Token& keyword = Advance();
    AstPtr n = Node(AstKind::kCast, keyword.offset, keyword.offset);
    n->flag = IsKeyword(keyword, "try_cast");
    if (!ExpectSymbol("(")) return nullptr;
    AstPtr operand = ParseOr();
    if (!operand || !ExpectKeyword("as")) return nullptr;
    n->args.push_back(std::move(operand));
    if (!ParseType(n.get()) || !ExpectSymbol(")")) return nullptr;
    return Finish(std::move(n));
  }

  // A type name, with DOUBLE PRECISION as two words and any (precision, scale) ignored.
  bool ParseType(Ast* cast) {
    const Token& t = Peek();
    if (t.kind != TokKind::kIdent) {
      Expected("a type name");
      return false;
    }
    size_t at = t.offset;
    std::string written = ToUpper(Advance().text);
    if (written == "DOUBLE" && IsKeyword(Peek(), "precision")) {
      Advance();
      written += " PRECISION";
    }
    std::optional<Type> type = ParseTypeName(written);
    // There is no DECIMAL type: decimals are DOUBLE, as in a JSON reader.
    if (!type && (written == "DECIMAL" || written == "NUMERIC")) type = Type::kDouble;
    if (!type) {
      static const std::vector<std::string> kTypes = {
          "BIGINT",  "INT",    "INTEGER", "DOUBLE", "FLOAT",     "REAL",    "BOOLEAN", "BOOL",
          "VARCHAR", "STRING", "TEXT",    "CHAR",   "TIMESTAMP", "DECIMAL", "SMALLINT"};
      std::optional<std::string> hint = Suggest(written, kTypes);
      Fail(at, hint ? fmt::format("unknown type '{}' (did you mean '{}'?)", written, *hint)
                    : fmt::format("unknown type '{}'", written));
      return false;
    }
    if (AcceptSymbol("(")) {
      do {
        if (Peek().kind != TokKind::kInteger) {
          Expected("a number");
          return false;
        }
        Advance();
      } while (AcceptSymbol(","));
      if (!ExpectSymbol(")")) return false;
    }
    cast->cast_type = *type;
    cast->type_name = written;
    return true;
  }

  AstPtr ParseTimestampLiteral() {
    const Token& keyword = Advance();
    bool date = IsKeyword(keyword, "date");
    size_t begin = keyword.offset;
    const Token& s = Advance();
    AstPtr n = Node(AstKind::kLiteral, s.offset, begin);
    int64_t ms;
    if (!ParseTimestamp(s.text, &ms)) {
      return Fail(s.offset, fmt::format("invalid {} '{}' (expected YYYY-MM-DD[ HH:MM:SS[.fff]])",
                                        date ? "DATE" : "TIMESTAMP", s.text));
    }
    if (date) ms = TruncateTime(TimeUnit::kDay, ms);
    n->value = Value::Timestamp(ms);
    n->style = LiteralStyle::kTimestamp;
    return Finish(std::move(n));
  }

  // INTERVAL '10' SECOND, INTERVAL 10 SECOND, INTERVAL '10 seconds': BIGINT milliseconds.
  AstPtr ParseInterval() {
    size_t at = Advance().offset;
    AstPtr n = Node(AstKind::kLiteral, at, at);
    std::string amount;
    size_t amount_at = Peek().offset;
    if (Peek().kind == TokKind::kString) {
      amount = Advance().text;
    } else {
      if (AcceptSymbol("-")) amount = "-";
      if (Peek().kind != TokKind::kInteger && Peek().kind != TokKind::kDecimal) {
        Expected("a number");
        return nullptr;
      }
      amount += Advance().text;
    }
    // The unit inside the string ('10 seconds') or after it.
    std::string unit;
    size_t unit_at = Peek().offset;
    size_t first = amount.find_first_not_of(" \t");
    size_t space = amount.find_first_of(" \t", first == std::string::npos ? 0 : first);
    if (space != std::string::npos && amount.find_first_not_of(" \t", space) != std::string::npos) {
      unit = amount.substr(amount.find_first_not_of(" \t", space));
      amount = amount.substr(0, space);
      while (!unit.empty() && (unit.back() == ' ' || unit.back() == '\t')) unit.pop_back();
      unit_at = amount_at;
    }
    if (unit.empty()) {
      if (Peek().kind != TokKind::kIdent) {
        Expected("an interval unit (MILLISECOND, SECOND, MINUTE, HOUR, DAY or WEEK)");
        return nullptr;
      }
      unit = Advance().text;
    }
    std::optional<int64_t> unit_ms = IntervalUnitMs(unit);
    if (!unit_ms) {
      std::optional<TimeUnit> calendar = ParseTimeUnit(unit);
      if (calendar) {
        return Fail(unit_at, fmt::format("INTERVAL {} is not supported: it has no fixed length "
                                         "(use date_trunc for calendar units)",
                                         ToUpper(unit)));
      }
      return Fail(unit_at, fmt::format("unknown interval unit '{}' (expected MILLISECOND, SECOND, "
                                       "MINUTE, HOUR, DAY or WEEK)",
                                       unit));
    }
    amount = std::string(TrimBlanks(amount));
    // Whole amounts exactly; fractions ('1.5' MINUTE) to the nearest millisecond.
    int64_t whole, ms;
    double count;
    if (ParseInt64(amount, &whole)) {
      if (__builtin_mul_overflow(whole, *unit_ms, &ms)) {
        return Fail(amount_at, fmt::format("interval '{}' {} is out of range", amount, unit));
      }
    } else if (ParseDouble(amount, &count) && std::isfinite(count)) {
      double rounded = std::round(count * static_cast<double>(*unit_ms));
      if (!(std::fabs(rounded) < 9.2e18)) {
        return Fail(amount_at, fmt::format("interval '{}' {} is out of range", amount, unit));
      }
      ms = static_cast<int64_t>(rounded);
    } else {
      return Fail(amount_at, fmt::format("invalid interval amount '{}'", amount));
    }
    n->value = Value::Int(ms);
    n->style = LiteralStyle::kInterval;
    std::string lower_unit = ToLower(unit);
    if (lower_unit.size() > 2 && lower_unit.back() == 's') lower_unit.pop_back();
    n->name = ToUpper(lower_unit);
    n->type_name = amount;
    return Finish(std::move(n));
  }

  std::string_view text_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  size_t prev_end_ = 0;
  int depth_ = 0;
  bool failed_ = false;
  ExprError error_;
};

bool IsPlainIdentifier(std::string_view s) {
  if (s.empty() || !IsIdentStart(s[0])) return false;
  for (char c : s) {
    if (!IsIdentChar(c)) return false;
  }
  return !IsReservedWord(s);
}

void Print(const Ast& a, std::string& out);

void PrintArgs(const Ast& a, size_t from, std::string& out) {
  for (size_t i = from; i < a.args.size(); ++i) {
    if (i > from) out += ", ";
    Print(*a.args[i], out);
  }
}

void Print(const Ast& a, std::string& out) {
  switch (a.kind) {
    case AstKind::kLiteral:
      if (a.style == LiteralStyle::kInterval) {
        out += fmt::format("INTERVAL '{}' {}", a.type_name, a.name);
      } else {
        out += a.value.ToSql();
      }
      return;
    case AstKind::kField:
      out += QuoteIdentifier(a.name);
      return;
    case AstKind::kUnary:
      out += a.op == Op::kNot ? "(NOT " : "(-";
      Print(*a.args[0], out);
      out += ')';
      return;
    case AstKind::kBinary:
      out += '(';
      Print(*a.args[0], out);
      out += fmt::format(" {} ", OpText(a.op));
      Print(*a.args[1], out);
      out += ')';
      return;
    case AstKind::kIsNull:
      out += '(';
      Print(*a.args[0], out);
      out += a.negated ? " IS NOT NULL)" : " IS NULL)";
      return;
    case AstKind::kIsBool:
      out += '(';
      Print(*a.args[0], out);
      out += a.negated ? " IS NOT " : " IS ";
      out += a.flag ? "TRUE)" : "FALSE)";
      return;
    case AstKind::kDistinct:
      out += '(';
      Print(*a.args[0], out);
      out += a.negated ? " IS NOT DISTINCT FROM " : " IS DISTINCT FROM ";
      Print(*a.args[1], out);
      out += ')';
      return;
    case AstKind::kIn:
      out += '(';
      Print(*a.args[0], out);
      out += a.negated ? " NOT IN (" : " IN (";
      PrintArgs(a, 1, out);
      out += "))";
      return;
    case AstKind::kBetween:
      out += '(';
      Print(*a.args[0], out);
      out += a.negated ? " NOT BETWEEN " : " BETWEEN ";
      Print(*a.args[1], out);
      out += " AND ";
      Print(*a.args[2], out);
      out += ')';
      return;
    case AstKind::kLike:
      out += '(';
      Print(*a.args[0], out);
      out += a.negated ? " NOT" : "";
      out += a.flag ? " ILIKE " : " LIKE ";
      Print(*a.args[1], out);
      if (a.args.size() > 2) {
        out += " ESCAPE ";
        Print(*a.args[2], out);
      }
      out += ')';
      return;
    case AstKind::kCase: {
      out += "CASE";
      size_t i = 0;
      if (a.case_operand) {
        out += ' ';
        Print(*a.args[i++], out);
      }
      size_t pairs_end = a.args.size() - (a.case_else ? 1 : 0);
      for (; i < pairs_end; i += 2) {
        out += " WHEN ";
        Print(*a.args[i], out);
        out += " THEN ";
        Print(*a.args[i + 1], out);
      }
      if (a.case_else) {
        out += " ELSE ";
        Print(*a.args.back(), out);
      }
      out += " END";
      return;
    }
    case AstKind::kCast:
      out += a.flag ? "TRY_CAST(" : "CAST(";
      Print(*a.args[0], out);
      out += fmt::format(" AS {})", TypeName(a.cast_type));
      return;
    case AstKind::kCall:
      out += a.name;
      out += a.flag ? "(DISTINCT " : "(";
      PrintArgs(a, 0, out);
      out += ')';
      return;
    case AstKind::kStar:
      out += '*';
      return;
  }
}

}  // namespace

std::string_view OpText(Op op) {
  switch (op) {
    case Op::kNeg:
      return "-";
    case Op::kNot:
      return "NOT";
    case Op::kAdd:
      return "+";
    case Op::kSub:
      return "-";
    case Op::kMul:
      return "*";
    case Op::kDiv:
      return "/";
    case Op::kMod:
      return "%";
    case Op::kConcat:
      return "||";
    case Op::kEq:
      return "=";
    case Op::kNe:
      return "<>";
    case Op::kLt:
      return "<";
    case Op::kLe:
      return "<=";
    case Op::kGt:
      return ">";
    case Op::kGe:
      return ">=";
    case Op::kAnd:
      return "AND";
    case Op::kOr:
      return "OR";
  }
  return "?";
}

std::string Value::ToSql() const {
  if (null) {
    if (type == Type::kNull) return "NULL";
    return fmt::format("CAST(NULL AS {})", TypeName(type));
  }
  switch (type) {
    case Type::kInt64:
      return std::to_string(i);
    case Type::kDouble: {
      if (!std::isfinite(d)) return fmt::format("CAST('{}' AS DOUBLE)", FormatDouble(d));
      return FormatDouble(d);
    }
    case Type::kBool:
      return i ? "TRUE" : "FALSE";
    case Type::kString: {
      std::string out = "'";
      for (char c : s) {
        if (c == '\'') out += '\'';
        out += c;
      }
      out += '\'';
      return out;
    }
    case Type::kTimestamp:
      return fmt::format("TIMESTAMP '{}'", FormatTimestamp(i));
    case Type::kNull:
      break;
  }
  return "NULL";
}

AstPtr ParseAst(std::string_view text, ExprError* error) { return Parser(text).ParseAll(error); }

std::string AstToString(const Ast& ast) {
  std::string out;
  Print(ast, out);
  return out;
}

bool IsReservedWord(std::string_view word) {
  for (std::string_view r : kReserved) {
    if (EqualsLower(word, r)) return true;
  }
  return false;
}

std::string QuoteIdentifier(std::string_view name) {
  // Dotted plain parts read back as the same dotted name.
  bool plain = !name.empty();
  size_t start = 0;
  while (plain) {
    size_t dot = name.find('.', start);
    std::string_view part = name.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (!IsPlainIdentifier(part)) plain = false;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (plain) return std::string(name);
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace barge::pipeline::detail
