#include "oci/builder.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>

#include "base/file_util.h"
#include "base/open_beneath.h"
#include "oci/archive.h"
#include "oci/containerfile.h"
#include "oci/detail/build_fs.h"
#include "oci/digest.h"
#include "oci/reference.h"
#include "oci/transfer.h"

namespace barge::oci {

using nlohmann::json;

namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

using detail::AllDigits;
using detail::ApplyLayer;
using detail::ClimbsAboveRoot;
using detail::CopyPolicy;
using detail::CopyVisitor;
using detail::HashVisitor;
using detail::Ids;
using detail::IgnoreRules;
using detail::JoinPath;
using detail::ListDir;
using detail::MergedView;
using detail::ResolveUser;
using detail::SplitPath;
using detail::WalkSource;

// ---------------------------------------------------------------- the build

struct StageState {
  std::vector<Descriptor> layers;
  std::vector<std::string> diff_ids;
  json config;  // the whole config document
  std::string key;
  std::string created;  // time of the newest layer
  std::map<std::string, std::string> args;
  std::vector<std::string> shell = {"/bin/sh", "-c"};
  std::optional<TempDir> flat;  // flattened root, made on demand for COPY --from
};

class Builder {
 public:
  Builder(const ImageStore& store, const BuildOptions& options)
      : store_(store), options_(options) {}

  Result<BuildResult> Run() {
    ASSIGN_OR_RETURN(Containerfile file, Load());
    // Which stages are needed: the target and, transitively, what it copies from.
    size_t target = file.stages.size() - 1;
    if (!options_.target.empty()) {
      bool found = false;
      for (const Stage& s : file.stages) {
        if (s.name == options_.target) {
          target = static_cast<size_t>(s.index);
          found = true;
        }
      }
      if (!found) return InvalidArgument(fmt::format("no build stage named '{}'", options_.target));
    }
    // Global ARGs, usable in FROM lines.
    for (const Instruction& ins : file.global_args) DeclareArgs(ins, global_args_);
    // Resolve every base image now: a missing one is an error before any work.
    for (const Stage& s : file.stages) {
      std::string base = ExpandVariables(s.base, global_args_);
      if (base == "scratch" || StageIndex(file, base, s.index) >= 0) continue;
      Result<Image> image = store_.Resolve(base);
      if (!image.ok()) {
        return InvalidArgument(fmt::format("{}:{}: FROM {}: {}", file.file_name, s.line, base,
                                           image.status().message()));
      }
    }
    // Likewise the images that COPY --from names (stages are checked by the parser).
    for (const Stage& s : file.stages) {
      for (const Instruction& ins : s.instructions) {
        auto from = ins.flags.find("from");
        if (from == ins.flags.end() || from->second.find('$') != std::string::npos ||
            StageIndex(file, from->second, s.index) >= 0) {
          continue;
        }
        Result<Image> image = store_.Resolve(from->second);
        if (!image.ok()) {
          return InvalidArgument(fmt::format("{}:{}: COPY --from={}: {}", file.file_name, ins.line,
                                             from->second, image.status().message()));
        }
      }
    }
    total_steps_ = 0;
    for (size_t i = 0; i <= target; ++i)
      total_steps_ += 1 + static_cast<int>(file.stages[i].instructions.size());
    ASSIGN_OR_RETURN(UniqueFd writers, store_.LockBlobWriters());
    RETURN_IF_ERROR(MakeDirs(store_.root() + "/build-cache", 0700));
    for (size_t i = 0; i <= target; ++i) {
      ASSIGN_OR_RETURN(StageState state, BuildStage(file, file.stages[i]));
      states_.push_back(std::move(state));
    }
    StageState& final_state = states_[target];
    ASSIGN_OR_RETURN(Image image, Commit(final_state));
    BuildResult result;
    for (const std::string& tag : options_.tags) RETURN_IF_ERROR(store_.Tag(image.manifest, tag));
    if (options_.tags.empty()) RETURN_IF_ERROR(store_.AddUntagged(image.manifest));
    image.tags.clear();
    for (const std::string& tag : options_.tags)
      image.tags.push_back(ParseReference(tag)->ToString());
    result.image = std::move(image);
    result.steps = step_;
    result.cached_layers = cached_;
    result.built_layers = built_;
    return result;
  }

