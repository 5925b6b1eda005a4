// Containerfile / Dockerfile parsing. The whole file is parsed and checked before a build
// does any work; every error reads "Containerfile:LINE: message".
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "barge/status.h"

namespace barge::oci {

struct Instruction {
  int line = 0;                   // 1-based line where the instruction starts
  std::string keyword;            // upper case: FROM, RUN, COPY, ...
  std::string text;               // arguments as written, continuation lines joined, flags removed
  bool json_form = false;         // exec form: ["a", "b"]
  std::vector<std::string> args;  // JSON elements, or the words of `text`
  std::map<std::string, std::string> flags;  // --from, --chown, --chmod (without "--")

  std::string ToString() const;  // "COPY --from=build a /b", for progress and history
};

struct Stage {
  std::string base;  // FROM argument (may hold ${ARG}s until the build expands it)
  std::string name;  // "AS name", lower case; empty if none
  int index = 0;
  std::vector<Instruction> instructions;  // after FROM
  int line = 0;                           // of the FROM
};

struct Containerfile {
  std::string file_name;                 // as shown in errors, e.g. "Containerfile"
  std::vector<Instruction> global_args;  // ARGs before the first FROM
  std::vector<Stage> stages;
};

// Parses `text`. `file_name` prefixes errors.
Result<Containerfile> ParseContainerfile(std::string_view text, const std::string& file_name);

// Splits shell-like words: whitespace separates, quotes group, backslash escapes.
Result<std::vector<std::string>> SplitWords(std::string_view text);

// Expands $NAME, ${NAME}, ${NAME:-default} and ${NAME:+alt} from `vars`; "\$" is a literal
// '$'. Unknown names expand to "".
std::string ExpandVariables(std::string_view text, const std::map<std::string, std::string>& vars);

}  // namespace barge::oci
