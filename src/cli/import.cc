// barge import [-q] ROOTFS.tar[.gz]|- [NAME[:TAG]]: makes a one-layer image of a root file system.
// Progress on stderr; the image ID on stdout.
#include <fcntl.h>
#include <fmt/core.h>
#include <unistd.h>

#include "base/file_util.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "oci/transfer.h"

namespace barge::cli {
namespace {

struct ImportArgs {
  std::string file;
  std::string reference;
  bool quiet = false;
};

Status Import(const std::string& root, const ImportArgs& args) {
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(root));
  UniqueFd fd;
  if (args.file == "-") {
    fd.Reset(::dup(STDIN_FILENO));
  } else {
    ASSIGN_OR_RETURN(fd, OpenFileOrPipe(args.file));
  }
  oci::ImportOptions options;
  options.what = args.file == "-" ? "stdin" : args.file;
  TransferDisplay display(!args.quiet, "Importing", TransferDisplay::OffTerminal::kLines);
  options.progress = display.Callback();
  Result<oci::Image> imported = oci::ImportRootfs(store, fd.get(), args.reference, options);
  display.Finish();
  ASSIGN_OR_RETURN(oci::Image image, std::move(imported));
  fmt::print("{}\n", image.config_digest);
  return Status::Ok();
}

const Registration kImport{
    "import", "Create an image from a root file system tarball", [](CLI::App& cmd, Cli& cli) {
      auto args = std::make_shared<ImportArgs>();
      cmd.add_option("file", args->file, "ROOTFS.tar[.gz], or - for stdin")->required();
      cmd.add_option("reference", args->reference, "NAME[:TAG]");
      cmd.add_flag("-q,--quiet", args->quiet, "No progress on stderr; print only the image ID");
      cmd.callback([args, &cli] { cli.Finish(Import(cli.root(), *args)); });
    }};

}  // namespace
}  // namespace barge::cli
