#include "runtime/container_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/file_util.h"
#include "runtime/cgroups.h"
#include "runtime/time_util.h"
#include "runtime/trash.h"

namespace barge::runtime {
namespace {

using nlohmann::json;

std::string RandomId() {
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  std::string out;
  char hex[3];
  for (unsigned char b : bytes) {
    std::snprintf(hex, sizeof hex, "%02x", b);
    out += hex;
  }
  return out;
}

json MountsToJson(const std::vector<MountSpec>& mounts) {
  json out = json::array();
  for (const MountSpec& m : mounts) {
    out.push_back({{"type", m.kind == MountSpec::Kind::kTmpfs ? "tmpfs" : "bind"},
                   {"source", m.source},
                   {"destination", m.destination},
                   {"read_only", m.read_only},
                   {"no_exec", m.no_exec},
                   {"tmpfs_options", m.tmpfs_options}});
  }
  return out;
}

std::vector<MountSpec> MountsFromJson(const json& j) {
  std::vector<MountSpec> out;
  for (const json& m : j) {
    MountSpec spec;
    spec.kind =
        m.value("type", "bind") == "tmpfs" ? MountSpec::Kind::kTmpfs : MountSpec::Kind::kBind;
    spec.source = m.value("source", "");
    spec.destination = m.value("destination", "");
    spec.read_only = m.value("read_only", false);
    spec.no_exec = m.value("no_exec", false);
    spec.tmpfs_options = m.value("tmpfs_options", "");
    out.push_back(std::move(spec));
  }
  return out;
}

json ConfigToJson(const ContainerConfig& c) {
  return {
      {"id", c.id},
      {"name", c.name},
      {"image", c.image},
      {"lower_dirs", c.lower_dirs},
      {"process",
       {{"argv", c.process.argv},
        {"env", c.process.env},
        {"cwd", c.process.cwd},
        {"user", c.process.user},
        {"init", c.process.init}}},
      {"hostname", c.hostname},
      {"network", c.network == NetworkMode::kHost ? "host" : "none"},
      {"read_only_root", c.read_only_root},
      {"mounts", MountsToJson(c.mounts)},
      {"volume_names", c.volume_names},
      {"limits",
       {{"memory_bytes", c.limits.memory_bytes}, {"cpus", c.limits.cpus}, {"pids", c.limits.pids}}},
      {"cgroup_parent", c.cgroup_parent},
      {"auto_remove", c.auto_remove},
      {"detached", c.detached},
      {"terminal", c.terminal},
      {"created_at", c.created_at}};
}

ContainerConfig ConfigFromJson(const json& j) {
  ContainerConfig c;
  c.id = j.value("id", "");
  c.name = j.value("name", "");
  c.image = j.value("image", "");
  c.lower_dirs = j.value("lower_dirs", std::vector<std::string>{});
  const json& p = j.at("process");
  c.process.argv = p.value("argv", std::vector<std::string>{});
  c.process.env = p.value("env", std::vector<std::string>{});
  c.process.cwd = p.value("cwd", "/");
  c.process.user = p.value("user", "");
  c.process.init = p.value("init", false);
  c.hostname = j.value("hostname", "");
  c.network = j.value("network", "none") == "host" ? NetworkMode::kHost : NetworkMode::kNone;
  c.read_only_root = j.value("read_only_root", false);
  c.mounts = MountsFromJson(j.value("mounts", json::array()));
  c.volume_names = j.value("volume_names", std::vector<std::string>{});
  const json& l = j.at("limits");
  c.limits.memory_bytes = l.value("memory_bytes", int64_t{0});
  c.limits.cpus = l.value("cpus", 0.0);
  c.limits.pids = l.value("pids", int64_t{0});
  c.cgroup_parent = j.value("cgroup_parent", "barge");
  c.auto_remove = j.value("auto_remove", false);
  c.detached = j.value("detached", false);
  c.terminal = j.value("terminal", false);
  c.created_at = j.value("created_at", "");
  return c;
}

json StateToJson(const ContainerState& s) {
  return {{"status", StatusName(s.status)},   {"pid", s.pid},
          {"pid_start", s.pid_start},         {"monitor_pid", s.monitor_pid},
          {"monitor_start", s.monitor_start}, {"exit_code", s.exit_code},
          {"oom_killed", s.oom_killed},       {"started_at", s.started_at},
          {"finished_at", s.finished_at},     {"cgroup_dirs", s.cgroup_dirs}};
}

}  // namespace

json RecordToJson(const ContainerRecord& record) {
  return {{"Id", record.config.id},
          {"Name", record.config.name},
          {"Config", ConfigToJson(record.config)},
          {"State", StateToJson(record.state)}};
}

namespace {

ContainerState StateFromJson(const json& j) {
  ContainerState s;
  std::string status = j.value("status", "created");
  s.status = status == "running"  ? ContainerStatus::kRunning
             : status == "exited" ? ContainerStatus::kExited
                                  : ContainerStatus::kCreated;
  s.pid = j.value("pid", 0);
  s.pid_start = j.value("pid_start", uint64_t{0});
  s.monitor_pid = j.value("monitor_pid", 0);
  s.monitor_start = j.value("monitor_start", uint64_t{0});
  s.exit_code = j.value("exit_code", -1);
  s.oom_killed = j.value("oom_killed", false);
  s.started_at = j.value("started_at", "");
  s.finished_at = j.value("finished_at", "");
  s.cgroup_dirs = j.value("cgroup_dirs", std::vector<std::string>{});
  return s;
}

// Directories under <root>/containers that belong to a process rather than to a container:
// "<prefix><pid>-<start time>-<rest>", so that a later barge can tell whether their owner is
// still at work on them.
// config.json holds the command and environment, which exec could not take beyond a few MiB.
constexpr size_t kMaxRecordBytes = 16 << 20;

constexpr std::string_view kTrashPrefix = ".trash-";  // a container being deleted
constexpr std::string_view kStepPrefix = ".step-";    // an image build's RUN step

std::string OwnedPrefix(std::string_view kind) {
  return std::string(kind) + std::to_string(::getpid()) + "-" +
         std::to_string(ProcessStartTime(::getpid())) + "-";
}

// Whether the process named in `name` (see OwnedPrefix) is gone. A name without one (trash of an
// older barge) counts as abandoned once it is 10 s old.
bool OwnerGone(const std::string& path, std::string_view name) {
  std::string_view rest = name.substr(name.find('-') + 1);
  pid_t pid = 0;
  uint64_t start = 0;
  auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), pid);
  if (ec == std::errc() && p < rest.data() + rest.size() && *p == '-') {
    auto [q, ec2] = std::from_chars(p + 1, rest.data() + rest.size(), start);
    if (ec2 == std::errc() && q < rest.data() + rest.size() && *q == '-') {
      return !ProcessAlive(pid, start);
    }
  }
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && st.st_mtime + 10 < ::time(nullptr);
}

