// barge load [-q] [-i FILE|DIR] [--platform OS/ARCH]: loads images from an OCI archive or layout,
// a Docker archive or a skopeo dir: layout. Progress on stderr; "Loaded image: NAME" on stdout.
#include <fmt/core.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "oci/transfer.h"

namespace barge::cli {
namespace {

struct LoadArgs {
  std::string input;
  oci::LoadOptions options;
  bool quiet = false;
};

Status Load(const std::string& root, const LoadArgs& args) {
  std::string input = args.input;
  if (input.empty()) {
    if (::isatty(STDIN_FILENO)) return InvalidArgument("no archive given: use -i FILE");
    input = "-";
  }
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  TransferDisplay display(!args.quiet, "Loading", TransferDisplay::OffTerminal::kLines);
  oci::LoadOptions options = args.options;
  options.progress = display.Callback();
  Result<std::vector<oci::LoadedImage>> result = oci::LoadArchive(store, input, options);
  display.Finish();
  ASSIGN_OR_RETURN(std::vector<oci::LoadedImage> loaded, std::move(result));
  for (const oci::LoadedImage& l : loaded) {
    if (l.reference.empty()) {
      fmt::print("Loaded image: {}\n", l.manifest_digest);
    } else {
      fmt::print("Loaded image: {}\n", l.reference);
    }
  }
  return Status::Ok();
}

const Registration kLoad{
    "load", "Load images from an OCI archive or layout, a Docker archive or a skopeo dir",
    [](CLI::App& cmd, Cli& cli) {
      auto args = std::make_shared<LoadArgs>();
      cmd.add_option("-i,--input", args->input,
                     "Archive (tar), OCI layout or skopeo dir: directory to read (default: stdin)");
      cmd.add_option("--platform", args->options.platform,
                     "OS/ARCH[/VARIANT] to take from multi-platform images (default: this "
                     "machine's)");
      cmd.add_flag("-q,--quiet", args->quiet,
                   "No progress on stderr (the 'Loaded image' lines stay on stdout)");
      cmd.callback([args, &cli] { cli.Finish(Load(cli.root(), *args)); });
    }};

}  // namespace
}  // namespace barge::cli
