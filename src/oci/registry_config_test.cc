// Names, registries.conf, auth files and challenges: the registry client's parts that need no
// registry (src/cli/registry_cli_test.cc drives a real one).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include <nlohmann/json.hpp>

#include "base/file_util.h"
#include "oci/auth.h"
#include "oci/detail/http.h"
#include "oci/detail/registry_client.h"
#include "oci/registry.h"
#include "oci/registry_config.h"
#include "oci/test_util.h"

namespace barge::oci {
namespace {

TEST(RegistryNameTest, SplitsRegistryFromRepository) {
  EXPECT_EQ(SplitName("localhost:5000/team/app").registry, "localhost:5000");
  EXPECT_EQ(SplitName("localhost:5000/team/app").repository, "team/app");
  EXPECT_EQ(SplitName("localhost/app").registry, "localhost");
  EXPECT_EQ(SplitName("example.com/app").registry, "example.com");
  EXPECT_EQ(SplitName("team/app").registry, "");  // short
  EXPECT_EQ(SplitName("busybox").repository, "busybox");
  EXPECT_EQ(SplitName("docker.io/busybox").repository, "library/busybox");
  EXPECT_EQ(SplitName("index.docker.io/team/app").ToString(), "docker.io/team/app");
}

TEST(RegistriesConfTest, SearchAliasesMirrorsPrefixesBlocked) {
  RegistriesConf conf;
  ASSERT_TRUE(conf.Merge(R"(
unqualified-search-registries = ["a.example", "docker.io"]
[aliases]
"py" = "a.example/lang/python"
[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "mirror.local:5000/hub"
insecure = true
[[registry]]
prefix = "old.example/team"
location = "new.example:5000/moved"
insecure = true
[[registry]]
prefix = "*.bad.example"
blocked = true
)",
                         "test.conf")
                  .ok());
  EXPECT_EQ(conf.Candidates("app"),
            (std::vector<std::string>{"a.example/app", "docker.io/library/app"}));
  EXPECT_EQ(conf.Candidates("py"), std::vector<std::string>{"a.example/lang/python"});
  EXPECT_EQ(conf.Candidates("x.example/app"), std::vector<std::string>{"x.example/app"});

  auto hub = conf.Endpoints(SplitName("docker.io/library/app"), false);
  ASSERT_TRUE(hub.ok());
  ASSERT_EQ(hub->size(), 2u);
  EXPECT_EQ((*hub)[0].name.ToString(), "mirror.local:5000/hub/library/app");
  EXPECT_TRUE((*hub)[0].mirror && (*hub)[0].insecure);
  EXPECT_EQ((*hub)[1].name.ToString(), "docker.io/library/app");
  EXPECT_EQ(conf.Endpoints(SplitName("docker.io/library/app"), true)->size(), 1u);  // push

  auto moved = conf.Endpoints(SplitName("old.example/team/app"), false);
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->back().name.registry, "new.example:5000");
  EXPECT_EQ(moved->back().name.repository, "moved/app");
  EXPECT_TRUE(moved->back().insecure);
  // A prefix matches whole components only.
  EXPECT_EQ(conf.Endpoints(SplitName("old.example/teams/app"), false)->back().name.registry,
            "old.example");

  auto blocked = conf.Endpoints(SplitName("x.bad.example/app"), false);
  EXPECT_FALSE(blocked.ok());
  EXPECT_NE(blocked.status().message().find("blocked"), std::string::npos);

  RegistriesConf none;
  EXPECT_EQ(none.Candidates("app"), std::vector<std::string>{"docker.io/library/app"});
  RegistriesConf empty;
  ASSERT_TRUE(empty.Merge("unqualified-search-registries = []\n", "empty.conf").ok());
  EXPECT_TRUE(empty.Candidates("app").empty());
}

TEST(RegistriesConfTest, BadFilesAreErrorsNamingTheFile) {
  RegistriesConf conf;
  Status st = conf.Merge("unqualified-search-registries = [\n", "/etc/x.conf");
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.message().rfind("/etc/x.conf: ", 0), 0u) << st.message();
  st = conf.Merge("unqualified-search-registries = \"docker.io\"\n", "y.conf");
  EXPECT_NE(st.message().find("array of strings"), std::string::npos) << st.message();
  st = conf.Merge("[[registry]]\ninsecure = true\n", "z.conf");
  EXPECT_FALSE(st.ok());
}

