// barge build -t NAME[:TAG] [-f FILE] [--build-arg K=V] [--no-cache] CONTEXT
#include <fmt/core.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/registry_flags.h"
#include "cli/runtime_run_executor.h"
#include "oci/builder.h"
#include "oci/registry.h"

namespace barge::cli {
namespace {

struct BuildArgs {
  std::string context;
  std::string file;
  std::vector<std::string> tags;
  std::vector<std::string> build_args;
  std::string target;
  bool no_cache = false;
  bool quiet = false;
  std::string pull = "missing";
  RegistryFlags registry;
};

Status BuildImage(const std::string& root, const BuildArgs& args) {
  oci::BuildOptions options;
  options.context_dir = args.context;
  options.containerfile = args.file;
  options.tags = args.tags;
  options.no_cache = args.no_cache;
  options.target = args.target;
  for (const std::string& kv : args.build_args) {
    size_t eq = kv.find('=');
    if (eq == 0 || kv.empty())
      return InvalidArgument(fmt::format("--build-arg '{}': expected NAME=VALUE", kv));
    // "NAME" alone takes the value from barge's environment, like docker.
    if (eq == std::string::npos) {
      const char* v = std::getenv(kv.c_str());
      if (v != nullptr) options.build_args[kv] = v;
    } else {
      options.build_args[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
  }
  // RUN runs in a container of the runtime (src/runtime), isolated as `barge run` is.
  RuntimeRunExecutor executor(root, args.quiet);
  options.executor = &executor;
  if (!args.quiet) {
    options.progress = [](const std::string& line) {
      fmt::print(stderr, "{}\n", line);
      std::fflush(stderr);
    };
  }
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  // FROM and COPY --from images missing from the store are pulled (as --pull says).
  ASSIGN_OR_RETURN(oci::PullPolicy policy, oci::ParsePullPolicy(args.pull));
  oci::PullOptions pull;
  ASSIGN_OR_RETURN(static_cast<oci::RegistryOptions&>(pull), args.registry.Options());
  options.resolve_image = [&](const std::string& name) -> Result<oci::Image> {
    TransferDisplay display(!args.quiet, "Pulling");
    pull.progress = display.Callback();
    bool pulled = false;
    Result<oci::Image> image = [&] {
      InterruptTransfers interrupts;
      return oci::ResolveOrPull(store, name, policy, pull, &pulled);
    }();
    display.Finish();
    if (image.ok() && pulled && !args.quiet) {
      fmt::print(stderr, "Pulled {} ({})\n", image->tags.empty() ? name : image->tags[0],
                 image->manifest.digest);
    }
    return image;
  };
  ASSIGN_OR_RETURN(oci::BuildResult result, oci::Build(store, options));
  for (const std::string& w : result.warnings) fmt::print(stderr, "barge: warning: {}\n", w);
  if (!args.quiet) {
    for (const std::string& t : result.image.tags)
      fmt::print(stderr, "Successfully tagged {}\n", t);
  }
  fmt::print("{}\n", result.image.config_digest);
  return Status::Ok();
}

const Registration kBuild{
    "build", "Build an image from a Containerfile", [](CLI::App& cmd, Cli& cli) {
      auto args = std::make_shared<BuildArgs>();
      cmd.add_option("context", args->context, "Build context directory")->required();
      cmd.add_option("-t,--tag", args->tags, "Name the image NAME[:TAG] (repeatable)");
      cmd.add_option("-f,--file", args->file,
                     "Containerfile (default CONTEXT/Containerfile, else CONTEXT/Dockerfile)");
      cmd.add_option("--build-arg", args->build_args, "Set a build argument NAME=VALUE");
      cmd.add_option("--target", args->target, "Build this stage instead of the last");
      cmd.add_flag("--no-cache", args->no_cache, "Build every layer anew");
      cmd.add_option("--pull", args->pull, "Pull FROM images: missing (default), always, never");
      args->registry.Add(cmd);
      cmd.add_flag("-q,--quiet", args->quiet,
                   "Print only the image ID (RUN output too is dropped)");
      cmd.callback([args, &cli] { cli.Finish(BuildImage(cli.root(), *args)); });
    }};

}  // namespace
}  // namespace barge::cli
