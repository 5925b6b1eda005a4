// Names, registries.conf, auth files and challenges: the registry client's parts that need no
// registry (src/cli/registry_cli_test.cc drives a real one).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "base/file_util.h"
#include "oci/auth.h"
#include "oci/detail/http.h"
#include "oci/detail/registry_client.h"
#include "oci/registry.h"
#include "oci/registry_config.h"

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
                                   "credsStore":"x"})")
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
  EXPECT_EQ(j["credsStore"], "x");

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
