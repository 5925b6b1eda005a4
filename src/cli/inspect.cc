// barge inspect IMAGE...: prints the images' metadata as a JSON array.
#include <fmt/core.h>

#include "cli/cli.h"
#include "oci/image_store.h"

namespace barge::cli {
namespace {

Status Inspect(const std::string& root, const std::vector<std::string>& refs) {
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  nlohmann::json out = nlohmann::json::array();
  for (const std::string& ref : refs) {
    ASSIGN_OR_RETURN(oci::Image image, store.Resolve(ref));
    nlohmann::json layers = nlohmann::json::array();
    for (const oci::Descriptor& l : image.layers) layers.push_back(l.ToJson());
    out.push_back({
        {"Id", image.config_digest},
        {"Digest", image.manifest.digest},
        {"RepoTags", image.tags},
        {"Created", image.created},
        {"Architecture", image.architecture},
        {"Os", image.os},
        // The config object as stored, so fields barge does not model (Volumes, ...) show too.
        {"Config", image.config_document.value("config", nlohmann::json::object())},
        {"RootFS", {{"Type", "layers"}, {"Layers", image.diff_ids}}},
        {"Layers", layers},
        {"History", image.config_document.value("history", nlohmann::json::array())},
        {"Size", image.Size()},
    });
  }
  fmt::print("{}\n", out.dump(2));
  return Status::Ok();
}

const Registration kInspect{
    "inspect", "Show an image's configuration and layers as JSON", [](CLI::App& cmd, Cli& cli) {
      auto refs = std::make_shared<std::vector<std::string>>();
      cmd.add_option("image", *refs, "Image name, ID or digest")->required();
      cmd.callback([refs, &cli] { cli.Finish(Inspect(cli.root(), *refs)); });
    }};

}  // namespace
}  // namespace barge::cli
