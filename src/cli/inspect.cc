// barge inspect [--type container|image] NAME...: prints containers' or images' metadata as a
// JSON array. Without --type, a name is looked up among containers first, then images, as
// docker inspect does.
#include <fmt/core.h>

#include "cli/cli.h"
#include "oci/image_store.h"
#include "runtime/container_store.h"

namespace barge::cli {
namespace {

nlohmann::json ImageJson(const oci::Image& image) {
  nlohmann::json layers = nlohmann::json::array();
  for (const oci::Descriptor& l : image.layers) layers.push_back(l.ToJson());
  return {
      {"Id", image.config_digest},
      {"Digest", image.manifest.digest},
      {"RepoTags", image.tags},
      {"Created", image.created},
      {"Architecture", image.architecture},
      {"Os", image.os},
      {"Author", oci::StringField(image.config_document, "author")},  // MAINTAINER
      // The config object as stored, so fields barge does not model (Volumes, ...) show too.
      {"Config", image.config_document.value("config", nlohmann::json::object())},
      {"RootFS", {{"Type", "layers"}, {"Layers", image.diff_ids}}},
      {"Layers", layers},
      {"History", image.config_document.value("history", nlohmann::json::array())},
      {"Size", image.Size()},
  };
}

Status Inspect(const std::string& root, const std::string& type,
               const std::vector<std::string>& names) {
  if (type != "" && type != "container" && type != "image") {
    return InvalidArgument("unknown --type '" + type + "' (use container or image)");
  }
  runtime::ContainerStore containers(root);
  std::optional<oci::ImageStore> images;
  nlohmann::json out = nlohmann::json::array();
  for (const std::string& name : names) {
    if (type != "image") {
      Result<runtime::ContainerRecord> record = containers.Find(name);
      if (record.ok()) {
        out.push_back(runtime::RecordToJson(*record));
        continue;
      }
      if (record.status().code() != StatusCode::kNotFound || type == "container") {
        return record.status();
      }
    }
    if (!images) {
      ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
      images.emplace(std::move(store));
    }
    Result<oci::Image> image = images->Resolve(name);
    if (!image.ok() && image.status().code() == StatusCode::kNotFound && type.empty()) {
      return NotFound("no such container or image: " + name);
    }
    if (!image.ok()) return image.status();
    out.push_back(ImageJson(*image));
  }
  fmt::print("{}\n", out.dump(2));
  return Status::Ok();
}

const Registration kInspect{
    "inspect", "Show containers' or images' configuration as JSON", [](CLI::App& cmd, Cli& cli) {
      auto names = std::make_shared<std::vector<std::string>>();
      auto type = std::make_shared<std::string>();
      cmd.add_option("--type", *type, "container or image (default: a container, else an image)");
      cmd.add_option("name", *names, "Container name or id, or image name, id or digest")
          ->required();
      cmd.callback([names, type, &cli] { cli.Finish(Inspect(cli.root(), *type, *names)); });
    }};

}  // namespace
}  // namespace barge::cli
