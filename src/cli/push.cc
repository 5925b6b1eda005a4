// barge push [--tls-verify=false] IMAGE [DEST]: sends an image of the local repository to a
// registry. Prints the manifest digest the registry stored.
#include <fmt/core.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "base/file_util.h"
#include "base/size.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/registry_flags.h"
#include "oci/registry.h"

namespace barge::cli {
namespace {

struct PushArgs {
  std::string image;
  std::string destination;
  RegistryFlags registry;
  bool quiet = false;
  std::string format = "text";
  std::string digest_file;
  std::string chunk_size;
  int jobs = 4;
};

Status PushImage(const std::string& root, const PushArgs& args) {
  if (args.format != "text" && args.format != "json")
    return InvalidArgument(fmt::format("unknown --format '{}' (use text or json)", args.format));
  if (args.jobs < 1 || args.jobs > 64) return InvalidArgument("--jobs must be between 1 and 64");
  oci::PushOptions options;
  ASSIGN_OR_RETURN(static_cast<oci::RegistryOptions&>(options), args.registry.Options());
  options.jobs = args.jobs;
  if (!args.chunk_size.empty()) {
    Result<long long> size = ParseSize(args.chunk_size);
    if (!size.ok()) return size.status().Wrap("--chunk-size");
    if (*size < 1024) return InvalidArgument("--chunk-size must be at least 1k");
    options.chunk_size = *size;
  }
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  TransferDisplay display(!args.quiet && args.format == "text", "Pushing");
  options.progress = display.Callback();
  auto start = std::chrono::steady_clock::now();
  Result<oci::PushResult> pushed = [&] {
    InterruptTransfers interrupts;
    return oci::Push(store, args.image, args.destination, options);
  }();
  display.Finish();
  RETURN_IF_ERROR(pushed.status());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const oci::PushResult& p = *pushed;
  if (!args.digest_file.empty()) RETURN_IF_ERROR(WriteFile(args.digest_file, p.digest));
  if (args.format == "json") {
    nlohmann::json j = {{"reference", p.reference}, {"digest", p.digest},
                        {"blobs", p.blobs},         {"uploaded", p.uploaded},
                        {"mounted", p.mounted},     {"uploaded_bytes", p.uploaded_bytes},
                        {"seconds", seconds}};
    fmt::print("{}\n", j.dump());
    return Status::Ok();
  }
  if (!args.quiet) {
    fmt::print(
        stderr,
        "Pushed {} ({}; {} blobs: {} uploaded, {} mounted, {} already there; {} in {:.2f}s)\n",
        p.reference, p.digest, p.blobs, p.uploaded, p.mounted, p.blobs - p.uploaded - p.mounted,
        HumanBytes(p.uploaded_bytes), seconds);
  }
  fmt::print("{}\n", p.digest);
  return Status::Ok();
}

const Registration kPush{
    "push", "Push an image to a registry", [](CLI::App& cmd, Cli& cli) {
      auto args = std::make_shared<PushArgs>();
      cmd.add_option("image", args->image, "Local image: NAME[:TAG], ID or digest")->required();
      cmd.add_option("destination", args->destination,
                     "REGISTRY/NAME[:TAG] to push to (default: IMAGE's own name)");
      args->registry.Add(cmd);
      cmd.add_flag("-q,--quiet", args->quiet, "Print only the manifest digest");
      cmd.add_option("--format", args->format, "text (default) or json");
      cmd.add_option("--digestfile", args->digest_file, "Write the manifest digest to this file");
      cmd.add_option("--chunk-size", args->chunk_size,
                     "Upload blobs in chunks of this size (e.g. 8m; default: one request each)");
      cmd.add_option("--jobs", args->jobs, "Blobs to upload at once (default 4)");
      cmd.callback([args, &cli] { cli.Finish(PushImage(cli.root(), *args)); });
    }};

}  // namespace
}  // namespace barge::cli