 private:
  Result<Containerfile> Load() {
    if (options_.context_dir.empty()) return InvalidArgument("build: no context directory");
    struct stat st {};
    if (::stat(options_.context_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return InvalidArgument(
          fmt::format("build context '{}' is not a directory", options_.context_dir));
    std::string path = options_.containerfile;
    if (path.empty()) {
      path = options_.context_dir + "/Containerfile";
      if (!PathExists(path)) path = options_.context_dir + "/Dockerfile";
    }
    // Bounded, and a file found in the context must be a regular one (a FIFO there would block).
    constexpr size_t kMaxBuildFileBytes = 16 << 20;
    Result<std::string> text = options_.containerfile.empty()
                                   ? ReadRegularFileLimited(path, kMaxBuildFileBytes)
                                   : ReadFileLimited(path, kMaxBuildFileBytes);
    if (!text.ok())
      return NotFound(fmt::format("cannot read the Containerfile: {}", text.status().message()));
    std::string name = path.substr(path.rfind('/') + 1);
    ASSIGN_OR_RETURN(Containerfile file, ParseContainerfile(*text, name));
    file_name_ = file.file_name;
    for (const auto& [k, v] : options_.build_args) {
      if (k.empty()) return InvalidArgument("--build-arg with an empty name");
    }
    std::string ignore_path = options_.context_dir + "/.containerignore";
    if (!PathExists(ignore_path)) ignore_path = options_.context_dir + "/.dockerignore";
    if (PathExists(ignore_path)) {
      ASSIGN_OR_RETURN(std::string ignore, ReadRegularFileLimited(ignore_path, kMaxBuildFileBytes));
      size_t pos = 0;
      while (pos < ignore.size()) {
        size_t end = ignore.find('\n', pos);
        if (end == std::string::npos) end = ignore.size();
        std::string line = ignore.substr(pos, end - pos);
        pos = end + 1;
        while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back())))
          line.pop_back();
        size_t start = line.find_first_not_of(" \t");
        if (start == std::string::npos || line[start] == '#') continue;
        ignore_.Add(line.substr(start));
      }
    }
    int fd = ::open(options_.context_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoError("open " + options_.context_dir);
    context_fd_.Reset(fd);
    context_real_ = RealPathBeneath(context_fd_.get(), "");
    return file;
  }

  // The real path of the open `fd` relative to `root` (an absolute real path); with an empty
  // `root`, the absolute real path. Empty if `fd` is not beneath `root`.
  static std::string RealPathBeneath(int fd, const std::string& root) {
    char buf[PATH_MAX];
    ssize_t n = ::readlink(fmt::format("/proc/self/fd/{}", fd).c_str(), buf, sizeof buf - 1);
    if (n <= 0) return "";
    std::string path(buf, static_cast<size_t>(n));
    if (root.empty()) return path;
    if (path == root) return "";
    if (path.rfind(root + "/", 0) != 0) return "";
    return path.substr(root.size() + 1);
  }

  static int StageIndex(const Containerfile& file, const std::string& ref, int before) {
    std::string lower = ref;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    for (const Stage& s : file.stages) {
      if (s.index >= before) break;
      if (!s.name.empty() && s.name == lower) return s.index;
    }
    if (AllDigits(lower) && std::stoi(lower) < before) return std::stoi(lower);
    return -1;
  }

  void DeclareArgs(const Instruction& ins, std::map<std::string, std::string>& scope) {
    for (const std::string& a : ins.args) {
      size_t eq = a.find('=');
      std::string name = a.substr(0, eq);
      auto given = options_.build_args.find(name);
      if (given != options_.build_args.end()) {
        scope[name] = given->second;
      } else if (eq != std::string::npos) {
        scope[name] = ExpandVariables(a.substr(eq + 1), scope);
      } else if (auto g = global_args_.find(name); g != global_args_.end()) {
        scope[name] = g->second;
      } else {
        scope.erase(name);
      }
    }
  }

  // "Containerfile:LINE: KEYWORD: message", without repeating a keyword the message starts with.
  Status Fail(const Instruction& ins, const Status& st) const {
    bool named = st.message().rfind(ins.keyword + " ", 0) == 0;
    return Status(st.code(), fmt::format("{}:{}: {}{}", file_name_, ins.line,
                                         named ? "" : ins.keyword + ": ", st.message()));
  }

  void Progress(const std::string& line) {
    if (options_.progress) options_.progress(line);
  }

  std::map<std::string, std::string> Vars(const StageState& s) const {
    std::map<std::string, std::string> vars = s.args;
    for (const json& e : s.config["config"].value("Env", json::array())) {
      std::string kv = e.get<std::string>();
      vars[kv.substr(0, kv.find('='))] =
          kv.find('=') == std::string::npos ? "" : kv.substr(kv.find('=') + 1);
    }
    return vars;
  }

