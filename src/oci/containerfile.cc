#include "oci/containerfile.h"

#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "oci/reference.h"

namespace barge::oci {
namespace {

constexpr int kEof = -1;

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool IsSpace(int c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view TrimLeft(std::string_view s) {
  while (!s.empty() && IsSpace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  return s;
}
std::string_view Trim(std::string_view s) {
  s = TrimLeft(s);
  while (!s.empty() && IsSpace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}
std::string_view TrimNewline(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}
bool IsComment(std::string_view line) {
  line = TrimLeft(line);
  return !line.empty() && line.front() == '#';
}

// ---------------------------------------------------------------- the shell lexer

// Words being built from processed text: whitespace from substitutions separates words, quoted
// and escaped characters never do.
class WordBuilder {
 public:
  void AddChar(char c) {
    if (IsSpace(static_cast<unsigned char>(c))) {
      if (in_word_ && !buf_.empty()) {
        words_.push_back(std::move(buf_));
        buf_.clear();
        in_word_ = false;
      }
      return;
    }
    AddRaw(c);
  }
  void AddRaw(char c) {
    buf_ += c;
    in_word_ = true;
  }
  void AddString(std::string_view s) {
    for (char c : s) AddChar(c);
  }
  void AddRawString(std::string_view s) {
    buf_ += s;
    in_word_ = true;
  }
  std::vector<std::string> Finish() {
    if (!buf_.empty()) words_.push_back(std::move(buf_));
    buf_.clear();
    return std::move(words_);
  }

 private:
  std::string buf_;
  std::vector<std::string> words_;
  bool in_word_ = false;
};

// Whether `pattern` (shell wildcards '*' and '?', '\' escaping) matches all of `text`.
bool GlobMatch(std::string_view p, std::string_view t) {
  while (!p.empty()) {
    if (p[0] == '*') {
      p.remove_prefix(1);
      for (size_t i = 0; i <= t.size(); ++i) {
        if (GlobMatch(p, t.substr(i))) return true;
      }
      return false;
    }
    if (t.empty()) return false;
    if (p[0] == '?') {
      p.remove_prefix(1);
      t.remove_prefix(1);
      continue;
    }
    if (p[0] == '\\' && p.size() > 1) p.remove_prefix(1);
    if (p[0] != t[0]) return false;
    p.remove_prefix(1);
    t.remove_prefix(1);
  }
  return t.empty();
}

// The pattern of ${VAR#...}, ${VAR%...} or ${VAR/.../...}: an escaped '}' or '/' loses its
// backslash; otherwise only '*', '?' and '\' may be escaped.
Result<std::string> CleanPattern(std::string_view p) {
  std::string out;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] != '\\') {
      out += p[i];
      continue;
    }
    if (i + 1 < p.size() && (p[i + 1] == '}' || p[i + 1] == '/')) continue;
    if (i + 1 >= p.size() || (p[i + 1] != '*' && p[i + 1] != '?' && p[i + 1] != '\\'))
      return InvalidArgument(fmt::format("invalid pattern ({}) in substitution", p));
    out += p[i];
    out += p[++i];
  }
  return out;
}

// One pass of the lexer over one text. Mirrors the grammar of BuildKit's shell package.
class LexPass {
 public:
  LexPass(const ShellLexer& options, char escape, std::string_view text,
          const ShellLexer::Vars& vars)
      : o_(options), escape_(escape), s_(text), vars_(vars), raw_escapes_(options.raw_escapes) {}

  Result<std::string> Run(std::vector<std::string>* words) {
    return StopOn(kEof, raw_escapes_, words);
  }

 private:
  int Peek() const { return pos_ < s_.size() ? static_cast<unsigned char>(s_[pos_]) : kEof; }
  int Next() { return pos_ < s_.size() ? static_cast<unsigned char>(s_[pos_++]) : kEof; }

  const std::string* Lookup(const std::string& name) const {
    auto it = vars_.find(name);
    return it == vars_.end() ? nullptr : &it->second;
  }

  // Processes until `stop` (consumed) or the end of the text.
  Result<std::string> StopOn(int stop, bool raw_escapes, std::vector<std::string>* words_out) {
    bool saved = raw_escapes_;
    raw_escapes_ = raw_escapes;
    Result<std::string> r = StopOnInner(stop, words_out);
    raw_escapes_ = saved;
    return r;
  }

  Result<std::string> StopOnInner(int stop, std::vector<std::string>* words_out) {
    std::string result;
    WordBuilder words;
    while (Peek() != kEof) {
      int ch = Peek();
      if (stop != kEof && ch == stop) {
        Next();
        if (words_out != nullptr) *words_out = words.Finish();
        return result;
      }
      if (ch == '$') {
        ASSIGN_OR_RETURN(std::string v, Dollar());
        result += v;
        words.AddString(v);
        continue;
      }
      if (ch == '<') {
        std::string v = PossibleHeredoc();
        result += v;
        words.AddRawString(v);
        continue;
      }
      if (!o_.skip_quotes && (ch == '\'' || ch == '"')) {
        ASSIGN_OR_RETURN(std::string v, ch == '\'' ? SingleQuote() : DoubleQuote());
        result += v;
        words.AddRawString(v);
        continue;
      }
      ch = Next();
      if (ch == static_cast<unsigned char>(escape_)) {
        if (raw_escapes_) {
          words.AddRaw(static_cast<char>(ch));
          result += static_cast<char>(ch);
        }
        ch = Next();
        if (ch == kEof) break;
        words.AddRaw(static_cast<char>(ch));
      } else {
        words.AddChar(static_cast<char>(ch));
      }
      result += static_cast<char>(ch);
    }
    if (stop != kEof) {
      return InvalidArgument(fmt::format(
          "unexpected end of statement while looking for matching {}", static_cast<char>(stop)));
    }
    if (words_out != nullptr) *words_out = words.Finish();
    return result;
  }

