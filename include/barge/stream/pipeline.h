// The typed dataflow API.
//
//   barge::stream::Pipeline p({.parallelism = 2});
//   p.generate("events", n, [](uint64_t i) { return Event{i % 1000, i, int64_t(i)}; })
//       .with_timestamps([](const Event& e) { return e.time; }, /*max_out_of_orderness=*/50)
//       .key_by([](const Event& e) { return e.key; })
//       .window(barge::stream::Tumbling{1000})
//       .sum([](const Event& e) { return e.value; })
//       .sink([](const auto& r) { ... });
//   barge::Status st = p.Run();
//
// Every call builds the logical graph; Run() turns it into tasks (chains of forward-connected
// operators with equal parallelism run fused in one thread), connects tasks with bounded
// channels, runs them and returns the first error, naming the operator that failed.
//
// User functions are template parameters: they inline into per-batch loops. Graph building is
// not thread-safe; Run() is called once; Cancel() and Stats() may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "barge/status.h"
#include "barge/stream/checkpoint.h"
#include "barge/stream/detail/graph.h"
#include "barge/stream/join.h"
#include "barge/stream/operators.h"
#include "barge/stream/sink.h"
#include "barge/stream/source.h"
#include "barge/stream/window.h"

namespace barge::stream {

struct PipelineOptions {
  int parallelism = 1;        // default instances per operator
  size_t batch_size = 1024;   // records per batch
  size_t channel_slots = 16;  // batches in flight per channel (the backpressure bound)
  bool pin_threads = true;    // pin task threads round-robin to the allowed CPUs
  // Checkpoints (checkpoint.h): off unless a store is set.
  CheckpointOptions checkpoint;
};

// A snapshot of one operator instance's counters.
struct OperatorStats {
  std::string name;
  int instance = 0;
  uint64_t records_in = 0;
  uint64_t records_out = 0;
  uint64_t batches_in = 0;
  uint64_t late_records = 0;
  uint64_t skipped = 0;  // sources: malformed inputs skipped (SourceMetrics::skipped)
  // Input channels of the task this operator heads (zero for chained operators and sources).
  uint64_t channel_records = 0;  // records received through them
  uint64_t channel_bytes = 0;    // bytes received through them
  size_t channel_fill = 0;       // slots queued now
  size_t channel_capacity = 0;
  uint64_t blocked_ns = 0;  // producers' time blocked on this task's full inputs
  // Output channels fed by this operator (zero when it feeds an operator chained to it).
  uint64_t sent_records = 0;
  uint64_t sent_bytes = 0;
  bool sends = false;            // it feeds channels
  int64_t watermark = kMinTime;  // OperatorMetrics::watermark
};

// One task of the physical plan: a chain of operators run fused in one thread per instance.
struct TaskPlan {
  std::vector<std::string> operators;  // chain order; the first heads the task
  int parallelism = 1;
};

template <class T>
class Stream;
template <class T, class KeyFn>
class KeyedStream;

class Pipeline {
 public:
  explicit Pipeline(PipelineOptions options = {});
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // A source made per instance by `make(instance)`.
  template <class T>
  Stream<T> source(std::string name, std::function<std::unique_ptr<Source<T>>()> make,
                   int parallelism = 0);

  // The deterministic generator: records fn(i) for i in [0, count), spread over instances.
  template <class F>
  auto generate(std::string name, uint64_t count, F fn, int parallelism = 0) {
    using T = std::decay_t<std::invoke_result_t<F&, uint64_t>>;
    return source<T>(
        std::move(name), [count, fn] { return std::make_unique<GeneratorSource<T, F>>(count, fn); },
        parallelism);
  }

