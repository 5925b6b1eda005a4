// barge image prune: deletes untagged images and every blob no tag reaches.
#include <fmt/core.h>

#include "cli/cli.h"
#include "oci/image_store.h"

namespace barge::cli {
namespace {

Status Prune(const std::string& root) {
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  ASSIGN_OR_RETURN(oci::PruneResult r, store.Prune());
  for (const std::string& w : r.warnings) fmt::print(stderr, "barge: warning: {}\n", w);
  for (const std::string& d : r.deleted_images) fmt::print("Deleted: {}\n", d);
  fmt::print("Removed {} blobs and {} unpacked layers; reclaimed {} bytes of blobs\n", r.blobs,
             r.layer_dirs, r.bytes);
  return Status::Ok();
}

const Registration kImage{"image", "Manage images (image prune)", [](CLI::App& cmd, Cli& cli) {
                            cmd.require_subcommand(1);
                            CLI::App* prune = cmd.add_subcommand(
                                "prune", "Remove untagged images and unreferenced blobs");
                            prune->callback([&cli] { cli.Finish(Prune(cli.root())); });
                          }};

}  // namespace
}  // namespace barge::cli
