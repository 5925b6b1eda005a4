#include "pipeline/stage.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <barge_stage.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <utility>

#include "base/file_util.h"
#include "pipeline/format.h"
#include "pipeline/text_source.h"
#include "runtime/lifecycle.h"

namespace barge::pipeline {

namespace detail {
// sdk/python/barge_stage.py, embedded at build time (see CMakeLists.txt).
extern const unsigned char kPythonStageSdk[];
extern const size_t kPythonStageSdk_size;
}  // namespace detail

// Where every replica finds the SDKs barge ships (read-only), on its PYTHONPATH (spec.h names it
// for the checks of a stage's volumes).
constexpr const char* kSdkMount = kStageSdkMount.data();
static_assert(kStageSdkMount.size() == std::char_traits<char>::length(kSdkMount));

static_assert(sizeof(barge_msg) == 64, "barge_msg is one cache line");
static_assert(sizeof(barge_column) == 64, "barge_column is one cache line");
static_assert(sizeof(barge_ring_header) == 256, "the ring header's lines are laid out by hand");
static_assert(std::atomic<uint64_t>::is_always_lock_free &&
                  std::atomic<uint32_t>::is_always_lock_free,
              "ring indices live in shared memory");

namespace {

using Clock = std::chrono::steady_clock;

uint32_t WireType(Type t) {
  switch (t) {
    case Type::kInt64:
      return BARGE_TYPE_BIGINT;
    case Type::kDouble:
      return BARGE_TYPE_DOUBLE;
    case Type::kBool:
      return BARGE_TYPE_BOOLEAN;
    case Type::kString:
    case Type::kNull:
      return BARGE_TYPE_VARCHAR;
    case Type::kTimestamp:
      return BARGE_TYPE_TIMESTAMP;
  }
  return BARGE_TYPE_VARCHAR;
}

const char* WireTypeName(uint32_t t) {
  switch (t) {
    case BARGE_TYPE_BIGINT:
      return "BIGINT";
    case BARGE_TYPE_DOUBLE:
      return "DOUBLE";
    case BARGE_TYPE_BOOLEAN:
      return "BOOLEAN";
    case BARGE_TYPE_VARCHAR:
      return "VARCHAR";
    case BARGE_TYPE_TIMESTAMP:
      return "TIMESTAMP";
    case BARGE_TYPE_ROW:
      return "ROW";
  }
  return "unknown";
}

// write(2) to a pipe whose reader may be gone: EPIPE comes back as an error instead of a SIGPIPE
// that would end the whole process (the signal is blocked for this thread during the call, and a
// pending one is taken back).
ssize_t WriteNoSigpipe(int fd, const void* data, size_t size) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigset_t pending;
  sigemptyset(&pending);
  ::sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  ssize_t n = ::write(fd, data, size);
  const int err = errno;
  if (n < 0 && err == EPIPE && !was_pending) {
    const timespec zero{0, 0};
    while (::sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = err;
  return n;
}

// A ring file barge made on the tmpfs, mapped.
class RingFile {
 public:
  static Result<std::unique_ptr<RingFile>> Create(const std::string& path, uint64_t capacity) {
    ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDWR | O_CREAT | O_EXCL, 0666));
    // Readable and writable by the stage's user whatever it is; the directory above is barge's.
    ::fchmod(fd.get(), 0666);
    size_t bytes = BARGE_RING_HEADER_BYTES + capacity;
    // Reserved now: a tmpfs that runs out of room later would kill barge or the stage with SIGBUS
    // when a page is first touched.
    if (int err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(bytes)); err != 0) {
      if (err == ENOSPC) {
        return Status(StatusCode::kIoError,
                      fmt::format("no room in /dev/shm for a stage ring of {} MiB (each replica "
                                  "needs two): free space there, or set a smaller ring: in the "
                                  "stage",
                                  bytes >> 20));
      }
      return ErrnoError("size ring file " + path, err);
    }
    // Pre-faulted: touching fresh pages on the steady path costs more than the copy itself.
    void* p =
        ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd.get(), 0);
    if (p == MAP_FAILED) return ErrnoError("map ring file " + path);
    auto ring = std::unique_ptr<RingFile>(new RingFile(p, bytes));
    auto* h = new (p) barge_ring_header{};
    std::memcpy(h->magic, BARGE_RING_MAGIC, 8);
    h->version = BARGE_RING_VERSION;
    h->header_bytes = BARGE_RING_HEADER_BYTES;
    h->capacity = capacity;
    ring->r_.h = h;
    ring->r_.data = static_cast<char*>(p) + BARGE_RING_HEADER_BYTES;
    ring->r_.mask = capacity - 1;
    ring->r_.map_bytes = bytes;
    return ring;
  }
  ~RingFile() { ::munmap(map_, bytes_); }
  RingFile(const RingFile&) = delete;
  RingFile& operator=(const RingFile&) = delete;

  barge_ring* ring() { return &r_; }
  barge_ring_header* h() { return r_.h; }

 private:
  RingFile(void* map, size_t bytes) : map_(map), bytes_(bytes) {}
  void* map_;
  size_t bytes_;
  barge_ring r_{};
};

