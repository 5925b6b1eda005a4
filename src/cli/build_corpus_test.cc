// The build corpus (testdata/build-corpus): realistic Containerfiles, each built with barge and
// with buildah, whose results are compared the way a user switching tools would notice them:
// the image config field by field, and the file tree file by file (type, mode, owner, size,
// content, link target, device numbers, hard links, file capabilities and user xattrs).
//
// buildah (Debian's 1.28) runs with chroot isolation and --format docker, so that SHELL,
// HEALTHCHECK and ONBUILD stay in its config. Both images are unpacked by umoci, an unpacker of
// neither tool. Where buildah 1.28 is known to differ from `docker build` (BuildKit), the
// case's case.json lists it under "buildah_deviations" with the reason, and barge is checked
// against what BuildKit gives instead; "expect" holds further checks of barge's result.
//
// corpus.json holds the deviations every case can show (as "buildah_deviations" below).
// case.json:
//   "about": what the case is; "build_args": {NAME: VALUE}; "target": STAGE;
//   "prepare": shell commands run in a copy of the case directory before the builds (archives,
//     hard links, names git cannot hold);
//   "buildah": "skip: REASON" when buildah 1.28 cannot build the case at all;
//   "buildah_deviations": [{"what": W, "why": REASON, "barge": EXPECTED}];
//   "expect": [{"what": W, "barge": EXPECTED}].
// W is "config.FIELD" (Env, Cmd, ... of the config object), a top-level config field
// ("author"), an absolute path in the image, or "/DIR/**" for a directory and all below it;
// EXPECTED is the field's JSON value (null: absent)
// or, for a path, "absent" or an object of attributes ({"type": "dir", "mode": "0755",
// "uid": 1000, "gid": 1000, "content": "...", "target": "...", "rdev": "1,3", "links": [...]})
// of which those given are checked.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "base/file_util.h"
#include "base/subprocess.h"
#include "oci/digest.h"
#include "oci/test_util.h"
#include "runtime/leak_check.h"

namespace barge {
namespace {

using nlohmann::json;
using oci::testing::Compression;
using oci::testing::MakeTar;
using oci::testing::TarEntry;

constexpr const char* kCorpus = BARGE_SOURCE_DIR "/src/cli/testdata/build-corpus";

bool Have(const std::string& tool) {
  auto r = RunCommand({"sh", "-c", "command -v " + tool});
  return r.ok() && r->exit_code == 0;
}

std::vector<std::string> CaseNames() {
  std::vector<std::string> names;
  DIR* d = ::opendir(kCorpus);
  if (d == nullptr) return names;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n[0] != '.' && PathExists(std::string(kCorpus) + "/" + n + "/case.json"))
      names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool ValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    }
    i += n;
  }
  return true;
}

// Names and link targets are bytes; JSON wants UTF-8.
std::string Printable(const std::string& s) {
  if (ValidUtf8(s)) return s;
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out;
}

