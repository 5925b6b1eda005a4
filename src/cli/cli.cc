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

Result<long long> ParseSize(std::string_view text) {
  long long value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || value < 0) {
    return InvalidArgument(
        fmt::format("invalid size '{}': expected a number with an optional "
                    "unit b, k, m or g (like 256m)",
                    text));
  }
  std::string_view unit(ptr, static_cast<size_t>(text.data() + text.size() - ptr));
  long long scale = 1;
  if (unit.empty() || unit == "b" || unit == "B") {
    scale = 1;
  } else if (unit == "k" || unit == "K" || unit == "kb" || unit == "KB" || unit == "KiB") {
    scale = 1LL << 10;
  } else if (unit == "m" || unit == "M" || unit == "mb" || unit == "MB" || unit == "MiB") {
    scale = 1LL << 20;
  } else if (unit == "g" || unit == "G" || unit == "gb" || unit == "GB" || unit == "GiB") {
    scale = 1LL << 30;
  } else {
    return InvalidArgument(
        fmt::format("invalid size '{}': unknown unit '{}' (use b, k, m or g)", text, unit));
  }
  if (value > (1LL << 62) / scale)
    return InvalidArgument(fmt::format("size '{}' is too large", text));
  return value * scale;
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
