// barge ps: lists containers (running ones; -a: all), as a table or JSON.
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "runtime/container_store.h"
#include "runtime/time_util.h"

namespace barge::cli {
namespace {

struct PsArgs {
  bool all = false;
  bool quiet = false;
  std::string format = "table";
};

std::string StatusText(const runtime::ContainerRecord& r) {
  const runtime::ContainerState& s = r.state;
  switch (s.status) {
    case runtime::ContainerStatus::kCreated:
      return "Created";
    case runtime::ContainerStatus::kRunning:
      return "Up " + runtime::HumanSince(s.started_at);
    case runtime::ContainerStatus::kExited: {
      std::string code =
          s.exit_code < 0 ? "unknown: its barge process was killed" : std::to_string(s.exit_code);
      if (s.oom_killed) code += ", OOM killed";
      return "Exited (" + code + ") " + runtime::HumanSince(s.finished_at) + " ago";
    }
  }
  return "";
}

std::string Command(const runtime::ContainerRecord& r) {
  std::string out;
  for (const std::string& a : r.config.process.argv) out += (out.empty() ? "" : " ") + a;
  if (out.size() > 27) out = out.substr(0, 24) + "...";
  return "\"" + out + "\"";
}

void Ps(const PsArgs& args, Cli& cli) {
  if (args.format != "table" && args.format != "json") {
    cli.Finish(InvalidArgument("unknown --format '" + args.format + "' (use table or json)"));
    return;
  }
  runtime::ContainerStore store(cli.root());
  Result<std::vector<runtime::ContainerRecord>> all = store.List();
  if (!all.ok()) {
    cli.Finish(all.status());
    return;
  }
  std::vector<runtime::ContainerRecord> shown;
  for (auto& r : *all) {
    if (args.all || r.state.status == runtime::ContainerStatus::kRunning) shown.push_back(r);
  }
  if (args.quiet) {
    for (const auto& r : shown) fmt::print("{}\n", r.config.id.substr(0, 12));
    return;
  }
  if (args.format == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : shown) {
      out.push_back(
          {{"id", r.config.id},
           {"name", r.config.name},
           {"image", r.config.image},
           {"command", r.config.process.argv},
           {"status", runtime::StatusName(r.state.status)},
           {"pid", r.state.status == runtime::ContainerStatus::kRunning ? r.state.pid : 0},
           {"exit_code", r.state.exit_code},
           {"oom_killed", r.state.oom_killed},
           {"created_at", r.config.created_at},
           {"started_at", r.state.started_at},
           {"finished_at", r.state.finished_at}});
    }
    fmt::print("{}\n", out.dump());
    return;
  }
  std::vector<std::vector<std::string>> rows = {
      {"CONTAINER ID", "IMAGE", "COMMAND", "STATUS", "NAMES"}};
  for (const auto& r : shown) {
    std::string image =
        r.config.image.size() > 20 ? r.config.image.substr(0, 17) + "..." : r.config.image;
    rows.push_back({r.config.id.substr(0, 12), image, Command(r), StatusText(r), r.config.name});
  }
  PrintTable(rows);
}

const Registration kPs{"ps", "List containers", [](CLI::App& cmd, Cli& cli) {
                         auto args = std::make_shared<PsArgs>();
                         cmd.add_flag("-a,--all", args->all,
                                      "Show all containers, not only running");
                         cmd.add_flag("-q,--quiet", args->quiet, "Only print ids");
                         cmd.add_option("--format", args->format, "table (default) or json");
                         cmd.callback([args, &cli] { Ps(*args, cli); });
                       }};

}  // namespace
}  // namespace barge::cli
