// Push: the blobs the registry lacks (mounted from a sibling repository where barge saw them,
// else uploaded), several at once, then the manifest as stored (see registry.h).
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "base/file_util.h"
#include "oci/detail/blob_locations.h"
#include "oci/detail/registry_client.h"
#include "oci/digest.h"
#include "oci/reference.h"
#include "oci/registry.h"

namespace barge::oci {
namespace {

using detail::RegistryClient;
using nlohmann::json;

class Pusher {
 public:
  Pusher(const ImageStore& store, RegistryClient& client, const RepositoryName& dest,
         const PushOptions& options)
      : store_(store),
        client_(client),
        dest_(dest),
        options_(options),
        locations_(detail::ReadBlobLocations(store)) {}

  Status Run(const std::vector<Descriptor>& blobs) {
    std::atomic<size_t> next{0};
    Status first;
    std::mutex mu;
    auto work = [&] {
      for (;;) {
        size_t i = next++;
        if (i >= blobs.size() || stop_.load()) return;
        Status st = PushBlob(blobs[i]);
        if (!st.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (first.ok()) first = st;
          stop_ = true;
        }
      }
    };
    size_t n = std::min<size_t>(std::max(options_.jobs, 1), blobs.size());
    std::vector<std::thread> threads;
    for (size_t i = 1; i < n; ++i) threads.emplace_back(work);
    work();
    for (std::thread& t : threads) t.join();
    return first;
  }

  int uploaded() const { return uploaded_; }
  int mounted() const { return mounted_; }
  int64_t uploaded_bytes() const { return bytes_; }

 private:
  void Emit(TransferEvent e) {
    if (!options_.progress) return;
    std::lock_guard<std::mutex> lock(progress_mu_);
    options_.progress(e);
  }

  Status PushBlob(const Descriptor& d) {
    const std::string& repo = dest_.repository;
    ASSIGN_OR_RETURN(bool present, client_.HasBlob(repo, d.digest));
    if (present) {
      Emit({TransferEvent::Kind::kPresent, d.digest, "", d.size, d.size});
      return Status::Ok();
    }
    if (auto it = locations_.find(d.digest); it != locations_.end()) {
      for (const std::string& loc : it->second) {
        RepositoryName from = SplitName(loc);
        if (from.registry != dest_.registry || from.repository == repo) continue;
        // A mount the registry refuses (or cannot do) is not an error: the upload follows.
        Result<bool> mounted = client_.MountBlob(repo, d.digest, from.repository);
        if (mounted.ok() && *mounted) {
          ++mounted_;
          Emit({TransferEvent::Kind::kMounted, d.digest, loc, d.size, d.size});
          return Status::Ok();
        }
      }
    }
    std::string path = store_.BlobPath(d.digest);
    if (!store_.HasBlob(d.digest))
      return NotFound(fmt::format("blob {} is missing from the local repository", d.digest));
    ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return ErrnoError("stat " + path);
    if (st.st_size != d.size) {
      return Corruption(
          fmt::format("blob {} in the local repository has {} bytes, its descriptor says {}",
                      d.digest, st.st_size, d.size));
    }
    Emit({TransferEvent::Kind::kBlob, d.digest, "", 0, d.size});
    int64_t sent = 0;
    int64_t reported = 0;
    Status up =
        client_.UploadBlob(repo, d.digest, fd.get(), d.size, options_.chunk_size,
                           [&](std::string_view bytes) -> Status {
                             if (stop_.load()) return Cancelled("stopped");
                             sent += static_cast<int64_t>(bytes.size());
                             if (sent - reported >= (1 << 20) || sent == d.size) {
                               Emit({TransferEvent::Kind::kBytes, d.digest, "", sent, d.size});
                               reported = sent;
                             }
                             return Status::Ok();
                           });
    // The registry checks every blob against its digest (the distribution spec has it refuse a
    // mismatch), so the bytes are not hashed a second time here on the way out. When it refuses
    // a blob it received whole, the local copy is checked, to say so if that is why.
    if (!up.ok() && sent == d.size && !stop_.load()) {
      Result<std::string> actual = DigestOfFile(path);
      if (actual.ok() && *actual != d.digest) {
        return Corruption(fmt::format("blob {} in the local repository is corrupt: it hashes to {}",
                                      d.digest, *actual));
      }
    }
    RETURN_IF_ERROR(up);
    ++uploaded_;
    bytes_ += d.size;
    Emit({TransferEvent::Kind::kDone, d.digest, "", d.size, d.size});
    return Status::Ok();
  }