// Serializes creation so that two `barge run --name x` cannot both take the name.
class StoreLock {
 public:
  static Result<StoreLock> Take(const std::string& dir) {
    RETURN_IF_ERROR(MakeDirs(dir, 0700));
    ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(dir + "/.lock", O_RDWR | O_CREAT, 0600));
    if (::flock(fd.get(), LOCK_EX) != 0) return ErrnoError("lock " + dir + "/.lock");
    StoreLock lock;
    lock.fd_ = std::move(fd);
    return lock;
  }

 private:
  UniqueFd fd_;
};

std::string HostsFile(const std::string& hostname) {
  return "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + hostname +
         "\n";
}

}  // namespace

const char* StatusName(ContainerStatus status) {
  switch (status) {
    case ContainerStatus::kCreated:
      return "created";
    case ContainerStatus::kRunning:
      return "running";
    case ContainerStatus::kExited:
      return "exited";
  }
  return "unknown";
}

uint64_t ProcessStartTime(pid_t pid) {
  if (pid <= 0) return 0;
  Result<std::string> stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) return 0;
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  size_t paren = stat->rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream in(stat->substr(paren + 2));
  std::string field;
  char state = 0;
  in >> state;
  if (state == 'Z' || state == 'X') return 0;  // exited, not yet reaped
  for (int i = 4; i < 22 && in >> field; ++i) {
  }
  uint64_t start = 0;
  in >> start;
  return start;
}

bool ProcessAlive(pid_t pid, uint64_t start_time) {
  return pid > 0 && start_time != 0 && ProcessStartTime(pid) == start_time;
}