// A file's text, or "" when it cannot be read.
std::string Text(const std::string& path) {
  Result<std::string> r = ReadFile(path);
  return r.ok() ? *r : "";
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// One entry of an unpacked file tree, as the comparison sees it.
json Describe(const std::string& path, const struct stat& st) {
  json e;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
  e["mode"] = mode;
  e["uid"] = st.st_uid;
  e["gid"] = st.st_gid;
  if (S_ISDIR(st.st_mode)) {
    e["type"] = "dir";
  } else if (S_ISLNK(st.st_mode)) {
    e["type"] = "symlink";
    std::string target(PATH_MAX, '\0');
    ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
    target.resize(n > 0 ? static_cast<size_t>(n) : 0);
    e["target"] = Printable(target);
    e.erase("mode");  // a symlink's mode means nothing
  } else if (S_ISREG(st.st_mode)) {
    e["type"] = "file";
    e["size"] = st.st_size;
    Result<std::string> data = ReadFile(path);
    std::string content = data.ok() ? *data : "<unreadable>";
    // Short text as itself (readable in a report), anything else by digest.
    bool text = content.size() <= 4096 && ValidUtf8(content) &&
                std::none_of(content.begin(), content.end(), [](char c) { return c == '\0'; });
    e["content"] = text ? content : oci::DigestOf(content);
  } else if (S_ISFIFO(st.st_mode)) {
    e["type"] = "fifo";
  } else if (S_ISSOCK(st.st_mode)) {
    e["type"] = "socket";
  } else {
    e["type"] = S_ISCHR(st.st_mode) ? "char" : "block";
    e["rdev"] = std::to_string(major(st.st_rdev)) + "," + std::to_string(minor(st.st_rdev));
  }
  // File capabilities and user xattrs, which layers carry.
  char names[4096];
  ssize_t n = ::llistxattr(path.c_str(), names, sizeof names);
  for (ssize_t i = 0; i < n;) {
    std::string name = names + i;
    i += static_cast<ssize_t>(name.size()) + 1;
    if (name.rfind("user.", 0) != 0 && name != "security.capability") continue;
    char value[1024];
    ssize_t v = ::lgetxattr(path.c_str(), name.c_str(), value, sizeof value);
    if (v >= 0) e["xattrs"][name] = oci::DigestOf(std::string_view(value, static_cast<size_t>(v)));
  }
  return e;
}

// Every path below `root` ("/etc/passwd", ...), with hard links grouped.
std::map<std::string, json> Tree(const std::string& root) {
  std::map<std::string, json> out;
  std::map<std::pair<dev_t, ino_t>, std::vector<std::string>> inodes;
  std::vector<std::string> stack = {""};
  while (!stack.empty()) {
    std::string rel = stack.back();
    stack.pop_back();
    DIR* d = ::opendir((root + rel).c_str());
    if (d == nullptr) continue;
    while (struct dirent* de = ::readdir(d)) {
      std::string name = de->d_name;
      if (name == "." || name == "..") continue;
      std::string p = rel + "/" + name;
      struct stat st {};
      if (::lstat((root + p).c_str(), &st) != 0) continue;
      out[Printable(p)] = Describe(root + p, st);
      if (S_ISDIR(st.st_mode)) stack.push_back(p);
      if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) inodes[{st.st_dev, st.st_ino}].push_back(p);
    }
    ::closedir(d);
  }
  for (auto& [ino, paths] : inodes) {
    std::sort(paths.begin(), paths.end());
    json names = json::array();
    for (const std::string& p : paths) names.push_back(Printable(p));
    for (const std::string& p : paths) out[Printable(p)]["links"] = names;
  }
  return out;
}

// The config fields a user sees; absent, null, [] and {} are one thing (no value).
const std::vector<std::string>& ConfigFields() {
  static const std::vector<std::string> kFields = {"config.Env",
                                                   "config.Entrypoint",
                                                   "config.Cmd",
                                                   "config.WorkingDir",
                                                   "config.User",
                                                   "config.ExposedPorts",
                                                   "config.Volumes",
                                                   "config.Labels",
                                                   "config.StopSignal",
                                                   "config.Shell",
                                                   "config.Healthcheck",
                                                   "config.OnBuild",
                                                   "author",
                                                   "os",
                                                   "architecture"};
  return kFields;
}

json ConfigField(const json& config, const std::string& what) {
  json v;
  if (what.rfind("config.", 0) == 0) {
    const json& c = config.value("config", json::object());
    v = c.is_object() ? c.value(what.substr(7), json()) : json();
  } else {
    v = config.value(what, json());
  }
  if (v.is_object() && what == "config.Labels") v.erase("io.buildah.version");
  if (((v.is_array() || v.is_object()) && v.empty()) ||
      (v.is_string() && v.get_ref<const std::string&>().empty()))
    return json();
  return v;
}

class BuildCorpusTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "buildah and umoci unpack need root";
    for (const char* tool : {"buildah", "umoci", "tar"}) {
      if (!Have(tool)) GTEST_SKIP() << tool << " is not installed (scripts/setup)";
    }
    if (!PathExists("/bin/busybox")) GTEST_SKIP() << "needs /bin/busybox (scripts/setup)";
    auto t = TempDir::Make("barge-corpus-");
    ASSERT_TRUE(t.ok());
    work_ = std::move(*t);
    scope_ = {"", {work_.path()}, ""};
    before_ = runtime::testing::TakeHostSnapshot(scope_);
    bh_ = {"buildah",
           "--root",
           work_.path() + "/buildah-root",
           "--runroot",
           work_.path() + "/buildah-run",
           "--storage-driver",
           "vfs"};
    ASSERT_NO_FATAL_FAILURE(MakeBases());
  }

  void TearDown() override {
    if (IsSkipped()) return;
    // buildah's containers and mounts go before the work dir does, whatever happened.
    Run(With(bh_, {"rm", "--all"}), false);
    Run(With(bh_, {"umount", "--all"}), false);
    auto leftover = runtime::testing::TakeHostSnapshot(scope_).mounts;
    std::sort(leftover.begin(), leftover.end(),
              [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    for (const std::string& m : leftover) ::umount2(m.c_str(), MNT_DETACH);
    EXPECT_EQ(runtime::testing::DescribeLeaks(before_, runtime::testing::TakeHostSnapshot(scope_)),
              "");
  }

  static std::vector<std::string> With(std::vector<std::string> a,
                                       std::initializer_list<std::string> more) {
    a.insert(a.end(), more);
    return a;
  }

  CommandOutput Run(const std::vector<std::string>& argv, bool must_succeed = true,
                    const CommandOptions& options = {}) {
    auto r = RunCommand(argv, options);
    EXPECT_TRUE(r.ok()) << argv[0] << ": " << r.status().message();
    if (!r.ok()) return {};
    if (must_succeed) {
      std::string line;
      for (const std::string& a : argv) line += a + " ";
      EXPECT_EQ(r->exit_code, 0) << line << "\n" << r->out << r->err;
    }
    return *r;
  }

  std::vector<std::string> Barge(std::initializer_list<std::string> args) {
    return With({BARGE_BINARY, "--root", work_.path() + "/barge-root"}, args);
  }

  // The base images, in both stores: a busybox tree with users, groups and files to delete
  // ("corpus-base:1"), and an image with ONBUILD triggers built from it ("corpus-onbuild:1").
  void MakeBases() {
    auto busybox = ReadFile("/bin/busybox");
    ASSERT_TRUE(busybox.ok());
    std::vector<TarEntry> entries = {
        {"bin", TarEntry::kDir, "", "", 0755},
        {"bin/busybox", TarEntry::kFile, *busybox, "", 0755},
        {"etc", TarEntry::kDir, "", "", 0755},
        {"etc/passwd", TarEntry::kFile,
         "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
         "www-data:x:33:33::/var/www:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"},
        {"etc/group", TarEntry::kFile,
         "root:x:0:\nwww-data:x:33:\nstaff:x:50:app\napp:x:1000:\nnogroup:x:65534:\n"},
        {"etc/motd", TarEntry::kFile, "welcome\n"},
        {"etc/conf.d", TarEntry::kDir, "", "", 0755},
        {"etc/conf.d/a.conf", TarEntry::kFile, "a=1\n"},
        {"etc/conf.d/b.conf", TarEntry::kFile, "b=2\n"},
        {"home", TarEntry::kDir, "", "", 0755},
        {"home/app", TarEntry::kDir, "", "", 0750, 1000, 1000},
        {"opt", TarEntry::kDir, "", "", 0755},
        {"opt/legacy", TarEntry::kDir, "", "", 0755},
        {"opt/legacy/lib.so", TarEntry::kFile, "old library\n"},
        {"root", TarEntry::kDir, "", "", 0700},
        {"tmp", TarEntry::kDir, "", "", 01777},
        {"usr", TarEntry::kDir, "", "", 0755},
        {"usr/local", TarEntry::kDir, "", "", 0755},
        {"usr/local/bin", TarEntry::kDir, "", "", 0755},
        {"usr/lib", TarEntry::kDir, "", "", 0755},
        {"usr/lib/os-release", TarEntry::kFile, "ID=corpus\n"},
        {"lib", TarEntry::kSymlink, "", "usr/lib"},
        {"srv", TarEntry::kDir, "", "", 0755},
        {"srv/current", TarEntry::kSymlink, "", "/srv/releases/v1"},
        {"var", TarEntry::kDir, "", "", 0755},
        {"var/cache", TarEntry::kDir, "", "", 0755},
        {"var/cache/pkg.cache", TarEntry::kFile, "cached\n"},
        {"var/www", TarEntry::kDir, "", "", 0755, 33, 33}};
    for (const char* applet :
         {"sh",    "ls",     "cat",   "echo", "cp",     "mv",     "rm",     "ln",   "mkdir",
          "touch", "chmod",  "chown", "id",   "mkfifo", "mknod",  "printf", "test", "env",
          "pwd",   "grep",   "sed",   "true", "tar",    "gzip",   "sort",   "wc",   "head",
          "find",  "whoami", "date",  "stat", "rmdir",  "install"}) {
      entries.push_back({std::string("bin/") + applet, TarEntry::kSymlink, "", "busybox"});
    }
    std::string base = work_.path() + "/base.tar";
    ASSERT_TRUE(WriteFile(base, MakeTar(entries)).ok());
    Run(Barge({"import", base, "corpus-base:1"}));
    std::string archive = work_.path() + "/base-oci.tar";
    Run(Barge({"save", "corpus-base:1", "-o", archive}));
    Run(With(bh_, {"pull", "-q", "oci-archive:" + archive}));
    // An image with triggers, made by each tool for itself.
    std::string ctx = work_.path() + "/onbuild-ctx";
    ASSERT_TRUE(MakeDirs(ctx).ok());
    ASSERT_TRUE(WriteFile(ctx + "/Containerfile",
                          "FROM corpus-base:1\n"
                          "WORKDIR /app\n"
                          "ONBUILD COPY . /app/src/\n"
                          "ONBUILD RUN echo built-by-trigger > /app/marker\n"
                          "CMD [\"sh\"]\n")
                    .ok());
    Run(Barge({"build", "-q", "-t", "corpus-onbuild:1", ctx}));
    Run(With(bh_, {"bud", "-q", "--format", "docker", "--isolation", "chroot", "-t",
                   "corpus-onbuild:1", ctx}));
  }

  // The image's config and its unpacked tree (umoci), from an OCI layout `layout`:`tag`.
  void Unpack(const std::string& layout, const std::string& tag, const std::string& bundle,
              json* config) {
    Run({"umoci", "unpack", "--image", layout + ":" + tag, bundle});
    auto index = json::parse(Text(layout + "/index.json"), nullptr, false);
    ASSERT_TRUE(index.is_object() && index.contains("manifests")) << layout;
    std::string mdigest;
    for (const json& m : index["manifests"]) {
      if (m.value("annotations", json::object()).value("org.opencontainers.image.ref.name", "") ==
          tag)
        mdigest = m["digest"];
    }
    ASSERT_FALSE(mdigest.empty()) << "no " << tag << " in " << layout;
    auto blob = [&](const std::string& d) {
      return json::parse(Text(layout + "/blobs/sha256/" + d.substr(7)), nullptr, false);
    };
    *config = blob(blob(mdigest)["config"]["digest"]);
  }

  TempDir work_;
  std::vector<std::string> bh_;
  runtime::testing::LeakScope scope_;
  runtime::testing::HostSnapshot before_;
};

// Checks `actual` (a tree entry or "absent", or a config value) against an expectation.
std::string Mismatch(const json& expected, const json& actual) {
  if (expected.is_string() && expected == "absent")
    return actual.is_null() ? "" : "present: " + Dump(actual);
  if (!expected.is_object() || actual.is_null() || !actual.is_object() ||
      actual.contains("type") != true) {
    return expected == actual ? "" : "want " + Dump(expected) + ", got " + Dump(actual);
  }
  std::string out;
  for (const auto& [k, v] : expected.items()) {
    json got = actual.value(k, json());
    if (got != v) out += k + ": want " + Dump(v) + ", got " + Dump(got) + "; ";
  }
  return out;
}

TEST_P(BuildCorpusTest, BargeBuildsWhatBuildahBuilds) {
  const std::string name = GetParam();
  std::string src = std::string(kCorpus) + "/" + name;
  auto spec = json::parse(Text(src + "/case.json"), nullptr, false);
  ASSERT_TRUE(spec.is_object()) << name << "/case.json is not a JSON object";
  ASSERT_TRUE(spec.contains("about")) << name << "/case.json says nothing about the case";
  // A copy of the context, so that what "prepare" makes stays out of the source tree.
  std::string ctx = work_.path() + "/ctx";
  Run({"cp", "-a", src, ctx});
  for (const json& cmd : spec.value("prepare", json::array()))
    Run({"sh", "-ec", cmd.get<std::string>()}, true, {.cwd = ctx});
  ::unlink((ctx + "/case.json").c_str());

  std::vector<std::string> args;
  const json build_args = spec.value("build_args", json::object());
  for (const auto& [k, v] : build_args.items()) {
    args.push_back("--build-arg");
    args.push_back(k + "=" + v.template get<std::string>());
  }
  if (spec.contains("target")) args.insert(args.end(), {"--target", spec["target"]});

  // barge: build, save, unpack.
  std::vector<std::string> build = Barge({"build", "-q", "-t", "corpus:" + name});
  build.insert(build.end(), args.begin(), args.end());
  build.push_back(ctx);
  ASSERT_EQ(Run(build).exit_code, 0);
  std::string barge_layout = work_.path() + "/barge-layout";
  ASSERT_TRUE(MakeDirs(barge_layout).ok());
  Run(Barge({"save", "corpus:" + name, "-o", work_.path() + "/barge.tar"}));
  Run({"tar", "-xf", work_.path() + "/barge.tar", "-C", barge_layout});
  json barge_config;
  ASSERT_NO_FATAL_FAILURE(
      Unpack(barge_layout, "corpus:" + name, work_.path() + "/barge-bundle", &barge_config));
  std::map<std::string, json> barge_tree = Tree(work_.path() + "/barge-bundle/rootfs");

  std::vector<std::string> problems;
  auto check = [&](const json& item, bool deviation) {
    std::string what = item.value("what", "");
    if (deviation && item.value("why", "").empty())
      problems.push_back(what + ": a buildah deviation needs a 'why'");
    // "/dir/**": the directory and everything below it.
    if (what.size() > 3 && what.compare(what.size() - 3, 3, "/**") == 0) {
      std::string dir = what.substr(0, what.size() - 3);
      int matched = 0;
      for (const auto& [p, e] : barge_tree) {
        if (p != dir && p.rfind(dir + "/", 0) != 0) continue;
        ++matched;
        std::string m = Mismatch(item.value("barge", json()), e);
        if (!m.empty()) problems.push_back("barge " + p + ": " + m);
      }
      if (matched == 0) problems.push_back("barge " + what + ": nothing there");
      return;
    }
    json actual;
    if (!what.empty() && what[0] == '/') {
      auto it = barge_tree.find(what);
      if (it != barge_tree.end()) actual = it->second;
    } else {
      actual = ConfigField(barge_config, what);
    }
    std::string m = Mismatch(item.value("barge", json()), actual);
    if (!m.empty()) problems.push_back("barge " + what + ": " + m);
  };
  std::set<std::string> deviating;
  // The corpus-wide deviations (corpus.json) and the case's own.
  auto common = json::parse(Text(std::string(kCorpus) + "/corpus.json"), nullptr, false);
  ASSERT_TRUE(common.is_object()) << "corpus.json is not a JSON object";
  for (const json* list : {&common, &spec}) {
    for (const json& item : list->value("buildah_deviations", json::array())) {
      check(item, true);
      deviating.insert(item.value("what", ""));
    }
  }
  for (const json& item : spec.value("expect", json::array())) check(item, false);

  std::string skip = spec.value("buildah", "");
  if (skip.rfind("skip:", 0) != 0) {
    std::vector<std::string> bud = With(bh_, {"bud", "-q", "--format", "docker", "--isolation",
                                              "chroot", "--layers=false", "-t", "corpus:" + name});
    bud.insert(bud.end(), args.begin(), args.end());
    bud.push_back(ctx);
    ASSERT_EQ(Run(bud).exit_code, 0);
    std::string buildah_layout = work_.path() + "/buildah-layout";
    Run(With(bh_, {"push", "-q", "corpus:" + name, "oci:" + buildah_layout + ":corpus:" + name}));
    json buildah_oci_config;
    ASSERT_NO_FATAL_FAILURE(Unpack(buildah_layout, "corpus:" + name,
                                   work_.path() + "/buildah-bundle", &buildah_oci_config));
    // The docker-format config keeps what an OCI config drops (Healthcheck, OnBuild, Shell).
    auto inspect = json::parse(Run(With(bh_, {"inspect", "--type", "image", "corpus:" + name})).out,
                               nullptr, false);
    json buildah_config = inspect.value("Docker", json::object());
    std::map<std::string, json> buildah_tree = Tree(work_.path() + "/buildah-bundle/rootfs");

    for (const std::string& field : ConfigFields()) {
      if (deviating.count(field)) continue;
      json a = ConfigField(barge_config, field), b = ConfigField(buildah_config, field);
      if (a != b) problems.push_back(field + ": barge " + Dump(a) + ", buildah " + Dump(b));
    }
    std::set<std::string> paths;
    for (const auto& [p, e] : barge_tree) paths.insert(p);
    for (const auto& [p, e] : buildah_tree) paths.insert(p);
    auto deviates = [&](const std::string& p) {
      if (deviating.count(p)) return true;
      for (const std::string& d : deviating) {
        if (d.size() > 3 && d.compare(d.size() - 3, 3, "/**") == 0) {
          std::string dir = d.substr(0, d.size() - 3);
          if (p == dir || p.rfind(dir + "/", 0) == 0) return true;
        }
      }
      return false;
    };
    for (const std::string& p : paths) {
      if (deviates(p)) continue;
      auto a = barge_tree.find(p), b = buildah_tree.find(p);
      if (a == barge_tree.end()) {
        problems.push_back(p + ": only buildah has it: " + Dump(b->second));
      } else if (b == buildah_tree.end()) {
        problems.push_back(p + ": only barge has it: " + Dump(a->second));
      } else if (a->second != b->second) {
        problems.push_back(p + ": barge " + Dump(a->second) + ", buildah " + Dump(b->second));
      }
    }
  }
  std::string report;
  for (const std::string& p : problems) report += "\n  " + p;
  EXPECT_TRUE(problems.empty()) << name << ":" << report;
}

INSTANTIATE_TEST_SUITE_P(Corpus, BuildCorpusTest, ::testing::ValuesIn(CaseNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace barge