  // Runs to completion: all sources ended and every operator flushed, or the first failure.
  // With checkpoints, a run that reaches the end writes a final checkpoint and commits it.
  Status Run();
  // Resume: Run() starts every operator instance from its state in `checkpoint` (borrowed; it
  // must outlive Run), which must hold exactly this pipeline's operators and parallelism.
  // Checkpoint ids continue after its id.
  void ResumeFrom(const Checkpoint* checkpoint) { resume_ = checkpoint; }
  // Stop with a savepoint (any thread, while Run() runs with checkpoints): sources stop after a
  // last barrier; once that checkpoint is written and committed (or after `timeout`), the
  // pipeline is cancelled. Returns the savepoint's id.
  Result<uint64_t> StopWithSavepoint(std::chrono::milliseconds timeout);
  // The id of the last checkpoint completed (0: none); safe while running.
  uint64_t last_checkpoint() const;
  // What checkpoints did so far in this run (all zero without checkpoints); safe while running.
  CheckpointStats checkpoint_stats() const;
  // Stops a running pipeline; Run() then returns a Cancelled status. Any thread.
  void Cancel();
  // Counters of every operator instance; safe while running.
  std::vector<OperatorStats> Stats() const;
  // The tasks Run() would start (which operators are chained), without running anything.
  std::vector<TaskPlan> Plan() const;

  const PipelineOptions& options() const { return options_; }
  // Sets CheckpointOptions::job after construction (before Run).
  void SetCheckpointJob(std::string job) { options_.checkpoint.job = std::move(job); }

  // Graph building, used by Stream.
  detail::NodeBase* AddNode(std::unique_ptr<detail::NodeBase> node);
  void AddEdge(std::unique_ptr<detail::EdgeBase> edge);
  std::string UniqueName(const std::string& base);
  // Records a mistake in how the graph was built (a bad window size, say); Run() returns the
  // first one as InvalidArgument without running anything.
  void Invalid(std::string message);

 private:
  struct Runtime;
  void BuildTasks();
  Status RestoreTasks(const Checkpoint& checkpoint);

  PipelineOptions options_;
  std::vector<std::unique_ptr<detail::NodeBase>> nodes_;
  std::vector<std::unique_ptr<detail::EdgeBase>> edges_;
  std::unique_ptr<Runtime> runtime_;  // set once by Run(), under state_mu_
  const Checkpoint* resume_ = nullptr;
  Status build_error_;
  mutable std::mutex state_mu_;
  bool cancel_requested_ = false;  // guarded by state_mu_
};

namespace detail {

template <class T>
class SourceNode final : public NodeBase {
 public:
  explicit SourceNode(std::function<std::unique_ptr<Source<T>>()> make) : make_(std::move(make)) {}
  bool is_source() const override { return true; }
  std::unique_ptr<OperatorBase> MakeOperator(int, RunState&) override {
    return std::make_unique<SourceDriver<T>>(name, make_());
  }
  std::unique_ptr<TaskPart> MakeGate(int, OperatorBase*, TaskInfo&, RunState&) override {
    return nullptr;
  }

 private:
  std::function<std::unique_ptr<Source<T>>()> make_;
};

// An operator node consuming In; `make(run, name)` creates one instance.
template <class In>
class FnNode final : public ConsumerNode<In> {
 public:
  using Make = std::function<std::unique_ptr<OperatorBase>(RunState&, const std::string&)>;
  explicit FnNode(Make make) : make_(std::move(make)) {}
  std::unique_ptr<OperatorBase> MakeOperator(int, RunState& run) override {
    return make_(run, this->name);
  }

 private:
  Make make_;
};

// The accumulator of a reduce: the folded value, once a first record has set it.
template <class T>
struct ReduceState {
  T value{};
  bool set = false;
};

// Folds one record into a ReduceState with T f(const T& acc, const T& record).
template <class T, class F>
struct ReduceAdd {
  F f;
  void operator()(ReduceState<T>& acc, const T& r) const {
    acc.value = acc.set ? f(std::as_const(acc.value), r) : r;
    acc.set = true;
  }
};

// Where a stream comes from: node output ports (several after a union) and how the next
// operator's input edge is partitioned.
struct Upstream {
  NodeBase* node;
  int port;
};

}  // namespace detail

// A handle to the last sink added, for naming and parallelism.
class SinkHandle {
 public:
  explicit SinkHandle(detail::NodeBase* node) : node_(node) {}
  SinkHandle& name(std::string n) {
    node_->name = std::move(n);
    return *this;
  }
  SinkHandle& parallelism(int p) {
    node_->parallelism = p;
    return *this;
  }

 private:
  detail::NodeBase* node_;
};

// Records gathered by Stream::collect, for tests and small results. Thread-safe.
template <class T>
class Collected {
 public:
  std::vector<T> records() const {
    std::lock_guard lock(mu_);
    return records_;
  }
  std::vector<EventTime> timestamps() const {
    std::lock_guard lock(mu_);
    return timestamps_;
  }
  void Append(const Batch<T>& b) {
    std::lock_guard lock(mu_);
    records_.insert(records_.end(), b.records.begin(), b.records.end());
    timestamps_.insert(timestamps_.end(), b.timestamps.begin(), b.timestamps.end());
  }