  Result<std::string> SingleQuote() {
    std::string result;
    int ch = Next();
    if (o_.raw_quotes) result += static_cast<char>(ch);
    for (;;) {
      ch = Next();
      if (ch == kEof)
        return InvalidArgument(
            "unexpected end of statement while looking for matching single-quote");
      if (ch == '\'') {
        if (o_.raw_quotes) result += '\'';
        return result;
      }
      result += static_cast<char>(ch);
    }
  }

  Result<std::string> DoubleQuote() {
    std::string result;
    int ch = Next();
    if (o_.raw_quotes) result += static_cast<char>(ch);
    for (;;) {
      int peek = Peek();
      if (peek == kEof)
        return InvalidArgument(
            "unexpected end of statement while looking for matching double-quote");
      if (peek == '"') {
        Next();
        if (o_.raw_quotes) result += '"';
        return result;
      }
      if (peek == '$') {
        ASSIGN_OR_RETURN(std::string v, Dollar());
        result += v;
        continue;
      }
      ch = Next();
      if (ch == static_cast<unsigned char>(escape_)) {
        if (raw_escapes_) result += static_cast<char>(ch);
        int after = Peek();
        if (after == kEof) continue;
        // Only '"', '$' and the escape itself can be escaped; other escapes stay literal.
        if (after == '"' || after == '$' || after == static_cast<unsigned char>(escape_))
          ch = Next();
      }
      result += static_cast<char>(ch);
    }
  }

  std::string PossibleHeredoc() {
    Next();
    if (Peek() != '<') return "<";
    Next();
    std::string out = "<<";
    while (Peek() == ' ' || Peek() == '\t' || Peek() == '\r') out += static_cast<char>(Next());
    return out;
  }

  static bool IsSpecialParam(int c) {
    return c == '@' || c == '*' || c == '#' || c == '?' || c == '-' || c == '$' || c == '!' ||
           c == '0';
  }

  std::string Name() {
    std::string name;
    if (Peek() != kEof && std::isdigit(Peek())) {
      while (Peek() != kEof && std::isdigit(Peek())) name += static_cast<char>(Next());
      return name;
    }
    if (Peek() != kEof && IsSpecialParam(Peek())) return std::string(1, static_cast<char>(Next()));
    while (Peek() != kEof && (std::isalnum(Peek()) || Peek() == '_')) {
      name += static_cast<char>(Next());
    }
    return name;
  }

  Result<std::string> Dollar() {
    Next();  // '$'
    if (Peek() != '{') {
      std::string name = Name();
      if (name.empty()) return std::string("$");
      const std::string* v = Lookup(name);
      if (v == nullptr && o_.skip_unset) return "$" + name;
      return v != nullptr ? *v : std::string();
    }
    Next();  // '{'
    int first = Peek();
    if (first == kEof) return InvalidArgument("syntax error: missing '}'");
    if (first == '{' || first == '}' || first == ':')
      return InvalidArgument("syntax error: bad substitution");
    std::string name = Name();
    int ch = Next();
    if (ch == kEof) return InvalidArgument("syntax error: missing '}'");
    std::string op(1, static_cast<char>(ch));
    const std::string* value = nullptr;
    if (ch == '}') {
      value = Lookup(name);
      if (value == nullptr && o_.skip_unset) return "${" + name + "}";
      return value != nullptr ? *value : std::string();
    }
    if (ch == '/') return Replace(name);
    bool null_is_unset = false;
    if (ch == ':') {
      null_is_unset = true;
      ch = Next();
      if (ch == kEof) return InvalidArgument("syntax error: missing '}'");
      op += static_cast<char>(ch);
    } else if (ch != '+' && ch != '-' && ch != '?' && ch != '#' && ch != '%') {
      return InvalidArgument(fmt::format("unsupported modifier ({}) in substitution", op));
    }
    bool pattern = ch == '#' || ch == '%';
    if (null_is_unset && pattern)
      return InvalidArgument(fmt::format("unsupported modifier ({}) in substitution", op));
    Result<std::string> word = StopOn('}', pattern, nullptr);
    if (!word.ok()) {
      if (Peek() == kEof) return InvalidArgument("syntax error: missing '}'");
      return word.status();
    }
    value = Lookup(name);
    bool set = value != nullptr;
    std::string v = set ? *value : "";
    if (o_.skip_unset && !set) return "${" + name + op + *word + "}";
    switch (ch) {
      case '-':
        return !set || (null_is_unset && v.empty()) ? *word : v;
      case '+':
        return !set || (null_is_unset && v.empty()) ? std::string() : *word;
      case '?':
        if (!set)
          return InvalidArgument(
              fmt::format("{}: {}", name, word->empty() ? "is not allowed to be unset" : *word));
        if (null_is_unset && v.empty())
          return InvalidArgument(
              fmt::format("{}: {}", name, word->empty() ? "is not allowed to be empty" : *word));
        return v;
      case '#':
      case '%': {
        // One char: the shortest match; doubled (## or %%): the longest.
        bool longest = !word->empty() && (*word)[0] == static_cast<char>(ch);
        ASSIGN_OR_RETURN(std::string p, CleanPattern(longest ? word->substr(1) : *word));
        for (size_t k = 0; k <= v.size(); ++k) {
          size_t len = longest ? v.size() - k : k;
          if (ch == '#' && GlobMatch(p, std::string_view(v).substr(0, len))) return v.substr(len);
          if (ch == '%' && GlobMatch(p, std::string_view(v).substr(v.size() - len)))
            return v.substr(0, v.size() - len);
        }
        return v;
      }
      default:
        return InvalidArgument(fmt::format("unsupported modifier ({}) in substitution", op));
    }
  }