Result<ContainerRecord> ContainerStore::Create(ContainerConfig config) {
  ASSIGN_OR_RETURN(StoreLock lock, StoreLock::Take(dir_));
  config.id = RandomId();
  if (config.name.empty()) config.name = config.id.substr(0, 12);
  if (config.hostname.empty()) config.hostname = config.id.substr(0, 12);
  config.created_at = NowRfc3339();
  ASSIGN_OR_RETURN(std::vector<ContainerRecord> existing, List());
  for (const ContainerRecord& r : existing) {
    if (r.config.name == config.name) {
      return AlreadyExists("the container name '" + config.name + "' is already in use by " +
                           r.config.id.substr(0, 12) + " (remove it or choose another --name)");
    }
  }
  std::string dir = Dir(config.id);
  for (const char* sub : {"work", "rootfs"}) RETURN_IF_ERROR(MakeDirs(dir + "/" + sub, 0700));
  // The upper directory's own mode becomes the mode of the container's "/": every user must be
  // able to search it.
  RETURN_IF_ERROR(MakeDirs(dir + "/upper", 0755));
  // Container state is recreated at each run, so these writes need no fsync.
  RETURN_IF_ERROR(WriteFile(dir + "/hostname", config.hostname + "\n"));
  RETURN_IF_ERROR(WriteFile(dir + "/hosts", HostsFile(config.hostname)));
  Result<std::string> resolv = ReadRegularFileLimited("/etc/resolv.conf", 1 << 20);
  RETURN_IF_ERROR(WriteFile(dir + "/resolv.conf", resolv.ok() ? *resolv : ""));
  RETURN_IF_ERROR(WriteFile(dir + "/config.json", ConfigToJson(config).dump() + "\n", 0600));
  ContainerRecord record{std::move(config), {}};
  RETURN_IF_ERROR(SaveState(record.config.id, record.state));
  return record;
}

Status ContainerStore::SaveState(const std::string& id, const ContainerState& state) {
  // A temporary file of its own: several barge processes may reconcile the same container at
  // once. No fsync: the state is rebuilt from the live processes after a crash.
  std::string path = Dir(id) + "/state.json";
  std::string tmp = path + ".tmp-XXXXXX";
  int raw = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (raw < 0) return ErrnoError("create temporary file for " + path);
  UniqueFd fd(raw);
  Status st = WriteAll(fd.get(), StateToJson(state).dump() + "\n", tmp);
  fd.Reset();
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) st = ErrnoError("rename " + tmp);
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

Result<ContainerRecord> ContainerStore::Load(const std::string& id) const {
  // Bounded: a damaged or planted file must not make every `barge ps` read without end.
  ASSIGN_OR_RETURN(std::string config_text,
                   ReadRegularFileLimited(Dir(id) + "/config.json", kMaxRecordBytes));
  ASSIGN_OR_RETURN(std::string state_text,
                   ReadRegularFileLimited(Dir(id) + "/state.json", kMaxRecordBytes));
  json config = json::parse(config_text, nullptr, false);
  json state = json::parse(state_text, nullptr, false);
  if (!config.is_object() || !state.is_object() || !config.contains("process") ||
      !config.contains("limits")) {
    return Corruption("container " + id + ": unreadable config.json or state.json");
  }
  try {
    return ContainerRecord{ConfigFromJson(config), StateFromJson(state)};
  } catch (const json::exception& e) {
    return Corruption("container " + id + ": " + e.what());
  }
}

Result<std::vector<ContainerRecord>> ContainerStore::List() {
  std::vector<ContainerRecord> out;
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return out;
    return ErrnoError("opendir " + dir_);
  }
  std::vector<std::string> ids;
  std::vector<std::string> owned;
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name[0] != '.') ids.push_back(e->d_name);
    if (name.starts_with(kTrashPrefix) || name.starts_with(kStepPrefix)) owned.push_back(e->d_name);
  }
  ::closedir(d);
  // What a deleter or an image build killed midway left behind.
  for (const std::string& name : owned) {
    if (!OwnerGone(dir_ + "/" + name, name)) continue;
    (void)RemoveTreeThroughHeap(dir_ + "/" + name, HeapDir());
  }
  for (const std::string& id : ids) {
    Result<ContainerRecord> record = Load(id);
    if (!record.ok()) continue;  // being created or removed right now
    ASSIGN_OR_RETURN(bool kept, Reconcile(*record));
    if (kept) out.push_back(std::move(record).value());
  }
  std::sort(out.begin(), out.end(), [](const ContainerRecord& a, const ContainerRecord& b) {
    return a.config.created_at < b.config.created_at;
  });
  return out;
}

