// Extraction must never touch anything outside its root. Each case here is a crafted archive
// of the kind containerd, umoci and buildah test against.
#include "oci/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>

#include "base/file_util.h"
#include "oci/digest.h"
#include "oci/progress.h"
#include "oci/test_util.h"

namespace barge::oci {
namespace {

using testing::Compression;
using testing::ListTree;
using testing::MakeTar;
using testing::TarEntry;

class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::Make("barge-archive-test-");
    ASSERT_TRUE(t.ok()) << t.status().message();
    tmp_ = std::move(*t);
    root_ = tmp_.path() + "/root";
    outside_ = tmp_.path() + "/outside";
    ASSERT_TRUE(MakeDirs(root_).ok());
    ASSERT_TRUE(MakeDirs(outside_).ok());
    ASSERT_TRUE(WriteFile(outside_ + "/secret", "secret").ok());
  }

  Result<TarDigests> Extract(const std::string& tar, ExtractOptions options = {}) {
    std::string path = tmp_.path() + "/in.tar";
    RETURN_IF_ERROR(WriteFile(path, tar));
    ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
    return ExtractTar(fd.get(), root_, options);
  }

  // The outside directory still holds exactly the untouched secret.
  void ExpectOutsideUntouched() {
    EXPECT_EQ(ListTree(outside_), std::vector<std::string>{"secret"});
    auto s = ReadFile(outside_ + "/secret");
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(*s, "secret");
    std::vector<std::string> top;
    for (const std::string& p : ListTree(tmp_.path())) {
      if (p.rfind("root/", 0) != 0) top.push_back(p);
    }
    EXPECT_EQ(top, (std::vector<std::string>{"in.tar", "outside", "outside/secret", "root"}))
        << "only root/ may change";
  }

  TempDir tmp_;
  std::string root_;
  std::string outside_;
};

TEST_F(ArchiveTest, ExtractsFilesDirsLinksAndComputesDigests) {
  std::string tar = MakeTar({{"etc", TarEntry::kDir, "", "", 0755},
                             {"etc/hosts", TarEntry::kFile, "127.0.0.1 localhost\n", "", 0640},
                             {"bin/sh", TarEntry::kFile, "#!", "", 0755},
                             {"bin/ash", TarEntry::kHardlink, "", "bin/sh"},
                             {"usr/bin", TarEntry::kSymlink, "", "/bin"},
                             {"run/fifo", TarEntry::kFifo, "", "", 0600}});
  std::string gz = MakeTar({{"etc", TarEntry::kDir, "", "", 0755},
                            {"etc/hosts", TarEntry::kFile, "127.0.0.1 localhost\n", "", 0640},
                            {"bin/sh", TarEntry::kFile, "#!", "", 0755},
                            {"bin/ash", TarEntry::kHardlink, "", "bin/sh"},
                            {"usr/bin", TarEntry::kSymlink, "", "/bin"},
                            {"run/fifo", TarEntry::kFifo, "", "", 0600}},
                           Compression::kGzip);
  auto d = Extract(gz);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->compressed_digest, DigestOf(gz));
  EXPECT_EQ(d->diff_id, DigestOf(tar));
  EXPECT_EQ(d->entries, 6u);
  EXPECT_EQ(*ReadFile(root_ + "/etc/hosts"), "127.0.0.1 localhost\n");
  struct stat a {
  }, b{};
  ASSERT_EQ(::stat((root_ + "/bin/sh").c_str(), &a), 0);
  ASSERT_EQ(::stat((root_ + "/bin/ash").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_mode & 07777, 0755u);
  ASSERT_EQ(::lstat((root_ + "/etc/hosts").c_str(), &a), 0);
  EXPECT_EQ(a.st_mode & 07777, 0640u);
  EXPECT_EQ(a.st_mtime, 1700000000);
  char target[64] = {};
  ASSERT_GT(::readlink((root_ + "/usr/bin").c_str(), target, sizeof target), 0);
  EXPECT_STREQ(target, "/bin");
  ASSERT_EQ(::lstat((root_ + "/run/fifo").c_str(), &a), 0);
  EXPECT_TRUE(S_ISFIFO(a.st_mode));
}