  // ${NAME/pattern/replacement} (first match) and ${NAME//pattern/replacement} (every match);
  // '*' matches as much as it can.
  Result<std::string> Replace(const std::string& name) {
    bool all = Peek() == '/';
    if (all) Next();
    Result<std::string> pattern = StopOn('/', true, nullptr);
    if (!pattern.ok()) {
      if (Peek() == kEof) return InvalidArgument("syntax error: missing '/' in ${}");
      return pattern.status();
    }
    Result<std::string> replacement = StopOn('}', true, nullptr);
    if (!replacement.ok()) {
      if (Peek() == kEof) return InvalidArgument("syntax error: missing '}'");
      return replacement.status();
    }
    const std::string* value = Lookup(name);
    if (value == nullptr && o_.skip_unset)
      return fmt::format("${{{}/{}/{}}}", name, *pattern, *replacement);
    ASSIGN_OR_RETURN(std::string p, CleanPattern(*pattern));
    std::string v = value != nullptr ? *value : "";
    std::string out;
    size_t i = 0;
    bool replaced = false;
    while (i <= v.size()) {
      size_t end = std::string::npos;
      if (!(replaced && !all)) {
        for (size_t j = v.size() + 1; j-- > i;) {
          if (GlobMatch(p, std::string_view(v).substr(i, j - i))) {
            end = j;
            break;
          }
        }
      }
      if (end == std::string::npos) {
        if (i < v.size()) out += v[i];
        ++i;
        continue;
      }
      out += *replacement;
      replaced = true;
      if (end == i) {  // an empty match: keep the character and move on
        if (i < v.size()) out += v[i];
        ++i;
      } else {
        i = end;
      }
    }
    return out;
  }

  const ShellLexer& o_;
  char escape_;
  std::string_view s_;
  size_t pos_ = 0;
  const ShellLexer::Vars& vars_;
  bool raw_escapes_;
};

// ---------------------------------------------------------------- line-level parsing

// Splits `text` at unquoted whitespace, as BuildKit's parser does in two places. With
// `keep_quotes` the quote and escape characters stay in the words for the lexer to process later
// (parseWords: ENV, LABEL, ARG); without, they are processed here (builder flags). With `rest`,
// only leading words starting with "--" are taken (flags): the rest of the text, from the first
// other word or after a lone "--", goes to `*rest`.
std::vector<std::string> SplitQuoted(std::string_view text, char escape, bool keep_quotes,
                                     std::string_view* rest = nullptr) {
  enum { kSpaces, kWord, kQuote } phase = kSpaces;
  std::vector<std::string> words;
  std::string buf;
  char quote = 0;
  bool blank_ok = false;
  auto push = [&] {
    if ((rest == nullptr || buf != "--") && (blank_ok || !buf.empty())) words.push_back(buf);
    buf.clear();
    blank_ok = false;
  };
  if (rest != nullptr) *rest = {};
  for (size_t pos = 0; pos <= text.size(); ++pos) {
    char ch = pos < text.size() ? text[pos] : '\0';
    if (phase == kSpaces) {
      if (pos == text.size()) break;
      if (IsSpace(static_cast<unsigned char>(ch))) continue;
      if (rest != nullptr && text.substr(pos, 2) != "--") {
        *rest = text.substr(pos);
        break;
      }
      phase = kWord;
    }
    if (pos == text.size()) {
      push();
      break;
    }
    bool escapes = phase == kWord || !keep_quotes || quote != '\'';
    if (phase == kWord && IsSpace(static_cast<unsigned char>(ch))) {
      phase = kSpaces;
      if (rest != nullptr && buf == "--") {
        *rest = text.substr(pos);
        return words;
      }
      push();
      continue;
    }
    if (phase == kWord && (ch == '\'' || ch == '"')) {
      quote = ch;
      blank_ok = true;
      phase = kQuote;
      if (keep_quotes) buf += ch;
      continue;
    }
    if (phase == kQuote && ch == quote) {
      phase = kWord;
      if (keep_quotes) buf += ch;
      continue;
    }
    if (ch == escape && escapes) {
      if (pos + 1 == text.size()) {  // an escape at the very end is dropped
        phase = kWord;
        continue;
      }
      if (keep_quotes) buf += ch;
      ch = text[++pos];
    }
    buf += ch;
  }
  return words;
}

// Whitespace-separated words, nothing else special (BuildKit's parseStringsWhitespaceDelimited).
std::vector<std::string> SplitWhitespace(std::string_view rest) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && IsSpace(static_cast<unsigned char>(rest[i]))) ++i;
    size_t start = i;
    while (i < rest.size() && !IsSpace(static_cast<unsigned char>(rest[i]))) ++i;
    if (i > start) out.emplace_back(rest.substr(start, i - start));
  }
  return out;
}

