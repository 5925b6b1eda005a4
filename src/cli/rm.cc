// barge rm [-f] C...: deletes stopped containers (-f: kills running ones first).

#include "cli/cli.h"
#include "runtime/lifecycle.h"

namespace barge::cli {
namespace {

const Registration kRm{"rm", "Remove containers", [](CLI::App& cmd, Cli& cli) {
                         auto names = std::make_shared<std::vector<std::string>>();
                         auto force = std::make_shared<bool>(false);
                         cmd.add_option("containers", *names, "Container names or ids")->required();
                         cmd.add_flag("-f,--force", *force, "Kill a running container first");
                         cmd.callback([names, force, &cli] {
                           runtime::ContainerStore store(cli.root());
                           ForEachName(
                               cli, *names, [&](const std::string& name) -> Result<std::string> {
                                 RETURN_IF_ERROR(runtime::RemoveContainer(store, name, *force));
                                 return name;
                               });
                         });
                       }};

}  // namespace
}  // namespace barge::cli