 private:
  mutable std::mutex mu_;
  std::vector<T> records_;
  std::vector<EventTime> timestamps_;
};

template <class T>
class Stream {
 public:
  using EdgeMaker =
      std::function<std::unique_ptr<detail::EdgeBase>(detail::NodeBase*, int, detail::NodeBase*)>;

  Stream(Pipeline* p, std::vector<detail::Upstream> ups, EdgeMaker edge = Forward())
      : p_(p), ups_(std::move(ups)), edge_(std::move(edge)) {}

  static EdgeMaker Forward() {
    return [](detail::NodeBase* from, int port, detail::NodeBase* to) {
      return std::make_unique<detail::TypedEdge<T>>(from, port, to, detail::Partitioning::kForward);
    };
  }

  // Names the operator that produced this stream (for errors and metrics).
  Stream& name(std::string n) {
    ups_.back().node->name = p_->UniqueName(n);
    return *this;
  }
  // Sets the parallelism of the operator that produced this stream.
  Stream& parallelism(int n) {
    ups_.back().node->parallelism = n;
    return *this;
  }

  // Out f(const T&).
  template <class F>
  auto map(F f) const {
    using Out = std::decay_t<std::invoke_result_t<F&, const T&>>;
    return Apply<Out>("map", [f](detail::RunState&, const std::string& n) {
      return std::make_unique<MapOperator<T, Out, F>>(n, f);
    });
  }

  // bool f(const T&): keeps records for which f is true.
  template <class F>
  Stream<T> filter(F f) const {
    return Apply<T>("filter", [f](detail::RunState&, const std::string& n) {
      return std::make_unique<FilterOperator<T, F>>(n, f);
    });
  }

  // void f(const T&, Emitter<Out>&): emits zero or more Out per record.
  template <class Out, class F>
  Stream<Out> flat_map(F f) const {
    return Apply<Out>("flat_map", [f](detail::RunState& run, const std::string& n) {
      return std::make_unique<FlatMapOperator<T, Out, F>>(n, f, run.batch_size);
    });
  }

  // Assigns event time with EventTime f(const T&) and generates watermarks that trail the
  // largest timestamp seen by `max_out_of_orderness`. With `idle_timeout`, an instance that
  // brings no record for that long stops holding back event time downstream until it does.
  template <class F>
  Stream<T> with_timestamps(F f, EventTime max_out_of_orderness = 0,
                            std::chrono::milliseconds idle_timeout = {}) const {
    if (max_out_of_orderness < 0) {
      p_->Invalid("with_timestamps: max_out_of_orderness must not be negative, got " +
                  std::to_string(max_out_of_orderness));
    }
    return Apply<T>("timestamps", [f, max_out_of_orderness, idle_timeout](detail::RunState&,
                                                                          const std::string& n) {
      return std::make_unique<detail::TimestampOperator<T, F>>(n, f, max_out_of_orderness,
                                                               idle_timeout);
    });
  }

  // Partitions by K f(const T&): records with equal keys meet in one operator instance.
  template <class KeyFn>
  KeyedStream<T, KeyFn> key_by(KeyFn key_fn) const {
    return KeyedStream<T, KeyFn>(p_, ups_, key_fn);
  }

  // Records that are batches of rows (RowBatch): the next operator's instances receive their
  // rows, routed by void split(T& in, size_t parts, T* const* outs), which appends each row of
  // `in` to *outs[d] for its destination d. Rows for one destination are gathered until they
  // fill a batch (PipelineOptions::batch_size rows) or the stream idles. Records' engine
  // timestamps are not carried (row batches carry their own times).
  template <class Split>
  Stream<T> partition_rows(Split split) const {
    return Stream<T>(p_, ups_, [split](detail::NodeBase* from, int port, detail::NodeBase* to) {
      return std::make_unique<detail::TypedEdge<T, detail::RowSplit<Split>>>(
          from, port, to, detail::Partitioning::kHash, detail::RowSplit<Split>{split});
    });
  }

