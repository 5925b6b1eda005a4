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
// Containerfiles and ignore files are read whole, bounded as image JSON is (16 MiB); a file found
// in the context must be a regular one (a FIFO there would block).
constexpr size_t kMaxContainerfileBytes = 16 << 20;

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

// Build args RUN sees without an ARG, and that are never reported unused (as in BuildKit).
bool IsProxyArg(const std::string& name) {
  static const std::set<std::string> kProxy = {
      "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
      "ftp_proxy",  "NO_PROXY",   "no_proxy",    "ALL_PROXY",   "all_proxy"};
  return kProxy.count(name) > 0;
}

// Signal names STOPSIGNAL takes (with or without "SIG"), as Docker's signal table.
bool IsSignal(std::string s) {
  if (AllDigits(s)) return std::stoi(s) >= 1 && std::stoi(s) <= 64;
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (s.rfind("SIG", 0) == 0) s = s.substr(3);
  static const std::set<std::string> kNames = {
      "ABRT", "ALRM",   "BUS",  "CHLD",   "CLD",   "CONT", "FPE",  "HUP",   "ILL",
      "INT",  "IO",     "IOT",  "KILL",   "PIPE",  "POLL", "PROF", "PWR",   "QUIT",
      "SEGV", "STKFLT", "STOP", "SYS",    "TERM",  "TRAP", "TSTP", "TTIN",  "TTOU",
      "URG",  "USR1",   "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX"};
  if (kNames.count(s)) return true;
  for (const char* rt : {"RTMIN+", "RTMAX-"}) {
    std::string n = s.rfind(rt, 0) == 0 ? s.substr(6) : "";
    if (AllDigits(n) && std::stoi(n) >= 1 && std::stoi(n) <= 15) return true;
  }
  return false;
}

// ---------------------------------------------------------------- the build

struct StageState {
  bool built = false;  // false: a stage the target does not need
  std::vector<Descriptor> layers;
  std::vector<std::string> diff_ids;
  json config;  // the whole config document
  std::string key;
  std::string created;                      // time of the newest layer
  std::map<std::string, std::string> args;  // ARGs declared with a value
  // What variables expand to and RUN sees: the image's Env, then every ENV and valued ARG in
  // order, the last assignment of a name winning (BuildKit's build state environment).
  std::map<std::string, std::string> vars;
  bool cmd_set = false;         // a CMD of this stage (an ENTRYPOINT then keeps it)
  std::optional<TempDir> flat;  // flattened root, made on demand for COPY --from
};

class Builder {
 public:
  Builder(const ImageStore& store, const BuildOptions& options)
      : store_(store), options_(options) {}