TEST(RegistriesConfTest, Loopback) {
  EXPECT_TRUE(IsLoopbackRegistry("localhost:5000"));
  EXPECT_TRUE(IsLoopbackRegistry("127.0.0.1:5000"));
  EXPECT_TRUE(IsLoopbackRegistry("[::1]:5000"));
  EXPECT_FALSE(IsLoopbackRegistry("localhost.example.com"));
  EXPECT_FALSE(IsLoopbackRegistry("10.0.0.1:5000"));
}

TEST(AuthFileTest, StoreLookupRemoveKeepOtherEntriesAndMode) {
  auto tmp = TempDir::Make("barge-auth-test-");
  ASSERT_TRUE(tmp.ok());
  std::string path = tmp->path() + "/sub/auth.json";
  ASSERT_TRUE(MakeDirs(tmp->path() + "/sub").ok());
  // A file Docker wrote: other keys and spellings stay.
  ASSERT_TRUE(WriteFile(path, R"({"auths":{"https://index.docker.io/v1/":{"auth":"aHViOnB3"}},
                                   "psFormat":"x"})")
                  .ok());
  ASSERT_TRUE(StoreCredentials(path, "localhost:5000", {"alice", "p:w d"}).ok());
  ASSERT_TRUE(StoreCredentials(path, "localhost:5000/team", {"bob", "pw2"}).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto text = ReadFile(path);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->find("p:w d"), std::string::npos);
  auto j = nlohmann::json::parse(*text);
  EXPECT_EQ(j["psFormat"], "x");

  auto c = LookupCredentials(path, SplitName("localhost:5000/app"));
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->username, "alice");
  EXPECT_EQ((*c)->password, "p:w d");
  c = LookupCredentials(path, SplitName("localhost:5000/team/app"));
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->username, "bob");  // the namespace's entry is more specific
  c = LookupCredentials(path, SplitName("docker.io/library/busybox"));
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->username, "hub");
  c = LookupCredentials(path, SplitName("other.example/app"));
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->has_value());

  EXPECT_TRUE(*RemoveCredentials(path, "localhost:5000"));
  EXPECT_FALSE(*RemoveCredentials(path, "localhost:5000"));
  c = LookupCredentials(path, SplitName("localhost:5000/app"));
  EXPECT_FALSE(c->has_value());
  EXPECT_TRUE(*RemoveCredentials(path, "", true));
  EXPECT_FALSE(LookupCredentials(path, SplitName("docker.io/x/y"))->has_value());

  // A broken file is an error naming it, not "no credentials".
  ASSERT_TRUE(WriteFile(path, "{not json").ok());
  auto broken = LookupCredentials(path, SplitName("localhost:5000/app"));
  EXPECT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find(path), std::string::npos);
}

TEST(AuthFileTest, NormalizesKeysAsDockerSpellsThem) {
  EXPECT_EQ(NormalizeAuthKey("https://index.docker.io/v1/"), "docker.io");
  EXPECT_EQ(NormalizeAuthKey("http://localhost:5000/"), "localhost:5000");
  EXPECT_EQ(NormalizeAuthKey("registry-1.docker.io/team"), "docker.io/team");
  EXPECT_EQ(NormalizeAuthKey("example.com/v2"), "example.com");
}

// A fake credential helper (oci/test_util.h), docker-credential-barge-unit, first on PATH.
class CredentialHelperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::Make("barge-helper-test-");
    ASSERT_TRUE(t.ok());
    tmp_ = std::move(*t);
    dir_ = tmp_.path();
    ASSERT_TRUE(testing::WriteFakeCredentialHelper(dir_, "barge-unit").ok());
    const char* path = std::getenv("PATH");
    old_path_ = path != nullptr ? path : "";
    ::setenv("PATH", (dir_ + "/bin:" + old_path_).c_str(), 1);
    file_ = dir_ + "/config.json";
  }
  void TearDown() override { ::setenv("PATH", old_path_.c_str(), 1); }

  void Keep(const std::string& server, const std::string& user, const std::string& secret) {
    ASSERT_TRUE(testing::KeepInFakeCredentialHelper(dir_, server, user, secret).ok());
  }
  std::string Calls() {
    Result<std::string> calls = ReadFile(dir_ + "/calls");
    return calls.ok() ? *calls : "";
  }

  TempDir tmp_;
  std::string dir_;
  std::string old_path_;
  std::string file_;
};

