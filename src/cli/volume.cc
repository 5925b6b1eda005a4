// barge volume create|ls|inspect|rm: named volumes under <root>/volumes.
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "runtime/container_store.h"
#include "runtime/volumes.h"

namespace barge::cli {
namespace {

nlohmann::json ToJson(const runtime::Volume& v) {
  return {{"name", v.name}, {"mountpoint", v.mountpoint}, {"created_at", v.created_at}};
}

// Docker refuses to remove a volume any container (running or not) refers to.
Status CheckUnused(const std::string& root, const std::string& name) {
  runtime::ContainerStore store(root);
  ASSIGN_OR_RETURN(std::vector<runtime::ContainerRecord> all, store.List());
  for (const auto& r : all) {
    for (const std::string& v : r.config.volume_names) {
      if (v == name) {
        return InvalidArgument("volume " + name + " is in use by container " + r.config.name +
                               " (remove the container first)");
      }
    }
  }
  return Status::Ok();
}

const Registration kVolume{
    "volume", "Manage named volumes", [](CLI::App& cmd, Cli& cli) {
      cmd.require_subcommand(1);
      auto name = std::make_shared<std::string>();
      auto names = std::make_shared<std::vector<std::string>>();
      auto format = std::make_shared<std::string>("table");

      CLI::App* create = cmd.add_subcommand("create", "Create a volume (an existing one is kept)");
      create->add_option("name", *name, "Volume name")->required();
      create->callback([name, &cli] {
        Result<runtime::Volume> v = runtime::VolumeStore(cli.root()).Create(*name);
        if (v.ok()) fmt::print("{}\n", v->name);
        cli.Finish(v.status());
      });

      CLI::App* ls = cmd.add_subcommand("ls", "List volumes");
      ls->add_option("--format", *format, "table (default) or json");
      ls->callback([format, &cli] {
        Result<std::vector<runtime::Volume>> all = runtime::VolumeStore(cli.root()).List();
        if (!all.ok()) {
          cli.Finish(all.status());
          return;
        }
        if (*format == "json") {
          nlohmann::json out = nlohmann::json::array();
          for (const auto& v : *all) out.push_back(ToJson(v));
          fmt::print("{}\n", out.dump());
          return;
        }
        fmt::print("VOLUME NAME\n");
        for (const auto& v : *all) fmt::print("{}\n", v.name);
      });

      CLI::App* inspect = cmd.add_subcommand("inspect", "Show volumes as JSON");
      inspect->add_option("names", *names, "Volume names")->required();
      inspect->callback([names, &cli] {
        nlohmann::json out = nlohmann::json::array();
        for (const std::string& n : *names) {
          Result<runtime::Volume> v = runtime::VolumeStore(cli.root()).Inspect(n);
          if (!v.ok()) {
            cli.Finish(v.status());
            return;
          }
          out.push_back(ToJson(*v));
        }
        fmt::print("{}\n", out.dump(2));
      });

      CLI::App* rm = cmd.add_subcommand("rm", "Remove volumes and their data");
      rm->add_option("names", *names, "Volume names")->required();
      rm->callback([names, &cli] {
        for (const std::string& n : *names) {
          Status st = CheckUnused(cli.root(), n);
          if (st.ok()) st = runtime::VolumeStore(cli.root()).Remove(n);
          if (st.ok()) fmt::print("{}\n", n);
          cli.Finish(st);
        }
      });
    }};

}  // namespace
}  // namespace barge::cli
