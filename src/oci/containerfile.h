// Containerfile / Dockerfile parsing, as BuildKit's Dockerfile frontend reads them. The whole
// file is parsed and checked before a build does any work; every error reads
// "Containerfile:LINE: message".
//
// Lines: parser directives (`# escape=`` `, `# syntax=...`, `# check=...`) before anything
// else; comment lines anywhere (also inside a continuation); the escape character (`\` or the
// directive's) at the end of a line continues it, and the next line is joined as written, its
// leading whitespace kept; an empty line inside a continuation is skipped with a warning, as
// Docker does. Heredocs (`RUN <<EOF`, `COPY <<EOF /dst`, `<<-EOF`, quoted delimiters, several
// per line) follow ADD, COPY and RUN.
//
// Words are kept as written (quotes included); the builder expands them with ShellLexer, which
// removes quotes and substitutes variables the way BuildKit does, instruction by instruction.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "barge/status.h"

namespace barge::oci {

// A here-document attached to an instruction.
struct Heredoc {
  std::string name;     // the delimiter word, quotes removed ("EOF")
  std::string content;  // the lines before the delimiter line, each with its '\n'
  bool expand = true;   // the delimiter was unquoted: COPY substitutes variables in the content
  bool chomp = false;   // `<<-EOF`: leading tabs are dropped from each line

  // The content with leading tabs dropped when `chomp`.
  std::string Body() const;
};

struct Instruction {
  int line = 0;            // 1-based line where the instruction starts
  std::string keyword;     // upper case: FROM, RUN, COPY, ...
  std::string text;        // the arguments as written, continuation lines joined, flags removed
  bool json_form = false;  // exec form: ["a", "b"]
  // The words, before variable expansion (quotes still in them), by instruction:
  //   ADD, COPY, VOLUME, EXPOSE, FROM: the JSON elements, or `text` split at whitespace;
  //   ARG: the NAME[=VALUE] words; RUN, CMD, ENTRYPOINT, SHELL: the JSON elements, or {text};
  //   HEALTHCHECK: {TYPE, then the command as for CMD}; ENV, LABEL: empty (see `pairs`);
  //   USER, WORKDIR, STOPSIGNAL, MAINTAINER, ONBUILD: {text}.
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> pairs;  // ENV and LABEL: KEY, VALUE
  std::map<std::string, std::string> flags;  // --from, --chown, ... (name without "--")
  std::vector<Heredoc> heredocs;
  // ONBUILD: the trigger as it is stored in the image config (its heredocs appended).
  std::string trigger;

  std::string ToString() const;  // "COPY --from=build a /b", for progress and history
};

struct Stage {
  std::string base;      // FROM argument (may hold ${ARG}s until the build expands it)
  std::string name;      // "AS name", lower case; empty if none
  std::string platform;  // FROM --platform value, unexpanded; empty if none
  int index = 0;
  std::vector<Instruction> instructions;  // after FROM
  int line = 0;                           // of the FROM
};

struct Containerfile {
  std::string file_name;                 // as shown in errors, e.g. "Containerfile"
  char escape = '\\';                    // the escape character (`# escape=` directive)
  std::vector<Instruction> global_args;  // ARGs before the first FROM
  std::vector<Stage> stages;
  std::vector<std::string> warnings;  // "Containerfile:LINE: ..." (empty continuation lines)
};

// Parses `text`. `file_name` prefixes errors.
Result<Containerfile> ParseContainerfile(std::string_view text, const std::string& file_name);

// Whether `word` opens a heredoc (`<<EOF`, `<<-"EOF"`, `2<<EOF`); `name` gets its delimiter.
bool IsHeredocWord(std::string_view word, std::string* name);

// Parses one ONBUILD trigger (as stored in an image config) into the instruction it runs;
// errors name `where` ("ONBUILD trigger of image 'base:1'").
Result<Instruction> ParseTrigger(std::string_view trigger, const std::string& where);

// BuildKit's word processing: quotes (' keeps everything, " allows $ and escapes), the escape
// character, and variables: $NAME, ${NAME}, ${NAME:-word}, ${NAME-word}, ${NAME:+word},
// ${NAME+word}, ${NAME:?message}, ${NAME?message}, ${NAME#pattern}, ${NAME##pattern},
// ${NAME%pattern}, ${NAME%%pattern}, ${NAME/pattern/replacement} and ${NAME//pattern/repl}.
// Errors are one line naming the text ("'${A': syntax error: missing '}'").
class ShellLexer {
 public:
  using Vars = std::map<std::string, std::string>;

  explicit ShellLexer(char escape = '\\') : escape_(escape) {}

  // One word: quotes removed, variables substituted, whitespace kept.
  Result<std::string> Word(std::string_view text, const Vars& vars) const;
  // The words `text` splits into at unquoted whitespace, after substitution (no empty words).
  Result<std::vector<std::string>> Words(std::string_view text, const Vars& vars) const;

  bool raw_quotes = false;   // keep quote characters in the output
  bool raw_escapes = false;  // keep escape characters in the output
  bool skip_unset = false;   // leave references to unset variables as written
  bool skip_quotes = false;  // quotes are ordinary characters (heredoc content)

 private:
  char escape_;
};

// EXPOSE's "[ip:][hostport:]port[-end][/proto]" as the image config keys ("80/tcp", ...), a
// range giving one key per port and the protocol lower-cased.
Result<std::vector<std::string>> ParsePortSpec(std::string_view spec);

// Go's time.ParseDuration ("1m30s", "500ms", "1.5h"), in nanoseconds.
Result<int64_t> ParseGoDuration(std::string_view text);

}  // namespace barge::oci
