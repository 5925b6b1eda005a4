// barge load [-i FILE|DIR] [--platform OS/ARCH]: loads images from an OCI archive or layout, a
// Docker archive or a skopeo dir: layout.
#include <fmt/core.h>
#include <unistd.h>

#include "cli/cli.h"
#include "oci/transfer.h"

namespace barge::cli {
namespace {

Status Load(const std::string& root, std::string input, const oci::LoadOptions& options) {
  if (input.empty()) {
    if (::isatty(STDIN_FILENO)) return InvalidArgument("no archive given: use -i FILE");
    input = "-";
  }
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  ASSIGN_OR_RETURN(std::vector<oci::LoadedImage> loaded, oci::LoadArchive(store, input, options));
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
      auto input = std::make_shared<std::string>();
      auto options = std::make_shared<oci::LoadOptions>();
      cmd.add_option("-i,--input", *input,
                     "Archive (tar), OCI layout or skopeo dir: directory to read (default: stdin)");
      cmd.add_option("--platform", options->platform,
                     "OS/ARCH[/VARIANT] to take from multi-platform images (default: this "
                     "machine's)");
      cmd.callback([input, options, &cli] { cli.Finish(Load(cli.root(), *input, *options)); });
    }};

}  // namespace
}  // namespace barge::cli
