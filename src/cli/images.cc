// barge images: lists the images in the local repository.
#include <fmt/core.h>

#include <ctime>

#include "cli/cli.h"
#include "cli/progress.h"
#include "oci/digest.h"
#include "oci/image_store.h"

namespace barge::cli {
namespace {

std::string Ago(const std::string& rfc3339) {
  std::tm tm{};
  if (rfc3339.size() < 19 || ::strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr)
    return "N/A";
  long long secs = static_cast<long long>(std::time(nullptr) - ::timegm(&tm));
  if (secs < 0) secs = 0;
  if (secs < 60) return fmt::format("{} seconds ago", secs);
  if (secs < 3600) return fmt::format("{} minutes ago", secs / 60);
  if (secs < 86400 * 2) return fmt::format("{} hours ago", secs / 3600);
  return fmt::format("{} days ago", secs / 86400);
}

Status ListImages(const std::string& root, const std::string& format) {
  if (format != "table" && format != "json")
    return InvalidArgument(fmt::format("unknown --format '{}' (use table or json)", format));
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  ASSIGN_OR_RETURN(oci::ImageList list, store.List());
  for (const Status& broken : list.broken)
    fmt::print(stderr, "barge: warning: {}\n", broken.message());
  if (format == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const oci::Image& image : list.images) {
      out.push_back({{"Id", image.config_digest},
                     {"Digest", image.manifest.digest},
                     {"RepoTags", image.tags},
                     {"Created", image.created},
                     {"Size", image.Size()}});
    }
    fmt::print("{}\n", out.dump(2));
    return Status::Ok();
  }
  std::vector<std::vector<std::string>> rows = {
      {"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"}};
  for (const oci::Image& image : list.images) {
    std::vector<std::string> tags = image.tags;
    if (tags.empty()) tags.push_back("<none>:<none>");
    for (const std::string& t : tags) {
      size_t colon = t.rfind(':');
      rows.push_back({t.substr(0, colon), t.substr(colon + 1), image.ShortId(), Ago(image.created),
                      HumanBytes(image.Size(), /*significant=*/true)});
    }
  }
  PrintTable(rows);
  return Status::Ok();
}

const Registration kImages{
    "images", "List images in the local repository", [](CLI::App& cmd, Cli& cli) {
      auto format = std::make_shared<std::string>("table");
      cmd.add_option("--format", *format, "table (default) or json");
      cmd.callback([format, &cli] { cli.Finish(ListImages(cli.root(), *format)); });
    }};

}  // namespace
}  // namespace barge::cli