  // The next operator receives whole batches round-robin from every instance.
  Stream<T> rebalance() const { return WithEdge(detail::Partitioning::kRebalance); }
  // The next operator's every instance receives every record.
  Stream<T> broadcast() const { return WithEdge(detail::Partitioning::kBroadcast); }

  // Both streams feed the next operator.
  Stream<T> union_with(const Stream<T>& other) const {
    std::vector<detail::Upstream> ups = ups_;
    ups.insert(ups.end(), other.ups_.begin(), other.ups_.end());
    return Stream<T>(p_, std::move(ups), edge_);
  }

  // void f(const T&) per record, or void f(const Batch<T>&) per batch. Called from the sink's
  // task thread (one per sink instance).
  template <class F>
  SinkHandle sink(F f) const {
    auto* raw = Attach(
        std::make_unique<detail::FnNode<T>>(
            [f](detail::RunState&, const std::string& name) -> std::unique_ptr<OperatorBase> {
              return std::make_unique<SinkOperator<T, F>>(name, f);
            }),
        p_->UniqueName("sink"));
    return SinkHandle(raw);
  }

  // A sink with Open/Write/Flush/Close hooks (see sink.h), made per instance by `make()`.
  // Its errors stop the pipeline, naming the sink.
  SinkHandle sink(std::string name, std::function<std::unique_ptr<Sink<T>>()> make) const {
    auto* raw = Attach(
        std::make_unique<detail::FnNode<T>>(
            [make](detail::RunState&, const std::string& n) -> std::unique_ptr<OperatorBase> {
              return std::make_unique<SinkDriver<T>>(n, make());
            }),
        p_->UniqueName(name));
    return SinkHandle(raw);
  }

  // Gathers every record into `out` (thread-safe; for tests and small results).
  SinkHandle collect(Collected<T>& out) const {
    return sink([&out](const Batch<T>& b) { out.Append(b); });
  }

  // Internal: adds an operator node fed by this stream.
  template <class Out, class Make>
  Stream<Out> Apply(const std::string& base, Make make) const {
    auto* node = Attach(std::make_unique<detail::FnNode<T>>(
                            [make](detail::RunState& run, const std::string& name)
                                -> std::unique_ptr<OperatorBase> { return make(run, name); }),
                        p_->UniqueName(base));
    return Stream<Out>(p_, {{node, 0}});
  }

  Pipeline* pipeline() const { return p_; }
  const std::vector<detail::Upstream>& upstreams() const { return ups_; }

 private:
  template <class, class>
  friend class KeyedStream;

  Stream<T> WithEdge(detail::Partitioning kind) const {
    return Stream<T>(p_, ups_, [kind](detail::NodeBase* from, int port, detail::NodeBase* to) {
      return std::make_unique<detail::TypedEdge<T>>(from, port, to, kind);
    });
  }

  detail::NodeBase* Attach(std::unique_ptr<detail::NodeBase> node, const std::string& name) const {
    node->name = name;
    node->parallelism = p_->options().parallelism;
    detail::NodeBase* raw = p_->AddNode(std::move(node));
    for (const detail::Upstream& up : ups_) p_->AddEdge(edge_(up.node, up.port, raw));
    return raw;
  }

  Pipeline* p_;
  std::vector<detail::Upstream> ups_;
  EdgeMaker edge_;
};

template <class T, class KeyFn, class Assigner>
class WindowedStream;

// A stream partitioned by key. Operators applied here see all records of a key in one
// instance.
template <class T, class KeyFn>
class KeyedStream {
 public:
  using K = std::decay_t<std::invoke_result_t<KeyFn&, const T&>>;

  KeyedStream(Pipeline* p, std::vector<detail::Upstream> ups, KeyFn key_fn)
      : key_fn_(key_fn),
        stream_(p, std::move(ups),
                [key_fn](detail::NodeBase* from, int port, detail::NodeBase* to) {
                  return std::make_unique<detail::TypedEdge<T, KeyFn>>(
                      from, port, to, detail::Partitioning::kHash, key_fn);
                }) {}

  template <class F>
  auto map(F f) const {
    return stream_.map(f);
  }
  template <class F>
  Stream<T> filter(F f) const {
    return stream_.filter(f);
  }
  template <class Out, class F>
  Stream<Out> flat_map(F f) const {
    return stream_.template flat_map<Out>(f);
  }
  template <class F>
  SinkHandle sink(F f) const {
    return stream_.sink(f);
  }