TEST_F(CredentialHelperTest, LookupOrderIsCredHelpersThenAuthsThenCredsStore) {
  // YWxpY2U6d3Jvbmc= is alice:wrong, Ym9iOmlubGluZQ== bob:inline.
  ASSERT_TRUE(WriteFile(file_, R"({
    "auths": {"reg.example": {"auth": "YWxpY2U6d3Jvbmc="},
              "other.example": {"auth": "Ym9iOmlubGluZQ=="},
              "empty.example": {}},
    "credHelpers": {"reg.example": "barge-unit", "https://index.docker.io/v1/": "barge-unit"},
    "credsStore": "barge-unit"})")
                  .ok());
  Keep("reg.example", "alice", "right");
  Keep("other.example", "bob", "from-store");
  Keep("empty.example", "carol", "from-store");
  Keep("token.example", "<token>", "refresh-me");
  Keep("https://index.docker.io/v1/", "hubuser", "hubpw");

  // credHelpers beats the auths entry for the same registry.
  auto c = LookupCredentials(file_, SplitName("reg.example/team/app"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->username, "alice");
  EXPECT_EQ((*c)->password, "right");
  EXPECT_EQ(Calls(), "get reg.example\n");
  // An auths entry with credentials beats credsStore, which is not run.
  c = LookupCredentials(file_, SplitName("other.example/app"));
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->password, "inline");
  EXPECT_EQ(Calls(), "get reg.example\n");
  // Docker's empty entry (the login is in the store) falls through to credsStore.
  c = LookupCredentials(file_, SplitName("empty.example/app"));
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->username, "carol");
  // "<token>": an identity token.
  c = LookupCredentials(file_, SplitName("token.example/app"));
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->identity_token, "refresh-me");
  EXPECT_EQ((*c)->username, "");
  // Docker Hub: the helper is asked under Docker's key.
  c = LookupCredentials(file_, SplitName("docker.io/library/busybox"));
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->username, "hubuser");
  EXPECT_NE(Calls().find("get https://index.docker.io/v1/\n"), std::string::npos) << Calls();
  // Not found: anonymous, not an error.
  c = LookupCredentials(file_, SplitName("nothing.example/app"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_FALSE(c->has_value());
}

TEST_F(CredentialHelperTest, FailingMissingOrGarbledHelpersAreOneLineErrorsNamingThem) {
  ASSERT_TRUE(WriteFile(file_, R"({"credsStore": "barge-unit"})").ok());
  ASSERT_TRUE(WriteFile(dir_ + "/fail", "gpg: decryption failed\nNo secret key\n").ok());
  auto c = LookupCredentials(file_, SplitName("reg.example/app"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "credential helper docker-credential-barge-unit (credsStore in " +
                                      file_ +
                                      ") failed (get): gpg: decryption failed; No secret key");

  ASSERT_TRUE(WriteFile(file_, R"({"credHelpers": {"reg.example": "barge-absent"}})").ok());
  c = LookupCredentials(file_, SplitName("reg.example/app"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("docker-credential-barge-absent (credHelpers entry "
                                      "reg.example in " +
                                      file_ + ") is not installed"),
            std::string::npos)
      << c.status().message();
  EXPECT_EQ(c.status().message().find('\n'), std::string::npos);

  // An answer that is not the protocol's JSON: an error that does not quote it.
  ASSERT_TRUE(::unlink((dir_ + "/fail").c_str()) == 0);
  ASSERT_TRUE(WriteFile(file_, R"({"credsStore": "barge-unit"})").ok());
  ASSERT_TRUE(WriteFile(dir_ + "/store/reg.example", "secret-in-garbage").ok());
  c = LookupCredentials(file_, SplitName("reg.example/app"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message().find("secret-in-garbage"), std::string::npos);
  EXPECT_NE(c.status().message().find("docker-credential-barge-unit"), std::string::npos);

  // A helper name that is a path is refused, not run.
  ASSERT_TRUE(WriteFile(file_, R"({"credsStore": "../bin/sh"})").ok());
  c = LookupCredentials(file_, SplitName("reg.example/app"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("not a plain name"), std::string::npos);
}

TEST_F(CredentialHelperTest, StoreAndRemoveGoThroughTheHelperTheFileNames) {
  // An old inline login for the registry would hide the helper's: the store drops it.
  ASSERT_TRUE(WriteFile(file_, R"({"auths": {"https://reg.example": {"auth": "YWxpY2U6d3Jvbmc="},
                                             "keep.example/team": {"auth": "Ym9iOmlubGluZQ=="}},
                                   "credsStore": "barge-unit", "psFormat": "x"})")
                  .ok());
  ASSERT_TRUE(StoreCredentials(file_, "reg.example", {"alice", "s3cret"}).ok());
  auto stored = ReadFile(dir_ + "/store/reg.example");
  ASSERT_TRUE(stored.ok());
  auto j = nlohmann::json::parse(*stored);
  EXPECT_EQ(j["ServerURL"], "reg.example");
  EXPECT_EQ(j["Username"], "alice");
  EXPECT_EQ(j["Secret"], "s3cret");
  auto text = ReadFile(file_);
  ASSERT_TRUE(text.ok());
  auto file = nlohmann::json::parse(*text);
  EXPECT_FALSE(file["auths"].contains("https://reg.example")) << *text;
  EXPECT_TRUE(file["auths"].contains("keep.example/team")) << *text;
  EXPECT_EQ(file["credsStore"], "barge-unit");
  EXPECT_EQ(file["psFormat"], "x");
  EXPECT_EQ(text->find("s3cret"), std::string::npos);
  auto c = LookupCredentials(file_, SplitName("reg.example/app"));
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->password, "s3cret");
  // Helpers keep one login per registry.
  Status ns = StoreCredentials(file_, "reg.example/team", {"bob", "pw"});
  EXPECT_FALSE(ns.ok());
  EXPECT_NE(ns.message().find("log in to reg.example"), std::string::npos) << ns.message();

  auto removed = RemoveCredentials(file_, "reg.example");
  ASSERT_TRUE(removed.ok()) << removed.status().message();
  EXPECT_TRUE(*removed);
  EXPECT_FALSE(PathExists(dir_ + "/store/reg.example"));
  EXPECT_NE(Calls().find("erase reg.example\n"), std::string::npos) << Calls();
  removed = RemoveCredentials(file_, "reg.example");
  ASSERT_TRUE(removed.ok());
  EXPECT_FALSE(*removed);

  // --all: every registry the file names is erased from its helper; the settings stay.
  ASSERT_TRUE(WriteFile(file_, R"({"auths": {"a.example": {}},
                                   "credHelpers": {"b.example": "barge-unit"},
                                   "credsStore": "barge-unit"})")
                  .ok());
  Keep("a.example", "u", "p");
  Keep("b.example", "u", "p");
  Keep("c.example", "u", "p");  // named nowhere in the file: stays
  removed = RemoveCredentials(file_, "", true);
  ASSERT_TRUE(removed.ok()) << removed.status().message();
  EXPECT_TRUE(*removed);
  EXPECT_FALSE(PathExists(dir_ + "/store/a.example"));
  EXPECT_FALSE(PathExists(dir_ + "/store/b.example"));
  EXPECT_TRUE(PathExists(dir_ + "/store/c.example"));
  file = nlohmann::json::parse(*ReadFile(file_));
  EXPECT_TRUE(file["auths"].empty());
  EXPECT_EQ(file["credHelpers"]["b.example"], "barge-unit");
}

TEST(ChallengeTest, ParsesBearerAndBasic) {
  auto [scheme, p] = detail::ParseChallenge(
      R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push")");
  EXPECT_EQ(scheme, "bearer");
  EXPECT_EQ(p["realm"], "https://auth.example/token");
  EXPECT_EQ(p["service"], "registry.example");
  EXPECT_EQ(p["scope"], "repository:a/b:pull,push");
  auto [basic, q] = detail::ParseChallenge(R"(Basic realm="x \"y\"")");
  EXPECT_EQ(basic, "basic");
  EXPECT_EQ(q["realm"], "x \"y\"");
}

TEST(Base64Test, RoundTrips) {
  for (const std::string& s :
       std::vector<std::string>{"", "a", "ab", "abc", "user:p@ss word", std::string("\0\xff", 2)}) {
    auto d = detail::Base64Decode(detail::Base64Encode(s));
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(detail::Base64Encode("alice:pw"), "YWxpY2U6cHc=");
  EXPECT_FALSE(detail::Base64Decode("!!!").ok());
}

TEST(PullPolicyTest, Parses) {
  EXPECT_EQ(*ParsePullPolicy("missing"), PullPolicy::kMissing);
  EXPECT_EQ(*ParsePullPolicy("always"), PullPolicy::kAlways);
  EXPECT_EQ(*ParsePullPolicy("never"), PullPolicy::kNever);
  EXPECT_FALSE(ParsePullPolicy("sometimes").ok());
}

}  // namespace
}  // namespace barge::oci
