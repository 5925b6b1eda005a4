// barge kill [-s SIGNAL] C...: sends a signal (default KILL) to containers.
#include <signal.h>
#include <string.h>

#include "cli/cli.h"
#include "runtime/lifecycle.h"

namespace barge::cli {
namespace {

// "KILL", "SIGKILL" or "9".
Result<int> ParseSignal(std::string text) {
  if (!text.empty() && std::all_of(text.begin(), text.end(), ::isdigit)) {
    int n = std::stoi(text);
    if (n > 0 && n < NSIG) return n;
  } else {
    if (text.rfind("SIG", 0) == 0) text = text.substr(3);
    for (int n = 1; n < NSIG; ++n) {
      const char* abbrev = ::sigabbrev_np(n);
      if (abbrev != nullptr && text == abbrev) return n;
    }
  }
  return InvalidArgument("invalid signal '" + text + "'");
}

const Registration kKill{
    "kill", "Send a signal to running containers", [](CLI::App& cmd, Cli& cli) {
      auto names = std::make_shared<std::vector<std::string>>();
      auto signal = std::make_shared<std::string>("KILL");
      cmd.add_option("containers", *names, "Container names or ids")->required();
      cmd.add_option("-s,--signal", *signal, "Signal to send (default KILL)");
      cmd.callback([names, signal, &cli] {
        Result<int> sig = ParseSignal(*signal);
        if (!sig.ok()) {
          cli.Finish(sig.status());
          return;
        }
        runtime::ContainerStore store(cli.root());
        ForEachName(cli, *names, [&](const std::string& name) -> Result<std::string> {
          RETURN_IF_ERROR(runtime::KillContainer(store, name, *sig));
          return name;
        });
      });
    }};

}  // namespace
}  // namespace barge::cli
