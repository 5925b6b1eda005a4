// barge tag SOURCE TARGET: gives an image another name.
#include "cli/cli.h"
#include "oci/image_store.h"

namespace barge::cli {
namespace {

Status TagImage(const std::string& root, const std::string& source, const std::string& target) {
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  ASSIGN_OR_RETURN(oci::Image image, store.Resolve(source));
  return store.Tag(image.manifest, target);
}

const Registration kTag{
    "tag", "Create a tag TARGET that refers to SOURCE", [](CLI::App& cmd, Cli& cli) {
      auto args = std::make_shared<std::pair<std::string, std::string>>();
      cmd.add_option("source", args->first, "Image name, ID or digest")->required();
      cmd.add_option("target", args->second, "New NAME[:TAG]")->required();
      cmd.callback([args, &cli] { cli.Finish(TagImage(cli.root(), args->first, args->second)); });
    }};

}  // namespace
}  // namespace barge::cli
