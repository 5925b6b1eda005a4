// barge rm [-f] C...: deletes stopped containers (-f: kills running ones first).
#include <fmt/core.h>

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
                           for (const std::string& name : *names) {
                             Status st = runtime::RemoveContainer(store, name, *force);
                             if (st.ok()) fmt::print("{}\n", name);
                             cli.Finish(st);
                           }
                         });
                       }};

}  // namespace
}  // namespace barge::cli
