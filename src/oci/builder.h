// `barge build`: turns a Containerfile and a build context into an image in the store.
//
// Layer steps (COPY, ADD, RUN) are cached under <root>/build-cache/<key>.json, where the key
// hashes the parent step's key, the image config so far, the instruction (after variable
// expansion) and the content of every file it reads (COPY/ADD) or the build args it sees
// (RUN). A rebuild with nothing changed reuses every layer and produces the same image
// digest (created times come from the cached layers, not the clock).
//
// RUN goes through RunStepExecutor, so the builder does not depend on the container runtime.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "barge/status.h"
#include "oci/image_store.h"

namespace barge::oci {

// One RUN instruction, ready to execute. The command must run with an overlay root made of
// `lower_dirs` (read-only, LOWEST FIRST: overlayfs's lowerdir option wants them reversed)
// and `upper_dir`/`work_dir` (empty directories on the same file system, to be used as
// overlay upperdir/workdir), without network. Whatever the command changes lands in
// `upper_dir` in overlay form (whiteouts as 0/0 char devices, opaque dirs by xattr); the
// builder turns it into the new layer.
struct RunStep {
  std::vector<std::string> lower_dirs;
  std::string upper_dir;
  std::string work_dir;
  std::vector<std::string> argv;  // exec form, or {shell..., "command"}
  std::vector<std::string> env;   // "K=V"; PATH is always set
  std::string working_dir;        // absolute path inside the root ("/" by default)
  std::string user;               // as written in USER ("" = root)
  uid_t uid = 0;                  // `user` resolved against the image's /etc/passwd
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups from /etc/group
  bool network = false;       // builds have no network
  // Host directories to bind-mount read-only inside the root (`RUN <<EOF` with a shebang runs
  // its script from /dev/pipes, as BuildKit does); nothing under them reaches the layer.
  struct Bind {
    std::string source;       // host path
    std::string destination;  // absolute path inside the root
  };
  std::vector<Bind> read_only_binds;
};

class RunStepExecutor {
 public:
  virtual ~RunStepExecutor() = default;
  // Runs the command to completion; returns its exit status (128 + N when killed by
  // signal N). An error Status means the command could not be run at all.
  virtual Result<int> Run(const RunStep& step) = 0;
};

struct BuildOptions {
  std::string context_dir;
  std::string containerfile;  // empty: CONTEXT/Containerfile, else CONTEXT/Dockerfile
  std::vector<std::string> tags;
  std::map<std::string, std::string> build_args;
  bool no_cache = false;
  std::string target;                   // stage name to build; empty: the last
  RunStepExecutor* executor = nullptr;  // null: RUN fails with a clear error
  int gzip_level = 1;                   // build layers favour speed; save/push keep them as is
  // Finds the images FROM and COPY --from name (the CLI's pulls a missing one, as --pull says);
  // null: ImageStore::Resolve.
  std::function<Result<Image>(const std::string& name)> resolve_image;
  // Progress lines ("STEP 2/5: COPY a /b", " --> Using cache ...").
  std::function<void(const std::string&)> progress;
};

struct BuildResult {
  Image image;
  int steps = 0;
  int cached_layers = 0;
  int built_layers = 0;
  // What docker warns about and the build went on despite: empty continuation lines, build
  // args no ARG consumed. The CLI prints them.
  std::vector<std::string> warnings;
};

Result<BuildResult> Build(const ImageStore& store, const BuildOptions& options);

}  // namespace barge::oci