Result<ContainerRecord> ContainerStore::Find(const std::string& id_or_name) {
  if (id_or_name.empty()) return InvalidArgument("empty container name");
  ASSIGN_OR_RETURN(std::vector<ContainerRecord> all, List());
  for (ContainerRecord& r : all) {
    if (r.config.name == id_or_name || r.config.id == id_or_name) return std::move(r);
  }
  ContainerRecord* match = nullptr;
  for (ContainerRecord& r : all) {
    if (r.config.id.rfind(id_or_name, 0) == 0) {
      if (match != nullptr) {
        return InvalidArgument("container id prefix '" + id_or_name + "' is ambiguous");
      }
      match = &r;
    }
  }
  if (match == nullptr) return NotFound("no such container: " + id_or_name);
  return std::move(*match);
}

Result<bool> ContainerStore::Reconcile(ContainerRecord& record) {
  ContainerState& s = record.state;
  // A created container records the barge process starting it; one that never started has none.
  bool starting = s.status == ContainerStatus::kCreated && s.monitor_pid != 0;
  if (s.status != ContainerStatus::kRunning && !starting) return true;
  if (ProcessAlive(s.monitor_pid, s.monitor_start)) return true;
  // Its barge process is gone. The container dies with it (parent-death signal); whatever is
  // still there is killed so that the cgroups can go. A barge killed while starting it had not
  // recorded the cgroups yet: they are <parent>/<id> wherever they exist.
  if (ProcessAlive(s.pid, s.pid_start)) ::kill(s.pid, SIGKILL);
  Cgroup leftover = Cgroup::Adopt(s.cgroup_dirs);
  if (starting) {
    ASSIGN_OR_RETURN(leftover,
                     Cgroup::AdoptExisting(record.config.cgroup_parent, record.config.id));
  }
  RETURN_IF_ERROR(leftover.Remove());
  // The monitor may have finished between our read and now: prefer what it recorded.
  if (Result<ContainerRecord> fresh = Load(record.config.id);
      fresh.ok() && fresh->state.status == ContainerStatus::kExited) {
    record.state = fresh->state;
    return true;
  }
  s.status = ContainerStatus::kExited;
  s.exit_code = -1;
  s.finished_at = NowRfc3339();
  s.cgroup_dirs.clear();
  if (record.config.auto_remove) {
    RETURN_IF_ERROR(Delete(record.config.id));
    return false;
  }
  RETURN_IF_ERROR(SaveState(record.config.id, s));
  return true;
}

Status ContainerStore::Delete(const std::string& id) {
  if (id.empty() || id.find('/') != std::string::npos) return InvalidArgument("bad container id");
  std::string trash = dir_ + "/" + OwnedPrefix(kTrashPrefix) + id;
  if (::rename(Dir(id).c_str(), trash.c_str()) != 0) {
    if (errno == ENOENT) return Status::Ok();  // deleted meanwhile
    return ErrnoError("rename " + Dir(id) + " to " + trash);
  }
  // This refuses to cross a mount point; the root file system is only ever mounted inside the
  // container's own mount namespace, so nothing here is mounted on the host.
  return RemoveTreeThroughHeap(trash, HeapDir());
}

Result<TempDir> ContainerStore::MakeStepDir() const {
  RETURN_IF_ERROR(MakeDirs(dir_, 0700));
  return TempDir::MakeIn(dir_, OwnedPrefix(kStepPrefix));
}

ContainerSpec ContainerStore::MakeSpec(const ContainerRecord& record) const {
  const ContainerConfig& c = record.config;
  std::string dir = Dir(c.id);
  ContainerSpec spec;
  spec.id = c.id;
  spec.lower_dirs = c.lower_dirs;
  spec.upper_dir = dir + "/upper";
  spec.work_dir = dir + "/work";
  spec.rootfs_dir = dir + "/rootfs";
  spec.hosts_file = dir + "/hosts";
  spec.hostname_file = dir + "/hostname";
  spec.resolv_conf_file = dir + "/resolv.conf";
  spec.process = c.process;
  spec.hostname = c.hostname;
  spec.network = c.network;
  spec.read_only_root = c.read_only_root;
  spec.mounts = c.mounts;
  spec.limits = c.limits;
  spec.cgroup_parent = c.cgroup_parent;
  spec.terminal = c.terminal;
  return spec;
}

}  // namespace barge::runtime
