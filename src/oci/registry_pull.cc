// Pull: the manifest, the config, then the layers the store lacks, several at once, each
// checked and unpacked while it streams (see registry.h).
#include <fmt/core.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "base/file_util.h"
#include "oci/detail/blob_locations.h"
#include "oci/detail/registry_client.h"
#include "oci/digest.h"
#include "oci/platform.h"
#include "oci/reference.h"
#include "oci/registry.h"

namespace barge::oci {
namespace {

using detail::RegistryClient;
using nlohmann::json;

// Calls the user's progress function one event at a time.
class Progress {
 public:
  explicit Progress(const TransferProgress& fn) : fn_(fn) {}
  void Emit(TransferEvent e) {
    if (!fn_) return;
    std::lock_guard<std::mutex> lock(mu_);
    fn_(e);
  }

 private:
  const TransferProgress& fn_;
  std::mutex mu_;
};

// A layer unpacked on another thread from the bytes fed to it, as they arrive: they wait in a
// bounded queue (the download slows down when the unpacker falls behind).
class StreamingUnpack {
 public:
  static std::unique_ptr<StreamingUnpack> Start(const ImageStore& store, std::string what) {
    std::unique_ptr<StreamingUnpack> u(new StreamingUnpack());
    u->thread_ = std::thread([u = u.get(), &store, what] {
      // The blob writer hashes the compressed bytes already.
      u->result_ = store.UnpackLayer([u] { return u->Next(); }, what, /*hash_compressed=*/false);
      std::lock_guard<std::mutex> lock(u->mu_);
      u->stopped_ = true;  // Feed() drops what comes from now on
      u->cv_.notify_all();
    });
    return u;
  }

  ~StreamingUnpack() { Close(); }

  // Bytes are gathered into blocks of kBlock before they are handed over (HTTP clients deliver
  // 16 KiB at a time): a hand-over wakes a thread, which costs more than the copy.
  void Feed(std::string_view bytes) {
    if (pending_.capacity() < kBlock) pending_.reserve(kBlock);
    pending_.append(bytes);
    if (pending_.size() >= kBlock) HandOver();
  }

  // Ends the stream and waits for the unpacker.
  Result<std::pair<TempDir, TarDigests>>& Finish() {
    if (!pending_.empty()) HandOver();
    Close();
    return result_;
  }

 private:
  static constexpr size_t kBlock = 256 << 10;
  static constexpr size_t kMaxQueued = 4 * kBlock;
  StreamingUnpack() = default;

  // Queues the gathered bytes, waiting while the queue is full. After the unpacker stopped (it
  // failed) they are dropped: the download goes on, so that a digest mismatch, the likelier
  // cause, is what gets reported.
  void HandOver() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return queued_ < kMaxQueued || stopped_; });
    if (stopped_) {
      pending_.clear();
      return;
    }
    queued_ += pending_.size();
    queue_.push_back(std::move(pending_));
    // Blocks are recycled: fresh memory costs a page fault per 4 KiB, which is slower than
    // the network here.
    std::string next;
    if (!spare_.empty()) {
      next = std::move(spare_.back());
      spare_.pop_back();
      next.clear();
    }
    pending_ = std::move(next);
    cv_.notify_all();
  }

  // The unpacker's source: the next block, empty at the end.
  Result<std::string_view> Next() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !queue_.empty() || closed_; });
    if (queue_.empty()) return std::string_view();
    if (current_.capacity() > 0 && spare_.size() < 4) spare_.push_back(std::move(current_));
    current_ = std::move(queue_.front());
    queue_.pop_front();
    queued_ -= current_.size();
    cv_.notify_all();
    return std::string_view(current_);
  }

  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
      cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::vector<std::string> spare_;  // emptied blocks, for reuse
  size_t queued_ = 0;
  bool closed_ = false;   // no more bytes will come
  bool stopped_ = false;  // the unpacker is done
  std::string current_;   // the block the unpacker reads (its thread only)
  std::string pending_;   // bytes fed and not handed over yet (the feeding thread only)
  std::thread thread_;
  Result<std::pair<TempDir, TarDigests>> result_ = Internal("unpacker did not run");
};

struct LayerJob {
  Descriptor layer;
  std::string diff_id;
  bool need_blob = false;
  bool need_dir = false;
};