  Result<BuildResult> Run() {
    ASSIGN_OR_RETURN(Containerfile file, Load());
    lex_ = ShellLexer(file.escape);
    warnings_ = file.warnings;
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
    // Global scope: the automatic platform args (overridable with --build-arg), then the ARGs
    // before the first FROM; FROM lines see these only.
    std::string arch = HostArchitecture();
    std::string variant = arch == "arm" ? "v7" : "";
    std::string platform = "linux/" + arch + (variant.empty() ? "" : "/" + variant);
    for (auto [k, v] : std::map<std::string, std::string>{
             {"BUILDPLATFORM", platform},
             {"BUILDOS", "linux"},
             {"BUILDOSVERSION", ""},
             {"BUILDARCH", arch},
             {"BUILDVARIANT", variant},
             {"TARGETPLATFORM", platform},
             {"TARGETOS", "linux"},
             {"TARGETOSVERSION", ""},
             {"TARGETARCH", arch},
             {"TARGETVARIANT", variant},
             {"TARGETSTAGE",
              file.stages[target].name.empty() ? "default" : file.stages[target].name}}) {
      auto given = options_.build_args.find(k);
      global_args_[k] = given != options_.build_args.end() ? given->second : v;
      consumed_.insert(k);
    }
    for (const Instruction& ins : file.global_args) {
      if (Status st = DeclareArgs(ins, global_args_, global_args_); !st.ok()) return Fail(ins, st);
    }
    // Every base image and its ONBUILD triggers now: a missing image or a bad trigger is an
    // error before any work.
    std::vector<std::vector<Instruction>> triggers(file.stages.size());
    std::vector<std::string> bases(file.stages.size());
    for (const Stage& s : file.stages) {
      auto where = [&](const std::string& what) {
        return fmt::format("{}:{}: FROM {}: {}", file.file_name, s.line, s.base, what);
      };
      Result<std::string> base = lex_.Word(s.base, global_args_);
      if (!base.ok()) return InvalidArgument(where(base.status().message()));
      if (base->empty()) return InvalidArgument(where("the image name is empty"));
      bases[s.index] = *base;
      if (!s.platform.empty()) {
        Result<std::string> p = lex_.Word(s.platform, global_args_);
        if (!p.ok()) return InvalidArgument(where(p.status().message()));
        std::string os_arch = p->substr(0, p->find('/', p->find('/') + 1));
        if (os_arch != "linux/" + arch) {
          return InvalidArgument(where(fmt::format(
              "--platform={}: barge builds for this machine's platform, linux/{}", *p, arch)));
        }
      }
      std::vector<std::string> trigger_texts;
      std::string trigger_source;
      if (int from = StageIndex(file, *base, s.index); from >= 0) {
        for (const Instruction& ins : file.stages[static_cast<size_t>(from)].instructions) {
          if (ins.keyword == "ONBUILD") trigger_texts.push_back(ins.trigger);
        }
        trigger_source = "stage '" + *base + "'";
      } else if (*base != "scratch") {
        Result<Image> image = ResolveImage(*base);
        if (!image.ok()) return InvalidArgument(where(image.status().message()));
        const json& cfg = image->config_document.value("config", json::object());
        if (cfg.is_object() && cfg.contains("OnBuild") && cfg["OnBuild"].is_array()) {
          for (const json& t : cfg["OnBuild"]) {
            if (t.is_string()) trigger_texts.push_back(t.get<std::string>());
          }
        }
        trigger_source = "image '" + *base + "'";
      }
      for (const std::string& t : trigger_texts) {
        Result<Instruction> ins = ParseTrigger(t, where("ONBUILD of " + trigger_source));
        if (!ins.ok()) return ins.status();
        ins->line = s.line;
        triggers[s.index].push_back(std::move(*ins));
      }
    }
    // Images that COPY --from names (stages are checked by the parser).
    for (const Stage& s : file.stages) {
      for (const Instruction& ins : s.instructions) {
        auto from = ins.flags.find("from");
        if (from == ins.flags.end() || from->second.find('$') != std::string::npos ||
            StageIndex(file, from->second, s.index) >= 0) {
          continue;
        }
        Result<Image> image = ResolveImage(from->second);
        if (!image.ok()) {
          return InvalidArgument(fmt::format("{}:{}: COPY --from={}: {}", file.file_name, ins.line,
                                             from->second, image.status().message()));
        }
      }
    }
    // Only the stages the target needs are built, as BuildKit does: the target, and what its
    // FROM and COPY --from name, transitively.
    std::vector<bool> needed(file.stages.size(), false);
    needed[target] = true;
    for (size_t i = target + 1; i-- > 0;) {
      if (!needed[i]) continue;
      const Stage& s = file.stages[i];
      if (int from = StageIndex(file, bases[i], s.index); from >= 0) needed[from] = true;
      auto mark = [&](const Instruction& ins) {
        auto f = ins.flags.find("from");
        if (f == ins.flags.end()) return;
        if (f->second.find('$') != std::string::npos) {
          std::fill(needed.begin(), needed.begin() + static_cast<long>(i), true);
        } else if (int from = StageIndex(file, f->second, s.index); from >= 0) {
          needed[from] = true;
        }
      };
      for (const Instruction& ins : s.instructions) mark(ins);
      for (const Instruction& ins : triggers[i]) mark(ins);
    }
    total_steps_ = 0;
    for (size_t i = 0; i <= target; ++i) {
      if (needed[i])
        total_steps_ +=
            1 + static_cast<int>(file.stages[i].instructions.size() + triggers[i].size());
    }
    ASSIGN_OR_RETURN(UniqueFd writers, store_.LockBlobWriters());
    RETURN_IF_ERROR(MakeDirs(store_.root() + "/build-cache", 0700));
    states_.resize(file.stages.size());
    for (size_t i = 0; i <= target; ++i) {
      if (!needed[i]) continue;
      ASSIGN_OR_RETURN(StageState state, BuildStage(file, file.stages[i], bases[i], triggers[i]));
      states_[i] = std::move(state);
    }
    std::vector<std::string> unused;
    for (const auto& [k, v] : options_.build_args) {
      if (!consumed_.count(k) && !IsProxyArg(k)) unused.push_back(k);
    }
    if (!unused.empty()) {
      std::string names;
      for (const std::string& n : unused) names += (names.empty() ? "" : " ") + n;
      warnings_.push_back(
          fmt::format("one or more build args were not consumed by an ARG: [{}]", names));
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
    result.warnings = warnings_;
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
    Result<std::string> text = options_.containerfile.empty()
                                   ? ReadRegularFileLimited(path, kMaxContainerfileBytes)
                                   : ReadFileLimited(path, kMaxContainerfileBytes);
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
      ASSIGN_OR_RETURN(std::string ignore,
                       ReadRegularFileLimited(ignore_path, kMaxContainerfileBytes));
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

  // ARG NAME[=default]: a --build-arg wins, then the default (expanded with `vars`), then (in a
  // stage) the global ARG of that name; otherwise the arg keeps the value it has, if any. A value
  // goes into `scope` and into `vars`, where it overrides an ENV of that name (as in BuildKit).
  Status DeclareArgs(const Instruction& ins, std::map<std::string, std::string>& scope,
                     std::map<std::string, std::string>& vars) {
    for (const std::string& a : ins.args) {
      size_t eq = a.find('=');
      std::string name = a.substr(0, eq);
      consumed_.insert(name);
      std::optional<std::string> value;
      if (auto given = options_.build_args.find(name); given != options_.build_args.end()) {
        value = given->second;
      } else if (eq != std::string::npos) {
        ASSIGN_OR_RETURN(value, lex_.Word(a.substr(eq + 1), vars));
      } else if (auto g = global_args_.find(name);
                 g != global_args_.end() && &scope != &global_args_) {
        value = g->second;
      }
      if (value) {
        scope[name] = *value;
        vars[name] = *value;
      }
    }
    return Status::Ok();
  }

  // "Containerfile:LINE: KEYWORD: message", without repeating a keyword the message starts with.
  Status Fail(const Instruction& ins, const Status& st) const {
    if (st.message().rfind(file_name_ + ":", 0) == 0) return st;
    bool named = st.message().rfind(ins.keyword + " ", 0) == 0;
    return Status(st.code(), fmt::format("{}:{}: {}{}", file_name_, ins.line,
                                         named ? "" : ins.keyword + ": ", st.message()));
  }

  void Progress(const std::string& line) {
    if (options_.progress) options_.progress(line);
  }

  static std::vector<std::string> Shell(const json& cfg) {
    if (cfg.contains("Shell") && cfg["Shell"].is_array() && !cfg["Shell"].empty())
      return cfg["Shell"].get<std::vector<std::string>>();
    return {"/bin/sh", "-c"};
  }

  Result<StageState> BuildStage(const Containerfile& file, const Stage& stage,
                                const std::string& base, const std::vector<Instruction>& triggers) {
    StageState s;
    s.built = true;
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
      // BuildKit carries the whole build state into a stage built FROM a stage: its ARGs too.
      s.args = other.args;
      s.vars = other.vars;
    } else if (base == "scratch") {
      // As BuildKit's empty image: this platform, "/" as the working directory, a PATH.
      s.config = {
          {"architecture", HostArchitecture()}, {"os", "linux"}, {"config", {{"WorkingDir", "/"}}}};
      s.key = "scratch";
      s.created = "1970-01-01T00:00:00Z";
    } else {
      ASSIGN_OR_RETURN(Image image, ResolveImage(base));
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
    json& cfg = s.config["config"];
    // Every stage has a PATH, as in BuildKit; triggers run once, in this stage, and are not
    // passed on; a MAINTAINER of the base is kept, but not its author of the build steps.
    bool has_path = false;
    for (const json& e : cfg.value("Env", json::array()))
      has_path |= e.get<std::string>().rfind("PATH=", 0) == 0;
    if (!has_path) SetEnv(cfg, "PATH", kDefaultPath);
    for (const json& e : cfg["Env"]) {
      std::string kv = e.get<std::string>();
      size_t eq = kv.find('=');
      s.vars[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
    }
    cfg.erase("OnBuild");
    for (const Instruction& ins : triggers) {
      Progress(fmt::format("STEP {}/{}: {} (ONBUILD)", ++step_, total_steps_, ins.ToString()));
      RETURN_IF_ERROR(Step(file, stage, ins, s));
    }
    for (const Instruction& ins : stage.instructions) {
      Progress(fmt::format("STEP {}/{}: {}", ++step_, total_steps_, ins.ToString()));
      RETURN_IF_ERROR(Step(file, stage, ins, s));
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
    for (const char* key : {"Labels", "ExposedPorts", "Volumes", "Healthcheck"}) {
      if (cfg.contains(key) && !cfg[key].is_object()) cfg.erase(key);
    }
  }

  // Sets KEY=VALUE in Env: in place when KEY is there already (as docker does), else at the end.
  static void SetEnv(json& cfg, const std::string& key, const std::string& value) {
    json env = cfg.value("Env", json::array());
    bool replaced = false;
    for (json& e : env) {
      std::string kv = e.get<std::string>();
      if (kv.substr(0, kv.find('=')) == key) {
        e = key + "=" + value;
        replaced = true;
        break;
      }
    }
    if (!replaced) env.push_back(key + "=" + value);
    cfg["Env"] = env;
  }

  void History(StageState& s, const Instruction& ins, bool empty_layer) {
    json h = {{"created_by", ins.ToString()}};
    if (empty_layer) h["empty_layer"] = true;
    s.config["history"].push_back(h);
  }

  Status Step(const Containerfile& file, const Stage& stage, const Instruction& ins,
              StageState& s) {
    Status st = StepInner(file, stage, ins, s);
    return st.ok() ? st : Fail(ins, st);
  }

  Status StepInner(const Containerfile& file, const Stage& stage, const Instruction& ins,
                   StageState& s) {
    const std::string& k = ins.keyword;
    json& cfg = s.config["config"];
    std::map<std::string, std::string>& vars = s.vars;
    auto word = [&](const std::string& t) { return lex_.Word(t, vars); };
    if (k == "ARG") {
      RETURN_IF_ERROR(DeclareArgs(ins, s.args, s.vars));
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "ENV") {
      for (const auto& [key_text, value_text] : ins.pairs) {
        ASSIGN_OR_RETURN(std::string key, word(key_text));
        ASSIGN_OR_RETURN(std::string value, word(value_text));
        if (key.empty()) return InvalidArgument("ENV names can not be blank");
        SetEnv(cfg, key, value);
        vars[key] = value;  // later pairs of the same ENV see it too
      }
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "LABEL") {
      if (!cfg.contains("Labels") || !cfg["Labels"].is_object()) cfg["Labels"] = json::object();
      for (const auto& [key_text, value_text] : ins.pairs) {
        ASSIGN_OR_RETURN(std::string key, word(key_text));
        ASSIGN_OR_RETURN(std::string value, word(value_text));
        if (key.empty()) return InvalidArgument("LABEL names can not be blank");
        cfg["Labels"][key] = value;
      }
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "MAINTAINER") {
      s.config["author"] = ins.text;  // docker sets the image's author, not a label
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "WORKDIR") {
      ASSIGN_OR_RETURN(std::string dir, word(ins.text));
      std::string cur = cfg.value("WorkingDir", "/");
      if (dir.empty() || dir[0] != '/') dir = (cur.empty() ? "/" : cur) + "/" + dir;
      cfg["WorkingDir"] = "/" + JoinPath(SplitPath(dir));
      return WorkdirStep(ins, s, cfg["WorkingDir"].get<std::string>());
    }
    if (k == "USER") {
      ASSIGN_OR_RETURN(std::string user, word(ins.text));
      if (user.empty()) return InvalidArgument("the user is empty");
      cfg["User"] = user;
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "EXPOSE") {
      if (!cfg.contains("ExposedPorts") || !cfg["ExposedPorts"].is_object())
        cfg["ExposedPorts"] = json::object();
      for (const std::string& p : ins.args) {
        ASSIGN_OR_RETURN(std::vector<std::string> specs, lex_.Words(p, vars));
        for (const std::string& spec : specs) {
          ASSIGN_OR_RETURN(std::vector<std::string> ports, ParsePortSpec(spec));
          for (const std::string& port : ports) cfg["ExposedPorts"][port] = json::object();
        }
      }
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "VOLUME") {
      if (!cfg.contains("Volumes") || !cfg["Volumes"].is_object()) cfg["Volumes"] = json::object();
      for (const std::string& v : ins.args) {
        ASSIGN_OR_RETURN(std::string volume, word(v));
        if (volume.empty()) return InvalidArgument("a volume can not be an empty string");
        cfg["Volumes"][volume] = json::object();
      }
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "STOPSIGNAL") {
      ASSIGN_OR_RETURN(std::string signal, word(ins.text));
      if (!IsSignal(signal)) return InvalidArgument(fmt::format("invalid signal '{}'", signal));
      cfg["StopSignal"] = signal;
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "SHELL") {
      cfg["Shell"] = ins.args;
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "HEALTHCHECK") {
      json hc = json::object();
      if (ins.args[0] == "NONE") {
        hc["Test"] = {"NONE"};
      } else {
        json test = json::array();
        test.push_back(ins.json_form ? "CMD" : "CMD-SHELL");
        for (size_t i = 1; i < ins.args.size(); ++i) test.push_back(ins.args[i]);
        hc["Test"] = test;
        // Go durations in nanoseconds; zero values are left out, as docker's JSON does.
        for (auto [flag, field] : {std::pair{"interval", "Interval"},
                                   {"timeout", "Timeout"},
                                   {"start-period", "StartPeriod"},
                                   {"start-interval", "StartInterval"}}) {
          auto it = ins.flags.find(flag);
          if (it == ins.flags.end()) continue;
          ASSIGN_OR_RETURN(int64_t ns, ParseGoDuration(it->second));
          if (ns != 0) hc[field] = ns;
        }
        if (auto it = ins.flags.find("retries"); it != ins.flags.end() && it->second != "0")
          hc["Retries"] = std::stoll(it->second);
      }
      cfg["Healthcheck"] = hc;
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "ONBUILD") {
      if (!cfg.contains("OnBuild") || !cfg["OnBuild"].is_array()) cfg["OnBuild"] = json::array();
      cfg["OnBuild"].push_back(ins.trigger);
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "CMD" || k == "ENTRYPOINT") {
      json argv = json::array();
      if (ins.json_form) {
        for (const std::string& a : ins.args) argv.push_back(a);
      } else if (!ins.text.empty()) {
        for (const std::string& a : Shell(cfg)) argv.push_back(a);
        argv.push_back(ins.text);
      }
      if (k == "ENTRYPOINT") {
        cfg["Entrypoint"] = argv;
        // Like docker: a new ENTRYPOINT drops a CMD inherited from the base image.
        if (!s.cmd_set) cfg.erase("Cmd");
      } else {
        cfg["Cmd"] = argv;
        s.cmd_set = true;
      }
      History(s, ins, true);
      return Status::Ok();
    }
    if (k == "COPY" || k == "ADD") return CopyStep(file, stage, ins, s, vars);
    if (k == "RUN") return RunStepInstr(ins, s);
    return Internal("unhandled instruction " + k);
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

  // Makes the directories of `comps` the image lacks in `layer_dir` (whose own entries for the
  // ones the image has keep the image's metadata): mode `mode`, owned by `owner`, as BuildKit's
  // mkdir -p does for COPY destinations and WORKDIR.
  static Status MakeMissingDirs(const MergedView& view, const std::string& layer_dir,
                                const std::vector<std::string>& comps, mode_t mode,
                                const Ids& owner, std::set<std::string>* made) {
    for (size_t i = 1; i <= comps.size(); ++i) {
      std::string rel = JoinPath(comps, i);
      if (made != nullptr && !made->insert(rel).second) continue;
      std::string path = layer_dir + "/" + rel;
      if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoError("mkdir " + path);
      std::vector<std::string> sub(comps.begin(), comps.begin() + static_cast<long>(i));
      auto hit = view.Lookup(sub);
      const struct stat* image_dir = hit && S_ISDIR(hit->second.st_mode) ? &hit->second : nullptr;
      uid_t uid = image_dir != nullptr ? image_dir->st_uid : owner.uid;
      gid_t gid = image_dir != nullptr ? image_dir->st_gid : owner.gid;
      if (::lchown(path.c_str(), uid, gid) != 0 && ::geteuid() == 0)
        return ErrnoError("chown " + path);
      mode_t m = image_dir != nullptr ? image_dir->st_mode & 07777 : mode;
      if (::chmod(path.c_str(), m) != 0) return ErrnoError("chmod " + path);
      if (image_dir != nullptr) {
        struct timespec times[2] = {image_dir->st_mtim, image_dir->st_mtim};
        ::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW);
      }
    }
    return Status::Ok();
  }

  // ---- WORKDIR

  // Like docker, WORKDIR makes its directory when the image lacks it: a layer holding just the
  // missing directories, 0755 and owned by the USER at that point (parents the image has keep
  // their metadata).
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
    // A user the image does not know owns nothing: root, as BuildKit does.
    Result<Ids> owner = ResolveUser(view, s.config["config"].value("User", ""), false);
    if (!owner.ok() && owner.status().code() != StatusCode::kNotFound) return owner.status();
    Ids ids = owner.ok() ? *owner : Ids{};
    std::string key =
        StepKey(s, fmt::format("WORKDIR {} {}:{}", JoinPath(comps), ids.uid, ids.gid));
    if (TryCache(key, ins, s)) return Status::Ok();
    ASSIGN_OR_RETURN(TempDir layer, TempDir::MakeIn(store_.layers_dir(), ".tmp-workdir-"));
    RETURN_IF_ERROR(MakeMissingDirs(view, layer.path(), comps, 0755, ids, nullptr));
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
    bool archive = false;              // ADD: extract
    const Heredoc* heredoc = nullptr;  // COPY <<EOF: a file named after the heredoc
    std::string data;                  // its content, variables substituted if it asks for it
  };

  // The sources `pattern` names. A wildcard that matches nothing names nothing, as in BuildKit;
  // a plain name that is missing is an error.
  Result<std::vector<Source>> ExpandSources(int root_fd, const std::string& root_name,
                                            const std::string& pattern, const IgnoreRules* ignore,
                                            bool is_add) {
    if (ClimbsAboveRoot(pattern)) {
      return InvalidArgument(fmt::format("source '{}' is outside the {}", pattern, root_name));
    }
    std::vector<std::string> comps = SplitPath(pattern);
    std::vector<std::string> matches = {""};
    bool wildcard = false;
    for (const std::string& c : comps) {
      std::vector<std::string> next;
      bool glob = c.find_first_of("*?[") != std::string::npos;
      wildcard |= glob;
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
      // O_NONBLOCK: a named pipe in the context is copied as a pipe, not waited on.
      int fd = m.empty() ? ::fcntl(root_fd, F_DUPFD_CLOEXEC, 0)
                         : OpenBeneathRaw(root_fd, m, O_RDONLY | O_NONBLOCK);
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
    if (out.empty() && !wildcard) {
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
      if (!other.built) return Internal(fmt::format("stage '{}' was not built", from));
      slot = &other.flat;
      if (!other.flat) {
        ASSIGN_OR_RETURN(lowers, LowerDirs(other));
      }
    } else {
      *name = "image '" + from + "'";
      ASSIGN_OR_RETURN(Image image, ResolveImage(from));
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
    // Source root: the context, or another stage's / image's file system.
    UniqueFd src_root;
    std::string root_name = "build context";
    const IgnoreRules* ignore = &ignore_;
    if (auto from = ins.flags.find("from"); from != ins.flags.end()) {
      ASSIGN_OR_RETURN(std::string name, lex_.Word(from->second, vars));
      ASSIGN_OR_RETURN(int fd, FlatRoot(file, name, stage.index, &root_name));
      src_root.Reset(fd);
      ignore = nullptr;
    } else {
      src_root.Reset(::fcntl(context_fd_.get(), F_DUPFD_CLOEXEC, 0));
    }
    std::vector<Source> sources;
    for (size_t i = 0; i + 1 < ins.args.size(); ++i) {
      const std::string& a = ins.args[i];
      const Heredoc* found = nullptr;
      std::string name;
      if (!ins.json_form && IsHeredocWord(a, &name)) {
        for (const Heredoc& h : ins.heredocs) {
          if (h.name == name) found = &h;
        }
      }
      if (found != nullptr) {
        // As BuildKit: an unquoted delimiter substitutes variables (quotes stay as written).
        Source src;
        src.heredoc = found;
        src.rel = found->name;
        src.data = found->Body();
        if (found->expand) {
          ShellLexer content('\\');
          content.skip_quotes = true;
          ASSIGN_OR_RETURN(src.data, content.Word(src.data, vars));
        }
        src.st.st_mode = S_IFREG | 0644;
        src.st.st_size = static_cast<off_t>(src.data.size());
        sources.push_back(std::move(src));
        continue;
      }
      ASSIGN_OR_RETURN(std::string pattern, lex_.Word(a, vars));
      ASSIGN_OR_RETURN(std::vector<Source> matched,
                       ExpandSources(src_root.get(), root_name, pattern, ignore, is_add));
      for (Source& f : matched) sources.push_back(std::move(f));
    }
    ASSIGN_OR_RETURN(std::string dest, lex_.Word(ins.args.back(), vars));
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
    Ids owner;  // of the directories the copy creates: --chown, else root
    if (auto chown = ins.flags.find("chown"); chown != ins.flags.end()) {
      ASSIGN_OR_RETURN(std::string spec, lex_.Word(chown->second, vars));
      ASSIGN_OR_RETURN(Ids ids, ResolveUser(view, spec, false));
      policy.owner = ids;
      owner = ids;
    } else if (ignore != nullptr) {
      policy.owner = Ids{};  // files from the context belong to root
    }
    mode_t dir_mode = 0755;
    if (auto chmod = ins.flags.find("chmod"); chmod != ins.flags.end()) {
      ASSIGN_OR_RETURN(std::string spec, lex_.Word(chmod->second, vars));
      char* end = nullptr;
      unsigned long m = std::strtoul(spec.c_str(), &end, 8);
      if (spec.empty() || *end != '\0' || m > 07777)
        return InvalidArgument(fmt::format("--chmod={}: not an octal mode (0 to 7777)", spec));
      policy.mode = static_cast<mode_t>(m);
      dir_mode = policy.mode.value();  // BuildKit's mkdir -p of the destination uses it too
    }
    // Destination of each source within the layer, then the cache key over all content.
    std::string dest_rel = JoinPath(dest_comps);
    Sha256 content;
    content.Update(ins.ToString() + "\n" + JoinPath(dest_comps) + (dest_is_dir ? "/" : "") + "\n");
    content.Update(fmt::format("dirs {}:{} {:o}\n", owner.uid, owner.gid, dir_mode));
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
      content.Update(
          fmt::format("source {} -> {} {}\n", src.rel, target, src.archive ? "extract" : ""));
      if (src.heredoc != nullptr) {
        content.Update(fmt::format("heredoc {}\n", src.data.size()));
        content.Update(src.data);
        continue;
      }
      HashVisitor hv(content, /*with_owner=*/!policy.owner);
      RETURN_IF_ERROR(WalkSource(src.fd.get(), src.st, src.real_rel, "", policy, hv));
    }
    std::string key = StepKey(s, content.FinishDigest());
    if (TryCache(key, ins, s)) return Status::Ok();

    ASSIGN_OR_RETURN(TempDir layer, TempDir::MakeIn(store_.layers_dir(), ".tmp-copy-"));
    int lfd = ::open(layer.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lfd < 0) return ErrnoError("open " + layer.path());
    UniqueFd layer_fd(lfd);
    // Directories on the way to each destination: those of the image keep their metadata, the
    // missing ones are made 0755 (or --chmod) and owned by --chown (or root), as BuildKit does.
    std::set<std::string> made;
    auto make_dirs = [&](const std::string& target, bool include_self) -> Status {
      std::vector<std::string> comps = SplitPath(target);
      if (!include_self && !comps.empty()) comps.pop_back();
      return MakeMissingDirs(view, layer.path(), comps, dir_mode, owner, &made);
    };
    for (size_t i = 0; i < sources.size(); ++i) {
      Source& src = sources[i];
      if (src.archive) {
        RETURN_IF_ERROR(make_dirs(targets[i], true));
        std::string into = layer.path() + (targets[i].empty() ? "" : "/" + targets[i]);
        ExtractOptions eo;
        eo.whiteouts = WhiteoutMode::kPlain;
        eo.set_owner = ::geteuid() == 0;
        if (ins.flags.count("chown")) eo.owner = std::make_pair(owner.uid, owner.gid);
        eo.what = "ADD " + src.rel;
        if (::lseek(src.fd.get(), 0, SEEK_SET) < 0) return ErrnoError("seek " + src.rel);
        RETURN_IF_ERROR(ExtractTar(src.fd.get(), into, eo).status());
        continue;
      }
      // A directory source's contents go into the target, which is made like a parent: it
      // does not take the source directory's own mode or owner.
      RETURN_IF_ERROR(make_dirs(targets[i], S_ISDIR(src.st.st_mode)));
      if (src.heredoc != nullptr) {
        RETURN_IF_ERROR(WriteHeredocFile(layer.path() + "/" + targets[i], src.data, policy));
        continue;
      }
      CopyVisitor cv(layer_fd.get(), policy, S_ISDIR(src.st.st_mode) ? targets[i] : "");
      RETURN_IF_ERROR(WalkSource(src.fd.get(), src.st, src.real_rel, targets[i], policy, cv));
    }
    std::string path = layer.Release();
    Status st = CommitLayer(path, key, ins, s);
    if (!st.ok()) (void)RemoveTree(path);
    return st;
  }

  // COPY <<EOF: a regular file 0644 (or --chmod) owned by --chown or root.
  static Status WriteHeredocFile(const std::string& path, const std::string& data,
                                 const CopyPolicy& policy) {
    ::unlink(path.c_str());
    ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
    RETURN_IF_ERROR(WriteAll(fd.get(), data, path));
    Ids owner = policy.owner.value_or(Ids{});
    if (::fchown(fd.get(), owner.uid, owner.gid) != 0 && ::geteuid() == 0)
      return ErrnoError("chown " + path);
    if (::fchmod(fd.get(), policy.mode.value_or(0644)) != 0) return ErrnoError("chmod " + path);
    return Status::Ok();
  }

  // ---- RUN

  // The command a RUN runs, and the script file a heredoc with a shebang becomes (BuildKit runs
  // such a heredoc as a program from /dev/pipes; a plain one through the shell; a command line
  // with heredocs in it through the shell too, the heredocs put back after it).
  struct RunCommand {
    std::vector<std::string> argv;
    std::string script_name;  // empty: none
    std::string script;
  };

  static RunCommand CommandOf(const Instruction& ins, const json& cfg) {
    RunCommand out;
    if (ins.json_form) {
      out.argv = ins.args;
      return out;
    }
    std::string command = ins.text;
    if (!ins.heredocs.empty()) {
      // The command is nothing but one heredoc word ("<<EOF", "<<-'EOF'").
      std::string name;
      if (IsHeredocWord(command, &name)) {
        const Heredoc& doc = ins.heredocs[0];
        std::string body = doc.Body();
        if (body.rfind("#!", 0) == 0) {
          out.script_name = doc.name;
          out.script = body;
          out.argv = {"/dev/pipes/" + doc.name};
          return out;
        }
        command = body;
      } else {
        for (const Heredoc& doc : ins.heredocs) command += "\n" + doc.content + doc.name;
      }
    }
    out.argv = Shell(cfg);
    out.argv.push_back(command);
    return out;
  }

  Status RunStepInstr(const Instruction& ins, StageState& s) {
    json& cfg = s.config["config"];
    RunStep step;
    RunCommand command = CommandOf(ins, cfg);
    step.argv = command.argv;
    if (step.argv.empty()) return InvalidArgument("empty command");
    // The build state's variables: the config's Env in its order (an ARG may have overridden a
    // value), then the ARGs, then proxy settings, which reach RUN without an ARG in BuildKit.
    std::set<std::string> done;
    std::string seen;
    auto add = [&](const std::string& k, const std::string& v) {
      if (!done.insert(k).second) return;
      step.env.push_back(k + "=" + v);
      seen += k + "=" + v + "\n";
    };
    for (const json& e : cfg.value("Env", json::array())) {
      std::string name = e.get<std::string>().substr(0, e.get<std::string>().find('='));
      add(name, s.vars[name]);
    }
    for (const auto& [k, v] : s.args) add(k, s.vars[k]);
    for (const auto& [k, v] : options_.build_args) {
      if (IsProxyArg(k)) add(k, v);
    }
    if (!done.count("PATH")) step.env.push_back(std::string("PATH=") + kDefaultPath);
    step.working_dir = cfg.value("WorkingDir", "");
    if (step.working_dir.empty()) step.working_dir = "/";
    step.user = cfg.value("User", "");
    std::string what = ins.ToString() + "\n" + seen;
    for (const std::string& a : step.argv) what += a + "\n";
    std::string key = StepKey(s, what);
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
    if (!command.script_name.empty()) {
      std::string pipes = scratch.path() + "/pipes";
      if (::mkdir(pipes.c_str(), 0755) != 0) return ErrnoError("mkdir " + pipes);
      RETURN_IF_ERROR(WriteFile(pipes + "/" + command.script_name, command.script, 0755));
      step.read_only_binds.push_back({pipes, "/dev/pipes"});
    }
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
  // The image `name` names: through options_.resolve_image (which may pull it) when set, else
  // from the store; the same one for every mention of the name in this build.
  Result<Image> ResolveImage(const std::string& name) {
    if (auto it = images_.find(name); it != images_.end()) return it->second;
    Result<Image> image =
        options_.resolve_image ? options_.resolve_image(name) : store_.Resolve(name);
    if (image.ok()) images_[name] = *image;
    return image;
  }

  const BuildOptions& options_;
  ShellLexer lex_;
  std::string file_name_;
  IgnoreRules ignore_;
  UniqueFd context_fd_;
  std::string context_real_;  // absolute real path of the context
  std::map<std::string, std::string> global_args_;
  std::set<std::string> consumed_;  // build args some ARG declared
  std::vector<std::string> warnings_;
  std::vector<StageState> states_;
  std::map<std::string, std::optional<TempDir>> image_flats_;
  // Images FROM and COPY --from name, resolved (and pulled) once per build.
  std::map<std::string, Image> images_;
  int step_ = 0;
  int total_steps_ = 0;
  int cached_ = 0;
  int built_ = 0;
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
