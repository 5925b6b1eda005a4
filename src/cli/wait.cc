// barge wait C...: blocks until containers exit and prints their exit codes, as docker wait.
#include <fmt/core.h>

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
        for (const std::string& name : *names) {
          Result<runtime::ContainerRecord> done = runtime::WaitContainer(store, name);
          if (done.ok()) fmt::print("{}\n", done->state.exit_code);
          cli.Finish(done.status());
        }
      });
    }};

}  // namespace
}  // namespace barge::cli