// A JSON array of strings, as exec forms are written. Not JSON: nullopt-like false. JSON with a
// non-string element: an error, as in BuildKit.
Result<bool> ParseJsonArray(std::string_view rest, std::vector<std::string>& out) {
  rest = TrimLeft(rest);
  if (rest.empty() || rest.front() != '[') return false;
  nlohmann::json j = nlohmann::json::parse(rest, nullptr, false);
  if (j.is_discarded() || !j.is_array()) return false;
  for (const auto& e : j) {
    if (!e.is_string())
      return InvalidArgument(
          "when using JSON array syntax, arrays must be comprised of strings only");
  }
  out.clear();
  for (const auto& e : j) out.push_back(e.get<std::string>());
  return true;
}

const std::set<std::string>& Known() {
  static const std::set<std::string> k = {
      "FROM", "RUN",        "CMD",        "LABEL",      "EXPOSE",      "ENV",
      "ADD",  "COPY",       "ENTRYPOINT", "VOLUME",     "USER",        "WORKDIR",
      "ARG",  "STOPSIGNAL", "SHELL",      "MAINTAINER", "HEALTHCHECK", "ONBUILD"};
  return k;
}

bool IsUrl(std::string_view s) {
  return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0 || s.rfind("git@", 0) == 0 ||
         s.rfind("git://", 0) == 0;
}

// The flags each instruction takes; bool flags need no value.
bool FlagAllowed(const std::string& keyword, const std::string& flag, bool* is_bool) {
  *is_bool = false;
  if (keyword == "COPY" || keyword == "ADD") {
    if (flag == "link") {
      *is_bool = true;
      return true;
    }
    return flag == "chown" || flag == "chmod" || (flag == "from" && keyword == "COPY");
  }
  if (keyword == "FROM") return flag == "platform";
  if (keyword == "HEALTHCHECK")
    return flag == "interval" || flag == "timeout" || flag == "start-period" ||
           flag == "start-interval" || flag == "retries";
  return false;
}

// `<<[-]WORD` (optionally after a file descriptor number), as BuildKit recognizes a heredoc.
bool ParseHeredocWord(std::string_view word, Heredoc* out) {
  size_t i = 0;
  while (i < word.size() && std::isdigit(static_cast<unsigned char>(word[i]))) ++i;
  if (word.substr(i, 2) != "<<") return false;
  i += 2;
  bool chomp = i < word.size() && word[i] == '-';
  if (chomp) ++i;
  while (i < word.size() && IsSpace(static_cast<unsigned char>(word[i]))) ++i;
  std::string_view rest = word.substr(i);
  if (rest.empty() || rest.find('<') != std::string_view::npos) return false;
  // The delimiter is one word; quoting any of it (`<<"EOF"`, `<<'EOF'`, `<<E"O"F`) turns
  // expansion off, which shows as a different count of quote characters with raw quotes.
  ShellLexer lex('\\');
  lex.skip_unset = true;
  Result<std::vector<std::string>> words = lex.Words(rest, {});
  if (!words.ok() || words->size() != 1) return false;
  lex.raw_quotes = true;
  Result<std::vector<std::string>> raw = lex.Words(rest, {});
  if (!raw.ok() || raw->size() != 1) return false;
  auto quotes = [](const std::string& s) {
    return std::count(s.begin(), s.end(), '\'') + std::count(s.begin(), s.end(), '"');
  };
  out->name = (*words)[0];
  out->chomp = chomp;
  out->expand = quotes((*words)[0]) == quotes((*raw)[0]);
  return true;
}

// The heredocs a line opens, in order.
std::vector<Heredoc> HeredocsOf(std::string_view line) {
  ShellLexer lex('\\');
  lex.raw_quotes = true;
  lex.raw_escapes = true;
  lex.skip_unset = true;
  std::vector<Heredoc> docs;
  Result<std::vector<std::string>> words = lex.Words(line, {});
  if (!words.ok()) return docs;
  for (const std::string& w : *words) {
    Heredoc h;
    if (ParseHeredocWord(w, &h)) docs.push_back(std::move(h));
  }
  return docs;
}

// The lines of the file, each with its '\n' (the last may have none).
class Lines {
 public:
  explicit Lines(std::string_view text) : text_(text) {}
  bool More() const { return pos_ < text_.size(); }
  std::string_view Next() {
    size_t end = text_.find('\n', pos_);
    end = end == std::string_view::npos ? text_.size() : end + 1;
    std::string_view line = text_.substr(pos_, end - pos_);
    pos_ = end;
    ++number_;
    return line;
  }
  int number() const { return number_; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  int number_ = 0;
};

class Parser {
 public:
  Parser(std::string file_name) : file_name_(std::move(file_name)) {}

  // "FILE:LINE: message"; without a line (ONBUILD triggers), "FILE: message".
  Status Error(int line, const std::string& message) const {
    if (line <= 0) return InvalidArgument(fmt::format("{}: {}", file_name_, message));
    return InvalidArgument(fmt::format("{}:{}: {}", file_name_, line, message));
  }

