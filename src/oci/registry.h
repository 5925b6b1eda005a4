// A client of the OCI distribution API (and of Docker's registry API as registries serve it):
// pull, push, login. Speaks HTTP through libcurl (src/oci/detail/http.h); authenticates with
// the registry's challenge (Bearer tokens from its token service, or Basic); reads OCI and
// Docker v2 schema 2 manifests, image indexes and manifest lists; layers gzip, zstd or plain.
//
// Pull: the manifest (and, from an index, the one for the platform), then the config, then every
// layer not in the store, several at once. Each layer is checked against its digest while it
// streams, and unpacked into the layer cache as it arrives; a blob whose digest (or diff_id)
// does not match is refused and nothing of it is kept; an interrupted pull leaves only whole,
// checked blobs (a retry fetches the rest). The tag moves last.
//
// Push: every blob the registry lacks (HEAD) is mounted from another repository of the same
// registry that barge saw holding it, else uploaded (monolithic, or in chunks); the manifest,
// byte for byte as stored (so its digest survives any number of round trips), goes last.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "barge/status.h"
#include "oci/auth.h"
#include "oci/image_store.h"
#include "oci/progress.h"
#include "oci/registry_config.h"

namespace barge::oci {

struct RegistryOptions {
  // nullopt: verify TLS unless registries.conf marks the registry insecure; plain HTTP only
  // for an insecure or loopback registry that does not speak TLS. false: certificates are not
  // verified and plain HTTP is allowed (--tls-verify=false).
  std::optional<bool> tls_verify;
  std::string cert_dir;   // --cert-dir: the certs.d to use instead of the default ones
  std::string auth_file;  // --authfile
  std::optional<Credentials> credentials;  // --creds: instead of the auth file's
};

struct PullOptions : RegistryOptions {
  std::string platform;  // "os/arch[/variant]" from an index; empty: this machine's
  int jobs = 4;          // blobs fetched at once
  TransferProgress progress;
};

struct PullResult {
  std::string reference;     // the name tagged: "localhost:5000/app:1", or name@digest
  Descriptor manifest;       // the image's manifest (digest = what the registry serves)
  std::string index_digest;  // the index or manifest list it was chosen from, if any
  std::string config_digest;
  int layers = 0;
  int fetched = 0;  // blobs fetched (config and layers)
  int64_t fetched_bytes = 0;
};

// Pulls REF (NAME[:TAG] or NAME@DIGEST; a short name through registries.conf) into the store and
// tags it with its fully qualified name.
Result<PullResult> Pull(const ImageStore& store, const std::string& reference,
                        const PullOptions& options);

enum class PullPolicy { kMissing, kAlways, kNever };
Result<PullPolicy> ParsePullPolicy(const std::string& text);

// The image `reference` names, for run and build: looked up in the store (as given, then as the
// qualified names a short name resolves to) and pulled as the policy says. `pulled` (optional)
// says whether it was.
Result<Image> ResolveOrPull(const ImageStore& store, const std::string& reference,
                            PullPolicy policy, const PullOptions& options, bool* pulled = nullptr);

struct PushOptions : RegistryOptions {
  int jobs = 4;            // blobs uploaded at once
  int64_t chunk_size = 0;  // > 0: upload in PATCH chunks of this many bytes; 0: monolithic
  TransferProgress progress;
};

struct PushResult {
  std::string reference;  // the destination, qualified
  std::string digest;     // the manifest's digest, as the registry confirmed it
  int blobs = 0;
  int uploaded = 0;
  int mounted = 0;
  int64_t uploaded_bytes = 0;
};

// Pushes the local image `image` to `destination` (empty: the image's own name as given).
Result<PushResult> Push(const ImageStore& store, const std::string& image,
                        const std::string& destination, const PushOptions& options);

// Checks `credentials` against `registry` (its token service, or Basic auth on /v2/).
Status CheckLogin(const std::string& registry, const Credentials& credentials,
                  const RegistryOptions& options);

// A signal handler may call this: transfers in progress end with Cancelled("interrupted").
void CancelTransfers();

}  // namespace barge::oci