class Puller {
 public:
  Puller(const ImageStore& store, RegistryClient& client, std::string repo,
         const PullOptions& options)
      : store_(store),
        client_(client),
        repo_(std::move(repo)),
        options_(options),
        progress_(options.progress) {}

  // Fetches (or unpacks from the store) what `jobs` need; the first failure stops the rest.
  Status Run(const std::vector<LayerJob>& jobs) {
    std::atomic<size_t> next{0};
    Status first;
    std::mutex mu;
    auto work = [&] {
      for (;;) {
        size_t i = next++;
        if (i >= jobs.size() || stop_.load()) return;
        Status st = Fetch(jobs[i]);
        if (!st.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (first.ok()) first = st;
          stop_ = true;
        }
      }
    };
    size_t n = std::min<size_t>(std::max(options_.jobs, 1), jobs.size());
    std::vector<std::thread> threads;
    for (size_t i = 1; i < n; ++i) threads.emplace_back(work);
    work();
    for (std::thread& t : threads) t.join();
    return first;
  }

  int fetched() const { return fetched_.load(); }
  int64_t fetched_bytes() const { return bytes_.load(); }

 private:
  Status Fetch(const LayerJob& job) {
    const Descriptor& d = job.layer;
    if (!job.need_blob) {
      // In the store already, not unpacked yet.
      RETURN_IF_ERROR(store_.LayerDir(d, job.diff_id).status());
      progress_.Emit({TransferEvent::Kind::kPresent, d.digest, "", d.size, d.size});
      return Status::Ok();
    }
    std::string where = client_.registry() + "/" + repo_;
    progress_.Emit({TransferEvent::Kind::kBlob, d.digest, "", 0, d.size});
    ASSIGN_OR_RETURN(BlobWriter blob, store_.NewBlob());
    std::unique_ptr<StreamingUnpack> unpack;
    if (job.need_dir) {
      unpack = StreamingUnpack::Start(store_, "layer " + d.digest);
    }
    int64_t got = 0;
    int64_t reported = 0;
    Status st = client_.GetBlob(repo_, d.digest, [&](std::string_view bytes) -> Status {
      if (stop_.load()) return Cancelled("stopped");
      got += static_cast<int64_t>(bytes.size());
      if (got > d.size) {
        return Corruption(
            fmt::format("blob {} from {} is longer than the {} bytes its descriptor says", d.digest,
                        where, d.size));
      }
      RETURN_IF_ERROR(blob.Write(bytes));
      if (unpack) unpack->Feed(bytes);
      if (got - reported >= (1 << 20) || got == d.size) {
        progress_.Emit({TransferEvent::Kind::kBytes, d.digest, "", got, d.size});
        reported = got;
      }
      return Status::Ok();
    });
    RETURN_IF_ERROR(st);
    if (got != d.size) {
      return Corruption(fmt::format("blob {} from {} has {} bytes, its descriptor says {}",
                                    d.digest, where, got, d.size));
    }
    // Nothing is kept of a blob that does not match: its temporary file and unpacked tree go
    // when `blob` and `unpack` do.
    if (const std::string& actual = blob.Digest(); actual != d.digest) {
      return Corruption(fmt::format("blob {} from {} does not match its digest: it hashes to {}",
                                    d.digest, where, actual));
    }
    if (unpack) {
      Result<std::pair<TempDir, TarDigests>>& unpacked = unpack->Finish();
      if (!unpacked.ok()) return unpacked.status().Wrap("unpack layer from " + where);
      if (unpacked->second.diff_id != job.diff_id) {
        return Corruption(fmt::format(
            "layer {} from {}: uncompressed it hashes to {}, not the diff_id {} its config names",
            d.digest, where, unpacked->second.diff_id, job.diff_id));
      }
      RETURN_IF_ERROR(blob.Commit(d.media_type, d.digest).status());
      RETURN_IF_ERROR(store_.AdoptLayerDir(unpacked->first.path(), job.diff_id));
      unpacked->first.Release();
    } else {
      RETURN_IF_ERROR(blob.Commit(d.media_type, d.digest).status());
    }
    ++fetched_;
    bytes_ += got;
    progress_.Emit({TransferEvent::Kind::kDone, d.digest, "", d.size, d.size});
    return Status::Ok();
  }