  Result<StageState> BuildStage(const Containerfile& file, const Stage& stage) {
    StageState s;
    stage_set_cmd_ = false;
    std::string base = ExpandVariables(stage.base, global_args_);
    Progress(fmt::format("STEP {}/{}: FROM {}{}", ++step_, total_steps_, base,
                         stage.name.empty() ? "" : " AS " + stage.name));
    int from_stage = StageIndex(file, base, stage.index);
    if (from_stage >= 0) {
      const StageState& other = states_[static_cast<size_t>(from_stage)];
      s.layers = other.layers;
      s.diff_ids = other.diff_ids;
      s.config = other.config;
      s.key = other.key;
      s.created = other.created;
      s.shell = other.shell;
    } else if (base == "scratch") {
      s.config = {
          {"architecture", HostArchitecture()}, {"os", "linux"}, {"config", json::object()}};
      s.key = "scratch";
      s.created = "1970-01-01T00:00:00Z";
    } else {
      ASSIGN_OR_RETURN(Image image, store_.Resolve(base));
      s.layers = image.layers;
      s.diff_ids = image.diff_ids;
      s.config = image.config_document;
      s.key = "image " + image.manifest.digest;
      s.created = image.created;
    }
    if (!s.config.contains("config") || !s.config["config"].is_object())
      s.config["config"] = json::object();
    DropMistypedFields(s.config["config"]);
    if (!s.config.contains("history") || !s.config["history"].is_array())
      s.config["history"] = json::array();
    for (const Instruction& ins : stage.instructions) {
      Progress(fmt::format("STEP {}/{}: {}", ++step_, total_steps_, ins.ToString()));
      Status st = Step(file, stage, ins, s);
      if (!st.ok()) return st;
    }
    return s;
  }