  // "# key=value" lines before anything else; the first other line ends them.
  Status Directive(std::string_view token, int line) {
    if (directives_done_) return Status::Ok();
    if (token.empty() || token.front() != '#') {
      directives_done_ = true;
      return Status::Ok();
    }
    std::string_view rest = TrimLeft(token.substr(1));
    size_t k = 0;
    while (k < rest.size() && (std::isalnum(static_cast<unsigned char>(rest[k])))) ++k;
    std::string key = Lower(std::string(rest.substr(0, k)));
    std::string_view after = TrimLeft(rest.substr(k));
    bool valid_key = !key.empty() && std::isalpha(static_cast<unsigned char>(key[0]));
    if (!valid_key || after.empty() || after.front() != '=' || Trim(after.substr(1)).empty() ||
        (key != "syntax" && key != "escape" && key != "check")) {
      directives_done_ = true;
      return Status::Ok();
    }
    std::string value(Trim(after.substr(1)));
    if (!directives_seen_.insert(key).second)
      return Error(line, fmt::format("only one {} parser directive can be used", key));
    if (key == "escape") {
      if (value != "`" && value != "\\")
        return Error(line, fmt::format("invalid escape token '{}' does not match ` or \\", value));
      escape_ = value[0];
    }
    return Status::Ok();
  }

  // Strips a trailing escape character (and blanks after it): the line continues.
  std::pair<std::string_view, bool> TrimContinuation(std::string_view line) const {
    std::string_view t = line;
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (!t.empty() && t.back() == escape_ && (t.size() == 1 || t[t.size() - 2] != escape_)) {
      t.remove_suffix(1);
      return {t, false};
    }
    return {line, true};
  }

  Result<Containerfile> Parse(std::string_view text) {
    Containerfile file;
    file.file_name = file_name_;
    if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // a byte-order mark
    Lines lines(text);
    std::set<std::string> stage_names;
    while (lines.More()) {
      std::string_view token = TrimLeft(TrimNewline(lines.Next()));
      RETURN_IF_ERROR(Directive(token, lines.number()));
      if (IsComment(token)) token = {};
      int start = lines.number();
      auto [first, eol] = TrimContinuation(token);
      if (eol && first.empty()) continue;
      std::string line(first);
      bool empty_continuation = false;
      while (!eol && lines.More()) {
        std::string_view raw = lines.Next();
        std::string_view t = TrimNewline(raw);
        if (IsComment(raw)) continue;
        if (TrimLeft(t).empty()) {
          empty_continuation = true;
          continue;
        }
        auto [joined, end] = TrimContinuation(t);
        eol = end;
        line += joined;
      }
      if (empty_continuation) {
        file.warnings.push_back(fmt::format(
            "{}:{}: empty continuation line (Docker accepts it with a warning; it may become an "
            "error)",
            file_name_, start));
      }
      ASSIGN_OR_RETURN(Instruction ins, ParseLine(line, start));
      if (Status st = ReadHeredocs(ins, line, lines); !st.ok()) return Error(start, st.message());
      RETURN_IF_ERROR(Add(file, std::move(ins), stage_names));
    }
    file.escape = escape_;
    if (file.stages.empty()) return Error(1, "no FROM instruction");
    return file;
  }

  Status ReadHeredocs(Instruction& ins, std::string_view line, Lines& lines) {
    bool json = ins.json_form;
    std::string keyword = ins.keyword;
    if (keyword == "ONBUILD") {
      if (Result<Instruction> child = ParseLine(ins.text, ins.line); child.ok()) {
        keyword = child->keyword;
        json = child->json_form;
      }
    }
    if (json || (keyword != "ADD" && keyword != "COPY" && keyword != "RUN") ||
        line.find("<<") == std::string_view::npos) {
      return Status::Ok();
    }
    for (Heredoc& doc : HeredocsOf(line)) {
      bool terminated = false;
      while (lines.More()) {
        std::string_view raw = lines.Next();
        std::string_view candidate = TrimNewline(raw);
        if (doc.chomp) {
          while (!candidate.empty() && candidate.front() == '\t') candidate.remove_prefix(1);
        }
        if (candidate == doc.name) {
          terminated = true;
          break;
        }
        doc.content += raw;
      }
      if (!terminated) return InvalidArgument(fmt::format("unterminated heredoc '{}'", doc.name));
      ins.heredocs.push_back(std::move(doc));
    }
    if (ins.keyword == "ONBUILD") {
      for (const Heredoc& doc : ins.heredocs) ins.trigger += "\n" + doc.content + doc.name;
    }
    return Status::Ok();
  }

