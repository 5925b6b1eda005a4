// barge wait C...: blocks until containers exit and prints their exit codes, as docker wait.

#include "cli/cli.h"
#include "runtime/lifecycle.h"

namespace barge::cli {
namespace {

const Registration kWait{
    "wait", "Wait until containers exit and print their exit codes", [](CLI::App& cmd, Cli& cli) {
      auto names = std::make_shared<std::vector<std::string>>();
      cmd.add_option("containers", *names, "Container names or ids")->required();
      cmd.callback([names, &cli] {
        runtime::ContainerStore store(cli.root());
        ForEachName(cli, *names, [&](const std::string& name) -> Result<std::string> {
          ASSIGN_OR_RETURN(runtime::ContainerRecord done, runtime::WaitContainer(store, name));
          return std::to_string(done.state.exit_code);
        });
      });
    }};

}  // namespace
}  // namespace barge::cli
