// barge stop [-t SECS] C...: SIGTERM, then SIGKILL after the grace period.

#include "cli/cli.h"
#include "runtime/lifecycle.h"

namespace barge::cli {
namespace {

const Registration kStop{
    "stop", "Stop running containers (TERM, then KILL after -t seconds)",
    [](CLI::App& cmd, Cli& cli) {
      auto names = std::make_shared<std::vector<std::string>>();
      auto seconds = std::make_shared<int>(10);
      cmd.add_option("containers", *names, "Container names or ids")->required();
      cmd.add_option("-t,--time", *seconds, "Seconds to wait before killing (default 10)")
          ->check(CLI::NonNegativeNumber);
      cmd.callback([names, seconds, &cli] {
        runtime::ContainerStore store(cli.root());
        ForEachName(cli, *names, [&](const std::string& name) -> Result<std::string> {
          RETURN_IF_ERROR(runtime::StopContainer(store, name, std::chrono::seconds(*seconds)));
          return name;
        });
      });
    }};

}  // namespace
}  // namespace barge::cli
