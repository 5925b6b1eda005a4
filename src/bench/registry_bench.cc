// barge bench pull | push: an image of three layers (~60 MB, incompressible) moved between a
// local docker-registry (on loopback, plain HTTP) and barge, skopeo and podman, in the same run,
// alternating tool by tool in each iteration. Medians over --iterations (default 5).
//
// pull: `barge pull` into an empty store (fetch, check, unpack), `skopeo copy docker:// oci:`
// into an empty layout (fetch, check; no unpacking), `podman pull` into empty storage (fetch,
// check, unpack); and `barge pull` again with every layer present.
// push: `barge push`, `skopeo copy oci: docker://` and `podman push`, each to a registry
// emptied (and restarted) before it; podman compresses the layers it stores uncompressed.
#include <fmt/core.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/file_util.h"
#include "base/subprocess.h"
#include "bench/bench.h"
#include "bench/bench_util.h"
#include "bench/local_registry.h"
#include "oci/archive.h"
#include "oci/digest.h"
#include "oci/image_store.h"
#include "oci/platform.h"

namespace barge::bench {
namespace {

using nlohmann::json;

constexpr int kLayers = 3;
constexpr size_t kLayerBytes = 20 << 20;

bool Have(const std::string& tool) {
  auto r = RunCommand({"sh", "-c", "command -v " + tool});
  return r.ok() && r->exit_code == 0;
}

// Deterministic incompressible bytes (xorshift).
std::string Noise(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(&s[i], &x, 8);
  }
  return s;
}

struct Fixture {
  TempDir work;
  std::unique_ptr<LocalRegistry> registry;
  std::string barge;
  std::string source_root;  // barge's store holding bench:1
  std::string layout;       // the same image as an OCI layout (skopeo's source), tag "bench"
  int64_t image_bytes = 0;
  std::string podman_why_not;  // empty: podman can be measured
};

// The image: three layers of one 20 MiB file each, written by barge's own layer writer.
Result<Fixture> Prepare(const Options& options) {
  Fixture f;
  ASSIGN_OR_RETURN(f.work, TempDir::Make("barge-bench-registry-"));
  for (const char* tool : {"docker-registry", "skopeo"}) {
    if (!Have(tool)) return NotFound(fmt::format("{} is not installed (run scripts/setup)", tool));
  }
  f.barge = SelfExe();
  f.source_root = options.root.empty() ? f.work.path() + "/source" : options.root;
  ASSIGN_OR_RETURN(oci::ImageStore store, oci::ImageStore::Open(f.source_root));
  std::vector<oci::Descriptor> layers;
  std::vector<std::string> diff_ids;
  for (int i = 0; i < kLayers; ++i) {
    std::string dir = f.work.path() + "/layer" + std::to_string(i);
    RETURN_IF_ERROR(MakeDirs(dir + "/data", 0755));
    RETURN_IF_ERROR(WriteFile(dir + "/data/file" + std::to_string(i), Noise(kLayerBytes, i + 1)));
    ASSIGN_OR_RETURN(oci::BlobWriter blob, store.NewBlob());
    oci::WriteLayerOptions wo;
    wo.gzip_level = 1;
    ASSIGN_OR_RETURN(oci::TarDigests d, oci::WriteLayerFromDir(dir, blob.AsSink(), wo));
    ASSIGN_OR_RETURN(oci::Descriptor layer,
                     blob.Commit(std::string(oci::kMediaTypeLayerGzip), d.compressed_digest));
    layers.push_back(layer);
    diff_ids.push_back(d.diff_id);
    f.image_bytes += layer.size;
    RETURN_IF_ERROR(RemoveTree(dir));
  }
  json config = {{"architecture", oci::HostArchitecture()},
                 {"os", "linux"},
                 {"config", json::object()},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  ASSIGN_OR_RETURN(oci::Image image, store.WriteImage(config, layers));
  RETURN_IF_ERROR(store.Tag(image.manifest, "bench:1"));
  // The OCI layout skopeo reads: the same blobs, hard-linked.
  f.layout = f.work.path() + "/layout";
  RETURN_IF_ERROR(MakeDirs(f.layout + "/blobs/sha256", 0755));
  std::vector<std::string> blobs = {image.manifest.digest, image.config_digest};
  for (const oci::Descriptor& l : layers) blobs.push_back(l.digest);
  for (const std::string& d : blobs) {
    std::string to = f.layout + "/blobs/sha256/" + oci::DigestHex(d);
    if (::link(store.BlobPath(d).c_str(), to.c_str()) != 0) return ErrnoError("link " + to);
  }
  oci::Descriptor m = image.manifest;
  m.annotations = {{std::string(oci::kAnnotationRefName), "bench"}};
  json index = {{"schemaVersion", 2}, {"manifests", {m.ToJson()}}};
  RETURN_IF_ERROR(WriteFile(f.layout + "/index.json", index.dump()));
  RETURN_IF_ERROR(WriteFile(f.layout + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  ASSIGN_OR_RETURN(f.registry, LocalRegistry::Start(f.work.path() + "/registry", {}));
  if (!Have("podman")) f.podman_why_not = "podman is not installed (run scripts/setup)";
  return f;
}

std::vector<std::string> Podman(const std::string& dir, std::vector<std::string> args) {
  std::vector<std::string> argv = {"podman",    "--root",           dir + "/root",
                                   "--runroot", dir + "/run",       "--storage-driver",
                                   "overlay",   "--events-backend", "none"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// Removes a tool's scratch directory (podman's storage may hold mounts).
Status Scrap(const std::string& dir) {
  UnmountBelow(dir);
  return RemoveTree(dir);
}

json Figures(const std::string& name, const Fixture& f, int iterations) {
  return {{"benchmark", name},
          {"layers", kLayers},
          {"image_mb", static_cast<double>(f.image_bytes) / 1e6},
          {"iterations", iterations}};
}

Result<json> RunPullBench(const Options& options) {
  int iterations = options.iterations > 0 ? options.iterations : 5;
  ASSIGN_OR_RETURN(Fixture f, Prepare(options));
  std::string ref = f.registry->host() + "/bench:1";
  RETURN_IF_ERROR(
      TimeCommand({f.barge, "--root", f.source_root, "push", "-q", "bench:1", ref}).status());
  const std::string& w = f.work.path();
  std::vector<double> barge, present, skopeo, podman;
  for (int i = -1; i < iterations; ++i) {  // i == -1: an untimed warm-up of each tool
    std::string root = w + "/pull-root";
    ASSIGN_OR_RETURN(double b, TimeCommand({f.barge, "--root", root, "pull", "-q", ref}));
    ASSIGN_OR_RETURN(double p, TimeCommand({f.barge, "--root", root, "pull", "-q", ref}));
    RETURN_IF_ERROR(RemoveTree(root));
    ASSIGN_OR_RETURN(double s, TimeCommand({"skopeo", "copy", "-q", "--src-tls-verify=false",
                                            "docker://" + ref, "oci:" + w + "/skopeo:bench"}));
    RETURN_IF_ERROR(RemoveTree(w + "/skopeo"));
    if (i >= 0) {
      barge.push_back(b);
      present.push_back(p);
      skopeo.push_back(s);
    }
    if (f.podman_why_not.empty()) {
      std::string dir = w + "/podman";
      Result<double> pd = TimeCommand(Podman(dir, {"pull", "-q", "--tls-verify=false", ref}));
      RETURN_IF_ERROR(Scrap(dir));
      if (!pd.ok()) {
        f.podman_why_not = pd.status().message();
      } else if (i >= 0) {
        podman.push_back(*pd);
      }
    }
  }
  json out = Figures("pull", f, iterations);
  out["barge_ms"] = Median(barge);
  out["barge_present_ms"] = Median(present);
  out["skopeo_ms"] = Median(skopeo);
  out["ratio_barge_to_skopeo"] = Median(barge) / Median(skopeo);
  if (f.podman_why_not.empty()) {
    out["podman_ms"] = Median(podman);
    out["ratio_barge_to_podman"] = Median(barge) / Median(podman);
  } else {
    out["podman"] = "not measured: " + f.podman_why_not;
  }
  return out;
}

Result<json> RunPushBench(const Options& options) {
  int iterations = options.iterations > 0 ? options.iterations : 5;
  ASSIGN_OR_RETURN(Fixture f, Prepare(options));
  const std::string& w = f.work.path();
  std::string ref = f.registry->host() + "/bench:1";
  std::string podman_dir = w + "/podman";
  std::string podman_image;
  if (f.podman_why_not.empty()) {
    // podman pushes from its own storage: the image goes there first (through skopeo, as
    // `podman pull oci:DIR` would name it after DIR), untimed.
    std::string storage = "containers-storage:[overlay@" + podman_dir + "/root+" + podman_dir +
                          "/run]localhost/bench:1";
    Result<CommandOutput> in =
        RunCommand({"skopeo", "copy", "-q", "oci:" + f.layout + ":bench", storage});
    if (!in.ok() || in->exit_code != 0) {
      f.podman_why_not =
          in.ok() ? "skopeo copy into podman's storage failed: " + in->err : in.status().message();
    } else {
      podman_image = "localhost/bench:1";
    }
  }
  std::vector<double> barge, skopeo, podman;
  for (int i = -1; i < iterations; ++i) {
    RETURN_IF_ERROR(f.registry->Wipe());
    ASSIGN_OR_RETURN(double b,
                     TimeCommand({f.barge, "--root", f.source_root, "push", "-q", "bench:1", ref}));
    RETURN_IF_ERROR(f.registry->Wipe());
    ASSIGN_OR_RETURN(double s, TimeCommand({"skopeo", "copy", "-q", "--dest-tls-verify=false",
                                            "oci:" + f.layout + ":bench", "docker://" + ref}));
    if (i >= 0) {
      barge.push_back(b);
      skopeo.push_back(s);
    }
    if (f.podman_why_not.empty()) {
      RETURN_IF_ERROR(f.registry->Wipe());
      Result<double> pd = TimeCommand(Podman(
          podman_dir, {"push", "-q", "--tls-verify=false", podman_image, "docker://" + ref}));
      if (!pd.ok()) {
        f.podman_why_not = pd.status().message();
      } else if (i >= 0) {
        podman.push_back(*pd);
      }
    }
  }
  RETURN_IF_ERROR(Scrap(podman_dir));
  json out = Figures("push", f, iterations);
  out["barge_ms"] = Median(barge);
  out["skopeo_ms"] = Median(skopeo);
  out["ratio_barge_to_skopeo"] = Median(barge) / Median(skopeo);
  if (f.podman_why_not.empty()) {
    out["podman_ms"] = Median(podman);
    out["ratio_barge_to_podman"] = Median(barge) / Median(podman);
  } else {
    out["podman"] = "not measured: " + f.podman_why_not;
  }
  return out;
}

const Registration kPull{
    "pull", "pull of a 3-layer ~60 MB image from a local registry vs skopeo, podman", RunPullBench};
const Registration kPush{
    "push", "push of a 3-layer ~60 MB image to a local registry vs skopeo, podman", RunPushBench};

}  // namespace
}  // namespace barge::bench
