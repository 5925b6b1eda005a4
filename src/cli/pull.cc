// barge pull [--platform OS/ARCH] [--tls-verify=false] REF: fetches an image from a registry into
// the local repository and tags it with its qualified name. Prints the image ID.
#include <fmt/core.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/registry_flags.h"
#include "oci/registry.h"

namespace barge::cli {
namespace {

struct PullArgs {
  std::string reference;
  std::string platform;
  RegistryFlags registry;
  bool quiet = false;
  std::string format = "text";
  int jobs = 4;
};

Status PullImage(const std::string& root, const PullArgs& args) {
  if (args.format != "text" && args.format != "json")
    return InvalidArgument(fmt::format("unknown --format '{}' (use text or json)", args.format));
  if (args.jobs < 1 || args.jobs > 64) return InvalidArgument("--jobs must be between 1 and 64");
  oci::PullOptions options;
  ASSIGN_OR_RETURN(static_cast<oci::RegistryOptions&>(options), args.registry.Options());
  options.platform = args.platform;
  options.jobs = args.jobs;
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  TransferDisplay display(!args.quiet && args.format == "text", "Pulling");
  options.progress = display.Callback();
  auto start = std::chrono::steady_clock::now();
  Result<oci::PullResult> pulled = [&] {
    InterruptTransfers interrupts;
    return oci::Pull(store, args.reference, options);
  }();
  display.Finish();
  RETURN_IF_ERROR(pulled.status());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const oci::PullResult& p = *pulled;
  if (args.format == "json") {
    nlohmann::json j = {{"reference", p.reference},
                        {"digest", p.manifest.digest},
                        {"media_type", p.manifest.media_type},
                        {"id", p.config_digest},
                        {"layers", p.layers},
                        {"fetched", p.fetched},
                        {"fetched_bytes", p.fetched_bytes},
                        {"seconds", seconds}};
    if (!p.index_digest.empty()) j["index_digest"] = p.index_digest;
    fmt::print("{}\n", j.dump());
    return Status::Ok();
  }
  if (!args.quiet) {
    fmt::print(stderr, "Pulled {} ({}; {} layers, {} blobs fetched, {} in {:.2f}s)\n", p.reference,
               p.manifest.digest, p.layers, p.fetched, HumanBytes(p.fetched_bytes), seconds);
  }
  fmt::print("{}\n", p.config_digest);
  return Status::Ok();
}

const Registration kPull{
    "pull", "Pull an image from a registry", [](CLI::App& cmd, Cli& cli) {
      auto args = std::make_shared<PullArgs>();
      cmd.add_option("reference", args->reference,
                     "NAME[:TAG] or NAME@DIGEST; a short name is looked for in the registries of "
                     "registries.conf")
          ->required();
      cmd.add_option("--platform", args->platform,
                     "OS/ARCH[/VARIANT] to take from a multi-platform image (default: this "
                     "machine's)");
      args->registry.Add(cmd);
      cmd.add_flag("-q,--quiet", args->quiet, "Print only the image ID");
      cmd.add_option("--format", args->format, "text (default) or json");
      cmd.add_option("--jobs", args->jobs, "Blobs to fetch at once (default 4)");
      cmd.callback([args, &cli] { cli.Finish(PullImage(cli.root(), *args)); });
    }};

}  // namespace
}  // namespace barge::cli
