// barge rmi IMAGE...: removes tags; an image left without tags is deleted.
#include <fmt/core.h>

#include "cli/cli.h"
#include "oci/image_store.h"

namespace barge::cli {
namespace {

struct RmiArgs {
  std::vector<std::string> refs;
  bool force = false;
};

Status Remove(const std::string& root, const RmiArgs& args) {
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  Status first_error;
  for (const std::string& ref : args.refs) {
    Result<oci::RemoveResult> r = store.Remove(ref, args.force);
    if (!r.ok()) {
      // Like docker: go on with the other images, report the failure at the end.
      if (args.refs.size() > 1) fmt::print(stderr, "barge: error: {}\n", r.status().message());
      if (first_error.ok()) first_error = r.status();
      continue;
    }
    for (const std::string& t : r->untagged) fmt::print("Untagged: {}\n", t);
    for (const std::string& d : r->deleted) fmt::print("Deleted: {}\n", d);
    for (const std::string& w : r->warnings) fmt::print(stderr, "barge: warning: {}\n", w);
  }
  if (!first_error.ok() && args.refs.size() > 1)
    return InvalidArgument("some images could not be removed");
  return first_error;
}

const Registration kRmi{
    "rmi", "Remove images (tags; untagged images are deleted)", [](CLI::App& cmd, Cli& cli) {
      auto args = std::make_shared<RmiArgs>();
      cmd.add_option("image", args->refs, "Image name, ID or digest")->required();
      cmd.add_flag("-f,--force", args->force,
                   "Remove an image by ID even when several tags name it");
      cmd.callback([args, &cli] { cli.Finish(Remove(cli.root(), *args)); });
    }};

}  // namespace
}  // namespace barge::cli
