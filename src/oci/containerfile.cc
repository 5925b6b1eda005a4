#include "oci/containerfile.h"

#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <set>

#include "oci/reference.h"

namespace barge::oci {
namespace {

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// A logical line: continuation lines joined, comment lines inside it dropped.
struct Logical {
  int line;
  std::string text;
};

std::vector<Logical> JoinLines(std::string_view text) {
  std::vector<Logical> out;
  std::string current;
  int start = 0;
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view raw = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    std::string_view t = Trim(raw);
    if (!t.empty() && t.front() == '#') {
      if (end == text.size()) break;
      continue;  // comments (and parser directives) anywhere, also inside a continuation
    }
    if (current.empty() && t.empty()) {
      if (end == text.size()) break;
      continue;
    }
    if (current.empty()) start = line_no;
    bool continued = !t.empty() && t.back() == '\\';
    if (continued) t.remove_suffix(1);
    if (!current.empty() && !t.empty()) current += ' ';
    current += std::string(Trim(t));
    if (!continued) {
      out.push_back({start, std::move(current)});
      current.clear();
    }
    if (end == text.size()) break;
  }
  if (!current.empty()) out.push_back({start, std::move(current)});
  return out;
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

}  // namespace

std::string Instruction::ToString() const {
  std::string out = keyword;
  for (const auto& [k, v] : flags) out += fmt::format(" --{}={}", k, v);
  if (!text.empty()) out += " " + text;
  return out;
}

Result<std::vector<std::string>> SplitWords(std::string_view text) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quote != 0) {
      if (c == quote) {
        quote = 0;
      } else if (c == '\\' && quote == '"' && i + 1 < text.size()) {
        cur += text[++i];
      } else {
        cur += c;
      }
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (in_word) words.push_back(std::move(cur));
      cur.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '\\' && i + 1 < text.size()) {
      cur += text[++i];
    } else {
      cur += c;
    }
  }
  if (quote != 0) return InvalidArgument("unterminated quote");
  if (in_word) words.push_back(std::move(cur));
  return words;
}

std::string ExpandVariables(std::string_view s, const std::map<std::string, std::string>& vars) {
  auto lookup = [&](const std::string& name, bool* set) -> std::string {
    auto it = vars.find(name);
    *set = it != vars.end();
    return *set ? it->second : "";
  };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\' && i + 1 < s.size() && s[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (c != '$' || i + 1 >= s.size()) {
      out += c;
      continue;
    }
    if (s[i + 1] == '{') {
      size_t close = s.find('}', i + 2);
      if (close == std::string_view::npos) {
        out += c;
        continue;
      }
      std::string body(s.substr(i + 2, close - i - 2));
      i = close;
      size_t op = body.find(':');
      bool set = false;
      if (op != std::string::npos && op + 1 < body.size() &&
          (body[op + 1] == '-' || body[op + 1] == '+')) {
        std::string value = lookup(body.substr(0, op), &set);
        std::string word = ExpandVariables(body.substr(op + 2), vars);
        if (body[op + 1] == '-')
          out += set && !value.empty() ? value : word;
        else
          out += set && !value.empty() ? word : "";
      } else {
        out += lookup(body, &set);
      }
      continue;
    }
    size_t j = i + 1;
    while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
    if (j == i + 1) {
      out += c;
      continue;
    }
    bool set = false;
    out += lookup(std::string(s.substr(i + 1, j - i - 1)), &set);
    i = j - 1;
  }
  return out;
}