  // One joined line: keyword, flags and the instruction's own argument syntax.
  Result<Instruction> ParseLine(std::string_view line, int lineno) {
    Instruction ins;
    ins.line = lineno;
    std::string_view trimmed = Trim(line);
    size_t sp = 0;
    while (sp < trimmed.size() && !IsSpace(static_cast<unsigned char>(trimmed[sp]))) ++sp;
    ins.keyword = Upper(std::string(trimmed.substr(0, sp)));
    std::string_view after = Trim(trimmed.substr(sp));
    if (!Known().count(ins.keyword))
      return Error(lineno, fmt::format("unknown instruction '{}'", ins.keyword));
    std::string_view rest;
    std::vector<std::string> flag_words = SplitQuoted(after, escape_, false, &rest);
    rest = Trim(rest);
    for (const std::string& word : flag_words) {
      if (word.rfind("--", 0) != 0) return Error(lineno, fmt::format("invalid flag '{}'", word));
      size_t eq = word.find('=');
      std::string key = word.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      bool is_bool = false;
      if (!FlagAllowed(ins.keyword, key, &is_bool))
        return Error(lineno, fmt::format("{} does not support the flag --{}", ins.keyword, key));
      std::string value = eq == std::string::npos ? "" : word.substr(eq + 1);
      if (is_bool) {
        if (eq == std::string::npos) value = "true";
        if (value != "true" && value != "false")
          return Error(lineno, fmt::format("--{} takes no value, or true or false", key));
      } else if (eq == std::string::npos || value.empty()) {
        return Error(lineno, fmt::format("--{} needs a value (--{}=...)", key, key));
      }
      if (ins.flags.count(key))
        return Error(lineno, fmt::format("--{} is given more than once", key));
      ins.flags[key] = value;
    }
    ins.text = std::string(rest);
    const std::string& k = ins.keyword;
    auto json_or = [&](bool split) -> Status {
      Result<bool> json = ParseJsonArray(rest, ins.args);
      if (!json.ok()) return Error(lineno, json.status().message());
      ins.json_form = *json;
      if (!ins.json_form) {
        if (split) {
          ins.args = SplitWhitespace(rest);
        } else if (!rest.empty()) {
          ins.args = {ins.text};
        }
      }
      return Status::Ok();
    };
    if (k == "ADD" || k == "COPY" || k == "VOLUME") {
      RETURN_IF_ERROR(json_or(true));
    } else if (k == "RUN" || k == "CMD" || k == "ENTRYPOINT" || k == "SHELL") {
      RETURN_IF_ERROR(json_or(false));
    } else if (k == "FROM" || k == "EXPOSE") {
      ins.args = SplitWhitespace(rest);
    } else if (k == "ARG") {
      ins.args = SplitQuoted(rest, escape_, true);
    } else if (k == "ENV" || k == "LABEL") {
      std::vector<std::string> words = SplitQuoted(rest, escape_, true);
      if (!words.empty() && words[0].find('=') == std::string::npos) {
        // The old form, "ENV KEY value with spaces": one pair, the value as written.
        std::vector<std::string> parts = SplitWhitespace(rest);
        if (parts.size() < 2)
          return Error(lineno, fmt::format("{} takes KEY=VALUE pairs (or KEY VALUE)", k));
        std::string_view value = TrimLeft(rest.substr(rest.find(parts[0]) + parts[0].size()));
        ins.pairs.emplace_back(parts[0], std::string(value));
      } else {
        for (const std::string& w : words) {
          size_t eq = w.find('=');
          if (eq == std::string::npos)
            return Error(lineno, fmt::format("{} expects KEY=VALUE, got '{}'", k, w));
          if (eq == 0) return Error(lineno, fmt::format("{} names can not be blank", k));
          ins.pairs.emplace_back(w.substr(0, eq), w.substr(eq + 1));
        }
      }
    } else if (k == "HEALTHCHECK") {
      size_t end = 0;
      while (end < rest.size() && !IsSpace(static_cast<unsigned char>(rest[end]))) ++end;
      std::string type = Upper(std::string(rest.substr(0, end)));
      std::string_view command = Trim(rest.substr(end));
      if (!type.empty()) ins.args.push_back(type);
      std::vector<std::string> argv;
      Result<bool> json = ParseJsonArray(command, argv);
      if (!json.ok()) return Error(lineno, json.status().message());
      ins.json_form = *json;
      if (ins.json_form) {
        ins.args.insert(ins.args.end(), argv.begin(), argv.end());
      } else if (!command.empty()) {
        ins.args.emplace_back(command);
      }
    } else if (!rest.empty()) {  // USER, WORKDIR, STOPSIGNAL, MAINTAINER, ONBUILD
      ins.args = {ins.text};
    }
    RETURN_IF_ERROR(Validate(ins));
    return ins;
  }

  // Checks that need nothing but the instruction itself.
  Status Validate(Instruction& ins) {
    const std::string& k = ins.keyword;
    int line = ins.line;
    if (ins.args.empty() && ins.pairs.empty() && k != "CMD" && k != "ENTRYPOINT")
      return Error(line, k + " needs arguments");
    if (k == "FROM") {
      if (!(ins.args.size() == 1 || (ins.args.size() == 3 && Upper(ins.args[1]) == "AS")))
        return Error(line, "FROM takes IMAGE [AS NAME]");
    } else if (k == "COPY" || k == "ADD") {
      if (ins.args.size() < 2)
        return Error(line, k + " needs at least one source and a destination");
      for (size_t i = 0; i + 1 < ins.args.size(); ++i) {
        if (IsUrl(ins.args[i])) {
          return Error(line, fmt::format("{} from a URL is not supported ({}): download it into "
                                         "the build context first",
                                         k, ins.args[i]));
        }
      }
      if (auto chmod = ins.flags.find("chmod");
          chmod != ins.flags.end() && chmod->second.find('$') == std::string::npos) {
        char* end = nullptr;
        unsigned long m = std::strtoul(chmod->second.c_str(), &end, 8);
        if (*end != '\0' || m > 07777)
          return Error(line,
                       fmt::format("--chmod={}: not an octal mode (0 to 7777)", chmod->second));
      }
    } else if (k == "EXPOSE") {
      for (const std::string& p : ins.args) {
        if (p.find('$') != std::string::npos) continue;
        if (Status st = ParsePortSpec(p).status(); !st.ok())
          return Error(line, "EXPOSE: " + st.message());
      }
    } else if (k == "SHELL") {
      if (!ins.json_form)
        return Error(line, "SHELL must be a JSON array, like [\"/bin/sh\", \"-c\"]");
      if (ins.args.empty()) return Error(line, "SHELL needs at least one element");
    } else if (k == "ARG") {
      for (const std::string& a : ins.args) {
        std::string name = a.substr(0, a.find('='));
        if (name.empty()) return Error(line, fmt::format("ARG: invalid name in '{}'", a));
      }
    } else if (k == "HEALTHCHECK") {
      const std::string& type = ins.args[0];
      if (type == "NONE") {
        if (ins.args.size() > 1) return Error(line, "HEALTHCHECK NONE takes no arguments");
      } else if (type == "CMD") {
        if (ins.args.size() < 2) return Error(line, "HEALTHCHECK CMD needs a command");
      } else {
        return Error(line, fmt::format("HEALTHCHECK takes CMD or NONE, not '{}'", type));
      }
      for (const char* f : {"interval", "timeout", "start-period", "start-interval"}) {
        auto it = ins.flags.find(f);
        if (it == ins.flags.end()) continue;
        Result<int64_t> d = ParseGoDuration(it->second);
        if (!d.ok()) return Error(line, fmt::format("--{}: {}", f, d.status().message()));
        if (*d != 0 && *d < 1000000)
          return Error(line, fmt::format("--{}={} is less than 1ms", f, it->second));
      }
      if (auto it = ins.flags.find("retries"); it != ins.flags.end()) {
        const std::string& r = it->second;
        if (r.empty() || r.size() > 9 || !std::all_of(r.begin(), r.end(), ::isdigit))
          return Error(line, fmt::format("--retries={}: not a number of at least 0", r));
      }
    } else if (k == "ONBUILD") {
      ASSIGN_OR_RETURN(Instruction child, ParseLine(ins.text, line));
      if (child.keyword == "ONBUILD")
        return Error(line, "ONBUILD ONBUILD is not allowed (triggers do not chain)");
      if (child.keyword == "FROM" || child.keyword == "MAINTAINER")
        return Error(line, fmt::format("{} is not allowed as an ONBUILD trigger", child.keyword));
      ins.trigger = ins.text;
    }
    return Status::Ok();
  }