  const ImageStore& store_;
  RegistryClient& client_;
  RepositoryName dest_;
  const PushOptions& options_;
  detail::BlobLocations locations_;
  std::mutex progress_mu_;
  std::atomic<bool> stop_{false};
  std::atomic<int> uploaded_{0};
  std::atomic<int> mounted_{0};
  std::atomic<int64_t> bytes_{0};
};

}  // namespace

Result<PushResult> Push(const ImageStore& store, const std::string& source,
                        const std::string& destination, const PushOptions& options) {
  std::string what = "push " + source;
  Result<Image> image = store.Resolve(source);
  if (!image.ok()) return image.status().Wrap(what);
  std::string dest = destination.empty() ? source : destination;
  Result<Reference> ref = ParseReference(dest);
  bool names_image = false;
  if (ref.ok()) {
    for (const std::string& t : image->tags) names_image |= t == ref->ToString();
  }
  if (!ref.ok() || (destination.empty() && !names_image && ref->digest.empty())) {
    return InvalidArgument(fmt::format(
        "{}: name the destination as REGISTRY/NAME[:TAG] (barge push IMAGE DEST)", what));
  }
  RepositoryName name = SplitName(ref->name);
  if (name.registry.empty()) name = SplitName(std::string(kDockerHub) + "/" + ref->name);
  auto fail = [&](const Status& st) { return st.Wrap(what); };
  Result<RegistriesConf> conf = RegistriesConf::Load();
  if (!conf.ok()) return fail(conf.status());
  Result<std::vector<Endpoint>> endpoints = conf->Endpoints(name, true);
  if (!endpoints.ok()) return fail(endpoints.status());
  const Endpoint& endpoint = endpoints->back();
  std::optional<Credentials> creds = options.credentials;
  if (!creds) {
    Result<std::optional<Credentials>> found = LookupCredentials(options.auth_file, endpoint.name);
    if (!found.ok()) return fail(found.status());
    creds = *found;
  }
  Result<std::unique_ptr<RegistryClient>> client =
      RegistryClient::Connect(endpoint.name.registry, endpoint.insecure, options, std::move(creds));
  if (!client.ok()) return fail(client.status());

  Result<std::string> manifest = store.ReadBlob(image->manifest);
  if (!manifest.ok()) return fail(manifest.status());
  std::string media_type =
      StringField(image->manifest_document, "mediaType", image->manifest.media_type);
  Result<Descriptor> config =
      Descriptor::FromJson(image->manifest_document["config"], "manifest config");
  if (!config.ok()) return fail(config.status());
  std::vector<Descriptor> blobs = {*config};
  std::set<std::string> seen = {config->digest};
  for (const Descriptor& l : image->layers) {
    if (seen.insert(l.digest).second) blobs.push_back(l);
  }
  std::string target = ref->digest.empty() ? ref->tag : ref->digest;
  std::string full = endpoint.name.ToString() + (ref->digest.empty() ? ":" : "@") + target;
  if (options.progress) options.progress({TransferEvent::Kind::kImage, "", full});
  Pusher pusher(store, **client, endpoint.name, options);
  if (Status st = pusher.Run(blobs); !st.ok()) return fail(st);
  // Last, so that the tag never names a blob the registry lacks.
  Result<std::string> digest =
      (*client)->PutManifest(endpoint.name.repository, target, media_type, *manifest);
  if (!digest.ok()) return fail(digest.status());
  if (*digest != image->manifest.digest) {
    return Corruption(fmt::format("{}: the registry stored manifest {} as {}", what,
                                  image->manifest.digest, *digest));
  }
  std::vector<std::string> digests;
  for (const Descriptor& b : blobs) digests.push_back(b.digest);
  (void)detail::RecordBlobLocations(store, endpoint.name.ToString(), digests);
  PushResult result;
  result.reference = full;
  result.digest = *digest;
  result.blobs = static_cast<int>(blobs.size());
  result.uploaded = pusher.uploaded();
  result.mounted = pusher.mounted();
  result.uploaded_bytes = pusher.uploaded_bytes();
  return result;
}

Status CheckLogin(const std::string& registry, const Credentials& credentials,
                  const RegistryOptions& options) {
  std::string key = NormalizeAuthKey(registry);
  std::string host = key.substr(0, key.find('/'));
  ASSIGN_OR_RETURN(RegistriesConf conf, RegistriesConf::Load());
  ASSIGN_OR_RETURN(std::vector<Endpoint> endpoints, conf.Endpoints(SplitName(host + "/x"), true));
  ASSIGN_OR_RETURN(std::unique_ptr<RegistryClient> client,
                   RegistryClient::Connect(endpoints.back().name.registry,
                                           endpoints.back().insecure, options, credentials));
  return client->CheckCredentials();
}

}  // namespace barge::oci
