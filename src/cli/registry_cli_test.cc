// End-to-end: barge pull, push, login and logout against Debian's docker-registry (the
// distribution reference implementation) started here on loopback, with skopeo as the peer
// client; and against a small fake registry (cpp-httplib) that serves Bearer tokens, corrupt
// blobs and slow blobs. Every test has its own state root, registry, auth file and
// registries.conf; registries die with the test process (PR_SET_PDEATHSIG) and are killed by
// their destructors, temporary directories are removed by theirs.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "base/file_util.h"
#include "base/subprocess.h"
#include "bench/local_registry.h"
#include "oci/detail/http.h"
#include "oci/digest.h"
#include "oci/platform.h"
#include "oci/test_util.h"

namespace barge {
namespace {

using bench::LocalRegistry;
using nlohmann::json;
using oci::testing::Compression;
using oci::testing::MakeTar;
using oci::testing::TarEntry;

// Random bytes (incompressible), the same for a seed.
std::string RandomBytes(size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

// A busybox root file system with /etc/motd saying `motd`, and `extra` files.
std::string RootfsTar(const std::string& motd, std::vector<TarEntry> extra = {}) {
  Result<std::string> busybox = ReadFile("/bin/busybox");
  std::vector<TarEntry> e = {
      {"bin", TarEntry::kDir, "", "", 0755},
      {"bin/busybox", TarEntry::kFile, busybox.ok() ? *busybox : "", "", 0755},
      {"bin/sh", TarEntry::kSymlink, "", "busybox"},
      {"bin/cat", TarEntry::kSymlink, "", "busybox"},
      {"bin/true", TarEntry::kSymlink, "", "busybox"},
      {"etc", TarEntry::kDir, "", "", 0755},
      {"etc/motd", TarEntry::kFile, motd}};
  for (TarEntry& x : extra) e.push_back(std::move(x));
  return MakeTar(e, Compression::kGzip);
}

// Counts lines: a one-line error is "barge: error: ...\n".
int Lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

// Files whose name has ".tmp-" anywhere below `dir` (what an interrupted write leaves).
std::vector<std::string> Leftovers(const std::string& dir) {
  std::vector<std::string> out;
  for (const std::string& p : oci::testing::ListTree(dir)) {
    if (p.find(".tmp-") != std::string::npos || p.find("/tmp/") != std::string::npos)
      out.push_back(p);
  }
  return out;
}

// A TCP relay ADDRESS:port() -> 127.0.0.1:target that calls `trigger` once, and cuts every
// connection, after `limit` bytes went the watched way: a registry dying mid-transfer. ADDRESS
// is 127.0.0.1 unless `address` (network byte order) names another of this machine's.
class CuttingProxy {
 public:
  CuttingProxy(int target, bool watch_upload, int64_t limit, std::function<void()> trigger,
               in_addr_t address = htonl(INADDR_LOOPBACK))
      : target_(target), watch_upload_(watch_upload), limit_(limit), trigger_(std::move(trigger)) {
    listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = address;
    ::bind(listen_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(listen_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(listen_, 64);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~CuttingProxy() {
    stop_ = true;
    ::shutdown(listen_, SHUT_RDWR);
    ::close(listen_);
    acceptor_.join();
    for (std::thread& t : relays_) t.join();
  }
  int port() const { return port_; }
  bool triggered() const { return fired_.load(); }

 private:
  void Accept() {
    for (;;) {
      int c = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      if (stop_) {
        ::close(c);
        return;
      }
      relays_.emplace_back([this, c] { Relay(c); });
    }
  }
  void Relay(int client) {
    // Connections made after the cut (a retry) are relayed untouched.
    bool after_cut = fired_.load();
    int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(target_));
    if (::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(server);
      ::close(client);
      return;
    }
    char buf[64 << 10];
    for (;;) {
      pollfd p[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      if (::poll(p, 2, 100) < 0 || stop_) break;
      if (fired_ && !after_cut) break;
      bool done = false;
      for (int i = 0; i < 2 && !done; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = ::read(p[i].fd, buf, sizeof buf);
        if (n <= 0) {
          done = true;
          break;
        }
        bool upload = i == 0;
        if (!after_cut && upload == watch_upload_ && (moved_ += n) > limit_ &&
            !fired_.exchange(true)) {
          trigger_();
          done = true;
          break;
        }
        if (::send(p[1 - i].fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) done = true;
      }
      if (done) break;
    }
    ::close(server);
    ::close(client);
  }

  int target_;
  bool watch_upload_;
  int64_t limit_;
  std::function<void()> trigger_;
  int listen_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> fired_{false};
  std::atomic<int64_t> moved_{0};
  std::thread acceptor_;
  std::vector<std::thread> relays_;
};

class RegistryCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool : {"docker-registry", "skopeo", "htpasswd", "openssl"}) {
      auto r = RunCommand({"sh", "-c", std::string("command -v ") + tool});
      ASSERT_TRUE(r.ok() && r->exit_code == 0) << tool << " is not installed (run scripts/setup)";
    }
    ASSERT_TRUE(PathExists("/bin/busybox")) << "needs /bin/busybox (busybox-static)";
    auto t = TempDir::Make("barge-registry-test-");
    ASSERT_TRUE(t.ok());
    tmp_ = std::move(*t);
    root_ = tmp_.path() + "/root";
    conf_ = tmp_.path() + "/registries.conf";
    auth_ = tmp_.path() + "/auth.json";
    docker_ = tmp_.path() + "/docker";
    helper_ = tmp_.path() + "/helper";
    // No registry is searched unless a test says so: nothing leaves this machine.
    ASSERT_TRUE(WriteFile(conf_, "unqualified-search-registries = []\n").ok());
  }

  std::vector<std::string> Env() const {
    std::vector<std::string> env = {"CONTAINERS_REGISTRIES_CONF=" + conf_,
                                    "REGISTRY_AUTH_FILE=" + auth_,
                                    "XDG_CONFIG_HOME=" + tmp_.path() + "/config",
                                    "XDG_RUNTIME_DIR=" + tmp_.path(), "DOCKER_CONFIG=" + docker_};
    env.insert(env.end(), extra_env_.begin(), extra_env_.end());  // later entries win
    return env;
  }

  // Credentials come from the files a user without --authfile has: no $REGISTRY_AUTH_FILE,
  // so $XDG_RUNTIME_DIR/containers/auth.json, $XDG_CONFIG_HOME/containers/auth.json, then
  // $DOCKER_CONFIG/config.json; and a fake credential helper docker-credential-barge-test
  // (oci/test_util.h, kept in helper_) first on PATH.
  void UseUserCredentialFiles() {
    ASSERT_TRUE(oci::testing::WriteFakeCredentialHelper(helper_, "barge-test").ok());
    const char* path = std::getenv("PATH");
    extra_env_ = {"REGISTRY_AUTH_FILE=",
                  "PATH=" + helper_ + "/bin:" + (path != nullptr ? path : "/usr/bin:/bin")};
    ASSERT_TRUE(MakeDirs(docker_).ok());
  }
  void WriteDockerConfig(const json& config) {
    ASSERT_TRUE(WriteFile(docker_ + "/config.json", config.dump(), 0600).ok());
  }
  void Keep(const std::string& server, const std::string& user, const std::string& secret) {
    ASSERT_TRUE(oci::testing::KeepInFakeCredentialHelper(helper_, server, user, secret).ok());
  }
  std::string HelperCalls() {
    Result<std::string> calls = ReadFile(helper_ + "/calls");
    return calls.ok() ? *calls : "";
  }

  CommandOutput Barge(std::vector<std::string> args, const std::string& root = "",
                      const std::string& input = "") {
    args.insert(args.begin(), {BARGE_BINARY, "--root", root.empty() ? root_ : root});
    CommandOptions o;
    o.env = Env();
    o.input = input;
    auto r = RunCommand(args, o);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : CommandOutput{};
  }

  CommandOutput Tool(const std::vector<std::string>& args) {
    CommandOptions o;
    o.env = Env();
    auto r = RunCommand(args, o);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : CommandOutput{};
  }

  std::unique_ptr<LocalRegistry> StartRegistry(const LocalRegistry::Options& o = {},
                                               const std::string& name = "registry") {
    auto r = LocalRegistry::Start(tmp_.path() + "/" + name, o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? std::move(*r) : nullptr;
  }

  // Imports a busybox image as NAME and returns its manifest digest.
  std::string Import(const std::string& name, const std::string& motd,
                     std::vector<TarEntry> extra = {}, const std::string& root = "") {
    std::string tar = tmp_.path() + "/rootfs-" + std::to_string(++imports_) + ".tar.gz";
    EXPECT_TRUE(WriteFile(tar, RootfsTar(motd, std::move(extra))).ok());
    CommandOutput r = Barge({"import", tar, name}, root);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ManifestDigest(name, root);
  }

  std::string ManifestDigest(const std::string& ref, const std::string& root = "") {
    CommandOutput r = Barge({"inspect", ref}, root);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = json::parse(r.out, nullptr, false);
    return j.is_array() && !j.empty() ? j[0].value("Digest", "") : "";
  }

  std::string Images(const std::string& root = "") {
    CommandOutput r = Barge({"images", "--format", "json"}, root);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }

  // What `images` lists and what blobs the store holds: "unchanged" compares these.
  std::string StoreState(const std::string& root = "") {
    std::string r = root.empty() ? root_ : root;
    std::string out = Images(r);
    for (const std::string& p : oci::testing::ListTree(r + "/images/blobs")) out += p + "\n";
    return out;
  }

  // skopeo's digest of the manifest a docker:// reference serves.
  std::string SkopeoDigest(const std::string& ref,
                           std::vector<std::string> flags = {"--tls-verify=false"}) {
    std::vector<std::string> argv = {"skopeo", "inspect", "--raw"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back("docker://" + ref);
    CommandOutput r = Tool(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return oci::DigestOf(r.out);
  }

  void ExpectOneLineError(const CommandOutput& r, const std::string& needle) {
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(Lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("barge: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  }

  // Runs `cat /etc/motd` in a container of `image`.
  std::string Motd(const std::string& image, const std::string& root = "") {
    CommandOutput r = Barge({"run", "--rm", "--pull", "never", image, "cat", "/etc/motd"}, root);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }

  TempDir tmp_;
  std::string root_;
  std::string conf_;
  std::string auth_;
  std::string docker_;  // $DOCKER_CONFIG
  std::string helper_;  // the fake credential helper's directory
  std::vector<std::string> extra_env_;
  int imports_ = 0;
};

TEST_F(RegistryCliTest, BargePushesSkopeoInspectsAndCopiesBackWithTheSameDigest) {
  auto registry = StartRegistry();
  ASSERT_NE(registry, nullptr);
  std::string host = registry->host();
  std::string digest = Import("app:1", "pushed by barge\n");
  CommandOutput r = Barge({"push", "app:1", host + "/team/app:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, digest + "\n");
  EXPECT_EQ(Lines(r.err), 1) << r.err;  // not a terminal: one line for the image
  EXPECT_EQ(SkopeoDigest(host + "/team/app:1"), digest);
  // skopeo copies it back; the manifest it wrote is the one barge pushed.
  r = Tool({"skopeo", "copy", "--src-tls-verify=false", "docker://" + host + "/team/app:1",
            "oci:" + tmp_.path() + "/copy:app"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Result<std::string> index = ReadFile(tmp_.path() + "/copy/index.json");
  ASSERT_TRUE(index.ok());
  EXPECT_EQ(json::parse(*index)["manifests"][0]["digest"], digest);
  // and barge loads skopeo's copy unchanged
  r = Barge({"load", "-i", tmp_.path() + "/copy"}, tmp_.path() + "/root2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ManifestDigest(digest, tmp_.path() + "/root2"), digest);

  // A second push finds every blob there.
  r = Barge({"push", "--format", "json", "app:1", host + "/team/app:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["uploaded"], 0);
  EXPECT_EQ(j["digest"], digest);
  // To another repository: mounted from the first, not uploaded.
  r = Barge({"push", "--format", "json", "app:1", host + "/other/app:2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = json::parse(r.out);
  EXPECT_EQ(j["mounted"], 2) << r.out;
  EXPECT_EQ(j["uploaded"], 0) << r.out;
  EXPECT_EQ(SkopeoDigest(host + "/other/app:2"), digest);
  // Chunked upload of a new image, 64 KiB at a time.
  std::string big =
      Import("big:1", "big\n", {{"data", TarEntry::kFile, RandomBytes(300 << 10, 7)}});
  r = Barge({"push", "--chunk-size", "64k", "--format", "json", "big:1", host + "/chunked:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["uploaded"], 2) << r.out;
  EXPECT_EQ(SkopeoDigest(host + "/chunked:1"), big);

  // Round trip: pulled into a fresh store, run, same digest; a second pull fetches nothing.
  std::string other = tmp_.path() + "/root3";
  r = Barge({"pull", "--format", "json", host + "/chunked:1"}, other);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = json::parse(r.out);
  EXPECT_EQ(j["digest"], big);
  EXPECT_EQ(j["fetched"], 2);
  EXPECT_EQ(j["reference"], host + "/chunked:1");
  EXPECT_EQ(Motd(host + "/chunked:1", other), "big\n");
  r = Barge({"pull", "--format", "json", host + "/chunked:1"}, other);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["fetched"], 0);
  // and pushed on again from there: still the same digest.
  r = Barge({"push", host + "/chunked:1", host + "/again:1"}, other);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, big + "\n");
  // By digest.
  r = Barge({"pull", "-q", host + "/team/app@" + digest}, other);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ManifestDigest(host + "/team/app@" + digest, other), digest);
}

// An OCI layout with one busybox layer and, per architecture, a config and manifest; with
// several architectures an index (tagged `tag` in the layout) lists them.
struct Layout {
  std::map<std::string, std::string> manifest_digests;  // architecture -> digest
};

Layout WriteLayout(const std::string& dir, const std::string& tag, const std::string& motd,
                   const std::vector<std::string>& architectures) {
  Layout out;
  EXPECT_TRUE(MakeDirs(dir + "/blobs/sha256").ok());
  auto put = [&](const std::string& data) {
    std::string d = oci::DigestOf(data);
    EXPECT_TRUE(WriteFile(dir + "/blobs/sha256/" + oci::DigestHex(d), data).ok());
    return d;
  };
  std::string layer = RootfsTar(motd);
  std::string layer_digest = put(layer);
  // diff_id: the digest of the uncompressed tar
  CommandOptions o;
  o.input = layer;
  auto gunzip = RunCommand({"gzip", "-dc"}, o);
  std::string diff_id = gunzip.ok() ? oci::DigestOf(gunzip->out) : "";
  json index = {{"schemaVersion", 2},
                {"mediaType", "application/vnd.oci.image.index.v1+json"},
                {"manifests", json::array()}};
  for (const std::string& arch : architectures) {
    json config = {{"architecture", arch},
                   {"os", "linux"},
                   {"config", {{"Cmd", {"/bin/sh"}}}},
                   {"rootfs", {{"type", "layers"}, {"diff_ids", {diff_id}}}}};
    std::string ctext = config.dump();
    std::string cdigest = put(ctext);
    json manifest = {{"schemaVersion", 2},
                     {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                     {"config",
                      {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                       {"digest", cdigest},
                       {"size", ctext.size()}}},
                     {"layers",
                      {{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                        {"digest", layer_digest},
                        {"size", layer.size()}}}}};
    std::string mtext = manifest.dump();
    std::string mdigest = put(mtext);
    out.manifest_digests[arch] = mdigest;
    index["manifests"].push_back({{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                                  {"digest", mdigest},
                                  {"size", mtext.size()},
                                  {"platform", {{"os", "linux"}, {"architecture", arch}}}});
  }
  json top = {{"schemaVersion", 2}, {"manifests", json::array()}};
  if (architectures.size() == 1) {
    json entry = index["manifests"][0];
    entry.erase("platform");
    entry["annotations"] = {{"org.opencontainers.image.ref.name", tag}};
    top["manifests"].push_back(entry);
  } else {
    std::string itext = index.dump();
    top["manifests"].push_back({{"mediaType", "application/vnd.oci.image.index.v1+json"},
                                {"digest", put(itext)},
                                {"size", itext.size()},
                                {"annotations", {{"org.opencontainers.image.ref.name", tag}}}});
  }
  EXPECT_TRUE(WriteFile(dir + "/index.json", top.dump()).ok());
  EXPECT_TRUE(WriteFile(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})").ok());
  return out;
}

TEST_F(RegistryCliTest, SkopeoPushesOciDockerIndexAndZstdImagesBargePullsAndRunsThem) {
  auto registry = StartRegistry();
  ASSERT_NE(registry, nullptr);
  std::string host = registry->host();
  WriteLayout(tmp_.path() + "/single", "one", "single image\n", {"amd64"});
  // Its own layer: skopeo would reuse the gzip blob the registry already has.
  WriteLayout(tmp_.path() + "/zsrc", "one", "zstd image\n", {"amd64"});
  Layout multi =
      WriteLayout(tmp_.path() + "/multi", "multi", "multi-platform\n", {"amd64", "arm64"});
  struct Case {
    std::string repo;
    std::vector<std::string> flags;
    std::string source;
    std::string media_type;
    std::string motd;
  };
  std::vector<Case> cases = {
      {"oci:1",
       {"--format", "oci"},
       "single:one",
       "application/vnd.oci.image.manifest.v1+json",
       "single image\n"},
      {"docker:1",
       {"--format", "v2s2"},
       "single:one",
       "application/vnd.docker.distribution.manifest.v2+json",
       "single image\n"},
      {"zstd:1",
       {"--format", "oci", "--dest-compress", "--dest-compress-format", "zstd"},
       "zsrc:one",
       "application/vnd.oci.image.manifest.v1+json",
       "zstd image\n"},
      {"multi:1",
       {"--all"},
       "multi:multi",
       "application/vnd.oci.image.manifest.v1+json",
       "multi-platform\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.repo);
    std::vector<std::string> argv = {"skopeo", "copy", "--dest-tls-verify=false"};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    argv.push_back("oci:" + tmp_.path() + "/" + c.source);
    argv.push_back("docker://" + host + "/" + c.repo);
    CommandOutput r = Tool(argv);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = Barge({"pull", "--format", "json", host + "/" + c.repo});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    json j = json::parse(r.out);
    EXPECT_EQ(j["media_type"], c.media_type);
    std::string served = SkopeoDigest(host + "/" + c.repo);
    if (c.repo == "multi:1") {
      // The index's digest is what the tag serves; the image is this machine's entry.
      EXPECT_EQ(j["index_digest"], served);
      EXPECT_EQ(j["digest"], multi.manifest_digests["amd64"]);
    } else {
      EXPECT_EQ(j["digest"], served);
    }
    EXPECT_EQ(ManifestDigest(host + "/" + c.repo), j["digest"].get<std::string>());
    EXPECT_EQ(Motd(host + "/" + c.repo), c.motd);
    if (c.repo == "zstd:1") {
      Result<std::string> m = ReadFile(root_ + "/images/blobs/sha256/" +
                                       oci::DigestHex(j["digest"].get<std::string>()));
      ASSERT_TRUE(m.ok());
      EXPECT_NE(m->find("tar+zstd"), std::string::npos) << *m;
    }
  }
  // --platform picks another entry of the index; a platform it lacks is a one-line error.
  CommandOutput r =
      Barge({"pull", "--format", "json", "--platform", "linux/arm64", host + "/multi:1"},
            tmp_.path() + "/arm");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["digest"], multi.manifest_digests["arm64"]);
  r = Barge({"pull", "--platform", "linux/s390x", host + "/multi:1"}, tmp_.path() + "/s390x");
  ExpectOneLineError(r, "linux/s390x");
  // barge pushes the multi-platform image's amd64 entry on; skopeo sees the same digest.
  r = Barge({"push", host + "/multi:1", host + "/amd64-only:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(SkopeoDigest(host + "/amd64-only:1"), multi.manifest_digests["amd64"]);
}

TEST_F(RegistryCliTest, LoginOverTlsWithBasicAuthSharedWithSkopeo) {
  auto registry = StartRegistry({true, "alice", "s3cret pass"});
  ASSERT_NE(registry, nullptr);
  std::string host = registry->host();
  std::string certs = registry->cert_dir();
  Import("app:1", "secure\n");
  std::string before = StoreState();

  // Without the registry's CA: a one-line error that says what to do.
  CommandOutput r = Barge({"login", "-u", "alice", "--password-stdin", host}, "", "s3cret pass\n");
  ExpectOneLineError(r, "certs.d");
  // Wrong password: refused, nothing written.
  r = Barge({"login", "--cert-dir", certs, "-u", "alice", "--password-stdin", host}, "", "wrong\n");
  ExpectOneLineError(r, "wrong username or password");
  EXPECT_FALSE(PathExists(auth_));
  // Push without credentials: refused, the store unchanged.
  r = Barge({"push", "--cert-dir", certs, "app:1", host + "/app:1"});
  ExpectOneLineError(r, "barge login " + host);
  r = Barge({"push", "--cert-dir", certs, "--creds", "alice:nope", "app:1", host + "/app:1"});
  ExpectOneLineError(r, "wrong username or password");
  EXPECT_EQ(StoreState(), before);

  r = Barge({"login", "--cert-dir", certs, "-u", "alice", "--password-stdin", host}, "",
            "s3cret pass\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Login Succeeded!\n");
  EXPECT_EQ(r.err.find("s3cret"), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::stat(auth_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Result<std::string> text = ReadFile(auth_);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->find("s3cret"), std::string::npos);  // base64, as Docker writes it
  EXPECT_TRUE(json::parse(*text)["auths"].contains(host)) << *text;

  r = Barge({"push", "--cert-dir", certs, "app:1", host + "/app:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string digest = r.out.substr(0, r.out.size() - 1);
  // skopeo reads barge's login (the same auth file, REGISTRY_AUTH_FILE) and trusts the CA.
  EXPECT_EQ(SkopeoDigest(host + "/app:1", {"--cert-dir", certs + "/" + host}), digest);
  // certs.d under $XDG_CONFIG_HOME/containers is found without --cert-dir.
  ASSERT_TRUE(MakeDirs(tmp_.path() + "/config/containers").ok());
  ASSERT_EQ(RunCommand({"cp", "-r", certs, tmp_.path() + "/config/containers/"})->exit_code, 0);
  r = Barge({"pull", "--format", "json", host + "/app:1"}, tmp_.path() + "/root2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["digest"], digest);
  EXPECT_EQ(Motd(host + "/app:1", tmp_.path() + "/root2"), "secure\n");

  // logout, then skopeo login writes the file and barge uses its login.
  r = Barge({"logout", host});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(json::parse(*ReadFile(auth_))["auths"].contains(host));
  r = Barge({"logout", host});
  ExpectOneLineError(r, "not logged in to " + host);
  r = Barge({"pull", host + "/app:1"}, tmp_.path() + "/root3");
  ExpectOneLineError(r, "barge login " + host);
  r = Tool({"skopeo", "login", "--cert-dir", certs + "/" + host, "-u", "alice", "-p", "s3cret pass",
            host});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Barge({"pull", "--format", "json", host + "/app:1"}, tmp_.path() + "/root3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["digest"], digest);
  // --tls-verify=false needs no CA.
  r = Barge({"pull", "-q", "--tls-verify=false", host + "/app:1"}, tmp_.path() + "/root4");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(RegistryCliTest, UnknownRepositoryAndTagAreOneLineErrorsAndChangeNothing) {
  auto registry = StartRegistry();
  ASSERT_NE(registry, nullptr);
  std::string host = registry->host();
  Import("keep:1", "kept\n");
  std::string before = StoreState();
  CommandOutput r = Barge({"pull", host + "/nope:1"});
  ExpectOneLineError(r, "repository nope not found on " + host);
  ASSERT_EQ(Barge({"push", "keep:1", host + "/app:1"}).exit_code, 0);
  before = StoreState();
  r = Barge({"pull", host + "/app:2"});
  ExpectOneLineError(r, "tag 2 not found in " + host + "/app");
  r = Barge({"pull", host + "/app@sha256:" + std::string(64, 'a')});
  ExpectOneLineError(r, "manifest sha256:aaaa");
  r = Barge({"push", "missing:1", host + "/app:1"});
  ExpectOneLineError(r, "missing:1");
  r = Barge({"push", "keep:1"});  // no registry named, and keep:1 is no registry's
  EXPECT_EQ(r.exit_code, 1);
  r = Barge({"run", "--rm", "--pull", "never", host + "/app:2", "true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("not in the local repository"), std::string::npos) << r.err;
  EXPECT_EQ(StoreState(), before);
  EXPECT_EQ(Motd("keep:1"), "kept\n");
  // The retry that names what exists succeeds.
  ASSERT_EQ(Barge({"tag", "keep:1", "keep:2"}).exit_code, 0);
  ASSERT_EQ(Barge({"push", "keep:2", host + "/app:2"}).exit_code, 0);
  r = Barge({"pull", host + "/app:2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// push does not hash what it sends (the registry does); when the registry refuses a blob
// because the local copy rotted, the error names the local blob, and no tag is made.
TEST_F(RegistryCliTest, PushOfACorruptLocalBlobNamesItAndTagsNothing) {
  auto registry = StartRegistry();
  ASSERT_NE(registry, nullptr);
  std::string host = registry->host();
  Import("rot:1", "rot\n", {{"data", TarEntry::kFile, RandomBytes(1 << 20, 5)}});
  // The largest blob is the layer: flip one byte of it, keeping its size.
  std::string blob;
  uintmax_t largest = 0;
  for (const std::string& p : oci::testing::ListTree(root_ + "/images/blobs/sha256")) {
    std::string path = root_ + "/images/blobs/sha256/" + p;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && static_cast<uintmax_t>(st.st_size) > largest) {
      largest = static_cast<uintmax_t>(st.st_size);
      blob = path;
    }
  }
  ASSERT_FALSE(blob.empty());
  std::string bytes = *ReadFile(blob);
  bytes[bytes.size() / 2] ^= 0x20;
  ASSERT_TRUE(WriteFile(blob, bytes, 0444).ok());
  std::string digest = "sha256:" + blob.substr(blob.rfind('/') + 1);
  CommandOutput r = Barge({"push", "rot:1", host + "/rot:1"});
  ExpectOneLineError(r, "blob " + digest + " in the local repository is corrupt");
  r = Barge({"push", "--chunk-size", "256k", "rot:1", host + "/rot:1"});
  ExpectOneLineError(r, "blob " + digest + " in the local repository is corrupt");
  CommandOutput tag =
      Tool({"skopeo", "inspect", "--raw", "--tls-verify=false", "docker://" + host + "/rot:1"});
  EXPECT_NE(tag.exit_code, 0) << "the tag must not exist: " << tag.out;
}

TEST_F(RegistryCliTest, RegistryDyingMidPushAndMidPullLeavesNothingAndARetrySucceeds) {
  auto registry = StartRegistry();
  ASSERT_NE(registry, nullptr);
  Import("big:1", "big\n", {{"data", TarEntry::kFile, RandomBytes(8 << 20, 11)}});
  std::string digest = ManifestDigest("big:1");
  {
    // Dies after 2 MiB of the upload.
    CuttingProxy proxy(registry->port(), true, 2 << 20, [&] { registry->Kill(); });
    std::string host = "localhost:" + std::to_string(proxy.port());
    std::string before = StoreState();
    CommandOutput r = Barge({"push", "big:1", host + "/big:1"});
    EXPECT_TRUE(proxy.triggered());
    ExpectOneLineError(r, "push big:1");
    EXPECT_EQ(StoreState(), before);
    ASSERT_TRUE(registry->Restart().ok());
    r = Barge({"push", "big:1", host + "/big:1"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, digest + "\n");
  }
  {
    // Dies after 2 MiB of the download.
    CuttingProxy proxy(registry->port(), false, 2 << 20, [&] { registry->Kill(); });
    std::string host = "localhost:" + std::to_string(proxy.port());
    std::string other = tmp_.path() + "/root2";
    Import("keep:1", "kept\n", {}, other);
    std::string before = Images(other);
    CommandOutput r = Barge({"pull", host + "/big:1"}, other);
    EXPECT_TRUE(proxy.triggered());
    ExpectOneLineError(r, "pull " + host + "/big:1");
    EXPECT_NE(r.err.find("fetch blob"), std::string::npos) << r.err;
    // The config may have been stored whole; nothing partial, no new image, no layer dir.
    EXPECT_EQ(Images(other), before);
    EXPECT_EQ(Leftovers(other + "/images"), std::vector<std::string>{});
    EXPECT_EQ(Leftovers(other + "/layers"), std::vector<std::string>{});
    EXPECT_EQ(Motd("keep:1", other), "kept\n");
    ASSERT_TRUE(registry->Restart().ok());
    r = Barge({"pull", "--format", "json", host + "/big:1"}, other);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["digest"], digest);
    EXPECT_EQ(Motd(host + "/big:1", other), "big\n");
  }
}

// A registry of one image that wants Bearer tokens, and can serve its layer corrupted or slowly.
// A one-platform image written as a layout in `dir`, as a fake registry serves it.
struct FakeImage {
  std::string manifest, config, layer;
  std::string manifest_digest, config_digest, layer_digest;
};
FakeImage MakeFakeImage(const std::string& dir, const std::string& motd) {
  Layout l = WriteLayout(dir, "one", motd, {"amd64"});
  FakeImage f;
  f.manifest_digest = l.manifest_digests["amd64"];
  f.manifest = *ReadFile(dir + "/blobs/sha256/" + oci::DigestHex(f.manifest_digest));
  json m = json::parse(f.manifest);
  f.config_digest = m["config"]["digest"];
  f.layer_digest = m["layers"][0]["digest"];
  f.config = *ReadFile(dir + "/blobs/sha256/" + oci::DigestHex(f.config_digest));
  f.layer = *ReadFile(dir + "/blobs/sha256/" + oci::DigestHex(f.layer_digest));
  return f;
}

class FakeRegistry {
 public:
  FakeRegistry(std::string manifest, std::string config, std::string layer)
      : manifest_(std::move(manifest)), config_(std::move(config)), layer_(std::move(layer)) {
    port_ = server_.bind_to_any_port("127.0.0.1");
    std::string realm = "http://127.0.0.1:" + std::to_string(port_) + "/token";
    auto challenge = [realm](httplib::Response& res, const std::string& scope) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Bearer realm=\"" + realm + "\",service=\"fake\"" +
                                             (scope.empty() ? "" : ",scope=\"" + scope + "\""));
      res.set_content(R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})",
                      "application/json");
    };
    auto authorized = [this](const httplib::Request& req) {
      return req.get_header_value("Authorization") == "Bearer token-for-" + std::to_string(port_);
    };
    server_.Get("/token", [this](const httplib::Request& req, httplib::Response& res) {
      ++token_requests_;
      // Basic bob:pw (Ym9iOnB3)
      if (req.get_header_value("Authorization") != "Basic Ym9iOnB3") {
        res.status = 401;
        return;
      }
      res.set_content(
          json{{"token", "token-for-" + std::to_string(port_)}, {"expires_in", 300}}.dump(),
          "application/json");
    });
    // OAuth2 (an identity token as refresh token): the refresh token "bob-refresh".
    server_.Post("/token", [this](const httplib::Request& req, httplib::Response& res) {
      ++oauth_requests_;
      if (req.get_param_value("grant_type") != "refresh_token" ||
          req.get_param_value("refresh_token") != "bob-refresh" ||
          req.get_param_value("service") != "fake" || req.get_param_value("client_id").empty()) {
        res.status = 401;
        return;
      }
      res.set_content(json{{"access_token", "token-for-" + std::to_string(port_)},
                           {"expires_in", 300},
                           {"scope", req.get_param_value("scope")}}
                          .dump(),
                      "application/json");
    });
    server_.Get("/v2/", [=, this](const httplib::Request& req, httplib::Response& res) {
      if (!authorized(req)) return challenge(res, "");
      res.set_content("{}", "application/json");
    });
    server_.Get("/v2/fake/manifests/1",
                [=, this](const httplib::Request& req, httplib::Response& res) {
                  if (!authorized(req)) return challenge(res, "repository:fake:pull");
                  res.set_content(manifest_, "application/vnd.oci.image.manifest.v1+json");
                });
    server_.Get(R"(/v2/fake/blobs/(sha256:[0-9a-f]+))", [=, this](const httplib::Request& req,
                                                                  httplib::Response& res) {
      if (!authorized(req)) return challenge(res, "repository:fake:pull");
      std::string d = req.matches[1];
      if (d == oci::DigestOf(config_)) {
        res.set_content(config_, "application/octet-stream");
      } else if (d == oci::DigestOf(layer_)) {
        std::string body = layer_;
        if (corrupt_) body[body.size() / 2] ^= 0x55;
        if (!slow_) {
          res.set_content(body, "application/octet-stream");
          return;
        }
        res.set_content_provider(body.size(), "application/octet-stream",
                                 [this, body](size_t offset, size_t, httplib::DataSink& sink) {
                                   size_t n = std::min<size_t>(16 << 10, body.size() - offset);
                                   sink.write(body.data() + offset, n);
                                   started_ = true;
                                   std::this_thread::sleep_for(std::chrono::milliseconds(20));
                                   return !stopping_.load();
                                 });
      } else {
        res.status = 404;
      }
    });
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 500 && !server_.is_running(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ~FakeRegistry() {
    stopping_ = true;
    server_.stop();
    thread_.join();
  }
  std::string host() const { return "localhost:" + std::to_string(port_); }
  std::atomic<bool> corrupt_{false};
  std::atomic<bool> slow_{false};
  std::atomic<bool> started_{false};
  std::atomic<int> token_requests_{0};
  std::atomic<int> oauth_requests_{0};

 private:
  httplib::Server server_;
  int port_ = 0;
  std::string manifest_, config_, layer_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

TEST_F(RegistryCliTest, CorruptBlobIsRefusedAndKeptNowhereInterruptedPullLeavesNothing) {
  FakeImage image = MakeFakeImage(tmp_.path() + "/layout", "fake registry\n");
  std::string config_digest = image.config_digest, layer_digest = image.layer_digest;
  FakeRegistry fake(image.manifest, image.config, image.layer);
  std::string ref = fake.host() + "/fake:1";
  Import("keep:1", "kept\n");
  std::string before = StoreState();
  std::string images = Images();

  // Bearer: anonymous is refused by the token service; a wrong password too.
  CommandOutput r = Barge({"pull", ref});
  ExpectOneLineError(r, "barge login " + fake.host());
  r = Barge({"pull", "--creds", "bob:bad", ref});
  ExpectOneLineError(r, "wrong username or password");
  EXPECT_EQ(StoreState(), before);

  fake.corrupt_ = true;
  r = Barge({"pull", "--creds", "bob:pw", ref});
  ExpectOneLineError(r, "does not match its digest");
  EXPECT_NE(r.err.find(layer_digest), std::string::npos) << r.err;
  EXPECT_FALSE(PathExists(root_ + "/images/blobs/sha256/" + oci::DigestHex(layer_digest)));
  EXPECT_EQ(Leftovers(root_ + "/images"), std::vector<std::string>{});
  EXPECT_EQ(Leftovers(root_ + "/layers"), std::vector<std::string>{});
  EXPECT_EQ(Images(), images);
  EXPECT_EQ(Motd("keep:1"), "kept\n");

  // Interrupted (SIGINT) while the layer trickles in: nothing partial stays.
  fake.corrupt_ = false;
  fake.slow_ = true;
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    for (const std::string& e : Env()) ::putenv(const_cast<char*>(e.c_str()));
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::execl(BARGE_BINARY, BARGE_BINARY, "--root", root_.c_str(), "pull", "--creds", "bob:pw",
            ref.c_str(), nullptr);
    ::_exit(127);
  }
  for (int i = 0; i < 500 && !fake.started_; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ::kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  EXPECT_EQ(Leftovers(root_ + "/images"), std::vector<std::string>{});
  EXPECT_EQ(Leftovers(root_ + "/layers"), std::vector<std::string>{});
  EXPECT_FALSE(PathExists(root_ + "/images/blobs/sha256/" + oci::DigestHex(layer_digest)));

  // The retry succeeds, with the token it asked for once per scope.
  fake.slow_ = false;
  r = Barge({"pull", "--format", "json", "--creds", "bob:pw", ref});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["digest"], image.manifest_digest);
  EXPECT_EQ(Motd(ref), "fake registry\n");
}

TEST_F(RegistryCliTest, BuildFromRegistryAndShortNamesThroughRegistriesConf) {
  auto registry = StartRegistry();
  ASSERT_NE(registry, nullptr);
  std::string host = registry->host();
  std::string source = tmp_.path() + "/source";
  Import("base:1", "from the registry\n", {}, source);
  ASSERT_EQ(Barge({"push", "base:1", host + "/library/base:1"}, source).exit_code, 0);
  ASSERT_EQ(Barge({"push", "base:1", host + "/base:1"}, source).exit_code, 0);
  std::string digest = ManifestDigest("base:1", source);

  // FROM localhost:PORT/... pulls the base image.
  std::string ctx = tmp_.path() + "/ctx";
  ASSERT_TRUE(MakeDirs(ctx).ok());
  ASSERT_TRUE(
      WriteFile(ctx + "/Containerfile", "FROM " + host + "/library/base:1\nCOPY hello /etc/hello\n")
          .ok());
  ASSERT_TRUE(WriteFile(ctx + "/hello", "hello\n").ok());
  CommandOutput r = Barge({"build", "--pull", "never", "-t", "built:1", ctx});
  EXPECT_EQ(r.exit_code, 1);  // never: not there
  r = Barge({"build", "-t", "built:1", ctx});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("Pulled " + host + "/library/base:1"), std::string::npos) << r.err;
  EXPECT_EQ(ManifestDigest(host + "/library/base:1"), digest);
  r = Barge({"run", "--rm", "--pull", "never", "built:1", "cat", "/etc/motd", "/etc/hello"});
  EXPECT_EQ(r.out, "from the registry\nhello\n");

  // The tag moves in the registry: --pull missing keeps the local image, --pull always fetches
  // the new one, for run and for build.
  Import("base:2", "moved\n", {}, source);
  ASSERT_EQ(Barge({"push", "base:2", host + "/library/base:1"}, source).exit_code, 0);
  r = Barge({"run", "--rm", "--pull", "missing", host + "/library/base:1", "cat", "/etc/motd"});
  EXPECT_EQ(r.out, "from the registry\n") << r.err;
  r = Barge({"build", "--pull", "always", "-t", "built:2", ctx});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Barge({"run", "--rm", "--pull", "never", "built:2", "cat", "/etc/motd"});
  EXPECT_EQ(r.out, "moved\n") << r.err;
  ASSERT_EQ(Barge({"push", "base:1", host + "/library/base:1"}, source).exit_code, 0);
  r = Barge(
      {"run", "--rm", "-q", "--pull", "always", host + "/library/base:1", "cat", "/etc/motd"});
  EXPECT_EQ(r.out, "from the registry\n") << r.err;
  EXPECT_EQ(r.err, "");  // -q: nothing of the pull
  EXPECT_EQ(ManifestDigest(host + "/library/base:1"), digest);

  // A short name resolves through unqualified-search-registries: the first that has it.
  ASSERT_TRUE(WriteFile(conf_, "unqualified-search-registries = [\"localhost:1\", \"" + host +
                                   "\"]\n[aliases]\n\"nick\" = \"" + host + "/library/base\"\n")
                  .ok());
  std::string other = tmp_.path() + "/root2";
  r = Barge({"run", "--rm", "base:1", "cat", "/etc/motd"}, other);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "from the registry\n");
  EXPECT_NE(r.err.find("Pulled " + host + "/base:1"), std::string::npos) << r.err;
  EXPECT_EQ(ManifestDigest(host + "/base:1", other), digest);
  // Found locally under its qualified name from now on: --pull never works.
  EXPECT_EQ(Motd("base:1", other), "from the registry\n");
  // Aliases; and a short name no registry has is one line naming every registry tried.
  r = Barge({"pull", "--format", "json", "nick:1"}, tmp_.path() + "/root3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["digest"], digest);
  r = Barge({"pull", "absent:1"}, tmp_.path() + "/root3");
  ExpectOneLineError(r, "localhost:1");
  EXPECT_NE(r.err.find(host), std::string::npos) << r.err;
  // A location rewrite: names under example.com come from the local registry.
  ASSERT_TRUE(WriteFile(conf_, "[[registry]]\nprefix = \"example.com/base\"\nlocation = \"" + host +
                                   "/library/base\"\n[[registry]]\nprefix = \"blocked.example\"\n"
                                   "blocked = true\n")
                  .ok());
  r = Barge({"pull", "--format", "json", "example.com/base:1"}, tmp_.path() + "/root4");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["reference"], "example.com/base:1");
  EXPECT_EQ(json::parse(r.out)["digest"], digest);
  r = Barge({"pull", "blocked.example/x:1"}, tmp_.path() + "/root4");
  ExpectOneLineError(r, "blocked");
  // A broken registries.conf is a one-line error naming the file.
  ASSERT_TRUE(WriteFile(conf_, "unqualified-search-registries = [\n").ok());
  r = Barge({"pull", "whatever:1"}, tmp_.path() + "/root4");
  ExpectOneLineError(r, conf_);
}

TEST_F(RegistryCliTest, CredentialHelpersLogInForPullPushLoginAndLogout) {
  auto registry = StartRegistry({false, "alice", "s3cret pass"});
  ASSERT_NE(registry, nullptr);
  std::string host = registry->host();
  std::string digest = Import("app:1", "from a helper\n");
  ASSERT_EQ(Barge({"push", "--creds", "alice:s3cret pass", "app:1", host + "/app:1"}).exit_code, 0);
  UseUserCredentialFiles();
  std::string config = docker_ + "/config.json";
  int roots = 0;
  auto pull = [&] {
    return Barge({"pull", "-q", host + "/app:1"}, tmp_.path() + "/pull" + std::to_string(++roots));
  };

  // credsStore: the helper is asked for the registry host and its login pulls.
  WriteDockerConfig({{"credsStore", "barge-test"}});
  Keep(host, "alice", "s3cret pass");
  CommandOutput r = pull();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ManifestDigest(host + "/app:1", tmp_.path() + "/pull1"), digest);
  EXPECT_NE(HelperCalls().find("get " + host + "\n"), std::string::npos) << HelperCalls();
  // credHelpers for the host, beating a wrong password in auths for the same host.
  WriteDockerConfig({{"auths", {{host, {{"auth", "YWxpY2U6d3Jvbmc="}}}}},  // alice:wrong
                     {"credHelpers", {{host, "barge-test"}}}});
  r = pull();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Without the helper, that auths entry is what is used: refused.
  WriteDockerConfig({{"auths", {{host, {{"auth", "YWxpY2U6d3Jvbmc="}}}}}});
  ExpectOneLineError(pull(), "login as 'alice' refused: wrong username or password");

  // The helper has nothing for the registry: anonymous, and the registry says no.
  WriteDockerConfig({{"credHelpers", {{host, "barge-test"}}}});
  ASSERT_TRUE(RunCommand({"rm", "-r", helper_ + "/store"})->exit_code == 0);
  ASSERT_TRUE(MakeDirs(helper_ + "/store").ok());
  ExpectOneLineError(pull(), "requires a login ('barge login " + host + "')");
  // A helper that fails: one line naming it, where it is configured, and what it said.
  ASSERT_TRUE(WriteFile(helper_ + "/fail", "pass: password store is locked\n").ok());
  ExpectOneLineError(pull(), "credential helper docker-credential-barge-test (credHelpers entry " +
                                 host + " in " + config +
                                 ") failed (get): pass: password store is locked");
  ASSERT_EQ(::unlink((helper_ + "/fail").c_str()), 0);
  // One that is not installed.
  WriteDockerConfig({{"credsStore", "barge-absent"}});
  ExpectOneLineError(pull(), "credential helper docker-credential-barge-absent (credsStore in " +
                                 config + ") is not installed");

  // barge login with a file that names a helper stores there (the password never in the
  // file), push and pull use it, logout erases it.
  WriteDockerConfig({{"credsStore", "barge-test"}});
  r = Barge({"login", "--authfile", config, "-u", "alice", "--password-stdin", host}, "",
            "s3cret pass\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Result<std::string> stored =
      ReadFile(helper_ + "/store/" + "localhost_" + std::to_string(registry->port()));
  ASSERT_TRUE(stored.ok());
  json j = json::parse(*stored);
  EXPECT_EQ(j["ServerURL"], host);
  EXPECT_EQ(j["Username"], "alice");
  EXPECT_EQ(j["Secret"], "s3cret pass");
  EXPECT_EQ(ReadFile(config)->find("s3cret"), std::string::npos);
  r = Barge({"push", "app:1", host + "/pushed:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, digest + "\n");
  EXPECT_EQ(pull().exit_code, 0);
  r = Barge({"logout", "--authfile", config, host});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(HelperCalls().find("erase " + host + "\n"), std::string::npos) << HelperCalls();
  EXPECT_FALSE(PathExists(helper_ + "/store/localhost_" + std::to_string(registry->port())));
  ExpectOneLineError(pull(), "barge login " + host);
  ExpectOneLineError(Barge({"logout", "--authfile", config, host}), "not logged in to " + host);
  // Without --authfile, login writes the containers auth file, as podman does.
  r = Barge({"login", "-u", "alice", "--password-stdin", host}, "", "s3cret pass\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(PathExists(tmp_.path() + "/containers/auth.json"));
  EXPECT_EQ(pull().exit_code, 0);
}

TEST_F(RegistryCliTest, DockerConfigJsonIsReadAfterTheContainersAuthFiles) {
  auto registry = StartRegistry({false, "alice", "pw"});
  ASSERT_NE(registry, nullptr);
  std::string host = registry->host();
  std::string digest = Import("app:1", "docker config\n");
  ASSERT_EQ(Barge({"push", "--creds", "alice:pw", "app:1", host + "/app:1"}).exit_code, 0);
  UseUserCredentialFiles();
  auto pull = [&](const std::string& root) {
    return Barge({"pull", "-q", host + "/app:1"}, tmp_.path() + "/" + root);
  };
  auto auth_file = [&](const std::string& path, const std::string& user_password) {
    ASSERT_TRUE(MakeDirs(path.substr(0, path.rfind('/'))).ok());
    json j = {{"auths", {{host, {{"auth", oci::detail::Base64Encode(user_password)}}}}}};
    ASSERT_TRUE(WriteFile(path, j.dump(), 0600).ok());
  };
  ExpectOneLineError(pull("r1"), "barge login " + host);
  // Only $DOCKER_CONFIG/config.json has the login (as `docker login` writes it: the host key
  // with an https:// scheme, base64 of user:password).
  WriteDockerConfig(
      {{"auths", {{"https://" + host, {{"auth", oci::detail::Base64Encode("alice:pw")}}}}}});
  CommandOutput r = pull("r1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ManifestDigest(host + "/app:1", tmp_.path() + "/r1"), digest);
  // $XDG_CONFIG_HOME/containers/auth.json is read before it: its wrong password is used.
  auth_file(tmp_.path() + "/config/containers/auth.json", "alice:wrong");
  ExpectOneLineError(pull("r2"), "wrong username or password");
  // and $XDG_RUNTIME_DIR/containers/auth.json (where login writes) before both.
  auth_file(tmp_.path() + "/containers/auth.json", "alice:pw");
  r = pull("r2");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // --authfile reads that file alone.
  ExpectOneLineError(
      Barge({"pull", "--authfile", tmp_.path() + "/config/containers/auth.json", host + "/app:1"},
            tmp_.path() + "/r3"),
      "wrong username or password");
}

TEST_F(RegistryCliTest, IdentityTokenFromAHelperIsSentAsAnOAuthRefreshToken) {
  FakeImage image = MakeFakeImage(tmp_.path() + "/layout", "identity token\n");
  std::string config_digest = image.config_digest, layer_digest = image.layer_digest;
  FakeRegistry fake(image.manifest, image.config, image.layer);
  std::string ref = fake.host() + "/fake:1";
  UseUserCredentialFiles();
  WriteDockerConfig({{"credsStore", "barge-test"}});
  Keep(fake.host(), "<token>", "bob-refresh");
  CommandOutput r = Barge({"pull", "--format", "json", ref});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["digest"], image.manifest_digest);
  EXPECT_GT(fake.oauth_requests_.load(), 0);
  EXPECT_EQ(Motd(ref), "identity token\n");
  // A token the service refuses: one line that says so.
  Keep(fake.host(), "<token>", "revoked");
  ExpectOneLineError(Barge({"pull", ref}, tmp_.path() + "/root2"),
                     "the identity token was refused");
}

// This machine's first IPv4 address that is not a loopback one ("" if it has none).
std::string NonLoopbackAddress() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string out;
  for (ifaddrs* i = list; i != nullptr && out.empty(); i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    if (!(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)) continue;
    char text[INET_ADDRSTRLEN];
    auto* in = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
    if (::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text) != nullptr) out = text;
  }
  ::freeifaddrs(list);
  return out;
}

TEST_F(RegistryCliTest, PlainHttpRegistryOffThisMachinesLoopbackNeedsTlsVerifyFalse) {
  std::string ip = NonLoopbackAddress();
  if (ip.empty()) GTEST_SKIP() << "this machine has no IPv4 address besides loopback";
  auto registry = StartRegistry();
  ASSERT_NE(registry, nullptr);
  // The plain-HTTP registry, reached through an address that is not loopback.
  CuttingProxy relay(
      registry->port(), true, std::numeric_limits<int64_t>::max(), [] {}, ::inet_addr(ip.c_str()));
  std::string host = ip + ":" + std::to_string(relay.port());
  extra_env_ = {"no_proxy=*", "NO_PROXY=*"};
  std::string digest = Import("app:1", "plain http\n");
  std::string before = StoreState();
  CommandOutput r = Barge({"push", "app:1", host + "/app:1"});
  ExpectOneLineError(r, "--tls-verify=false");
  EXPECT_NE(r.err.find(host), std::string::npos) << r.err;
  r = Barge({"pull", host + "/app:1"}, tmp_.path() + "/root2");
  ExpectOneLineError(r, "--tls-verify=false");
  EXPECT_EQ(StoreState(), before);
  // Asked for: the push goes over plain HTTP, and so does the pull.
  r = Barge({"push", "--tls-verify=false", "app:1", host + "/app:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, digest + "\n");
  EXPECT_EQ(SkopeoDigest(host + "/app:1"), digest);
  r = Barge({"pull", "-q", "--tls-verify=false", host + "/app:1"}, tmp_.path() + "/root2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ManifestDigest(host + "/app:1", tmp_.path() + "/root2"), digest);
  // insecure = true in registries.conf does the same for that registry.
  ASSERT_TRUE(
      WriteFile(conf_, "[[registry]]\nlocation = \"" + host + "\"\ninsecure = true\n").ok());
  r = Barge({"push", "app:1", host + "/again:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, digest + "\n");
}

TEST_F(RegistryCliTest, DockerManifestListPicksThisMachinesPlatformOrTheOneAskedFor) {
  auto registry = StartRegistry();
  ASSERT_NE(registry, nullptr);
  std::string host = registry->host();
  std::string mine = oci::HostArchitecture();
  std::string other = mine == "amd64" ? "arm64" : "amd64";
  WriteLayout(tmp_.path() + "/list", "list", "manifest list\n", {mine, other});
  // skopeo turns the OCI index into a Docker manifest list of Docker v2 schema 2 manifests.
  CommandOutput r = Tool({"skopeo", "copy", "--dest-tls-verify=false", "--all", "--format", "v2s2",
                          "oci:" + tmp_.path() + "/list:list", "docker://" + host + "/list:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Tool({"skopeo", "inspect", "--raw", "--tls-verify=false", "docker://" + host + "/list:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string list_digest = oci::DigestOf(r.out);
  json list = json::parse(r.out);
  ASSERT_EQ(list["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json");
  std::map<std::string, std::string> entries;  // architecture -> digest
  for (const json& e : list["manifests"]) {
    EXPECT_EQ(e["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    entries[e["platform"]["architecture"]] = e["digest"];
  }
  ASSERT_EQ(entries.size(), 2u) << list.dump();

  r = Barge({"pull", "--format", "json", host + "/list:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["media_type"], "application/vnd.docker.distribution.manifest.v2+json");
  EXPECT_EQ(j["index_digest"], list_digest);
  EXPECT_EQ(j["digest"], entries[mine]);
  EXPECT_EQ(ManifestDigest(host + "/list:1"), entries[mine]);
  EXPECT_EQ(Motd(host + "/list:1"), "manifest list\n");

  std::string root2 = tmp_.path() + "/root2";
  r = Barge({"pull", "--format", "json", "--platform", "linux/" + other, host + "/list:1"}, root2);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = json::parse(r.out);
  EXPECT_EQ(j["index_digest"], list_digest);
  EXPECT_EQ(j["digest"], entries[other]);
  EXPECT_EQ(ManifestDigest(host + "/list:1", root2), entries[other]);
  // pushed on, the platform's manifest keeps its digest.
  r = Barge({"push", host + "/list:1", host + "/" + other + ":1"}, root2);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, entries[other] + "\n");
  EXPECT_EQ(SkopeoDigest(host + "/" + other + ":1"), entries[other]);
}

}  // namespace
}  // namespace barge