  // Adds a parsed instruction to the file: a new stage, a global ARG, or a stage instruction.
  Status Add(Containerfile& file, Instruction ins, std::set<std::string>& stage_names) {
    const std::string& k = ins.keyword;
    int line = ins.line;
    if (k == "FROM") {
      Stage stage;
      stage.base = ins.args[0];
      stage.line = line;
      stage.index = static_cast<int>(file.stages.size());
      if (auto p = ins.flags.find("platform"); p != ins.flags.end()) stage.platform = p->second;
      if (ins.args.size() == 3) {
        stage.name = Lower(ins.args[2]);
        bool valid = std::islower(static_cast<unsigned char>(stage.name[0])) &&
                     std::all_of(stage.name.begin(), stage.name.end(), [](char c) {
                       return std::islower(static_cast<unsigned char>(c)) ||
                              std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
                              c == '.';
                     });
        if (!valid) {
          return Error(line, fmt::format("invalid stage name '{}': it must start with a letter "
                                         "and hold only letters, digits, '-', '_' and '.'",
                                         ins.args[2]));
        }
        if (!stage_names.insert(stage.name).second)
          return Error(line, fmt::format("duplicate stage name '{}'", stage.name));
      }
      if (stage.base.find('$') == std::string::npos && Lower(stage.base) != "scratch" &&
          !stage_names.count(Lower(stage.base))) {
        if (Status st = ParseReference(stage.base).status(); !st.ok())
          return Error(line, st.message());
      }
      file.stages.push_back(std::move(stage));
      return Status::Ok();
    }
    if (file.stages.empty()) {
      if (k != "ARG") return Error(line, "the first instruction must be FROM (or ARG)");
      file.global_args.push_back(std::move(ins));
      return Status::Ok();
    }
    if (k == "COPY" || k == "ADD") {
      // Heredoc sources name a heredoc of the instruction; the destination cannot be one.
      Heredoc probe;
      if (ParseHeredocWord(ins.args.back(), &probe))
        return Error(line, k + " cannot take a heredoc as its destination");
      for (size_t i = 0; i + 1 < ins.args.size(); ++i) {
        if (!ParseHeredocWord(ins.args[i], &probe)) continue;
        bool found = std::any_of(ins.heredocs.begin(), ins.heredocs.end(),
                                 [&](const Heredoc& h) { return h.name == probe.name; });
        if (!found) return Error(line, fmt::format("no heredoc named '{}'", probe.name));
      }
      if (auto from = ins.flags.find("from"); from != ins.flags.end()) {
        std::string f = Lower(from->second);
        bool is_index = !f.empty() && f.size() <= 4 && std::all_of(f.begin(), f.end(), ::isdigit);
        if (is_index && std::stoul(f) + 1 >= file.stages.size())
          return Error(line, fmt::format("COPY --from={} names no earlier stage", f));
        if (!is_index && !stage_names.count(f) && f.find('$') == std::string::npos) {
          if (Status st = ParseReference(from->second).status(); !st.ok())
            return Error(line, fmt::format("COPY --from: no stage named '{}' and {}", from->second,
                                           st.message()));
        }
        if (!is_index && f == file.stages.back().name)
          return Error(line, "COPY --from cannot name its own stage");
      }
    }
    file.stages.back().instructions.push_back(std::move(ins));
    return Status::Ok();
  }