  // Rolling aggregation: the key's Acc (from Acc init()) is updated by
  // void add(Acc&, const T&) for each record, and Out result(const K&, const Acc&) is emitted.
  template <class Init, class Add, class Result>
  auto aggregate(Init init, Add add, Result result) const {
    using Acc = std::decay_t<std::invoke_result_t<Init&>>;
    using Out = std::decay_t<std::invoke_result_t<Result&, const K&, const Acc&>>;
    KeyFn kf = key_fn_;
    return stream_.template Apply<Out>(
        "aggregate", [kf, init, add, result](detail::RunState&, const std::string& n) {
          return std::make_unique<KeyedAggregateOperator<T, K, Out, Acc, KeyFn, Init, Add, Result>>(
              n, kf, init, add, result);
        });
  }

  // Rolling reduce: T f(const T& acc, const T& record); emits the key's new value per record.
  template <class F>
  Stream<T> reduce(F f) const {
    using Acc = detail::ReduceState<T>;
    return aggregate([] { return Acc{}; }, detail::ReduceAdd<T, F>{f},
                     [](const K&, const Acc& acc) { return acc.value; })
        .name(stream_.pipeline()->UniqueName("reduce"));
  }

  template <class Assigner>
  WindowedStream<T, KeyFn, Assigner> window(Assigner assigner) const {
    return WindowedStream<T, KeyFn, Assigner>(stream_, key_fn_, assigner);
  }

  // Interval join: for records a of this stream and b of `other` with equal keys and
  // a.time + lower <= b.time <= a.time + upper, emits f(a, b). Both streams need event time.
  template <class U, class KeyFnU, class F>
  auto interval_join(const KeyedStream<U, KeyFnU>& other, EventTime lower, EventTime upper,
                     F f) const {
    using Out = std::decay_t<std::invoke_result_t<F&, const T&, const U&>>;
    using Tagged = JoinInput<T, U>;
    if (lower > upper) {
      stream_.pipeline()->Invalid("interval_join: lower bound " + std::to_string(lower) +
                                  " is above upper bound " + std::to_string(upper));
    }
    KeyFn ka = key_fn_;
    KeyFnU kb = other.key_fn();
    // Tag each side where it is (forward edges), then shuffle once by key.
    auto left = Stream<T>(stream_.pipeline(), stream_.upstreams()).map([](const T& a) {
      return Tagged::Left(a);
    });
    auto right =
        Stream<U>(other.stream().pipeline(), other.stream().upstreams()).map([](const U& b) {
          return Tagged::Right(b);
        });
    auto tagged_key = [ka, kb](const Tagged& r) {
      return r.is_left() ? ka(r.left()) : kb(r.right());
    };
    return left.union_with(right)
        .key_by(tagged_key)
        .stream()
        .template Apply<Out>("interval_join", [tagged_key, lower, upper, f](detail::RunState& run,
                                                                            const std::string& n) {
          return std::make_unique<IntervalJoinOperator<T, U, K, decltype(tagged_key), F, Out>>(
              n, tagged_key, lower, upper, f, run.batch_size);
        });
  }

  const KeyFn& key_fn() const { return key_fn_; }
  const Stream<T>& stream() const { return stream_; }

 private:
  KeyFn key_fn_;
  Stream<T> stream_;
};

// A keyed stream cut into event-time windows; an aggregation turns it back into a stream.
template <class T, class KeyFn, class Assigner>
class WindowedStream {
 public:
  using K = std::decay_t<std::invoke_result_t<KeyFn&, const T&>>;

  WindowedStream(Stream<T> stream, KeyFn key_fn, Assigner assigner)
      : stream_(std::move(stream)), key_fn_(key_fn), assigner_(assigner) {}

  // Windows stay open this long after the watermark passed their end; records that arrive
  // meanwhile update and re-emit their window's result.
  WindowedStream& allowed_lateness(EventTime lateness) {
    lateness_ = lateness;
    return *this;
  }

