// barge start C...: runs stopped containers again in the background, as docker start.

#include "cli/cli.h"
#include "runtime/lifecycle.h"

namespace barge::cli {
namespace {

const Registration kStart{
    "start", "Run stopped containers again, in the background", [](CLI::App& cmd, Cli& cli) {
      auto names = std::make_shared<std::vector<std::string>>();
      cmd.add_option("containers", *names, "Container names or ids")->required();
      cmd.callback([names, &cli] {
        runtime::ContainerStore store(cli.root());
        ForEachName(cli, *names,
                    [&](const std::string& name) { return runtime::StartContainer(store, name); });
      });
    }};

}  // namespace
}  // namespace barge::cli