TEST_F(ArchiveTest, ZstdLayersExtract) {
  auto d = Extract(MakeTar({{"a", TarEntry::kFile, "zstd"}}, Compression::kZstd));
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(*ReadFile(root_ + "/a"), "zstd");
}

TEST_F(ArchiveTest, RejectsDotDot) {
  for (std::string path : {"../outside/evil", "a/../../outside/evil", "./../evil"}) {
    auto d = Extract(MakeTar({{path, TarEntry::kFile, "x"}}));
    ASSERT_FALSE(d.ok()) << path;
    EXPECT_NE(d.status().message().find("contains '..'"), std::string::npos)
        << d.status().message();
  }
  ExpectOutsideUntouched();
}

TEST_F(ArchiveTest, LeadingSlashesNameEntriesBelowTheRoot) {
  // As umoci insert and ko write layers: "/" and "/etc/..." (and GNU tar -P), unpacked relative
  // to the root as umoci and containers-storage do.
  auto d = Extract(MakeTar({{"/", TarEntry::kDir, "", "", 0755},
                            {"/etc", TarEntry::kDir, "", "", 0750},
                            {"/etc/conf", TarEntry::kFile, "conf"},
                            {"//etc/hard", TarEntry::kHardlink, "", "/etc/conf"},
                            {outside_ + "/evil", TarEntry::kFile, "x"}}));
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(*ReadFile(root_ + "/etc/conf"), "conf");
  EXPECT_EQ(*ReadFile(root_ + "/etc/hard"), "conf");
  struct stat st {};
  ASSERT_EQ(::stat((root_ + "/etc").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(*ReadFile(root_ + outside_ + "/evil"), "x");
  ExpectOutsideUntouched();
  // '..' stays refused, with or without the slash.
  for (std::string path : {"/../evil", "/a/../../evil"}) {
    auto bad = Extract(MakeTar({{path, TarEntry::kFile, "x"}}));
    ASSERT_FALSE(bad.ok()) << path;
    EXPECT_NE(bad.status().message().find("contains '..'"), std::string::npos)
        << bad.status().message();
  }
  ExpectOutsideUntouched();
}

// A pax tar as Go's archive/tar (docker, BuildKit, containerd) writes non-ASCII names: the bytes
// in a "path" record of an 'x' header, with no hdrcharset record.
std::string GoStyleTar(const std::vector<std::pair<std::string, std::string>>& files) {
  auto header = [](const std::string& name, char type, size_t size) {
    std::string h(512, '\0');
    std::memcpy(h.data(), name.data(), std::min<size_t>(name.size(), 99));
    std::memcpy(h.data() + 100, "0000644", 7);
    std::memcpy(h.data() + 108, "0000000", 7);
    std::memcpy(h.data() + 116, "0000000", 7);
    std::snprintf(h.data() + 124, 12, "%011zo", size);
    std::memcpy(h.data() + 136, "00000000000", 11);
    h[156] = type;
    std::memcpy(h.data() + 257,
                "ustar\0"
                "00",
                8);
    std::memset(h.data() + 148, ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    std::snprintf(h.data() + 148, 8, "%06o", sum);
    return h;
  };
  auto pad = [](std::string s) { return s + std::string((512 - s.size() % 512) % 512, '\0'); };
  std::string out;
  for (const auto& [name, data] : files) {
    std::string record = " path=" + name + "\n";
    size_t len = record.size() + 2;
    if (std::to_string(len).size() + record.size() != len) ++len;
    record = std::to_string(len) + record;
    out += header("PaxHeaders/x", 'x', record.size()) + pad(record);
    out += header("ignored", '0', data.size()) + pad(data);
  }
  return out + std::string(1024, '\0');
}

TEST_F(ArchiveTest, NamesAreBytes) {
  // Docker's layers carry UTF-8 names in pax records; barge's own (below) write any bytes.
  auto d = Extract(GoStyleTar({{"\xc3\xbc", "u"}, {"caf\xc3\xa9/men\xc3\xbc", "m"}}));
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(*ReadFile(root_ + "/\xc3\xbc"), "u");
  EXPECT_EQ(*ReadFile(root_ + "/caf\xc3\xa9/men\xc3\xbc"), "m");

  // A tree with UTF-8 and non-UTF-8 names, in names and link targets, written as a layer and
  // unpacked again.
  std::string src = tmp_.path() + "/src";
  ASSERT_TRUE(MakeDirs(src + "/r\xc3\xa9pertoire").ok());
  ASSERT_TRUE(WriteFile(src + "/r\xc3\xa9pertoire/\xc3\xbc.txt", "utf8").ok());
  ASSERT_TRUE(WriteFile(src + "/latin1-\xfc", "latin1").ok());
  ASSERT_EQ(::symlink("r\xc3\xa9pertoire/\xc3\xbc.txt", (src + "/lien-\xe2\x86\x92").c_str()), 0);
  ASSERT_EQ(::link((src + "/latin1-\xfc").c_str(), (src + "/hard-\xc3\xa9").c_str()), 0);
  std::string blob;
  auto w = WriteLayerFromDir(src, [&](std::string_view b) {
    blob.append(b);
    return Status::Ok();
  });
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_TRUE(RemoveTree(root_).ok());
  ASSERT_TRUE(MakeDirs(root_).ok());
  auto x = Extract(blob);
  ASSERT_TRUE(x.ok()) << x.status().message();
  EXPECT_EQ(ListTree(root_), ListTree(src));
  EXPECT_EQ(*ReadFile(root_ + "/lien-\xe2\x86\x92"), "utf8");
  struct stat a {
  }, b{};
  ASSERT_EQ(::stat((root_ + "/latin1-\xfc").c_str(), &a), 0);
  ASSERT_EQ(::stat((root_ + "/hard-\xc3\xa9").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
}

TEST_F(ArchiveTest, AbsoluteSymlinkIsResolvedInsideRoot) {
  auto d = Extract(MakeTar({{"link", TarEntry::kSymlink, "", outside_},
                            {"link/evil", TarEntry::kFile, "pwned"},
                            {"link/secret", TarEntry::kFile, "overwritten"}}));
  // Either refused or written beneath the root; never outside.
  if (d.ok()) {
    EXPECT_EQ(*ReadFile(root_ + outside_ + "/evil"), "pwned");
  }
  ExpectOutsideUntouched();
}

TEST_F(ArchiveTest, RelativeSymlinkCannotClimbOut) {
  auto d = Extract(MakeTar({{"a/up", TarEntry::kSymlink, "", "../../../../../../../.."},
                            {"a/up" + outside_ + "/evil", TarEntry::kFile, "pwned"}}));
  if (d.ok()) {
    EXPECT_TRUE(PathExists(root_ + outside_ + "/evil"));
  }
  ExpectOutsideUntouched();
}

TEST_F(ArchiveTest, SymlinkReplacingADirectoryCannotRedirectLaterEntries) {
  auto d = Extract(MakeTar({{"d", TarEntry::kDir, "", "", 0755},
                            {"d/ok", TarEntry::kFile, "ok"},
                            {"d", TarEntry::kSymlink, "", "../outside"},
                            {"d/evil", TarEntry::kFile, "pwned"},
                            {"d/secret", TarEntry::kFile, "overwritten"}}));
  if (d.ok()) {
    EXPECT_FALSE(PathExists(root_ + "/d/ok"));  // the directory was replaced
  }
  ExpectOutsideUntouched();
}

TEST_F(ArchiveTest, EntriesReplaceSymlinksInsteadOfWritingThroughThem) {
  auto d = Extract(MakeTar({{"f", TarEntry::kSymlink, "", outside_ + "/secret"},
                            {"f", TarEntry::kFile, "overwritten"},
                            {"g", TarEntry::kSymlink, "", "../outside/secret"},
                            {"g", TarEntry::kFile, "overwritten"},
                            {"d", TarEntry::kSymlink, "", outside_},
                            {"d", TarEntry::kDir, "", "", 0777}}));
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(*ReadFile(root_ + "/f"), "overwritten");
  struct stat st {};
  ASSERT_EQ(::lstat((root_ + "/d").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  ASSERT_EQ(::stat(outside_.c_str(), &st), 0);
  EXPECT_NE(st.st_mode & 0777, 0777u);
  ExpectOutsideUntouched();
}

TEST_F(ArchiveTest, OverlayXattrsFromTheArchiveAreIgnored) {
  if (::geteuid() != 0) GTEST_SKIP() << "trusted xattrs need root";
  auto d = Extract(MakeTar({{"d",
                             TarEntry::kDir,
                             "",
                             "",
                             0755,
                             0,
                             0,
                             0,
                             0,
                             {{"trusted.overlay.opaque", "y"}, {"user.note", "kept"}}}}));
  ASSERT_TRUE(d.ok()) << d.status().message();
  char v[16] = {};
  EXPECT_LT(::getxattr((root_ + "/d").c_str(), "trusted.overlay.opaque", v, sizeof v), 0);
  EXPECT_EQ(::getxattr((root_ + "/d").c_str(), "user.note", v, sizeof v), 4);
}

TEST_F(ArchiveTest, HardlinksCannotReachOutside) {
  auto d = Extract(MakeTar({{"h", TarEntry::kHardlink, "", "../outside/secret"}}));
  EXPECT_FALSE(d.ok());
  d = Extract(MakeTar({{"h", TarEntry::kHardlink, "", outside_ + "/secret"}}));
  EXPECT_FALSE(d.ok());
  // Through a symlink planted first: resolved inside the root, where there is no secret.
  d = Extract(MakeTar({{"l", TarEntry::kSymlink, "", outside_},
                       {"h", TarEntry::kHardlink, "", "l/secret"},
                       {"h", TarEntry::kFile, "overwritten"}}));
  EXPECT_FALSE(d.ok());
  ExpectOutsideUntouched();
  struct stat st {};
  ASSERT_EQ(::stat((outside_ + "/secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
}

TEST_F(ArchiveTest, HardlinkToSymlinkLinksTheSymlinkItself) {
  auto d = Extract(MakeTar(
      {{"l", TarEntry::kSymlink, "", outside_ + "/secret"}, {"h", TarEntry::kHardlink, "", "l"}}));
  ASSERT_TRUE(d.ok()) << d.status().message();
  struct stat st {};
  ASSERT_EQ(::lstat((root_ + "/h").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  ExpectOutsideUntouched();
}

TEST_F(ArchiveTest, DeviceNodesAreNeverCreated) {
  auto d = Extract(MakeTar({{"dev/sda", TarEntry::kBlockDev, "", "", 0666, 0, 0, 8, 0},
                            {"dev/mem", TarEntry::kCharDev, "", "", 0666, 0, 0, 1, 1},
                            {"dev/null", TarEntry::kCharDev, "", "", 0666, 0, 0, 1, 3}}));
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->skipped_devices, 3u);
  EXPECT_FALSE(PathExists(root_ + "/dev/sda"));
  EXPECT_FALSE(PathExists(root_ + "/dev/mem"));
}

TEST_F(ArchiveTest, LayerFromDirKeepsDeviceNodes) {
  // A RUN step's `mknod` is image content (docker's layers keep it); a 0/0 node is a whiteout.
  if (::geteuid() != 0) GTEST_SKIP() << "mknod needs root";
  std::string src = tmp_.path() + "/src";
  ASSERT_TRUE(MakeDirs(src).ok());
  ASSERT_EQ(::mknod((src + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_EQ(::chmod((src + "/null").c_str(), 0666), 0);  // past the umask
  ASSERT_EQ(::mknod((src + "/loop9").c_str(), S_IFBLK | 0600, makedev(7, 9)), 0);
  ASSERT_EQ(::mknod((src + "/gone").c_str(), S_IFCHR, makedev(0, 0)), 0);
  std::string blob;
  auto w = WriteLayerFromDir(src, [&](std::string_view b) {
    blob.append(b);
    return Status::Ok();
  });
  ASSERT_TRUE(w.ok()) << w.status().message();
  struct archive* a = archive_read_new();
  archive_read_support_filter_gzip(a);
  archive_read_support_format_tar(a);
  ASSERT_EQ(archive_read_open_memory(a, blob.data(), blob.size()), ARCHIVE_OK);
  std::map<std::string, std::string> entries;
  struct archive_entry* e = nullptr;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    entries[archive_entry_pathname(e)] =
        fmt::format("{:o} {},{} {:o}", archive_entry_filetype(e), archive_entry_rdevmajor(e),
                    archive_entry_rdevminor(e), archive_entry_perm(e));
  }
  archive_read_free(a);
  EXPECT_EQ(entries, (std::map<std::string, std::string>{{".wh.gone", "100000 0,0 0"},
                                                         {"loop9", "60000 7,9 600"},
                                                         {"null", "20000 1,3 666"}}));
}

TEST_F(ArchiveTest, WhiteoutsBecomeOverlayForm) {
  if (::geteuid() != 0) GTEST_SKIP() << "whiteout devices and trusted xattrs need root";
  auto d = Extract(MakeTar({{"a", TarEntry::kDir, "", "", 0755},
                            {"a/.wh.gone", TarEntry::kFile, ""},
                            {"b", TarEntry::kDir, "", "", 0755},
                            {"b/.wh..wh..opq", TarEntry::kFile, ""},
                            {"b/kept", TarEntry::kFile, "k"}}));
  ASSERT_TRUE(d.ok()) << d.status().message();
  struct stat st {};
  ASSERT_EQ(::lstat((root_ + "/a/gone").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_FALSE(PathExists(root_ + "/a/.wh.gone"));
  char v[4] = {};
  EXPECT_EQ(::getxattr((root_ + "/b").c_str(), "trusted.overlay.opaque", v, sizeof v), 1);
  EXPECT_EQ(v[0], 'y');
  EXPECT_FALSE(PathExists(root_ + "/b/.wh..wh..opq"));
}

TEST_F(ArchiveTest, WhiteoutsCannotNameOutsidePaths) {
  auto d = Extract(MakeTar({{"../outside/.wh.secret", TarEntry::kFile, ""}}));
  EXPECT_FALSE(d.ok());
  d = Extract(MakeTar({{".wh..", TarEntry::kFile, ""}}));
  EXPECT_FALSE(d.ok());
  if (::geteuid() == 0) {
    d = Extract(MakeTar({{"l", TarEntry::kSymlink, "", outside_},
                         {"l/.wh.secret", TarEntry::kFile, ""},
                         {"l/.wh..wh..opq", TarEntry::kFile, ""}}));
    // The symlink resolves beneath the root, where its target does not exist: an error.
    EXPECT_FALSE(d.ok());
    char v[4] = {};
    EXPECT_LT(::getxattr(outside_.c_str(), "trusted.overlay.opaque", v, sizeof v), 0);
  }
  ExpectOutsideUntouched();
}

TEST_F(ArchiveTest, PlainModeKeepsWhiteoutFilesAsFiles) {
  ExtractOptions options;
  options.whiteouts = WhiteoutMode::kPlain;
  auto d = Extract(MakeTar({{"a/.wh.b", TarEntry::kFile, "x"}}), options);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(*ReadFile(root_ + "/a/.wh.b"), "x");
}

TEST_F(ArchiveTest, DecompressionBombIsBounded) {
  // Many entries of 1 MiB of zeros: each small, together over the limit.
  std::vector<TarEntry> entries;
  for (int i = 0; i < 32; ++i)
    entries.push_back({"bomb" + std::to_string(i), TarEntry::kFile, std::string(1 << 20, '\0')});
  std::string gz = MakeTar(entries, Compression::kGzip);
  ASSERT_LT(gz.size(), 1u << 20);
  ExtractOptions options;
  options.max_bytes = 4 << 20;
  auto d = Extract(gz, options);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("exceeds the limit"), std::string::npos)
      << d.status().message();
  d = Extract(MakeTar({{"big", TarEntry::kFile, std::string(5 << 20, 'x')}}, Compression::kGzip),
              options);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("larger than the limit"), std::string::npos)
      << d.status().message();
  options.max_bytes = 64 << 20;
  options.max_entries = 2;
  d = Extract(MakeTar({{"a", TarEntry::kFile}, {"b", TarEntry::kFile}, {"c", TarEntry::kFile}}),
              options);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("more than 2 entries"), std::string::npos);
}

TEST_F(ArchiveTest, GarbageIsAClearError) {
  auto d = Extract("this is not a tar archive at all, just some text........");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message().find('\n'), std::string::npos);
}

TEST_F(ArchiveTest, LayerFromDirRoundTripsWhiteoutsAndLinks) {
  std::string src = tmp_.path() + "/src";
  ASSERT_TRUE(MakeDirs(src + "/d/e").ok());
  ASSERT_TRUE(WriteFile(src + "/d/e/f", "content").ok());
  ASSERT_EQ(::link((src + "/d/e/f").c_str(), (src + "/g").c_str()), 0);
  ASSERT_EQ(::symlink("d/e/f", (src + "/s").c_str()), 0);
  bool root = ::geteuid() == 0;
  if (root) {
    ASSERT_EQ(::mknod((src + "/d/gone").c_str(), S_IFCHR, makedev(0, 0)), 0);
    ASSERT_EQ(::setxattr((src + "/d/e").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  }
  std::string blob;
  auto w = WriteLayerFromDir(src, [&](std::string_view b) {
    blob.append(b);
    return Status::Ok();
  });
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->compressed_digest, DigestOf(blob));
  auto d = Extract(blob);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->diff_id, w->diff_id);
  EXPECT_EQ(ListTree(root_), ListTree(src));
  struct stat a {
  }, b{};
  ASSERT_EQ(::stat((root_ + "/g").c_str(), &a), 0);
  ASSERT_EQ(::stat((root_ + "/d/e/f").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  if (root) {
    ASSERT_EQ(::lstat((root_ + "/d/gone").c_str(), &a), 0);
    EXPECT_TRUE(S_ISCHR(a.st_mode));
    char v[4] = {};
    EXPECT_EQ(::getxattr((root_ + "/d/e").c_str(), "trusted.overlay.opaque", v, sizeof v), 1);
  }
  // Reproducible: the same tree gives the same layer.
  std::string again;
  auto w2 = WriteLayerFromDir(src, [&](std::string_view b) {
    again.append(b);
    return Status::Ok();
  });
  ASSERT_TRUE(w2.ok());
  EXPECT_EQ(w2->compressed_digest, w->compressed_digest);
}

TEST_F(ArchiveTest, RecompressValidatesAndGzips) {
  std::string tar = MakeTar({{"a", TarEntry::kFile, "x"}}, Compression::kZstd);
  std::string path = tmp_.path() + "/in.tar";
  ASSERT_TRUE(WriteFile(path, tar).ok());
  auto fd = OpenFile(path, O_RDONLY);
  std::string out;
  auto d = RecompressTar(fd->get(),
                         [&](std::string_view b) {
                           out.append(b);
                           return Status::Ok();
                         },
                         {});
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->compressed_digest, DigestOf(out));
  EXPECT_EQ(d->diff_id, DigestOf(MakeTar({{"a", TarEntry::kFile, "x"}})));
  ASSERT_TRUE(WriteFile(path, MakeTar({{"../x", TarEntry::kFile, "x"}})).ok());
  fd = OpenFile(path, O_RDONLY);
  d = RecompressTar(fd->get(), [](std::string_view) { return Status::Ok(); }, {});
  EXPECT_FALSE(d.ok());
}

// Progress comes per MiB of input, not per block, and its last call is the whole input.
TEST_F(ArchiveTest, ReadProgressIsThrottledAndEndsAtTheInputSize) {
  std::string data(5 << 20, 'x');
  for (size_t i = 0; i < data.size(); i += 511) data[i] = static_cast<char>(i * 7);
  std::string tar = MakeTar({{"big", TarEntry::kFile, data}});
  auto check = [&](const std::vector<uint64_t>& calls, const std::string& how) {
    ASSERT_FALSE(calls.empty()) << how;
    EXPECT_EQ(calls.back(), tar.size()) << how;
    EXPECT_LE(calls.size(), tar.size() / kProgressStep + 1) << how;
    for (size_t i = 1; i < calls.size(); ++i) {
      EXPECT_GT(calls[i], calls[i - 1]) << how;
      if (i + 1 < calls.size()) {
        EXPECT_GE(calls[i] - calls[i - 1], kProgressStep) << how;
      }
    }
  };
  std::vector<uint64_t> calls;
  ExtractOptions options;
  options.read_progress = [&](uint64_t read) { calls.push_back(read); };
  ASSERT_TRUE(Extract(tar, options).ok());
  check(calls, "extract");
  calls.clear();
  auto fd = OpenFile(tmp_.path() + "/in.tar", O_RDONLY);
  ASSERT_TRUE(fd.ok());
  ASSERT_TRUE(RecompressTar(
                  fd->get(), [](std::string_view) { return Status::Ok(); }, options)
                  .ok());
  check(calls, "recompress");
}

TEST_F(ArchiveTest, ReadOnlyDirectoriesUnpackWithoutRootAndStayRemovable) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to become nobody";
  std::string tar = MakeTar({{"ro", TarEntry::kDir, "", "", 0555},
                             {"ro/f", TarEntry::kFile, "f"},
                             {"none", TarEntry::kDir, "", "", 0},
                             {"none/sub", TarEntry::kDir, "", "", 0500},
                             {"none/sub/g", TarEntry::kFile, "g"}});
  std::string path = tmp_.path() + "/in.tar";
  ASSERT_TRUE(WriteFile(path, tar).ok());
  ASSERT_EQ(::chmod(tmp_.path().c_str(), 0755), 0);
  ASSERT_EQ(::chown(root_.c_str(), 65534, 65534), 0);
  // As nobody: bit 0 = extraction failed, 1 = wrong modes, 2 = RemoveTree failed.
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(100);
    int result = 0;
    auto fd = OpenFile(path, O_RDONLY);
    ExtractOptions options;
    options.set_owner = false;
    auto r = fd.ok() ? ExtractTar(fd->get(), root_, options) : Result<TarDigests>(fd.status());
    if (!r.ok()) {
      fprintf(stderr, "%s\n", r.status().message().c_str());
      result |= 1;
    }
    struct stat st {};
    if (::stat((root_ + "/ro").c_str(), &st) != 0 || (st.st_mode & 07777) != 0555) result |= 2;
    if (::stat((root_ + "/none").c_str(), &st) != 0 || (st.st_mode & 07777) != 0) result |= 2;
    if (!RemoveTree(root_ + "/ro").ok() || !RemoveTree(root_ + "/none").ok()) result |= 4;
    ::_exit(result);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(ListTree(root_), std::vector<std::string>{});
}

}  // namespace
}  // namespace barge::oci