// Lines a replica prints (stderr, and stdout under shm) go to barge's stderr, prefixed with the
// stage and replica; the last few are kept for error messages.
class LogRelay {
 public:
  LogRelay(std::string prefix, UniqueFd fd) : prefix_(std::move(prefix)), fd_(std::move(fd)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~LogRelay() {
    if (thread_.joinable()) thread_.join();
  }
  // Waits for the writers to close (the container exited), then returns the last lines.
  std::string Tail() {
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(mu_);
    std::string out;
    for (const std::string& l : last_) out += (out.empty() ? "" : " | ") + l;
    return out;
  }

 private:
  void Loop() {
    std::string buf;
    char chunk[4096];
    for (;;) {
      ssize_t n = ::read(fd_.get(), chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      buf.append(chunk, static_cast<size_t>(n));
      size_t nl;
      while ((nl = buf.find('\n')) != std::string::npos) {
        Line(buf.substr(0, nl));
        buf.erase(0, nl + 1);
      }
      if (buf.size() > 8192) {
        Line(buf);
        buf.clear();
      }
    }
    if (!buf.empty()) Line(buf);
  }
  void Line(std::string line) {
    static std::mutex print_mu;  // whole lines, whichever replica prints
    {
      std::lock_guard lock(print_mu);
      std::string out = prefix_ + line + "\n";
      (void)!::write(STDERR_FILENO, out.data(), out.size());
    }
    std::lock_guard lock(mu_);
    last_.push_back(std::move(line));
    if (last_.size() > 5) last_.pop_front();
  }

  std::string prefix_;
  UniqueFd fd_;
  std::thread thread_;
  std::mutex mu_;
  std::deque<std::string> last_;
};

// A name from a stage's reply, for an error message: control and non-ASCII bytes as \xNN, at
// most 64 of them.
std::string Printable(std::string_view name) {
  std::string out;
  for (size_t i = 0; i < name.size() && i < 64; ++i) {
    auto c = static_cast<unsigned char>(name[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (name.size() > 64) out += "...";
  return out;
}

// Reads a reply's column into `c` (of the field's type). `m` lies in memory the stage can still
// write, so each value is read once, into barge's own memory, and checked there: `hdr` and `wc`
// are barge's copies of the message and column headers, and `hdr.rows <= hdr.bytes` was checked.
// Empty string when it is sound; else what is wrong.
std::string ReadColumn(const barge_msg* m, const barge_msg& hdr, const barge_column& wc,
                       Column& c) {
  const uint64_t rows = hdr.rows, bytes = hdr.bytes;
  auto within = [&](uint64_t offset, uint64_t size) {
    return offset >= sizeof(barge_msg) && offset <= bytes && size <= bytes - offset;
  };
  const bool varchar = wc.type == BARGE_TYPE_VARCHAR;
  const uint64_t width = barge_type_width(wc.type);
  const uint64_t values = varchar ? (rows + 1) * 4 : rows * width;  // rows <= bytes: no overflow
  if (!within(wc.values_offset, values)) return "values outside the message";
  c.Resize(0);
  if (varchar) {
    if (!within(wc.data_offset, wc.data_bytes)) return "string data outside the message";
    Buffer<uint32_t>& o = c.mutable_offsets();
    const auto* off = static_cast<const uint32_t*>(barge_msg_at(m, wc.values_offset));
    o.assign(off, off + rows + 1);  // copied first, then checked in barge's memory
    if (o[0] != 0 || o[rows] > wc.data_bytes) return "string offsets outside the data";
    for (uint64_t i = 0; i < rows; ++i) {
      if (o[i + 1] < o[i]) return "string offsets that go backwards";
    }
    Buffer<char>& d = c.mutable_bytes();
    const char* data = static_cast<const char*>(barge_msg_at(m, wc.data_offset));
    d.assign(data, data + o[rows]);
    c.Resize(rows);
  } else {
    c.Resize(rows);
    void* dst = c.type() == Type::kBool     ? static_cast<void*>(c.bools())
                : c.type() == Type::kDouble ? static_cast<void*>(c.doubles())
                                            : static_cast<void*>(c.ints());
    if (values != 0) std::memcpy(dst, barge_msg_at(m, wc.values_offset), values);
    if (c.type() == Type::kBool) {
      for (uint64_t i = 0; i < rows; ++i) c.bools()[i] = c.bools()[i] != 0;
    }
  }
  if (wc.validity_offset != 0) {
    if (!within(wc.validity_offset, (rows + 7) / 8)) return "a validity bitmap outside the message";
    Buffer<uint64_t>& v = c.MutableValidity();
    std::memcpy(v.data(), barge_msg_at(m, wc.validity_offset), (rows + 7) / 8);
  }
  return {};
}

// BARGE_STAGE_OUTPUT: the fields barge expects back, so that an SDK can convert what user code
// returns (docs/python-stages.md): [{"name": "x", "type": "BIGINT"}, ...] in order.
std::string OutputFieldsJson(const Schema& schema) {
  nlohmann::json fields = nlohmann::json::array();
  for (const Field& f : schema.fields) {
    fields.push_back({{"name", f.name}, {"type", WireTypeName(WireType(f.type))}});
  }
  return fields.dump();
}

// The SDK directory goes first on the container's PYTHONPATH (the image's or the spec's, if any).
void PrependPythonPath(std::vector<std::string>& env) {
  const std::string key = "PYTHONPATH=";
  for (std::string& e : env) {
    if (e.rfind(key, 0) == 0) {
      std::string rest = e.substr(key.size());
      e = key + kSdkMount + (rest.empty() ? "" : ":" + rest);
      return;
    }
  }
  env.push_back(key + kSdkMount);
}

}  // namespace

namespace wire {

uint64_t BatchBytes(const RecordBatch& b) {
  uint64_t n = barge_align(sizeof(barge_msg) + b.columns.size() * sizeof(barge_column));
  for (size_t i = 0; i < b.columns.size(); ++i) {
    const Column& c = b.columns[i];
    n += barge_align(b.schema->fields[i].name.size());
    if (c.has_validity()) n += barge_align((b.rows + 7) / 8);
    if (c.type() == Type::kString || c.type() == Type::kNull) {
      n += barge_align((b.rows + 1) * 4) +
           barge_align(c.type() == Type::kString ? c.byte_size() : 0);
    } else {
      n += barge_align(b.rows * barge_type_width(WireType(c.type())));
    }
  }
  return n;
}

void WriteBatch(const RecordBatch& b, uint64_t seq, void* raw) {
  auto* m = static_cast<barge_msg*>(raw);
  std::memset(m, 0, sizeof *m);
  m->kind = BARGE_MSG_BATCH;
  m->flags = BARGE_FLAG_LAST;
  m->bytes = BatchBytes(b);
  m->seq = seq;
  m->rows = b.rows;
  m->columns = static_cast<uint32_t>(b.columns.size());
  uint64_t at = barge_align(sizeof(barge_msg) + b.columns.size() * sizeof(barge_column));
  for (uint32_t i = 0; i < m->columns; ++i) {
    const Column& c = b.columns[i];
    const std::string& name = b.schema->fields[i].name;
    barge_column* w = barge_msg_column(m, i);
    std::memset(w, 0, sizeof *w);
    w->type = WireType(c.type());
    w->name_bytes = static_cast<uint32_t>(name.size());
    w->name_offset = at;
    std::memcpy(barge_msg_at(m, at), name.data(), name.size());
    at += barge_align(name.size());
    if (c.has_validity()) {
      w->validity_offset = at;
      std::memcpy(barge_msg_at(m, at), c.validity().data(), (b.rows + 7) / 8);
      at += barge_align((b.rows + 7) / 8);
    }
    w->values_offset = at;
    if (c.type() == Type::kString || c.type() == Type::kNull) {
      auto* off = static_cast<uint32_t*>(barge_msg_at(m, at));
      if (c.type() == Type::kString) {
        std::memcpy(off, c.offsets(), (b.rows + 1) * 4);
      } else {
        std::memset(off, 0, (b.rows + 1) * 4);
      }
      at += barge_align((b.rows + 1) * 4);
      w->data_offset = at;
      w->data_bytes = c.type() == Type::kString ? c.byte_size() : 0;
      if (w->data_bytes != 0) std::memcpy(barge_msg_at(m, at), c.bytes(), w->data_bytes);
      at += barge_align(w->data_bytes);
    } else {
      uint64_t n = b.rows * barge_type_width(w->type);
      const void* src = c.type() == Type::kBool     ? static_cast<const void*>(c.bools())
                        : c.type() == Type::kDouble ? static_cast<const void*>(c.doubles())
                                                    : static_cast<const void*>(c.ints());
      if (n != 0) std::memcpy(barge_msg_at(m, at), src, n);
      at += barge_align(n);
    }
  }
}

}  // namespace wire

// ---- A replica

class StageReplica {
 public:
  StageReplica(StageGroup& group, int index, int count)
      : group_(group), config_(group.config()), index_(index), count_(count) {
    name_ = fmt::format("{} replica {}", config_.display, index);
    same_fields_ = *config_.input == *config_.output;
  }
  ~StageReplica() { Stop(); }

  StageReplicaStatus Snapshot() {
    StageReplicaStatus st;
    st.replica = index_;
    st.host_network = config_.container.network == "host";
    st.restarts = restarts_.load(std::memory_order_relaxed);
    st.oom_kills = oom_kills_.load(std::memory_order_relaxed);
    std::lock_guard lock(mu_);
    if (container_.running()) {
      st.pid = container_.pid();
      st.cgroup_dirs = container_.cgroup().dirs();
    }
    return st;
  }

  // Starts the container; the output side calls it, on its task thread, which lives as long as
  // the replica runs (a container dies with the thread that made it: its parent-death signal).
  Status Start() {
    std::lock_guard lock(start_mu_);
    start_status_ = Prepare();
    if (start_status_.ok()) start_status_ = StartContainer();
    if (!start_status_.ok()) Fail(start_status_.message());
    started_ = true;
    start_cv_.notify_all();
    return start_status_;
  }

  // The input side waits until the replica was started (or failed to).
  Status WaitStarted(const std::atomic<bool>* cancelled) {
    std::unique_lock lock(start_mu_);
    while (!started_) {
      if (cancelled != nullptr && cancelled->load()) throw stream::PipelineCancelled{};
      start_cv_.wait_for(lock, std::chrono::milliseconds(100));
    }
    return start_status_;
  }

  // ---- Input side (the StageInput task).

  Status Send(BatchPtr& batch, const std::atomic<bool>* cancelled) {
    if (batch->rows == 0) return Status::Ok();
    if (config_.protocol == StageSpec::Protocol::kLines) return SendLines(batch, cancelled);
    return SendShm(*batch, cancelled);
  }

  Status SendShm(RecordBatch& b, const std::atomic<bool>* cancelled) {
    uint64_t bytes = wire::BatchBytes(b);
    if (bytes > in_->h()->capacity / 2 && b.rows > 1) {
      // Too large for the ring in one piece: two halves, each its own message.
      RecordBatch half;
      for (size_t part = 0; part < 2; ++part) {
        half.Reset(b.schema);
        size_t begin = part == 0 ? 0 : b.rows / 2, end = part == 0 ? b.rows / 2 : b.rows;
        half.AppendRange(b, begin, end);
        RETURN_IF_ERROR(SendShm(half, cancelled));
      }
      return Status::Ok();
    }
    if (bytes > in_->h()->capacity / 2) {
      return Failed(
          fmt::format("a record of {} bytes does not fit the stage's ring of {} (set "
                      "ring: larger in the stage)",
                      bytes, in_->h()->capacity));
    }
    ASSIGN_OR_RETURN(barge_msg * m, Reserve(bytes, cancelled));
    uint64_t seq = next_seq_++;
    wire::WriteBatch(b, seq, m);
    Pending p;
    p.seq = seq;
    p.kind = BARGE_MSG_BATCH;
    p.rows = b.rows;
    p.time.swap(b.time);
    p.watermark.swap(b.watermark);
    p.origin.swap(b.origin);
    Publish(m, std::move(p));
    return Status::Ok();
  }

  Status SendControl(uint32_t kind, int64_t value, const std::atomic<bool>* cancelled) {
    if (config_.protocol == StageSpec::Protocol::kLines) {
      Pending p;
      p.seq = next_seq_++;
      p.kind = kind;
      p.value = value;
      return EnqueueLines(std::move(p), cancelled);
    }
    ASSIGN_OR_RETURN(barge_msg * m, Reserve(BARGE_ALIGN, cancelled));
    std::memset(m, 0, sizeof *m);
    m->kind = kind;
    m->flags = BARGE_FLAG_LAST;
    m->bytes = BARGE_ALIGN;
    m->seq = next_seq_++;
    m->value = value;
    Pending p;
    p.seq = m->seq;
    p.kind = kind;
    p.value = value;
    Publish(m, std::move(p));
    return Status::Ok();
  }

  // ---- Output side (the StageOutput task).

  Result<stream::SourceState> Receive(stream::Batch<BatchPtr>& out, stream::EventTime& wm) {
    if (failed_.load()) return Error();
    if (ended_) return stream::SourceState::kEnd;
    Result<stream::SourceState> st = config_.protocol == StageSpec::Protocol::kLines
                                         ? ReceiveLines(out, wm)
                                         : ReceiveShm(out, wm);
    if (!st.ok()) {
      Fail(st.status().message());
      return Error();
    }
    return st;
  }

  // The checkpoint barrier the last Receive passed (every message before it answered), once.
  uint64_t TakeBarrier() { return std::exchange(barrier_, 0); }

  // Kills the container (if any) and wakes every waiter.
  void Stop() {
    failed_.store(true);
    {
      std::lock_guard lock(mu_);
      if (container_.running()) (void)container_.Signal(SIGKILL);
      container_ = runtime::OwnedContainer();
    }
    lines_cv_.notify_all();
    stdin_.Reset();
    stdout_.Reset();
    log_.reset();
  }

 private:
  // A message barge sent and the stage has not answered yet.
  struct Pending {
    uint64_t seq = 0;
    uint32_t kind = BARGE_MSG_BATCH;
    int64_t value = 0;
    uint64_t end = 0;  // shm: the in ring's byte count once this message was published
    size_t rows = 0;
    Buffer<int64_t> time, watermark, origin;  // the rows' bookkeeping, for the reply
    std::string text;                         // lines: the rows as JSON lines
    std::vector<uint32_t> line_end;           // lines: where each row's line ends in `text`
    BatchPtr input;                           // lines: the rows sent (an answer equal to its
                                              // line keeps the row as it was)
    bool identical = true;                    // lines: every answer so far equal to its line
    size_t answered = 0;                      // lines: rows answered so far
    std::vector<uint32_t> kept;               // lines: the rows not dropped
    BatchPtr reply;                           // lines: the reply being built
  };

  Status Prepare() {
    ASSIGN_OR_RETURN(std::string dir, group_.Dir());
    dir_ = dir + "/" + std::to_string(index_);
    // Any user the stage runs as opens its rings (0666) by their documented names; the group's
    // directory above (0700) keeps everyone else out.
    if (::mkdir(dir_.c_str(), 0711) != 0 && errno != EEXIST) return ErrnoError("mkdir " + dir_);
    if (config_.protocol == StageSpec::Protocol::kShm) {
      ASSIGN_OR_RETURN(in_, RingFile::Create(dir_ + "/in", config_.ring_bytes));
      ASSIGN_OR_RETURN(out_, RingFile::Create(dir_ + "/out", config_.ring_bytes));
    }
    int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) return ErrnoError("eventfd");
    wake_ = UniqueFd(fd);
    return Status::Ok();
  }

  Status StartContainer() {
    launch::ContainerOptions o = config_.container;
    o.env.push_back("BARGE_STAGE_DIR=" + std::string(BARGE_DEFAULT_DIR));
    o.env.push_back("BARGE_STAGE_REPLICA=" + std::to_string(index_));
    o.env.push_back("BARGE_STAGE_REPLICAS=" + std::to_string(count_));
    o.env.push_back("BARGE_STAGE_CHECKPOINT=" + std::to_string(group_.ctx().resumed_checkpoint));
    o.env.push_back(std::string("BARGE_STAGE_PROTOCOL=") +
                    (config_.protocol == StageSpec::Protocol::kShm ? "shm" : "lines"));
    runtime::MountSpec m;
    m.kind = runtime::MountSpec::Kind::kBind;
    m.source = dir_;
    m.destination = BARGE_DEFAULT_DIR;
    o.mounts.push_back(m);
    ASSIGN_OR_RETURN(std::string group_dir, group_.Dir());
    m.source = group_dir + "/sdk";
    m.destination = kSdkMount;
    m.read_only = true;
    o.mounts.push_back(m);
    o.env.push_back("BARGE_STAGE_OUTPUT=" + OutputFieldsJson(*config_.output));
    o.rm = true;
    ASSIGN_OR_RETURN(runtime::ContainerConfig cfg, launch::MakeContainerConfig(config_.root, o));
    PrependPythonPath(cfg.process.env);
    ASSIGN_OR_RETURN(runtime::ContainerRecord record, group_.store().Create(std::move(cfg)));
    int log_pipe[2], in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
    if (::pipe2(log_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe");
    UniqueFd log_read(log_pipe[0]), log_write(log_pipe[1]);
    UniqueFd child_in, child_out;
    ASSIGN_OR_RETURN(UniqueFd null, OpenFile("/dev/null", O_RDWR));
    runtime::Stdio stdio{null.get(), log_write.get(), log_write.get()};
    if (config_.protocol == StageSpec::Protocol::kLines) {
      if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0) {
        return ErrnoError("pipe");
      }
      child_in = UniqueFd(in_pipe[0]);
      child_out = UniqueFd(out_pipe[1]);
      stdio = {child_in.get(), child_out.get(), log_write.get()};
    }
    runtime::StartFailure failure;
    Result<runtime::OwnedContainer> c =
        runtime::OwnedContainer::Start(group_.store(), std::move(record), stdio, &failure);
    if (!c.ok()) {
      if (in_pipe[1] >= 0) ::close(in_pipe[1]);
      if (out_pipe[0] >= 0) ::close(out_pipe[0]);
      return c.status().Wrap(name_);
    }
    log_write.Reset();  // only the container writes its log now: EOF when it exits
    log_ = std::make_unique<LogRelay>("barge: " + name_ + ": ", std::move(log_read));
    {
      std::lock_guard lock(mu_);
      container_ = std::move(c).value();
    }
    if (config_.protocol == StageSpec::Protocol::kLines) {
      std::lock_guard lock(lines_mu_);
      ::fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
      stdin_ = UniqueFd(in_pipe[1]);
      stdout_ = UniqueFd(out_pipe[0]);
      stdin_closed_ = false;
      write_entry_ = 0;  // everything unanswered is written again
      write_offset_ = 0;
      read_buf_.clear();
      scanned_ = 0;
    }
    return Status::Ok();
  }

  // The container exited before echoing END (or the protocol broke): start it again when the spec
  // allows, else fail with what is known.
  Status Recover(const std::string& why) {
    std::string detail = why;
    if (container_.running()) {
      (void)container_.Signal(SIGKILL);
    }
    Result<runtime::ExitInfo> exit = runtime::ExitInfo{};
    {
      std::lock_guard lock(mu_);  // a metrics scrape reads container_
      if (container_.running()) exit = container_.Finish();
    }
    std::string tail = log_ ? log_->Tail() : "";
    log_.reset();
    if (exit.ok() && exit->oom_killed) oom_kills_.fetch_add(1, std::memory_order_relaxed);
    if (exit.ok() && why.empty()) {
      detail = ExitText(*exit) + (exit->oom_killed ? "" : " before the end of its input");
    }
    if (!tail.empty()) detail += "; last output: " + tail;
    if (restarts_ >= config_.restart) {
      if (config_.restart > 0) {
        detail += fmt::format(" (after {} restart{})", restarts_.load(), restarts_ == 1 ? "" : "s");
      }
      return Failed(name_ + " " + detail);
    }
    ++restarts_;
    std::string note = "barge: " + name_ + " " + detail + "; restarting (" +
                       std::to_string(restarts_.load()) + " of " + std::to_string(config_.restart) +
                       ")\n";
    (void)!::write(STDERR_FILENO, note.data(), note.size());
    // What the dead replica did not answer is read again by the new one; what it half answered
    // is dropped.
    parts_.clear();
    if (config_.protocol == StageSpec::Protocol::kShm) {
      barge_ring_header* in = in_->h();
      barge_ring_header* out = out_->h();
      in->head.store(in->ack.load());
      in->consumer_sleeping.store(0);
      out->tail.store(0);
      out->head.store(0);
      out_head_ = 0;
      out->ack.store(0);
      out->producer_sleeping.store(0);
      out->closed.store(0);
    } else {
      std::lock_guard lock(lines_mu_);
      for (Pending& p : pending_lines_) {
        p.answered = 0;
        p.kept.clear();
        p.reply = BatchPtr();
        p.identical = true;
      }
    }
    return StartContainer();
  }

  // How the replica's container ended, for messages.
  std::string ExitText(const runtime::ExitInfo& exit) const {
    if (exit.oom_killed) return "was OOM-killed (memory limit " + config_.container.memory + ")";
    if (exit.signal != 0) {
      const char* abbrev = ::sigabbrev_np(exit.signal);
      return fmt::format("was killed by SIG{} (exit code {})", abbrev != nullptr ? abbrev : "?",
                         exit.exit_code);
    }
    return "exited with code " + std::to_string(exit.exit_code);
  }

  Status Failed(std::string message) {
    Fail(message);
    return Error();
  }
  void Fail(const std::string& message) {
    {
      std::lock_guard lock(fail_mu_);
      if (failure_.empty()) failure_ = message;
    }
    failed_.store(true);
    lines_cv_.notify_all();
  }
  Status Error() {
    std::lock_guard lock(fail_mu_);
    return Internal(failure_.empty() ? name_ + " stopped" : failure_);
  }

  // ---- shm

  Result<barge_msg*> Reserve(uint64_t bytes, const std::atomic<bool>* cancelled) {
    for (;;) {
      if (failed_.load()) return Error();
      if (cancelled != nullptr && cancelled->load()) throw stream::PipelineCancelled{};
      barge_msg* m = barge_ring_reserve(in_->ring(), bytes, 100);
      if (m != nullptr) return m;
    }
  }

  void Publish(barge_msg* m, Pending p) {
    p.end = in_->h()->tail.load(std::memory_order_relaxed) + m->bytes;
    {
      std::lock_guard lock(mu_);
      pending_.push_back(std::move(p));
    }
    barge_ring_publish(in_->ring(), m);
  }

  // The oldest unanswered message, which a reply must answer.
  Pending* Front() {
    std::lock_guard lock(mu_);
    return pending_.empty() ? nullptr : &pending_.front();
  }
  // It was answered: its space in the in ring may be reused.
  void PopFront() {
    uint64_t end;
    {
      std::lock_guard lock(mu_);
      end = pending_.front().end;
      pending_.pop_front();
    }
    barge_ring_header* in = in_->h();
    in->ack.store(end, std::memory_order_release);
    barge_ring_bell(&in->producer_sleeping, &in->space_seq);
  }

  Result<stream::SourceState> ReceiveShm(stream::Batch<BatchPtr>& out, stream::EventTime& wm) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(100);
    barge_msg hdr;
    std::string bad;
    for (;;) {
      const barge_msg* m = PeekReply(0, hdr, bad);
      if (m == nullptr && bad.empty()) {
        // Nothing yet: replies come back as they are done; sleep briefly, watching the replica.
        if (container_.Exited()) {
          if (PeekReply(0, hdr, bad) != nullptr || !bad.empty()) continue;  // written before dying
          RETURN_IF_ERROR(Recover(""));
          continue;
        }
        if (!out.records.empty()) return stream::SourceState::kMore;
        int left = static_cast<int>(
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
        if (left <= 0) return stream::SourceState::kIdle;
        m = PeekReply(std::min(left, 20), hdr, bad);
        if (m == nullptr && bad.empty()) continue;
      }
      Pending* front = Front();
      if (bad.empty() && (hdr.kind < BARGE_MSG_BATCH || hdr.kind > BARGE_MSG_END)) {
        bad = fmt::format("a message of unknown kind {}", hdr.kind);
      }
      if (bad.empty() && front == nullptr) bad = "replied when nothing was asked";
      if (bad.empty() && hdr.seq != front->seq) {
        bad = fmt::format("answered message {} while {} was the oldest unanswered", hdr.seq,
                          front->seq);
      }
      if (bad.empty() && hdr.kind != front->kind) {
        bad = fmt::format("answered message {} with a {} message", front->seq, hdr.kind);
      }
      if (bad.empty() && hdr.kind == BARGE_MSG_BATCH) bad = ReadReply(m, hdr, *front);
      if (!bad.empty()) {
        RETURN_IF_ERROR(Recover("broke the protocol: " + bad));
        bad.clear();
        continue;
      }
      ConsumeReply(hdr.bytes);
      if (hdr.kind == BARGE_MSG_BATCH) {
        if ((hdr.flags & BARGE_FLAG_LAST) == 0) continue;
        for (BatchPtr& part : parts_) {
          if (part->rows > 0) out.records.push_back(std::move(part));
        }
        parts_.clear();
        PopFront();
        if (out.records.size() >= 4) return stream::SourceState::kMore;
        continue;
      }
      const int64_t value = front->value;  // barge's own record of what it sent
      PopFront();
      if (hdr.kind == BARGE_MSG_WATERMARK) {
        wm = std::max(wm, value);
        return stream::SourceState::kMore;
      }
      if (hdr.kind == BARGE_MSG_BARRIER) {
        // Every batch before it came back: the barrier follows the records returned now.
        barrier_ = static_cast<uint64_t>(value);
        return stream::SourceState::kMore;
      }
      if (hdr.kind == BARGE_MSG_END) {
        ended_ = true;
        return Finish(out);
      }
    }
  }

  // The next message of the out ring. The stage can write that memory at any time, so barge keeps
  // its own read position (out_head_) and capacity, copies the message header into `hdr` before
  // checking it, and never follows a size or offset from the ring outside the ring. Skips padding.
  // nullptr with `bad` empty: nothing within `timeout_ms`; with `bad` set: what is wrong.
  const barge_msg* PeekReply(int timeout_ms, barge_msg& hdr, std::string& bad) {
    static_assert(sizeof(barge_msg) == BARGE_ALIGN);
    barge_ring* r = out_->ring();
    barge_ring_header* h = r->h;
    const uint64_t cap = r->mask + 1;
    for (;;) {
      const uint64_t tail = h->tail.load(std::memory_order_acquire);
      if (tail == out_head_) {
        if (timeout_ms == 0) return nullptr;
        uint32_t seen = h->data_seq.load(std::memory_order_acquire);
        h->consumer_sleeping.store(1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (h->tail.load(std::memory_order_acquire) == out_head_) {
          barge_futex_wait(&h->data_seq, seen, timeout_ms);
        }
        h->consumer_sleeping.store(0, std::memory_order_relaxed);
        timeout_ms = 0;
        continue;
      }
      if (tail - out_head_ > cap) {
        bad = fmt::format("moved its ring's tail to {} when barge had read up to {}", tail,
                          out_head_);
        return nullptr;
      }
      const uint64_t at = out_head_ & r->mask;  // a multiple of 64: so is every size taken
      const auto* m = reinterpret_cast<const barge_msg*>(r->data + at);
      std::memcpy(&hdr, m, sizeof hdr);
      if (hdr.bytes < BARGE_ALIGN || hdr.bytes % BARGE_ALIGN != 0 || hdr.bytes > cap - at ||
          hdr.bytes > tail - out_head_) {
        bad = fmt::format("a message of {} bytes at {} of a ring of {} with {} published",
                          hdr.bytes, at, cap, tail - out_head_);
        return nullptr;
      }
      if (hdr.kind == BARGE_MSG_PAD) {
        ConsumeReply(hdr.bytes);
        continue;
      }
      return m;
    }
  }

  // Done with the message at the read position: its space goes back to the stage.
  void ConsumeReply(uint64_t bytes) {
    barge_ring_header* h = out_->h();
    out_head_ += bytes;
    h->head.store(out_head_, std::memory_order_release);
    h->ack.store(out_head_, std::memory_order_release);
    barge_ring_bell(&h->producer_sleeping, &h->space_seq);
  }

  // Reads one reply (part) for `front` into parts_, in the stage's output schema. `hdr` is barge's
  // copy of the message header (PeekReply checked its size); everything else is copied out of
  // the ring before it is checked. Empty when sound; else what is wrong.
  std::string ReadReply(const barge_msg* m, const barge_msg& hdr, const Pending& front) {
    if (sizeof(barge_msg) + uint64_t{hdr.columns} * sizeof(barge_column) > hdr.bytes) {
      return fmt::format("a batch of {} columns in {} bytes", hdr.columns, hdr.bytes);
    }
    // Every column holds at least a byte per row: more rows than bytes cannot be sound.
    if (hdr.rows > hdr.bytes)
      return fmt::format("a batch of {} rows in {} bytes", hdr.rows, hdr.bytes);
    auto within = [&](uint64_t offset, uint64_t size) {
      return offset >= sizeof(barge_msg) && offset <= hdr.bytes && size <= hdr.bytes - offset;
    };
    const Schema& schema = *config_.output;
    BatchPtr ptr = group_.ctx().pool.Get(config_.output);
    RecordBatch& b = *ptr;
    std::optional<barge_column> row_map;
    std::vector<std::optional<barge_column>> found(schema.fields.size());
    std::string name;
    for (uint32_t i = 0; i < hdr.columns; ++i) {
      barge_column c;
      std::memcpy(&c, barge_msg_column(m, i), sizeof c);
      if (!within(c.name_offset, c.name_bytes)) return "a column name outside the message";
      name.assign(static_cast<const char*>(barge_msg_at(m, c.name_offset)), c.name_bytes);
      if (name == "__row") {
        if (c.type != BARGE_TYPE_ROW) return "a \"__row\" column that is not of type ROW";
        row_map = c;
        continue;
      }
      int k = schema.Find(name);
      if (k < 0) {
        return fmt::format(
            "returned field '{}', which the stage's output does not declare "
            "(declare it with output: in the spec)",
            Printable(name));
      }
      Type want = schema.fields[static_cast<size_t>(k)].type;
      if (c.type != WireType(want)) {
        return fmt::format("returned field '{}' as {}, but the stage's output says {}",
                           Printable(name), WireTypeName(c.type), TypeName(want));
      }
      found[static_cast<size_t>(k)] = c;
    }
    for (size_t k = 0; k < found.size(); ++k) {
      if (!found[k]) {
        return fmt::format("returned no field '{}' (the stage's output declares it)",
                           schema.fields[k].name);
      }
      std::string bad = ReadColumn(m, hdr, *found[k], b.columns[k]);
      if (!bad.empty()) return "field '" + schema.fields[k].name + "': " + bad;
    }
    b.rows = hdr.rows;
    auto gather = [&](const Buffer<int64_t>& from, Buffer<int64_t>& to, const uint32_t* map) {
      if (from.empty()) return;
      to.resize(b.rows);
      for (size_t r = 0; r < b.rows; ++r) to[r] = from[map != nullptr ? map[r] : r];
    };
    const uint32_t* map = nullptr;
    if (row_map) {
      if (!within(row_map->values_offset, b.rows * 4))
        return "a \"__row\" column outside the message";
      const auto* shared = static_cast<const uint32_t*>(barge_msg_at(m, row_map->values_offset));
      row_map_.assign(shared, shared + b.rows);  // copied first, then checked
      map = row_map_.data();
      for (size_t r = 0; r < b.rows; ++r) {
        if (map[r] >= front.rows) {
          return fmt::format("\"__row\" names input row {} of a batch of {}", map[r], front.rows);
        }
      }
    } else if (b.rows != front.rows) {
      return fmt::format(
          "returned {} rows for {} without a \"__row\" column saying where they come "
          "from",
          b.rows, front.rows);
    }
    gather(front.time, b.time, map);
    gather(front.watermark, b.watermark, map);
    gather(front.origin, b.origin, map);
    parts_.push_back(std::move(ptr));
    return {};
  }

  // After END: the replica exits by itself; a few seconds' grace, then it is killed.
  // A replica that exits with an error after answering everything fails the pipeline, as a
  // container whose command fails does.
  Result<stream::SourceState> Finish(stream::Batch<BatchPtr>&) {
    if (config_.protocol == StageSpec::Protocol::kLines) RETURN_IF_ERROR(DrainAfterEnd());
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!container_.Exited() && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    bool killed = false;
    if (!container_.Exited()) {
      std::string note =
          "barge: " + name_ + " did not exit within 10 s of the end of its input; killing it\n";
      (void)!::write(STDERR_FILENO, note.data(), note.size());
      (void)container_.Signal(SIGKILL);
      killed = true;
    }
    Result<runtime::ExitInfo> exit = runtime::ExitInfo{};
    {
      std::lock_guard lock(mu_);
      if (container_.running()) exit = container_.Finish();
    }
    if (exit.ok() && exit->oom_killed) oom_kills_.fetch_add(1, std::memory_order_relaxed);
    if (!killed && exit.ok() && (exit->exit_code != 0 || exit->oom_killed)) {
      std::string tail = log_ ? log_->Tail() : "";
      return Failed(name_ + " " + ExitText(*exit) + " after the end of its input" +
                    (tail.empty() ? "" : "; last output: " + tail));
    }
    return stream::SourceState::kEnd;
  }

  // ---- lines

  Status SendLines(BatchPtr& batch, const std::atomic<bool>* cancelled) {
    RecordBatch& b = *batch;
    Pending p;
    p.seq = next_seq_++;
    p.kind = BARGE_MSG_BATCH;
    p.rows = b.rows;
    p.line_end.resize(b.rows);
    for (size_t i = 0; i < b.rows; ++i) {
      json_.Append(b, i, p.text);
      p.line_end[i] = static_cast<uint32_t>(p.text.size());
      p.text += '\n';
    }
    p.time.swap(b.time);
    p.watermark.swap(b.watermark);
    p.origin.swap(b.origin);
    if (same_fields_) p.input = std::move(batch);
    return EnqueueLines(std::move(p), cancelled);
  }

  // Hands a message to the output task, which writes it to the replica's stdin as the pipe takes
  // it; waits while too much is unanswered (backpressure).
  Status EnqueueLines(Pending p, const std::atomic<bool>* cancelled) {
    constexpr size_t kMaxUnansweredBytes = 8 << 20;
    std::unique_lock lock(lines_mu_);
    for (;;) {
      if (failed_.load()) {
        lock.unlock();
        return Error();
      }
      if (cancelled != nullptr && cancelled->load()) throw stream::PipelineCancelled{};
      if (pending_bytes_ < kMaxUnansweredBytes) break;
      lines_cv_.wait_for(lock, std::chrono::milliseconds(100));
    }
    pending_bytes_ += p.text.size();
    pending_lines_.push_back(std::move(p));
    lock.unlock();
    uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
    return Status::Ok();
  }

  Result<stream::SourceState> ReceiveLines(stream::Batch<BatchPtr>& out, stream::EventTime& wm) {
    if (!decoder_) {
      // Every declared field, and no other, as the shm protocol checks (null is a NULL).
      std::vector<bool> optional(config_.output->fields.size(), false);
      TextFormat format{Format::kJsonl, ',', false};
      format.only_schema_fields = true;
      ASSIGN_OR_RETURN(decoder_, RowDecoder::Make(format, config_.output, optional));
    }
    const auto deadline = Clock::now() + std::chrono::milliseconds(100);
    for (;;) {
      RETURN_IF_ERROR(WriteSome());
      // Replies already read.
      bool progressed = false;
      RETURN_IF_ERROR(TakeLines(out, wm, &progressed));
      if (ended_) return Finish(out);
      WarnIfSilent(progressed);
      if (progressed && !out.records.empty()) return stream::SourceState::kMore;
      if (progressed) return stream::SourceState::kMore;  // a watermark moved
      int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
      if (left <= 0) return stream::SourceState::kIdle;
      pollfd fds[3] = {{stdout_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}, {-1, POLLOUT, 0}};
      if (HasWriting()) fds[2].fd = stdin_.get();
      int n = ::poll(fds, 3, std::min(left, 50));
      if (n < 0 && errno != EINTR) return ErrnoError("poll " + name_);
      if (fds[1].revents & POLLIN) {
        uint64_t v;
        (void)!::read(wake_.get(), &v, sizeof v);
      }
      if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        char chunk[1 << 16];
        ssize_t got = ::read(stdout_.get(), chunk, sizeof chunk);
        if (got > 0) {
          read_buf_.append(chunk, static_cast<size_t>(got));
        } else if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
          // The replica closed its stdout: it exited (or will). Anything unanswered is a crash.
          RETURN_IF_ERROR(TakeLines(out, wm, &progressed));
          if (ended_) return Finish(out);
          // What it answered before dying goes out first (a barrier taken now must follow
          // exactly those rows); the next call finds the closed stdout again and restarts it.
          if (progressed) return stream::SourceState::kMore;
          while (!container_.Exited()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
          RETURN_IF_ERROR(Recover(""));
        }
      } else if (container_.Exited() && !(fds[0].revents & POLLIN)) {
        RETURN_IF_ERROR(Recover(""));
      }
    }
  }

  // A lines stage that keeps its answers until its input ends (no flush per line) stalls once
  // barge has as much unanswered as it sends ahead: say so once, instead of waiting silently.
  void WarnIfSilent(bool progressed) {
    const auto now = Clock::now();
    size_t unanswered;
    {
      std::lock_guard lock(lines_mu_);
      unanswered = pending_lines_.size();
    }
    if (progressed || unanswered == 0) {
      last_answer_ = now;
      return;
    }
    if (warned_silent_ || now - last_answer_ < std::chrono::seconds(10)) return;
    warned_silent_ = true;
    std::string note = "barge: " + name_ +
                       " has answered nothing for 10 s; a lines stage must answer each line as it "
                       "comes (flush after each line, e.g. fflush() in awk, -u in python)\n";
    (void)!::write(STDERR_FILENO, note.data(), note.size());
  }

  bool HasWriting() {
    std::lock_guard lock(lines_mu_);
    if (stdin_closed_ || !stdin_) return false;
    return write_entry_ < pending_lines_.size();
  }

  // Writes what the pipe takes of the unwritten messages; closes stdin after END.
  Status WriteSome() {
    std::unique_lock lock(lines_mu_);
    while (!stdin_closed_ && stdin_ && write_entry_ < pending_lines_.size()) {
      Pending& p = pending_lines_[write_entry_];
      if (p.kind == BARGE_MSG_END) {
        stdin_.Reset();
        stdin_closed_ = true;
        break;
      }
      if (write_offset_ >= p.text.size()) {
        ++write_entry_;
        write_offset_ = 0;
        continue;
      }
      ssize_t n = WriteNoSigpipe(stdin_.get(), p.text.data() + write_offset_,
                                 p.text.size() - write_offset_);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        if (errno == EPIPE) break;  // it exited: the read side notices and restarts it
        return ErrnoError("write to " + name_);
      }
      write_offset_ += static_cast<size_t>(n);
    }
    return Status::Ok();
  }

  // Drops the oldest pending message, keeping the write cursor on the same message.
  void PopFrontLine() {
    Pending& p = pending_lines_.front();
    if (p.kind == BARGE_MSG_BATCH) pending_bytes_ -= p.text.size();
    pending_lines_.pop_front();
    if (write_entry_ > 0) {
      --write_entry_;
    } else {
      write_offset_ = 0;
    }
    lines_cv_.notify_all();
  }

  // Matches the complete lines read so far with the oldest unanswered rows; answers control
  // messages once everything before them is answered.
  Status TakeLines(stream::Batch<BatchPtr>& out, stream::EventTime& wm, bool* progressed) {
    size_t start = 0;
    std::unique_lock lock(lines_mu_);
    for (;;) {
      if (!pending_lines_.empty() && pending_lines_.front().kind != BARGE_MSG_BATCH) {
        Pending& p = pending_lines_.front();
        if (p.kind == BARGE_MSG_END) {
          if (!stdin_closed_) break;  // written (stdin closed) first
          if (start < read_buf_.size()) {
            read_buf_.clear();
            scanned_ = 0;
            lock.unlock();
            return Failed(name_ + " " + kExtraLines);
          }
          ended_ = true;
          PopFrontLine();
          *progressed = true;
          break;
        }
        if (p.kind == BARGE_MSG_BARRIER) {
          // Every row before it was answered: the barrier follows the rows taken now.
          barrier_ = static_cast<uint64_t>(p.value);
          PopFrontLine();
          *progressed = true;
          break;
        }
        if (p.kind == BARGE_MSG_WATERMARK) wm = std::max(wm, p.value);
        PopFrontLine();
        *progressed = true;
        continue;
      }
      size_t nl = read_buf_.find('\n', std::max(start, scanned_));
      if (nl == std::string::npos) {
        if (read_buf_.size() - start > kMaxRecordBytes) {
          read_buf_.clear();
          scanned_ = 0;
          lock.unlock();
          return Recover(fmt::format(
              "broke the protocol: wrote an answer longer than {} bytes without a newline",
              kMaxRecordBytes));
        }
        scanned_ = read_buf_.size();  // the next search starts where this one ended
        break;
      }
      if (pending_lines_.empty()) {
        // Answers already went on matched with later rows: no restart can undo that.
        read_buf_.clear();
        scanned_ = 0;
        lock.unlock();
        return Failed(name_ + " " + kExtraLines);
      }
      Pending& p = pending_lines_.front();
      std::string_view line(read_buf_.data() + start, nl - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      start = nl + 1;
      if (!line.empty()) {
        // A line answered with itself (a filter such as grep or awk) keeps its row as it was.
        size_t from = p.answered == 0 ? 0 : p.line_end[p.answered - 1] + 1;
        bool same =
            p.input && line == std::string_view(p.text).substr(from, p.line_end[p.answered] - from);
        if (!same && p.identical) {
          // The first answer that is not its line: the rows kept so far become a reply batch.
          p.identical = false;
          p.reply = group_.ctx().pool.Get(config_.output);
          if (p.input) p.reply->AppendRows(*p.input, p.kept.data(), p.kept.size());
          p.reply->time.clear();
          p.reply->watermark.clear();
          p.reply->origin.clear();
        }
        if (same && !p.identical) {
          uint32_t row = static_cast<uint32_t>(p.answered);
          p.reply->AppendRows(*p.input, &row, 1);
          p.reply->time.clear();
          p.reply->watermark.clear();
          p.reply->origin.clear();
        } else if (!same) {
          std::string error;
          std::string record(line);
          record += '\n';
          Result<bool> row = decoder_->Parse(record, *p.reply, error);
          if (!row.ok() || !*row) {
            std::string why = row.ok() ? error : row.status().message();
            read_buf_.erase(0, start);
            lock.unlock();
            return Recover("broke the protocol: its answer to row " +
                           std::to_string(p.answered + 1) + " of a batch is not a record: " + why);
          }
          ++p.reply->rows;
        }
        p.kept.push_back(static_cast<uint32_t>(p.answered));
      }
      if (++p.answered < p.rows) continue;
      // The batch is answered: its rows' bookkeeping follows the rows kept.
      if (p.identical && !p.kept.empty()) {
        p.reply = group_.ctx().pool.Get(config_.output);
        p.reply->AppendRows(*p.input, p.kept.data(), p.kept.size());
        p.reply->time.clear();
        p.reply->watermark.clear();
        p.reply->origin.clear();
      }
      if (p.reply) {
        RecordBatch& b = *p.reply;
        auto gather = [&](const Buffer<int64_t>& from, Buffer<int64_t>& to) {
          if (from.empty()) return;
          to.resize(b.rows);
          for (size_t r = 0; r < b.rows; ++r) to[r] = from[p.kept[r]];
        };
        gather(p.time, b.time);
        gather(p.watermark, b.watermark);
        gather(p.origin, b.origin);
        out.records.push_back(std::move(p.reply));
      }
      PopFrontLine();
      *progressed = true;
    }
    read_buf_.erase(0, start);
    scanned_ = scanned_ > start ? scanned_ - start : 0;
    return Status::Ok();
  }

  static constexpr const char* kExtraLines =
      "broke the protocol: wrote more lines than it was given records (the lines protocol "
      "answers each line in with exactly one line out; an empty line drops the record)";

  // After END was answered: whatever the replica still writes to stdout breaks the protocol; it
  // is read (so the replica is never blocked writing it) until the replica closes stdout.
  Status DrainAfterEnd() {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    char chunk[1 << 16];
    while (stdout_ && Clock::now() < deadline) {
      pollfd fd{stdout_.get(), POLLIN, 0};
      int n = ::poll(&fd, 1, 50);
      if (n < 0 && errno != EINTR) break;
      if (n <= 0) continue;
      ssize_t got = ::read(stdout_.get(), chunk, sizeof chunk);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) break;  // closed: the replica is done
      return Failed(name_ + " " + kExtraLines);
    }
    return Status::Ok();
  }

  StageGroup& group_;
  const StageConfig& config_;
  int index_;
  int count_;
  std::string name_;

  std::mutex start_mu_;
  std::condition_variable start_cv_;
  bool started_ = false;
  Status start_status_;

  std::string dir_;
  std::unique_ptr<RingFile> in_, out_;
  UniqueFd wake_;  // lines: the input side's nudge to the output side

  std::mutex mu_;  // pending_ (shm), container_ swaps
  std::deque<Pending> pending_;
  runtime::OwnedContainer container_;
  std::unique_ptr<LogRelay> log_;
  uint64_t next_seq_ = 1;               // input side
  JsonRowWriter json_;                  // lines protocol: the JSON of each input row
  std::vector<BatchPtr> parts_;         // output side: parts of the reply being read
  uint64_t out_head_ = 0;               // output side: barge's read position in the out ring
  std::vector<uint32_t> row_map_;       // output side: a reply's "__row" column, copied
  std::atomic<int> restarts_{0};        // read by metrics scrapes
  std::atomic<uint64_t> oom_kills_{0};  // the same
  bool ended_ = false;
  uint64_t barrier_ = 0;  // output side: a barrier echoed, for the engine to forward

  std::mutex fail_mu_;
  std::string failure_;
  std::atomic<bool> failed_{false};

  // lines: messages not yet answered, written to stdin by the output side.
  std::mutex lines_mu_;
  std::condition_variable lines_cv_;
  std::deque<Pending> pending_lines_;
  size_t pending_bytes_ = 0;
  size_t write_entry_ = 0;   // the first message not completely written
  size_t write_offset_ = 0;  // bytes of it written
  bool stdin_closed_ = false;
  UniqueFd stdin_, stdout_;
  std::string read_buf_;
  size_t scanned_ = 0;  // read_buf_ holds no newline before this (past the last line taken)
  Clock::time_point last_answer_ = Clock::now();
  bool warned_silent_ = false;
  std::unique_ptr<RowDecoder> decoder_;
  bool same_fields_ = false;  // the stage returns the fields it is given
};

// ---- The group

namespace {

// Every group's directory in /dev/shm, for RemoveStageFiles.
std::mutex g_dirs_mu;
std::vector<std::string> g_dirs;

}  // namespace

void RemoveStageFiles() {
  std::lock_guard lock(g_dirs_mu);
  for (const std::string& d : g_dirs) (void)RemoveTree(d);
  g_dirs.clear();
}

StageGroup::StageGroup(StageConfig config, RunContext& ctx, int replicas)
    : config_(std::move(config)), ctx_(ctx), store_(config_.root) {
  for (int i = 0; i < replicas; ++i) {
    replicas_.push_back(std::make_unique<StageReplica>(*this, i, replicas));
  }
}

std::vector<StageReplicaStatus> StageGroup::Status() const {
  std::vector<StageReplicaStatus> out;
  for (const std::unique_ptr<StageReplica>& r : replicas_) out.push_back(r->Snapshot());
  return out;
}

StageGroup::~StageGroup() {
  replicas_.clear();
  if (dir_.empty()) return;
  (void)RemoveTree(dir_);
  std::lock_guard lock(g_dirs_mu);
  std::erase(g_dirs, dir_);
}

Result<std::string> StageGroup::Dir() {
  std::lock_guard lock(dir_mu_);
  if (!dir_.empty()) return dir_;
  // Rings live on a tmpfs: memory, never written back to a disk.
  const char* base = "/dev/shm";
  struct statfs fs {};
  if (::statfs(base, &fs) != 0 || fs.f_type != TMPFS_MAGIC) {
    return Unsupported("container stages need /dev/shm to be a tmpfs for their shared memory");
  }
  // Named after this process: what a barge that was killed left behind is removed by the next.
  const std::string prefix = "barge-stage-";
  if (DIR* d = ::opendir(base)) {
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.rfind(prefix, 0) != 0) continue;
      unsigned long long pid = 0, start = 0;
      if (std::sscanf(name.c_str() + prefix.size(), "%llu-%llu-", &pid, &start) != 2) continue;
      if (!runtime::ProcessAlive(static_cast<pid_t>(pid), start)) {
        (void)RemoveTree(std::string(base) + "/" + name);
      }
    }
    ::closedir(d);
  }
  pid_t self = ::getpid();
  ASSIGN_OR_RETURN(
      TempDir dir,
      TempDir::MakeIn(base, prefix + std::to_string(self) + "-" +
                                std::to_string(runtime::ProcessStartTime(self)) + "-"));
  // barge's alone: each replica reaches its own directory through a bind mount, and no other user
  // of the host can reach any ring.
  ::chmod(dir.path().c_str(), 0700);
  // The SDKs every replica may import, without the image having to copy them.
  const std::string sdk = dir.path() + "/sdk";
  if (::mkdir(sdk.c_str(), 0755) != 0) return ErrnoError("mkdir " + sdk);
  RETURN_IF_ERROR(WriteFile(sdk + "/barge_stage.py",
                            std::string_view(reinterpret_cast<const char*>(detail::kPythonStageSdk),
                                             detail::kPythonStageSdk_size)));
  dir_ = dir.Release();
  std::lock_guard dirs_lock(g_dirs_mu);
  g_dirs.push_back(dir_);
  return dir_;
}

// ---- The engine's side

StageInput::StageInput(std::string name, std::shared_ptr<StageGroup> group,
                       const std::atomic<bool>* cancelled)
    : BatchOperator(std::move(name)), group_(std::move(group)), cancelled_(cancelled) {}

void StageInput::Open(int instance, int) { replica_ = &group_->replica(instance); }

void StageInput::Check(const Status& st) {
  if (!st.ok()) throw stream::OperatorFailure(name(), st.message());
}

void StageInput::Push(stream::Batch<BatchPtr>& in) {
  CountIn(in);
  Check(replica_->WaitStarted(cancelled_));
  const size_t limit = group_->config().message_rows;
  for (BatchPtr& b : in.records) {
    if (limit == 0 || (CoalescedRows() == 0 && b->rows == limit)) {
      Check(replica_->Send(b, cancelled_));
      continue;
    }
    for (size_t at = 0; at < b->rows;) {  // messages of exactly `limit` rows, the last excepted
      if (!coalesced_) coalesced_ = group_->ctx().pool.Get(b->schema);
      size_t take = std::min(limit - coalesced_->rows, b->rows - at);
      coalesced_->AppendRange(*b, at, at + take);
      at += take;
      if (coalesced_->rows == limit) Flush();
    }
  }
}

void StageInput::Flush() {
  if (CoalescedRows() > 0) {
    Check(replica_->Send(coalesced_, cancelled_));
    coalesced_ = BatchPtr();  // back to the pool (a lines replica may keep it for its replies)
  }
  if (held_watermark_) {
    Check(replica_->SendControl(BARGE_MSG_WATERMARK, *held_watermark_, cancelled_));
    held_watermark_.reset();
  }
}

void StageInput::Watermark(stream::EventTime w) {
  Check(replica_->WaitStarted(cancelled_));
  if (CoalescedRows() > 0) {  // it follows the rows held back
    held_watermark_ = std::max(w, held_watermark_.value_or(w));
    return;
  }
  Check(replica_->SendControl(BARGE_MSG_WATERMARK, w, cancelled_));
}

void StageInput::Barrier(uint64_t id) {
  Check(replica_->WaitStarted(cancelled_));
  Flush();
  // Nothing of this side's is left to save; the barrier goes on from the output side once the
  // replica answered everything before it.
  TakeSnapshot(id);
  Check(replica_->SendControl(BARGE_MSG_BARRIER, static_cast<int64_t>(id), cancelled_));
}

void StageInput::End() {
  Check(replica_->WaitStarted(cancelled_));
  Flush();
  Check(replica_->SendControl(BARGE_MSG_END, 0, cancelled_));
}

void StageInput::Idle() {
  if (CoalescedRows() == 0 && !held_watermark_) return;
  Check(replica_->WaitStarted(cancelled_));
  Flush();
}

Status StageOutput::Open(int instance, int) {
  replica_ = &group_->replica(instance);
  return replica_->Start();
}

Result<stream::SourceState> StageOutput::Next(stream::Batch<BatchPtr>& out, size_t) {
  return replica_->Receive(out, watermark_);
}

uint64_t StageOutput::TakeBarrier() { return replica_->TakeBarrier(); }

void StageOutput::Close() {}

}  // namespace barge::pipeline