  const ImageStore& store_;
  RegistryClient& client_;
  std::string repo_;
  const PullOptions& options_;
  Progress progress_;
  std::atomic<bool> stop_{false};
  std::atomic<int> fetched_{0};
  std::atomic<int64_t> bytes_{0};
};

Result<std::optional<Credentials>> CredentialsFor(const RegistryOptions& options,
                                                  const RepositoryName& name) {
  if (options.credentials) return options.credentials;
  return LookupCredentials(options.auth_file, name);
}

// Pulls from one endpoint; the image is tagged `tag_as` ("" for a digest reference).
Result<PullResult> PullFrom(const ImageStore& store, const Endpoint& endpoint,
                            const std::string& ref, const std::string& tag_as,
                            const PullOptions& options) {
  ASSIGN_OR_RETURN(std::optional<Credentials> creds, CredentialsFor(options, endpoint.name));
  ASSIGN_OR_RETURN(std::unique_ptr<RegistryClient> client,
                   RegistryClient::Connect(endpoint.name.registry, endpoint.insecure, options,
                                           std::move(creds)));
  const std::string& repo = endpoint.name.repository;
  std::string where = endpoint.name.ToString();
  if (options.progress) {
    std::string sep = ref.rfind(kSha256Prefix, 0) == 0 ? "@" : ":";
    options.progress({TransferEvent::Kind::kImage, "", where + sep + ref});
  }
  ASSIGN_OR_RETURN(detail::Manifest m, client->GetManifest(repo, ref));
  PullResult result;
  if (IsIndexMediaType(m.media_type)) {
    ASSIGN_OR_RETURN(Platform want, ParsePlatform(options.platform));
    json index = json::parse(m.bytes, nullptr, false);
    std::string what = fmt::format("image index {}:{}", where, ref);
    if (!index.is_object()) return Corruption(what + ": not valid JSON");
    ASSIGN_OR_RETURN(Descriptor chosen, PickFromIndex(index, what, want));
    result.index_digest = m.digest;
    ASSIGN_OR_RETURN(m, client->GetManifest(repo, chosen.digest));
  }
  if (!IsManifestMediaType(m.media_type)) {
    return Unsupported(
        fmt::format("{}:{} has mediaType '{}', not an image manifest", where, ref, m.media_type));
  }
  Descriptor manifest{m.media_type, m.digest, static_cast<int64_t>(m.bytes.size()), {}};
  json mj = json::parse(m.bytes, nullptr, false);
  if (!mj.is_object() || !mj.contains("config"))
    return Corruption(
        fmt::format("manifest {} of {}: not valid JSON or no config", m.digest, where));
  ASSIGN_OR_RETURN(Descriptor config, Descriptor::FromJson(mj["config"], "manifest " + m.digest));

  // Blobs written from here on are reachable from no tag until the end: keep prune away.
  ASSIGN_OR_RETURN(UniqueFd writers, store.LockBlobWriters());
  std::string config_text;
  if (Result<std::string> have =
          store.HasBlob(config.digest) ? store.ReadBlob(config) : Result<std::string>(NotFound(""));
      have.ok()) {
    config_text = std::move(*have);
  } else {
    ASSIGN_OR_RETURN(config_text, client->GetSmallBlob(repo, config));
    RETURN_IF_ERROR(store.PutBlob(config.media_type, config_text).status());
    result.fetched++;
    result.fetched_bytes += config.size;
  }
  ASSIGN_OR_RETURN(Image image, ParseImage(manifest, m.bytes, config_text));

  std::vector<LayerJob> jobs;
  std::set<std::string> seen;
  Progress progress(options.progress);
  for (size_t i = 0; i < image.layers.size(); ++i) {
    const Descriptor& l = image.layers[i];
    if (!seen.insert(l.digest).second) continue;
    LayerJob job{l, image.diff_ids[i], !store.HasBlob(l.digest),
                 !PathExists(store.LayerDirPath(image.diff_ids[i]))};
    if (!job.need_blob && !job.need_dir) {
      progress.Emit({TransferEvent::Kind::kPresent, l.digest, "", l.size, l.size});
      continue;
    }
    jobs.push_back(std::move(job));
  }
  Puller puller(store, *client, repo, options);
  RETURN_IF_ERROR(puller.Run(jobs));
  result.fetched += puller.fetched();
  result.fetched_bytes += puller.fetched_bytes();

  // Every blob is in and checked: now the manifest, then the tag.
  RETURN_IF_ERROR(store.PutBlob(manifest.media_type, m.bytes).status());
  if (tag_as.empty()) {
    RETURN_IF_ERROR(store.AddUntagged(manifest));
    result.reference = where + "@" + manifest.digest;
  } else {
    RETURN_IF_ERROR(store.Tag(manifest, tag_as));
    result.reference = tag_as;
  }
  std::vector<std::string> digests = {config.digest};
  for (const Descriptor& l : image.layers) digests.push_back(l.digest);
  // A cache for later mounts: failing to update it fails nothing.
  (void)detail::RecordBlobLocations(store, where, digests);
  result.manifest = manifest;
  result.config_digest = config.digest;
  result.layers = static_cast<int>(image.layers.size());
  return result;
}

}  // namespace