  // One instruction (an ONBUILD trigger as an image stores it: the line, then its heredocs).
  Result<Instruction> ParseOne(std::string_view text) {
    Lines lines(text);
    std::optional<Instruction> out;
    while (lines.More()) {
      std::string_view token = TrimLeft(TrimNewline(lines.Next()));
      if (IsComment(token)) token = {};
      auto [first, eol] = TrimContinuation(token);
      if (eol && first.empty()) continue;
      std::string line(first);
      while (!eol && lines.More()) {
        std::string_view raw = lines.Next();
        std::string_view t = TrimNewline(raw);
        if (IsComment(raw) || TrimLeft(t).empty()) continue;
        auto [joined, end] = TrimContinuation(t);
        eol = end;
        line += joined;
      }
      if (out) return Error(0, "a trigger holds one instruction");
      ASSIGN_OR_RETURN(Instruction ins, ParseLine(line, 0));
      if (Status st = ReadHeredocs(ins, line, lines); !st.ok()) return Error(0, st.message());
      out = std::move(ins);
    }
    if (!out) return Error(0, "empty trigger");
    if (out->keyword == "ONBUILD" || out->keyword == "FROM" || out->keyword == "MAINTAINER")
      return Error(0, fmt::format("{} is not allowed as a trigger", out->keyword));
    return *std::move(out);
  }

 private:
  std::string file_name_;
  char escape_ = '\\';
  bool directives_done_ = false;
  std::set<std::string> directives_seen_;
};

}  // namespace

std::string Heredoc::Body() const {
  if (!chomp) return content;
  std::string out;
  bool line_start = true;
  for (char c : content) {
    if (line_start && c == '\t') continue;
    line_start = c == '\n';
    out += c;
  }
  return out;
}

std::string Instruction::ToString() const {
  std::string out = keyword;
  for (const auto& [k, v] : flags) out += fmt::format(" --{}={}", k, v);
  if (!text.empty()) out += " " + text;
  return out;
}

Result<std::string> ShellLexer::Word(std::string_view text, const Vars& vars) const {
  LexPass pass(*this, escape_, text, vars);
  Result<std::string> r = pass.Run(nullptr);
  if (!r.ok()) return InvalidArgument(fmt::format("'{}': {}", text, r.status().message()));
  return r;
}

Result<std::vector<std::string>> ShellLexer::Words(std::string_view text, const Vars& vars) const {
  LexPass pass(*this, escape_, text, vars);
  std::vector<std::string> words;
  Result<std::string> r = pass.Run(&words);
  if (!r.ok()) return InvalidArgument(fmt::format("'{}': {}", text, r.status().message()));
  return words;
}

bool IsHeredocWord(std::string_view word, std::string* name) {
  Heredoc doc;
  if (!ParseHeredocWord(word, &doc)) return false;
  *name = doc.name;
  return true;
}

Result<Containerfile> ParseContainerfile(std::string_view text, const std::string& file_name) {
  Parser parser(file_name);
  return parser.Parse(text);
}

Result<Instruction> ParseTrigger(std::string_view trigger, const std::string& where) {
  Parser parser(where);
  return parser.ParseOne(trigger);
}

Result<std::vector<std::string>> ParsePortSpec(std::string_view spec) {
  std::string raw(spec);
  // [ip:][hostport:]port: only the container port matters to the image.
  std::string port = raw.substr(raw.rfind(':') == std::string::npos ? 0 : raw.rfind(':') + 1);
  std::string proto = "tcp";
  if (size_t slash = port.find('/'); slash != std::string::npos) {
    proto = Lower(port.substr(slash + 1));
    port = port.substr(0, slash);
    if (proto.empty()) proto = "tcp";
  }
  auto bad = [&] { return InvalidArgument(fmt::format("invalid port '{}'", raw)); };
  if (proto != "tcp" && proto != "udp" && proto != "sctp") return bad();
  auto number = [](const std::string& s, int* out) {
    if (s.empty() || s.size() > 5 || !std::all_of(s.begin(), s.end(), ::isdigit)) return false;
    *out = std::stoi(s);
    return *out <= 65535;
  };
  int start = 0, end = 0;
  size_t dash = port.find('-');
  if (!number(port.substr(0, dash), &start)) return bad();
  end = start;
  if (dash != std::string::npos && !number(port.substr(dash + 1), &end)) return bad();
  if (end < start) return bad();
  std::vector<std::string> out;
  for (int p = start; p <= end; ++p) out.push_back(fmt::format("{}/{}", p, proto));
  return out;
}

Result<int64_t> ParseGoDuration(std::string_view text) {
  std::string_view s = text;
  auto bad = [&] { return InvalidArgument(fmt::format("invalid duration '{}'", text)); };
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return int64_t{0};
  if (s.empty()) return bad();
  long double total = 0;
  while (!s.empty()) {
    size_t i = 0;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == 0 || std::count(s.begin(), s.begin() + static_cast<long>(i), '.') > 1) return bad();
    std::string number(s.substr(0, i));
    if (number == ".") return bad();
    s.remove_prefix(i);
    size_t u = 0;
    while (u < s.size() && !std::isdigit(static_cast<unsigned char>(s[u])) && s[u] != '.') ++u;
    std::string_view unit = s.substr(0, u);
    s.remove_prefix(u);
    long double scale = 0;
    if (unit == "ns")
      scale = 1;
    else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs")
      scale = 1e3;
    else if (unit == "ms")
      scale = 1e6;
    else if (unit == "s")
      scale = 1e9;
    else if (unit == "m")
      scale = 60e9;
    else if (unit == "h")
      scale = 3600e9;
    else
      return bad();
    total += std::stold(number) * scale;
  }
  if (total > 9.2e18L) return bad();
  int64_t ns = static_cast<int64_t>(std::llround(total));
  return negative ? -ns : ns;
}

}  // namespace barge::oci