  // The base image's config fields the steps read or extend, of the type they expect: a field of
  // another type (ParseImage ignores those, as docker does) is dropped rather than thrown on.
  static void DropMistypedFields(json& cfg) {
    for (const char* key : {"WorkingDir", "User", "StopSignal"}) {
      if (cfg.contains(key) && !cfg[key].is_string()) cfg.erase(key);
    }
    for (const char* key : {"Env", "Cmd", "Entrypoint", "Shell", "OnBuild"}) {
      if (!cfg.contains(key)) continue;
      const json& v = cfg[key];
      if (!v.is_array() ||
          !std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_string(); }))
        cfg.erase(key);
    }
    for (const char* key : {"Labels", "ExposedPorts", "Volumes"}) {
      if (cfg.contains(key) && !cfg[key].is_object()) cfg.erase(key);
    }
  }

  static void SetEnv(json& cfg, const std::string& key, const std::string& value) {
    json env = cfg.value("Env", json::array());
    json out = json::array();
    for (const json& e : env) {
      std::string kv = e.get<std::string>();
      if (kv.substr(0, kv.find('=')) != key) out.push_back(kv);
    }
    out.push_back(key + "=" + value);
    cfg["Env"] = out;
  }

  void History(StageState& s, const Instruction& ins, bool empty_layer) {
    json h = {{"created_by", ins.ToString()}};
    if (empty_layer) h["empty_layer"] = true;
    s.config["history"].push_back(h);
  }

  Status Step(const Containerfile& file, const Stage& stage, const Instruction& ins,
              StageState& s) {
    const std::string& k = ins.keyword;
    json& cfg = s.config["config"];
    auto vars = Vars(s);
    auto expand = [&](const std::string& t) { return ExpandVariables(t, vars); };
    if (k == "ARG") {
      DeclareArgs(ins, s.args);
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "ENV") {
      if (ins.args[0].find('=') == std::string::npos) {
        std::string value;
        for (size_t i = 1; i < ins.args.size(); ++i) value += (i > 1 ? " " : "") + ins.args[i];
        SetEnv(cfg, ins.args[0], expand(value));
      } else {
        for (const std::string& a : ins.args) {
          size_t eq = a.find('=');
          SetEnv(cfg, a.substr(0, eq), expand(a.substr(eq + 1)));
        }
      }
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "LABEL" || k == "MAINTAINER") {
      if (!cfg.contains("Labels") || !cfg["Labels"].is_object()) cfg["Labels"] = json::object();
      if (k == "MAINTAINER") {
        cfg["Labels"]["maintainer"] = expand(ins.text);
      } else {
        for (const std::string& a : ins.args) {
          size_t eq = a.find('=');
          cfg["Labels"][expand(a.substr(0, eq))] = expand(a.substr(eq + 1));
        }
      }
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "WORKDIR") {
      std::string dir = expand(ins.args[0]);
      std::string cur = cfg.value("WorkingDir", "/");
      if (dir.empty() || dir[0] != '/') dir = (cur.empty() ? "/" : cur) + "/" + dir;
      cfg["WorkingDir"] = "/" + JoinPath(SplitPath(dir));
      Status st = WorkdirStep(ins, s, cfg["WorkingDir"].get<std::string>());
      return st.ok() ? st : Fail(ins, st);
    }
    if (k == "USER") {
      cfg["User"] = expand(ins.args[0]);
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "EXPOSE") {
      if (!cfg.contains("ExposedPorts") || !cfg["ExposedPorts"].is_object())
        cfg["ExposedPorts"] = json::object();
      for (const std::string& p : ins.args) {
        std::string port = expand(p);
        if (port.find('/') == std::string::npos) port += "/tcp";
        cfg["ExposedPorts"][port] = json::object();
      }
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "VOLUME") {
      if (!cfg.contains("Volumes") || !cfg["Volumes"].is_object()) cfg["Volumes"] = json::object();
      for (const std::string& v : ins.args) cfg["Volumes"][expand(v)] = json::object();
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "STOPSIGNAL") {
      cfg["StopSignal"] = expand(ins.args[0]);
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "SHELL") {
      s.shell = ins.args;
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "HEALTHCHECK" || k == "ONBUILD") {
      // Like podman: the OCI image config has no place for these; say so and go on.
      Progress(fmt::format("WARN: {} is not supported by the OCI image format and is ignored", k));
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "CMD" || k == "ENTRYPOINT") {
      json argv = json::array();
      if (ins.json_form) {
        for (const std::string& a : ins.args) argv.push_back(a);
      } else if (!ins.text.empty()) {
        for (const std::string& a : s.shell) argv.push_back(a);
        argv.push_back(ins.text);
      }
      if (k == "ENTRYPOINT") {
        cfg["Entrypoint"] = argv;
        // Like docker: a new ENTRYPOINT drops a CMD inherited from the base image.
        if (!stage_set_cmd_) cfg.erase("Cmd");
      } else {
        cfg["Cmd"] = argv;
        stage_set_cmd_ = true;
      }
      History(s, ins, true);
      return Status::Ok();
    }
    Status st;
    if (k == "COPY" || k == "ADD") {
      st = CopyStep(file, stage, ins, s, vars);
    } else if (k == "RUN") {
      st = RunStepInstr(ins, s, vars);
    } else {
      st = Internal("unhandled instruction " + k);
    }
    return st.ok() ? st : Fail(ins, st);
  }

  // ---- cache

  std::string CachePath(const std::string& key) const {
    return store_.root() + "/build-cache/" + key + ".json";
  }

  bool TryCache(const std::string& key, const Instruction& ins, StageState& s) {
    if (options_.no_cache) return false;
    Result<std::string> text = ReadRegularFileLimited(CachePath(key), 1 << 20);
    if (!text.ok()) return false;
    json rec = json::parse(*text, nullptr, false);
    if (rec.is_discarded() || !rec.contains("layer")) return false;
    Result<Descriptor> layer = Descriptor::FromJson(rec["layer"], "build cache");
    std::string diff_id = rec.value("diff_id", "");
    if (!layer.ok() || !ValidateDigest(diff_id).ok() || !store_.HasBlob(layer->digest))
      return false;
    AddLayer(s, *layer, diff_id, rec.value("created", s.created), ins);
    s.key = key;
    ++cached_;
    Progress(fmt::format(" --> Using cache {}", DigestHex(layer->digest).substr(0, 12)));
    return true;
  }

  void AddLayer(StageState& s, const Descriptor& layer, const std::string& diff_id,
                const std::string& created, const Instruction& ins) {
    s.layers.push_back(layer);
    s.diff_ids.push_back(diff_id);
    if (created > s.created) s.created = created;
    History(s, ins, false);
  }

  // Tars `dir` into a layer blob, moves `dir` into the layer cache and records the step.
  Status CommitLayer(const std::string& dir, const std::string& key, const Instruction& ins,
                     StageState& s) {
    ASSIGN_OR_RETURN(BlobWriter w, store_.NewBlob());
    WriteLayerOptions wo;
    wo.gzip_level = options_.gzip_level;
    ASSIGN_OR_RETURN(TarDigests d, WriteLayerFromDir(dir, w.AsSink(), wo));
    ASSIGN_OR_RETURN(Descriptor layer,
                     w.Commit(std::string(kMediaTypeLayerGzip), d.compressed_digest));
    if (PathExists(store_.LayerDirPath(d.diff_id))) {
      RETURN_IF_ERROR(RemoveTree(dir));
    } else {
      RETURN_IF_ERROR(store_.AdoptLayerDir(dir, d.diff_id));
    }
    std::string created = NowRfc3339();
    json rec = {{"layer", layer.ToJson()},
                {"diff_id", d.diff_id},
                {"created", created},
                {"instruction", ins.ToString()}};
    RETURN_IF_ERROR(WriteFileAtomic(CachePath(key), rec.dump()));
    AddLayer(s, layer, d.diff_id, created, ins);
    s.key = key;
    ++built_;
    Progress(fmt::format(" --> {}", DigestHex(layer.digest).substr(0, 12)));
    return Status::Ok();
  }

  std::string StepKey(const StageState& s, const std::string& what) const {
    return HexSha256(s.key + "\n" + s.config["config"].dump() + "\n" + what);
  }

  Result<std::vector<std::string>> LowerDirs(const StageState& s) const {
    std::vector<std::string> dirs;
    for (size_t i = 0; i < s.layers.size(); ++i) {
      ASSIGN_OR_RETURN(std::string d, store_.LayerDir(s.layers[i], s.diff_ids[i]));
      dirs.push_back(std::move(d));
    }
    return dirs;
  }

  // ---- WORKDIR

  // Like docker, WORKDIR makes its directory when the image lacks it: a layer holding just the
  // missing directories (parents keep the metadata they have in the image).
  Status WorkdirStep(const Instruction& ins, StageState& s, const std::string& dir) {
    ASSIGN_OR_RETURN(std::vector<std::string> lowers, LowerDirs(s));
    MergedView view(lowers);
    ASSIGN_OR_RETURN(std::vector<std::string> comps, view.Resolve(SplitPath(dir), true));
    auto hit = view.Lookup(comps);
    if (comps.empty() || (hit && S_ISDIR(hit->second.st_mode))) {
      History(s, ins, true);
      return Status::Ok();
    }
    if (hit)
      return InvalidArgument(fmt::format("{} exists in the image and is not a directory", dir));
    std::string key = StepKey(s, "WORKDIR " + JoinPath(comps));
    if (TryCache(key, ins, s)) return Status::Ok();
    ASSIGN_OR_RETURN(TempDir layer, TempDir::MakeIn(store_.layers_dir(), ".tmp-workdir-"));
    for (size_t i = 1; i <= comps.size(); ++i) {
      std::string path = layer.path() + "/" + JoinPath(comps, i);
      if (::mkdir(path.c_str(), 0755) != 0) return ErrnoError("mkdir " + path);
      std::vector<std::string> sub(comps.begin(), comps.begin() + static_cast<long>(i));
      if (auto parent = view.Lookup(sub); parent && S_ISDIR(parent->second.st_mode)) {
        const struct stat& st = parent->second;
        if (::lchown(path.c_str(), st.st_uid, st.st_gid) != 0 && ::geteuid() == 0)
          return ErrnoError("chown " + path);
        if (::chmod(path.c_str(), st.st_mode & 07777) != 0) return ErrnoError("chmod " + path);
        struct timespec times[2] = {st.st_mtim, st.st_mtim};
        ::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW);
      }
    }
    std::string path = layer.Release();
    Status st = CommitLayer(path, key, ins, s);
    if (!st.ok()) (void)RemoveTree(path);
    return st;
  }

  // ---- COPY / ADD

  struct Source {
    std::string rel;       // as named (relative to the source root)
    std::string real_rel;  // the real path (symlinks resolved), for ignore rules
    UniqueFd fd;
    struct stat st {};
    bool archive = false;  // ADD: extract
  };

  Result<std::vector<Source>> ExpandSources(int root_fd, const std::string& root_name,
                                            const std::string& pattern, const IgnoreRules* ignore,
                                            bool is_add) {
    if (ClimbsAboveRoot(pattern)) {
      return InvalidArgument(fmt::format("source '{}' is outside the {}", pattern, root_name));
    }
    std::vector<std::string> comps = SplitPath(pattern);
    std::vector<std::string> matches = {""};
    for (const std::string& c : comps) {
      std::vector<std::string> next;
      bool glob = c.find_first_of("*?[") != std::string::npos;
      for (const std::string& m : matches) {
        if (!glob) {
          next.push_back(m.empty() ? c : m + "/" + c);
          continue;
        }
        int dfd = m.empty() ? ::fcntl(root_fd, F_DUPFD_CLOEXEC, 0)
                            : OpenBeneathRaw(root_fd, m, O_RDONLY | O_DIRECTORY);
        if (dfd < 0) continue;
        UniqueFd dir(dfd);
        for (const std::string& name : ListDir(dir.get())) {
          if (::fnmatch(c.c_str(), name.c_str(), 0) == 0)
            next.push_back(m.empty() ? name : m + "/" + name);
        }
      }
      matches = std::move(next);
    }
    std::vector<Source> out;
    for (const std::string& m : matches) {
      if (ignore != nullptr && !m.empty() && ignore->Excluded(m) && !ignore->MayReinclude(m))
        continue;
      int fd =
          m.empty() ? ::fcntl(root_fd, F_DUPFD_CLOEXEC, 0) : OpenBeneathRaw(root_fd, m, O_RDONLY);
      if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) continue;
        return ErrnoError(fmt::format("open '{}' in the {}", m, root_name));
      }
      Source src;
      src.rel = m;
      src.real_rel = m;
      src.fd.Reset(fd);
      if (ignore != nullptr) {
        // Through a symlink the source may be an excluded path: what .containerignore
        // excludes never enters an image. Rules below apply to the real path too.
        std::string real = RealPathBeneath(fd, context_real_);
        if (!real.empty() && ignore->Excluded(real) && !ignore->MayReinclude(real)) continue;
        if (!real.empty()) src.real_rel = real;
      }
      if (::fstat(fd, &src.st) != 0) return ErrnoError("stat " + m);
      if (is_add && S_ISREG(src.st.st_mode)) {
        src.archive = IsTarArchive(fmt::format("/proc/self/fd/{}", fd));
      }
      out.push_back(std::move(src));
    }
    if (out.empty()) {
      return NotFound(
          fmt::format("source '{}' not found in the {}{}", pattern, root_name,
                      ignore != nullptr ? " (or excluded by .containerignore/.dockerignore)" : ""));
    }
    return out;
  }

  Result<int> FlatRoot(const Containerfile& file, const std::string& from, int current,
                       std::string* name) {
    int idx = StageIndex(file, from, current);
    std::vector<std::string> lowers;
    std::optional<TempDir>* slot = nullptr;
    if (idx >= 0) {
      *name = "stage '" + from + "'";
      StageState& other = states_[static_cast<size_t>(idx)];
      slot = &other.flat;
      if (!other.flat) {
        ASSIGN_OR_RETURN(lowers, LowerDirs(other));
      }
    } else {
      *name = "image '" + from + "'";
      ASSIGN_OR_RETURN(Image image, store_.Resolve(from));
      slot = &image_flats_[image.manifest.digest];
      if (!*slot) {
        ASSIGN_OR_RETURN(lowers, store_.LayerDirs(image));
      }
    }
    if (!*slot) {
      ASSIGN_OR_RETURN(TempDir flat, TempDir::MakeIn(store_.tmp_dir(), "flat-"));
      std::string root = flat.path() + "/rootfs";
      for (const std::string& l : lowers) RETURN_IF_ERROR(ApplyLayer(l, root));
      if (!PathExists(root) && ::mkdir(root.c_str(), 0755) != 0) return ErrnoError("mkdir " + root);
      *slot = std::move(flat);
    }
    std::string root = (*slot)->path() + "/rootfs";
    int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoError("open " + root);
    return fd;
  }

  Status CopyStep(const Containerfile& file, const Stage& stage, const Instruction& ins,
                  StageState& s, const std::map<std::string, std::string>& vars) {
    bool is_add = ins.keyword == "ADD";
    std::vector<std::string> args;
    for (const std::string& a : ins.args) args.push_back(ExpandVariables(a, vars));
    std::string dest = args.back();
    args.pop_back();
    // Source root: the context, or another stage's / image's file system.
    UniqueFd src_root;
    std::string root_name = "build context";
    const IgnoreRules* ignore = &ignore_;
    if (auto from = ins.flags.find("from"); from != ins.flags.end()) {
      ASSIGN_OR_RETURN(
          int fd, FlatRoot(file, ExpandVariables(from->second, vars), stage.index, &root_name));
      src_root.Reset(fd);
      ignore = nullptr;
    } else {
      src_root.Reset(::fcntl(context_fd_.get(), F_DUPFD_CLOEXEC, 0));
    }
    std::vector<Source> sources;
    for (const std::string& a : args) {
      ASSIGN_OR_RETURN(std::vector<Source> found,
                       ExpandSources(src_root.get(), root_name, a, ignore, is_add));
      for (Source& f : found) sources.push_back(std::move(f));
    }
    // The destination, resolved through the image's symlinks like the container will see it.
    ASSIGN_OR_RETURN(std::vector<std::string> lowers, LowerDirs(s));
    MergedView view(lowers);
    std::string workdir = s.config["config"].value("WorkingDir", "/");
    bool dest_is_dir = !dest.empty() && dest.back() == '/';
    std::string abs =
        dest.empty() || dest[0] != '/' ? (workdir.empty() ? "/" : workdir) + "/" + dest : dest;
    ASSIGN_OR_RETURN(std::vector<std::string> dest_comps, view.Resolve(SplitPath(abs), true));
    if (auto hit = view.Lookup(dest_comps); hit && S_ISDIR(hit->second.st_mode)) dest_is_dir = true;
    if (sources.size() > 1 && !dest_is_dir)
      return InvalidArgument(fmt::format(
          "with several sources the destination '{}' must be a directory ending in '/'", dest));
    CopyPolicy policy;
    policy.ignore = ignore;
    if (auto chown = ins.flags.find("chown"); chown != ins.flags.end()) {
      ASSIGN_OR_RETURN(Ids ids, ResolveUser(view, ExpandVariables(chown->second, vars), false));
      policy.owner = ids;
    } else if (ignore != nullptr) {
      policy.owner = Ids{};  // files from the context belong to root
    }
    if (auto chmod = ins.flags.find("chmod"); chmod != ins.flags.end()) {
      char* end = nullptr;
      unsigned long m = std::strtoul(chmod->second.c_str(), &end, 8);
      if (*end != '\0' || m > 07777)
        return InvalidArgument(fmt::format("--chmod={}: not an octal mode", chmod->second));
      policy.mode = static_cast<mode_t>(m);
    }
    // Destination of each source within the layer, then the cache key over all content.
    std::string dest_rel = JoinPath(dest_comps);
    Sha256 content;
    content.Update(ins.ToString() + "\n" + JoinPath(dest_comps) + (dest_is_dir ? "/" : "") + "\n");
    if (policy.owner)
      content.Update(fmt::format("owner {}:{}\n", policy.owner->uid, policy.owner->gid));
    std::vector<std::string> targets;
    for (Source& src : sources) {
      std::string base = src.rel.empty() ? "" : src.rel.substr(src.rel.rfind('/') + 1);
      std::string target;
      if (S_ISDIR(src.st.st_mode) || src.archive) {
        target = dest_rel;
      } else {
        target = dest_is_dir ? (dest_rel.empty() ? base : dest_rel + "/" + base) : dest_rel;
      }
      if (target.empty() && !S_ISDIR(src.st.st_mode) && !src.archive)
        return InvalidArgument("cannot copy a file onto '/'");
      targets.push_back(target);
      HashVisitor hv(content, /*with_owner=*/!policy.owner);
      content.Update(
          fmt::format("source {} -> {} {}\n", src.rel, target, src.archive ? "extract" : ""));
      RETURN_IF_ERROR(WalkSource(src.fd.get(), src.st, src.real_rel, "", policy, hv));
    }
    std::string key = StepKey(s, content.FinishDigest());
    if (TryCache(key, ins, s)) return Status::Ok();

    ASSIGN_OR_RETURN(TempDir layer, TempDir::MakeIn(store_.layers_dir(), ".tmp-copy-"));
    int lfd = ::open(layer.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lfd < 0) return ErrnoError("open " + layer.path());
    UniqueFd layer_fd(lfd);
    // Parents of the destinations keep the metadata they have in the image.
    std::set<std::string> made;
    auto make_parents = [&](const std::string& target, bool include_self) -> Status {
      std::vector<std::string> comps = SplitPath(target);
      size_t n = include_self ? comps.size() : (comps.empty() ? 0 : comps.size() - 1);
      for (size_t i = 1; i <= n; ++i) {
        std::string rel = JoinPath(comps, i);
        if (made.count(rel)) continue;
        made.insert(rel);
        std::string path = layer.path() + "/" + rel;
        if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoError("mkdir " + path);
        std::vector<std::string> sub(comps.begin(), comps.begin() + static_cast<long>(i));
        if (auto hit = view.Lookup(sub); hit && S_ISDIR(hit->second.st_mode)) {
          ::lchown(path.c_str(), hit->second.st_uid, hit->second.st_gid);
          ::chmod(path.c_str(), hit->second.st_mode & 07777);
          struct timespec times[2] = {hit->second.st_mtim, hit->second.st_mtim};
          ::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW);
        } else if (policy.owner && include_self && i == n) {
          ::lchown(path.c_str(), policy.owner->uid, policy.owner->gid);
        }
      }
      return Status::Ok();
    };
    for (size_t i = 0; i < sources.size(); ++i) {
      Source& src = sources[i];
      if (src.archive) {
        RETURN_IF_ERROR(make_parents(targets[i], true));
        std::string into = layer.path() + (targets[i].empty() ? "" : "/" + targets[i]);
        ExtractOptions eo;
        eo.whiteouts = WhiteoutMode::kPlain;
        eo.set_owner = ::geteuid() == 0;
        eo.what = "ADD " + src.rel;
        if (::lseek(src.fd.get(), 0, SEEK_SET) < 0) return ErrnoError("seek " + src.rel);
        RETURN_IF_ERROR(ExtractTar(src.fd.get(), into, eo).status());
        continue;
      }
      RETURN_IF_ERROR(make_parents(targets[i], S_ISDIR(src.st.st_mode)));
      // A directory's contents go into the target, which takes the source directory's mode.
      CopyVisitor cv(layer_fd.get(), policy);
      RETURN_IF_ERROR(WalkSource(src.fd.get(), src.st, src.real_rel, targets[i], policy, cv));
    }
    std::string path = layer.Release();
    Status st = CommitLayer(path, key, ins, s);
    if (!st.ok()) (void)RemoveTree(path);
    return st;
  }

  // ---- RUN

  Status RunStepInstr(const Instruction& ins, StageState& s,
                      const std::map<std::string, std::string>& vars) {
    json& cfg = s.config["config"];
    RunStep step;
    if (ins.json_form) {
      step.argv = ins.args;
    } else {
      step.argv = s.shell;
      step.argv.push_back(ins.text);
    }
    if (step.argv.empty()) return InvalidArgument("empty command");
    bool has_path = false;
    for (const json& e : cfg.value("Env", json::array())) {
      std::string kv = e.get<std::string>();
      has_path |= kv.rfind("PATH=", 0) == 0;
      step.env.push_back(kv);
    }
    std::string args_seen;
    for (const auto& [k, v] : s.args) {
      bool shadowed = false;
      for (const std::string& e : step.env) shadowed |= e.rfind(k + "=", 0) == 0;
      if (!shadowed) step.env.push_back(k + "=" + v);
      args_seen += k + "=" + v + "\n";
    }
    if (!has_path) step.env.push_back(std::string("PATH=") + kDefaultPath);
    step.working_dir = cfg.value("WorkingDir", "");
    if (step.working_dir.empty()) step.working_dir = "/";
    step.user = cfg.value("User", "");
    (void)vars;
    std::string key = StepKey(s, ins.ToString() + "\n" + args_seen);
    if (TryCache(key, ins, s)) return Status::Ok();
    if (options_.executor == nullptr) {
      return Unsupported(
          "RUN needs the container runtime, which this build of barge does not have");
    }
    ASSIGN_OR_RETURN(step.lower_dirs, LowerDirs(s));
    MergedView view(step.lower_dirs);
    ASSIGN_OR_RETURN(Ids ids, ResolveUser(view, step.user, true));
    step.uid = ids.uid;
    step.gid = ids.gid;
    step.groups = ids.groups;
    ASSIGN_OR_RETURN(TempDir scratch, TempDir::MakeIn(store_.layers_dir(), ".tmp-run-"));
    step.upper_dir = scratch.path() + "/upper";
    step.work_dir = scratch.path() + "/work";
    if (::mkdir(step.upper_dir.c_str(), 0755) != 0) return ErrnoError("mkdir " + step.upper_dir);
    if (::mkdir(step.work_dir.c_str(), 0700) != 0) return ErrnoError("mkdir " + step.work_dir);
    ASSIGN_OR_RETURN(int code, options_.executor->Run(step));
    if (code != 0) {
      return InvalidArgument(fmt::format("'{}' exited with status {}", ins.text, code));
    }
    // The upper dir (already in overlay whiteout form) is the new layer's tree. It sits in
    // <root>/layers, so adopting it into the cache is a rename; `scratch` removes the rest.
    return CommitLayer(step.upper_dir, key, ins, s);
  }

  // ---- commit

  Result<Image> Commit(StageState& s) {
    json config = s.config;
    config["created"] = s.created;
    config["rootfs"] = {{"type", "layers"}, {"diff_ids", s.diff_ids}};
    for (json& h : config["history"]) {
      if (!h.contains("created")) h["created"] = s.created;
    }
    config.erase("container");
    config.erase("container_config");
    Progress(fmt::format("COMMIT {}", options_.tags.empty() ? "" : options_.tags.front()));
    ASSIGN_OR_RETURN(Image image, store_.WriteImage(config, s.layers));
    Progress(fmt::format("--> {}", image.ShortId()));
    return image;
  }

  const ImageStore& store_;
  const BuildOptions& options_;
  std::string file_name_;
  IgnoreRules ignore_;
  UniqueFd context_fd_;
  std::string context_real_;  // absolute real path of the context
  std::map<std::string, std::string> global_args_;
  std::vector<StageState> states_;
  std::map<std::string, std::optional<TempDir>> image_flats_;
  int step_ = 0;
  int total_steps_ = 0;
  int cached_ = 0;
  int built_ = 0;
  bool stage_set_cmd_ = false;
};

}  // namespace

Result<BuildResult> Build(const ImageStore& store, const BuildOptions& options) {
  Builder builder(store, options);
  try {
    return builder.Run();
  } catch (const json::exception& e) {  // a document field of a type no check expected
    return Corruption(fmt::format("build: unexpected JSON: {}", e.what()));
  }
}

}  // namespace barge::oci