void CancelTransfers() { detail::CancelAllTransfers(); }

Result<PullResult> Pull(const ImageStore& store, const std::string& text,
                        const PullOptions& options) {
  ASSIGN_OR_RETURN(Reference ref, ParseReference(text));
  ASSIGN_OR_RETURN(RegistriesConf conf, RegistriesConf::Load());
  std::vector<std::string> failures;
  Status last;
  for (const std::string& candidate : conf.Candidates(ref.name)) {
    RepositoryName name = SplitName(candidate);
    ASSIGN_OR_RETURN(std::vector<Endpoint> endpoints, conf.Endpoints(name, false));
    std::string tag_as = ref.digest.empty() ? name.ToString() + ":" + ref.tag : "";
    for (const Endpoint& endpoint : endpoints) {
      Result<PullResult> r =
          PullFrom(store, endpoint, ref.digest.empty() ? ref.tag : ref.digest, tag_as, options);
      if (r.ok()) return r;
      // An interrupted pull, or a registry that served a bad blob, stops here: trying the
      // next would hide it.
      if (r.status().code() == StatusCode::kCancelled ||
          r.status().code() == StatusCode::kCorruption) {
        return r.status().Wrap("pull " + text);
      }
      failures.push_back(r.status().message());
      last = r.status();
    }
  }
  if (failures.size() == 1) return last.Wrap("pull " + text);
  std::string all;
  for (const std::string& f : failures) all += (all.empty() ? "" : "; ") + f;
  return NotFound(fmt::format("pull {}: no registry searched has it: {}", text, all));
}

Result<PullPolicy> ParsePullPolicy(const std::string& text) {
  if (text == "missing") return PullPolicy::kMissing;
  if (text == "always") return PullPolicy::kAlways;
  if (text == "never") return PullPolicy::kNever;
  return InvalidArgument(fmt::format("--pull '{}': use missing, always or never", text));
}

Result<Image> ResolveOrPull(const ImageStore& store, const std::string& text, PullPolicy policy,
                            const PullOptions& options, bool* pulled) {
  if (pulled != nullptr) *pulled = false;
  if (policy != PullPolicy::kAlways) {
    Result<Image> local = store.Resolve(text);
    if (local.ok() || local.status().code() != StatusCode::kNotFound) return local;
    // A short name may be in the store under the qualified name a pull gave it.
    Result<Reference> ref = ParseReference(text);
    if (ref.ok() && SplitName(ref->name).registry.empty()) {
      ASSIGN_OR_RETURN(RegistriesConf conf, RegistriesConf::Load());
      for (const std::string& candidate : conf.Candidates(ref->name)) {
        std::string full = candidate + (ref->digest.empty() ? ":" + ref->tag : "@" + ref->digest);
        Result<Image> found = store.Resolve(full);
        if (found.ok()) return found;
      }
    }
    if (policy == PullPolicy::kNever) {
      return NotFound(
          fmt::format("image '{}' is not in the local repository (--pull=never)", text));
    }
    // An ID or digest prefix names nothing a registry could serve.
    if (!ref.ok()) return local;
  }
  ASSIGN_OR_RETURN(PullResult p, Pull(store, text, options));
  if (pulled != nullptr) *pulled = true;
  return store.Resolve(p.reference);
}

}  // namespace barge::oci
