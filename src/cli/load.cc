// barge load -i FILE: loads images from an OCI archive or a Docker archive.
#include <fmt/core.h>
#include <unistd.h>

#include "cli/cli.h"
#include "oci/transfer.h"

namespace barge::cli {
namespace {

Status Load(const std::string& root, std::string input) {
  if (input.empty()) {
    if (::isatty(STDIN_FILENO)) return InvalidArgument("no archive given: use -i FILE");
    input = "-";
  }
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  ASSIGN_OR_RETURN(std::vector<oci::LoadedImage> loaded, oci::LoadArchive(store, input));
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
    "load", "Load images from an OCI archive or a Docker archive", [](CLI::App& cmd, Cli& cli) {
      auto input = std::make_shared<std::string>();
      cmd.add_option("-i,--input", *input,
                     "Archive (tar) or OCI layout directory to read (default: stdin)");
      cmd.callback([input, &cli] { cli.Finish(Load(cli.root(), *input)); });
    }};

}  // namespace
}  // namespace barge::cli
