// barge save [-q] -o FILE IMAGE...: writes images as an OCI archive. Progress on stderr.
#include <unistd.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "oci/transfer.h"

namespace barge::cli {
namespace {

struct SaveArgs {
  std::vector<std::string> refs;
  std::string output;
  bool quiet = false;
};

Status Save(const std::string& root, const SaveArgs& args) {
  std::string output = args.output;
  if (output.empty()) {
    if (::isatty(STDOUT_FILENO))
      return InvalidArgument("refusing to write an archive to a terminal: use -o FILE");
    output = "-";
  }
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  TransferDisplay display(!args.quiet, "Saving", TransferDisplay::OffTerminal::kLines);
  oci::SaveOptions options;
  options.progress = display.Callback();
  Status saved = oci::SaveArchive(store, args.refs, output, options);
  display.Finish();
  return saved;
}

const Registration kSave{"save", "Save images to an OCI archive (tar)",
                         [](CLI::App& cmd, Cli& cli) {
                           auto args = std::make_shared<SaveArgs>();
                           cmd.add_option("image", args->refs, "Images to save")->required();
                           cmd.add_option("-o,--output", args->output,
                                          "Archive to write (default: stdout, if not a terminal)");
                           cmd.add_flag("-q,--quiet", args->quiet, "No progress on stderr");
                           cmd.callback([args, &cli] { cli.Finish(Save(cli.root(), *args)); });
                         }};

}  // namespace
}  // namespace barge::cli