  // The general form: Acc init(); void add(Acc&, const T&); void merge(Acc&, const Acc&);
  // Out result(const K&, const TimeWindow&, const Acc&).
  template <class Init, class Add, class Merge, class Result>
  auto aggregate(Init init, Add add, Merge merge, Result result) {
    using Acc = std::decay_t<std::invoke_result_t<Init&>>;
    using Out =
        std::decay_t<std::invoke_result_t<Result&, const K&, const TimeWindow&, const Acc&>>;
    using Agg = Aggregation<Init, Add, Merge, Result>;
    Validate();
    Agg agg{init, add, merge, result};
    KeyFn kf = key_fn_;
    Assigner assigner = assigner_;
    EventTime lateness = lateness_;
    Stream<Out> out = stream_.template Apply<Out>(
        "window",
        [kf, agg, assigner, lateness](detail::RunState& run,
                                      const std::string& n) -> std::unique_ptr<OperatorBase> {
          if constexpr (std::is_same_v<Assigner, Session>) {
            return std::make_unique<SessionWindowOperator<T, K, Out, Acc, KeyFn, Agg>>(
                n, kf, agg, assigner, lateness, run.batch_size);
          } else {
            return std::make_unique<TimeWindowOperator<T, K, Out, Acc, KeyFn, Agg, Assigner>>(
                n, kf, agg, assigner, lateness, run.batch_size);
          }
        });
    window_node_ = out.upstreams().back().node;
    return out;
  }

  // Sum of V f(const T&) per key and window, as WindowResult<K, V>.
  template <class F>
  auto sum(F f) {
    using V = std::decay_t<std::invoke_result_t<F&, const T&>>;
    return aggregate([] { return V{}; }, [f](V& acc, const T& r) { acc += f(r); },
                     [](V& acc, const V& other) { acc += other; },
                     [](const K& k, const TimeWindow& w, const V& acc) {
                       return WindowResult<K, V>{k, w.start, w.end, acc};
                     });
  }

  // Records per key and window, as WindowResult<K, uint64_t>.
  auto count() {
    return sum([](const T&) { return uint64_t{1}; });
  }

  // T f(const T& acc, const T& record) folded per key and window; emits the folded T.
  template <class F>
  auto reduce(F f) {
    using Acc = detail::ReduceState<T>;
    detail::ReduceAdd<T, F> add{f};
    return aggregate([] { return Acc{}; }, add,
                     [add](Acc& acc, const Acc& other) {
                       if (other.set) add(acc, other.value);
                     },
                     [](const K&, const TimeWindow&, const Acc& acc) { return acc.value; });
  }

  // Records that came too late for their window (after allowed lateness). Call after the
  // aggregation; without this they are counted and dropped.
  Stream<T> late_records() const {
    if (window_node_ == nullptr) {
      stream_.pipeline()->Invalid("late_records() must follow an aggregation on its window");
      return Stream<T>(stream_.pipeline(), {});
    }
    return Stream<T>(stream_.pipeline(), {{window_node_, 1}});
  }

 private:
  void Validate() const {
    auto bad = [&](const std::string& what, EventTime v) {
      stream_.pipeline()->Invalid("window: " + what + " must be positive, got " +
                                  std::to_string(v));
    };
    if constexpr (std::is_same_v<Assigner, Tumbling>) {
      if (assigner_.size <= 0) bad("tumbling window size", assigner_.size);
    } else if constexpr (std::is_same_v<Assigner, Sliding>) {
      if (assigner_.size <= 0) bad("sliding window size", assigner_.size);
      if (assigner_.slide <= 0) bad("sliding window slide", assigner_.slide);
    } else {
      if (assigner_.gap <= 0) bad("session gap", assigner_.gap);
    }
    if (lateness_ < 0) {
      stream_.pipeline()->Invalid("window: allowed lateness must not be negative, got " +
                                  std::to_string(lateness_));
    }
  }

  Stream<T> stream_;
  KeyFn key_fn_;
  Assigner assigner_;
  EventTime lateness_ = 0;
  detail::NodeBase* window_node_ = nullptr;
};

template <class T>
Stream<T> Pipeline::source(std::string name, std::function<std::unique_ptr<Source<T>>()> make,
                           int parallelism) {
  auto node = std::make_unique<detail::SourceNode<T>>(std::move(make));
  node->name = UniqueName(name);
  node->parallelism = parallelism > 0 ? parallelism : options_.parallelism;
  detail::NodeBase* raw = AddNode(std::move(node));
  return Stream<T>(this, {{raw, 0}});
}

}  // namespace barge::stream