Result<Containerfile> ParseContainerfile(std::string_view text, const std::string& file_name) {
  Containerfile file;
  file.file_name = file_name;
  std::set<std::string> stage_names;
  auto error = [&](int line, const std::string& message) {
    return InvalidArgument(fmt::format("{}:{}: {}", file_name, line, message));
  };
  for (Logical& l : JoinLines(text)) {
    Instruction ins;
    ins.line = l.line;
    std::string_view rest = l.text;
    size_t sp = rest.find_first_of(" \t");
    ins.keyword = Upper(std::string(rest.substr(0, sp)));
    rest = sp == std::string_view::npos ? std::string_view() : Trim(rest.substr(sp));
    if (!Known().count(ins.keyword)) {
      return error(l.line, fmt::format("unknown instruction '{}'", ins.keyword));
    }
    // Flags: --name=value words before the arguments (COPY, ADD, FROM, RUN).
    bool takes_flags = ins.keyword == "COPY" || ins.keyword == "ADD" || ins.keyword == "FROM" ||
                       ins.keyword == "RUN";
    while (takes_flags && rest.substr(0, 2) == "--") {
      size_t end = rest.find_first_of(" \t");
      std::string flag(rest.substr(2, end == std::string_view::npos ? end : end - 2));
      size_t eq = flag.find('=');
      std::string key = flag.substr(0, eq);
      std::string value = eq == std::string::npos ? "" : flag.substr(eq + 1);
      bool ok = ((ins.keyword == "COPY" || ins.keyword == "ADD") &&
                 (key == "chown" || key == "chmod" || (key == "from" && ins.keyword == "COPY"))) ||
                (ins.keyword == "FROM" && key == "platform");
      if (!ok)
        return error(l.line, fmt::format("{} does not support the flag --{}", ins.keyword, key));
      if (eq == std::string::npos || value.empty())
        return error(l.line, fmt::format("--{} needs a value (--{}=...)", key, key));
      ins.flags[key] = value;
      rest = end == std::string_view::npos ? std::string_view() : Trim(rest.substr(end));
    }
    ins.text = std::string(rest);
    if (!rest.empty() && rest.front() == '[') {
      nlohmann::json j = nlohmann::json::parse(rest, nullptr, false);
      if (!j.is_discarded() && j.is_array() &&
          std::all_of(j.begin(), j.end(), [](const nlohmann::json& e) { return e.is_string(); })) {
        ins.json_form = true;
        for (const auto& e : j) ins.args.push_back(e.get<std::string>());
      }
    }
    if (!ins.json_form) {
      Result<std::vector<std::string>> words = SplitWords(rest);
      if (!words.ok()) return error(l.line, words.status().message());
      ins.args = std::move(*words);
    }
    const std::string& k = ins.keyword;
    if (ins.args.empty() && k != "CMD" && k != "ENTRYPOINT")
      return error(l.line, k + " needs arguments");

    if (k == "FROM") {
      if (!(ins.args.size() == 1 || (ins.args.size() == 3 && Upper(ins.args[1]) == "AS")))
        return error(l.line, "FROM takes IMAGE [AS NAME]");
      Stage stage;
      stage.base = ins.args[0];
      stage.line = l.line;
      stage.index = static_cast<int>(file.stages.size());
      if (ins.args.size() == 3) {
        stage.name = Lower(ins.args[2]);
        if (!stage_names.insert(stage.name).second)
          return error(l.line, fmt::format("duplicate stage name '{}'", stage.name));
      }
      if (stage.base.find('$') == std::string::npos && Lower(stage.base) != "scratch" &&
          !stage_names.count(Lower(stage.base))) {
        if (Status st = ParseReference(stage.base).status(); !st.ok())
          return error(l.line, st.message());
      }
      file.stages.push_back(std::move(stage));
      continue;
    }
    if (file.stages.empty()) {
      if (k != "ARG") return error(l.line, "the first instruction must be FROM (or ARG)");
      file.global_args.push_back(std::move(ins));
      continue;
    }
    if (k == "COPY" || k == "ADD") {
      if (ins.args.size() < 2)
        return error(l.line, k + " needs at least one source and a destination");
      for (size_t i = 0; i + 1 < ins.args.size(); ++i) {
        if (IsUrl(ins.args[i])) {
          return error(l.line, fmt::format("{} from a URL is not supported ({}): download it "
                                           "into the build context first",
                                           k, ins.args[i]));
        }
      }
      if (auto from = ins.flags.find("from"); from != ins.flags.end()) {
        std::string f = Lower(from->second);
        bool is_index = !f.empty() && f.size() <= 4 && std::all_of(f.begin(), f.end(), ::isdigit);
        if (is_index && std::stoul(f) + 1 >= file.stages.size())
          return error(l.line, fmt::format("COPY --from={} names no earlier stage", f));
        if (!is_index && !stage_names.count(f) && f.find('$') == std::string::npos) {
          if (Status st = ParseReference(from->second).status(); !st.ok())
            return error(l.line, fmt::format("COPY --from: no stage named '{}' and {}",
                                             from->second, st.message()));
        }
        if (!is_index && f == file.stages.back().name)
          return error(l.line, "COPY --from cannot name its own stage");
      }
    } else if (k == "ENV" || k == "LABEL") {
      bool pairs = ins.args[0].find('=') != std::string::npos;
      if (!pairs && k == "LABEL") return error(l.line, "LABEL takes KEY=VALUE pairs");
      if (!pairs && ins.args.size() < 2) return error(l.line, "ENV takes KEY=VALUE (or KEY VALUE)");
      if (pairs) {
        for (const std::string& a : ins.args) {
          if (a.find('=') == std::string::npos || a.front() == '=')
            return error(l.line, fmt::format("{} expects KEY=VALUE, got '{}'", k, a));
        }
      }
    } else if (k == "EXPOSE") {
      for (const std::string& p : ins.args) {
        if (p.find('$') != std::string::npos) continue;
        std::string port = p.substr(0, p.find('/'));
        std::string proto =
            p.find('/') == std::string::npos ? "tcp" : Lower(p.substr(p.find('/') + 1));
        bool digits =
            !port.empty() && port.size() <= 5 && std::all_of(port.begin(), port.end(), ::isdigit);
        if (!digits || std::stoi(port) < 1 || std::stoi(port) > 65535 ||
            (proto != "tcp" && proto != "udp" && proto != "sctp"))
          return error(l.line, fmt::format("EXPOSE: invalid port '{}'", p));
      }
    } else if (k == "WORKDIR" || k == "USER" || k == "STOPSIGNAL") {
      if (ins.args.size() != 1) return error(l.line, k + " takes one argument");
    } else if (k == "SHELL") {
      if (!ins.json_form)
        return error(l.line, "SHELL must be a JSON array, like [\"/bin/sh\", \"-c\"]");
    } else if (k == "ARG") {
      for (const std::string& a : ins.args) {
        std::string name = a.substr(0, a.find('='));
        if (name.empty()) return error(l.line, fmt::format("ARG: invalid name in '{}'", a));
      }
    }
    file.stages.back().instructions.push_back(std::move(ins));
  }
  if (file.stages.empty()) return error(1, "no FROM instruction");
  return file;
}

}  // namespace barge::oci
