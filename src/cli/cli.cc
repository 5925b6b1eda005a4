#include "cli/cli.h"

#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace barge::cli {

void PrintError(std::string_view message) {
  fmt::print(stderr, "barge: error: {}\n", message);
  std::fflush(stderr);
}

void Cli::Finish(const Status& status) {
  if (status.ok()) return;
  PrintError(status.message());
  exit_code_ = kExitError;
}

std::vector<CommandInfo>& Commands() {
  static std::vector<CommandInfo> commands;
  return commands;
}

Registration::Registration(std::string name, std::string summary, SetupFn setup,
                           int usage_exit_code) {
  auto& commands = Commands();
  commands.push_back({std::move(name), std::move(summary), std::move(setup), usage_exit_code});
  std::sort(commands.begin(), commands.end(),
            [](const CommandInfo& a, const CommandInfo& b) { return a.name < b.name; });
}

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      out += row[i];
      if (i + 1 < row.size()) out.append(widths[i] - row[i].size() + 3, ' ');
    }
    out += '\n';
  }
  return out;
}

void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  fmt::print("{}", FormatTable(rows));
}

void ForEachName(Cli& cli, const std::vector<std::string>& names,
                 const std::function<Result<std::string>(const std::string& name)>& op) {
  for (const std::string& name : names) {
    Result<std::string> line = op(name);
    if (line.ok()) fmt::print("{}\n", *line);
    cli.Finish(line.status());
  }
}

void OneValuePerOccurrence(CLI::App& command) {
  for (CLI::Option* option : command.get_options()) {
    if (!option->get_positional() && option->get_items_expected_max() > 1) {
      option->allow_extra_args(false);
    }
  }
  for (CLI::App* sub : command.get_subcommands({})) OneValuePerOccurrence(*sub);
}

}  // namespace barge::cli
