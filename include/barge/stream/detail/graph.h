// The logical dataflow graph behind the typed API, and the typed pieces that join tasks:
// partitioners (producer side of an exchange), input gates (consumer side) and source drivers.
// Users never touch these; pipeline.h builds them.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "barge/status.h"
#include "barge/stream/channel.h"
#include "barge/stream/detail/checkpoint_coordinator.h"
#include "barge/stream/keyed_table.h"
#include "barge/stream/operator.h"
#include "barge/stream/operators.h"
#include "barge/stream/source.h"

namespace barge::stream::detail {

enum class Partitioning {
  kForward,    // instance i -> instance i (chained when parallelism matches)
  kHash,       // by key: hash(key) % parallelism
  kRebalance,  // whole batches round-robin
  kBroadcast,  // every batch to every instance
};

// Something a task owns besides its operators (partitioners, gates, tees).
class TaskPart {
 public:
  virtual ~TaskPart() = default;
};

class CheckpointCoordinator;

// Shared state of one running pipeline.
struct RunState {
  std::atomic<bool> cancelled{false};
  size_t batch_size = 1024;
  size_t channel_slots = 16;
  uint32_t spins = Doorbell::kDefaultSpins;      // of every doorbell: Doorbell::spins
  CheckpointCoordinator* checkpoints = nullptr;  // null: checkpoints are off
};

// The physical task a node instance runs in; owns the doorbell its input channels ring.
struct TaskInfo {
  Doorbell bell;
};

class NodeBase;

// An edge of the logical graph. Typed subclasses know the record type and partitioning.
class EdgeBase {
 public:
  EdgeBase(NodeBase* from, int from_port, NodeBase* to, Partitioning kind)
      : from(from), from_port(from_port), to(to), kind(kind) {}
  virtual ~EdgeBase() = default;

  NodeBase* from;
  int from_port;
  NodeBase* to;
  Partitioning kind;
  bool chained = false;  // set when the pipeline fuses `to` into `from`'s task

  // Creates the channels of a non-chained edge; `down_tasks[j]` owns instance j's doorbell.
  virtual void CreateChannels(int up_parallelism, int down_parallelism,
                              const std::vector<TaskInfo*>& down_tasks, RunState& run) = 0;
  // Producer side for upstream instance `up` (owned by the returned part).
  virtual std::unique_ptr<TaskPart> MakePartitioner(int up, RunState& run) = 0;
  // Downstream operator `op` seen as this edge's typed Input.
  virtual void* InputOf(OperatorBase* op) = 0;
  // Connects `port` of `op` to `targets` (Input<T>* each), adding a Tee if several.
  virtual std::unique_ptr<TaskPart> ConnectPort(OperatorBase* op, int port,
                                                const std::vector<void*>& targets) = 0;
  // Partitioner's Input<T>*.
  virtual void* PartitionerInput(TaskPart* partitioner) = 0;
  // Wakes producers blocked on this edge's channels (cancellation).
  virtual void WakeProducers() = 0;
  // Metrics: fill and counters of the channels into downstream instance `down`.
  virtual void ChannelStats(int down, size_t* fill, size_t* capacity, uint64_t* blocked_ns,
                            uint64_t* records, uint64_t* bytes) const = 0;
  // Metrics: what upstream instance `up` sent through this edge's channels.
  virtual void SentStats(int up, uint64_t* records, uint64_t* bytes) const = 0;
};

// A node of the logical graph: a source or an operator, with a parallelism.
class NodeBase {
 public:
  virtual ~NodeBase() = default;

  std::string name;
  int parallelism = 1;
  std::vector<EdgeBase*> inputs;
  std::vector<EdgeBase*> outputs;

  virtual bool is_source() const { return false; }
  virtual std::unique_ptr<OperatorBase> MakeOperator(int instance, RunState& run) = 0;
  // Non-source chain heads: a gate reading this node's input channels into `head`.
  virtual std::unique_ptr<TaskPart> MakeGate(int instance, OperatorBase* head, TaskInfo& task,
                                             RunState& run) = 0;
};

// A source operator: drives a Source<T> on its task and pushes into port 0.
class SourceDriverBase : public OperatorBase {
 public:
  using OperatorBase::OperatorBase;
  // Produces one batch. Returns false after the source ended (End has been sent downstream).
  virtual bool Step(RunState& run) = 0;
  // Opens the source; errors name it.
  virtual Status OpenSource(int instance, int parallelism) = 0;
  virtual void CloseSource() = 0;
  // Malformed inputs the source skipped (SourceMetrics::skipped).
  virtual uint64_t skipped() const = 0;
  // Whether it can go back to a checkpointed position (Source::replayable).
  virtual bool replayable() const = 0;
};

template <class T>
class SourceDriver final : public SourceDriverBase {
 public:
  SourceDriver(std::string name, std::unique_ptr<Source<T>> source)
      : SourceDriverBase(std::move(name)), source_(std::move(source)) {}

  OutputBase* Port(int port) override { return port == 0 ? &out_ : nullptr; }

  Status OpenSource(int instance, int parallelism) override {
    Status st = source_->Open(instance, parallelism);
    if (st.ok() && restored_) {
      StateReader in(*restored_);
      try {
        st = source_->Restore(in);
      } catch (const StateFormatError& e) {
        st = Corruption(std::string("its state in the checkpoint is unreadable: ") + e.what());
      }
    }
    return st.ok() ? st : st.Wrap("source '" + name() + "'");
  }
  void CloseSource() override { source_->Close(); }
  uint64_t skipped() const override {
    return source_->metrics().skipped.load(std::memory_order_relaxed);
  }

  // The state: whether the source ended, its watermark, and its own position.
  void Snapshot(uint64_t, StateWriter& out) override {
    out.Put<uint8_t>(ended_ ? 1 : 0);
    out.Put(watermark_);
    source_->Snapshot(out);
  }
  Status Restore(StateReader& in) override {
    ended_ = in.Get<uint8_t>() != 0;
    watermark_ = in.Get<EventTime>();
    // The source's own position is applied after it opens, on its task thread.
    restored_ = std::string(in.Rest());
    return Status::Ok();
  }
  bool replayable() const override { return source_->replayable(); }

  bool Step(RunState& run) override {
    const bool relay = source_->relays_barriers();
    if (run.checkpoints != nullptr && !relay && !InjectBarrier(run)) return true;
    if (ended_) {
      // Resumed from a checkpoint taken after this source's end.
      out_.target().End();
      return false;
    }
    batch_.clear();
    Result<SourceState> state = SourceState::kEnd;
    Guarded(name(), [&] { state = source_->Next(batch_, run.batch_size); });
    if (!state.ok()) {
      throw OperatorFailure(name(), state.status().message());
    }
    size_t records = RecordCount(batch_);
    if (!batch_.empty()) {
      OperatorMetrics::Add(metrics().records_out, records);
      out_.target().Push(batch_);
    }
    if (EventTime w = source_->watermark(); w > watermark_) {
      watermark_ = w;
      metrics().SetWatermark(w);
      out_.target().Watermark(w);
    }
    if (relay) {
      if (uint64_t id = source_->TakeBarrier(); id != 0) {
        TakeSnapshot(id);
        out_.target().Barrier(id);
      }
    }
    switch (*state) {
      case SourceState::kMore:
        // A short batch means the source had no more at hand: flush downstream now rather than
        // let partial batches wait for records that may take long to come.
        if (records < run.batch_size) out_.target().Idle();
        return true;
      case SourceState::kIdle:
        out_.target().Idle();
        return true;
      case SourceState::kEnd:
        ended_ = true;
        out_.target().End();
        return false;
    }
    return false;
  }

  Source<T>& source() { return *source_; }

 private:
  // Injects the coordinator's newest barrier, after writing this source's position. Returns
  // false when the source must not produce now (it stopped after a savepoint's barrier).
  bool InjectBarrier(RunState& run);

  std::unique_ptr<Source<T>> source_;
  Output<T> out_;
  Batch<T> batch_;
  EventTime watermark_ = kMinTime;  // the source's watermark last forwarded
  bool ended_ = false;
  uint64_t injected_ = 0;                // the last barrier injected
  std::optional<std::string> restored_;  // the source's position, to apply once it opened
};

template <class T>
bool SourceDriver<T>::InjectBarrier(RunState& run) {
  CheckpointCoordinator& checkpoints = *run.checkpoints;
  if (uint64_t id = checkpoints.trigger(); id > injected_) {
    injected_ = id;
    TakeSnapshot(id);
    out_.target().Barrier(id);
  }
  if (checkpoints.StopAfter(injected_)) {
    // After a savepoint's barrier nothing more is read: the pipeline stops once it completes.
    out_.target().Idle();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return false;
  }
  return true;
}

// Assigns event time from a user function and emits bounded-out-of-orderness watermarks:
// after each batch, watermark = max timestamp seen - max_out_of_orderness - 1. Event time
// INT64_MAX is refused (an error naming this operator): it is the watermark of end of input, and
// no window could hold it. With an idle
// timeout, a stream that brings no record for that long is marked idle (Flink's withIdleness), so
// that parallel instances that do have data still advance event time downstream.
template <class T, class F>
class TimestampOperator final : public Operator<T, T> {
 public:
  TimestampOperator(std::string name, F f, EventTime max_out_of_orderness,
                    std::chrono::milliseconds idle_timeout)
      : Operator<T, T>(std::move(name)),
        f_(std::move(f)),
        bound_(max_out_of_orderness),
        idle_timeout_(idle_timeout) {}

  void Idle() override {
    if (idle_timeout_.count() > 0 && !idle_ &&
        std::chrono::steady_clock::now() - last_record_ >= idle_timeout_) {
      idle_ = true;
      this->out_.target().MarkIdle();
    }
    this->out_.target().Idle();
  }

  void Open(int, int) override { last_record_ = std::chrono::steady_clock::now(); }

  void Push(Batch<T>& in) override {
    this->CountIn(in);
    if (idle_timeout_.count() > 0) {
      last_record_ = std::chrono::steady_clock::now();
      idle_ = false;
    }
    Guarded(this->name(), [&] {
      in.timestamps.resize(in.size());
      EventTime* ts = in.timestamps.data();
      const T* r = in.records.data();
      EventTime max_ts = max_ts_;
      for (size_t i = 0, n = in.size(); i < n; ++i) {
        EventTime t = f_(r[i]);
        ts[i] = t;
        max_ts = t > max_ts ? t : max_ts;
      }
      if (max_ts == kMaxTime) {
        throw std::invalid_argument(
            "event time 9223372036854775807 (INT64_MAX) is reserved: it is the watermark that "
            "ends the input; give records timestamps below it");
      }
      max_ts_ = max_ts;
    });
    this->out_.Push(in, this->metrics());
    if (max_ts_ != kMinTime) {
      EventTime w = SatSub(SatSub(max_ts_, bound_), 1);
      if (w > emitted_) {
        emitted_ = w;
        this->metrics().SetWatermark(w);
        this->out_.target().Watermark(w);
      }
    }
  }
  // Upstream watermarks are replaced by this operator's own.
  void Watermark(EventTime) override {}

  void Snapshot(uint64_t, StateWriter& out) override {
    out.Put(max_ts_);
    out.Put(emitted_);
  }
  Status Restore(StateReader& in) override {
    max_ts_ = in.Get<EventTime>();
    emitted_ = in.Get<EventTime>();
    return Status::Ok();
  }

 private:
  F f_;
  EventTime bound_;
  std::chrono::milliseconds idle_timeout_;
  std::chrono::steady_clock::time_point last_record_{};
  bool idle_ = false;
  EventTime max_ts_ = kMinTime;
  EventTime emitted_ = kMinTime;
};

// Wraps `split`, a function that spreads the rows of a record that is itself a batch of rows
// (RowBatch) over the next operator's instances: void split(T& in, size_t parts, T* const* outs)
// appends each row of `in` to *outs[d] for its destination d (outs[d] may be an empty T to fill).
// A hash edge whose key function is a RowSplit routes rows, not records.
template <class F>
struct RowSplit {
  F split;
};
template <class K>
inline constexpr bool kIsRowSplit = false;
template <class F>
inline constexpr bool kIsRowSplit<RowSplit<F>> = true;

// Producer side of an exchange for one upstream instance: routes records into per-destination
// slots claimed from the channels, publishing a slot when it is full. Watermarks ride on the
// next published slot (a watermark may only be delayed, never advanced early, so this is safe).
// Errors of the key function are the keyed operator's: they name `consumer`, as they do when
// the exchange is chained away and that operator calls the key function itself.
template <class T, class KeyFn>
class Partitioner final : public Input<T>, public TaskPart {
 public:
  Partitioner(Partitioning kind, std::vector<Channel<T>*> outs, KeyFn key_fn, size_t batch_size,
              int up_instance, std::string consumer)
      : consumer_(std::move(consumer)),
        kind_(kind),
        outs_(std::move(outs)),
        key_fn_(std::move(key_fn)),
        open_(outs_.size()),
        counts_(outs_.size()),
        cursors_(outs_.size()),
        sent_wm_(outs_.size(), kMinTime),
        held_(outs_.size(), 0),
        batch_size_(batch_size),
        next_(static_cast<size_t>(up_instance) % outs_.size()) {}

  void Push(Batch<T>& in) override {
    switch (kind_) {
      case Partitioning::kForward:
      case Partitioning::kRebalance: {
        // Whole batch, zero copy: swap its buffers into the slot.
        size_t d = kind_ == Partitioning::kForward ? 0 : Next();
        Close(d, false);
        Slot<T>* slot = outs_[d]->Claim();
        slot->kind = SlotKind::kData;
        slot->batch.swap(in);
        Publish(d, slot, false);
        break;
      }
      case Partitioning::kBroadcast:
        if constexpr (std::is_copy_constructible_v<T>) {
          for (size_t d = 0; d < outs_.size(); ++d) {
            Close(d, false);
            Slot<T>* slot = outs_[d]->Claim();
            slot->kind = SlotKind::kData;
            slot->batch.records.assign(in.records.begin(), in.records.end());
            slot->batch.timestamps.assign(in.timestamps.begin(), in.timestamps.end());
            Publish(d, slot, false);
          }
        } else {
          throw std::logic_error("records that cannot be copied cannot be broadcast");
        }
        break;
      case Partitioning::kHash:
        Guarded(consumer_, [&] {
          if constexpr (kIsRowSplit<KeyFn>) {
            PushSplit(in);
          } else {
            PushHashed(in);
          }
        });
        break;
    }
  }

  // The watermark rides on each destination's next published slot. A destination that gets no
  // slot for kMaxHeldWatermarks watermarks (a key that is rare, or skewed partitioning) gets its
  // open slot published early or a watermark slot of its own, so its event time keeps moving.
  void Watermark(EventTime w) override {
    if (w <= wm_) return;
    wm_ = w;
    for (size_t d = 0; d < outs_.size(); ++d) {
      if (sent_wm_[d] >= w || ++held_[d] < kMaxHeldWatermarks) continue;
      if (open_[d].slot != nullptr) Close(d, false);
      // An open slot that held nothing to send was dropped: the watermark goes alone.
      if (sent_wm_[d] < w) SendControl(d, SlotKind::kWatermark, 0, false);
    }
  }

  void Barrier(uint64_t id) override {
    for (size_t d = 0; d < outs_.size(); ++d) {
      Close(d, false);
      SendControl(d, SlotKind::kBarrier, id, true);
    }
  }

  void End() override {
    for (size_t d = 0; d < outs_.size(); ++d) {
      Close(d, false);
      SendControl(d, SlotKind::kEnd, 0, true);
    }
  }

  void MarkIdle() override {
    for (size_t d = 0; d < outs_.size(); ++d) {
      Close(d, false);
      SendControl(d, SlotKind::kIdle, 0, true);
    }
  }

  // The task has nothing more for now: publish partial batches and wake every consumer.
  void Idle() override {
    for (size_t d = 0; d < outs_.size(); ++d) {
      Close(d, true);
      outs_[d]->WakeConsumer();
    }
  }

 private:
  // A slot being filled in place: records are written through raw cursors and the vectors are
  // sized once when the slot is published (no per-record push_back bookkeeping).
  struct Open {
    Slot<T>* slot = nullptr;
    T* records = nullptr;
    EventTime* timestamps = nullptr;  // null when the stream carries no event time
    size_t n = 0;
  };

  size_t Next() {
    size_t d = next_;
    next_ = next_ + 1 == outs_.size() ? 0 : next_ + 1;
    return d;
  }

  void PushHashed(Batch<T>& in) {
    if (in.timestamps.empty()) {
      PushHashedInRuns<false>(in);
    } else {
      PushHashedInRuns<true>(in);
    }
  }

  // Records `first`.. of `in`, one at a time: a destination's slot is claimed when a record for
  // it comes, so a full channel blocks the task only when it has a record for that channel.
  // Returns after the record whose slot opening or filling made runs worth taking again
  // (RunRoom() >= MinRun()), else at the batch's end.
  size_t PushOneByOne(Batch<T>& in, size_t first) {
    const size_t n = in.size();
    const size_t parts = outs_.size();
    const bool with_ts = !in.timestamps.empty();
    const bool runs_fit = batch_size_ >= MinRun();  // else never worth it (tiny batches)
    T* records = in.records.data();
    for (size_t i = first; i < n; ++i) {
      const size_t d = Destination(records[i], parts);
      Open& o = open_[d];
      bool changed = false;
      if (!Takes(o, with_ts)) {
        Close(d, false);
        OpenSlot(d, with_ts);
        changed = true;
      }
      o.records[o.n] = std::move(records[i]);
      if (with_ts) o.timestamps[o.n] = in.timestamps[i];
      if (++o.n == batch_size_) {
        Close(d, false);
        changed = true;
      }
      if (changed && runs_fit && RunRoom(with_ts) >= MinRun()) return i + 1;
    }
    return n;
  }

  // Whether `o` is an open slot for the stream's kind of batch (with or without event time).
  static bool Takes(const Open& o, bool with_ts) {
    return o.slot != nullptr && (o.timestamps != nullptr) == with_ts;
  }

  // The records a run can take: none while a destination has no slot that Takes them, else the
  // room left in the fullest slot.
  size_t RunRoom(bool with_ts) const {
    size_t fullest = 0;
    for (const Open& o : open_) {
      if (!Takes(o, with_ts)) return 0;
      fullest = std::max(fullest, o.n);
    }
    return batch_size_ - fullest;
  }

  // A run costs a few passes over the destinations: shorter runs cost more than they save.
  size_t MinRun() const { return 4 * outs_.size(); }

  // Range reduction without division: (hash * parts) >> 64.
  size_t Destination(const T& record, size_t parts) {
    return static_cast<size_t>((static_cast<unsigned __int128>(HashKey(key_fn_(record))) * parts) >>
                               64);
  }

  // `d` (0 or 1) ? b : a, computed with a mask: the destination of consecutive records is random,
  // and a branch (which compilers emit for `d ? b : a` here) mispredicts half the time.
  template <class P>
  static P* PickOfTwo(size_t d, P* a, P* b) {
    const uintptr_t x = reinterpret_cast<uintptr_t>(a);
    const uintptr_t y = reinterpret_cast<uintptr_t>(b);
    return reinterpret_cast<P*>(x ^ ((x ^ y) & (uintptr_t{0} - d)));
  }

  // The batch in runs during which every destination has an open slot that cannot fill, so the
  // per-record loop checks nothing but where the record goes. Its write positions live outside
  // `open_` (whose counts a record store may alias, which would make every record reload and
  // store them): in registers for two destinations, where each record goes to one of them
  // without a branch, else in `counts_` or `cursors_`.
  template <bool kWithTs>
  void PushHashedInRuns(Batch<T>& in) {
    const size_t n = in.size();
    const size_t parts = outs_.size();
    T* records = in.records.data();
    const EventTime* timestamps = in.timestamps.data();
    size_t i = 0;
    while (i < n) {
      for (size_t d = 0; d < parts; ++d) {
        if (!Takes(open_[d], kWithTs)) {
          Close(d, false);
          TryOpenSlot(d, kWithTs);
        }
      }
      const size_t room = RunRoom(kWithTs);
      if (room < MinRun()) {
        // A full channel must not block the task while no record is going there (and the last
        // few records before a slot fills are not worth a run): one at a time until runs are.
        i = PushOneByOne(in, i);
        continue;
      }
      // No destination can fill before `end`.
      const size_t end = i + std::min(room, n - i);
      if (parts == 2) {
        i = RouteToTwo<kWithTs>(records, timestamps, i, end);
      } else {
        i = RouteToMany<kWithTs>(records, timestamps, i, end);
      }
      for (size_t d = 0; d < parts; ++d) {
        if (open_[d].n == batch_size_) Close(d, false);
      }
    }
  }

  template <bool kWithTs>
  size_t RouteToTwo(T* records, const EventTime* timestamps, size_t i, size_t end) {
    T* r0 = open_[0].records + open_[0].n;
    T* r1 = open_[1].records + open_[1].n;
    EventTime* t0 = kWithTs ? open_[0].timestamps + open_[0].n : nullptr;
    EventTime* t1 = kWithTs ? open_[1].timestamps + open_[1].n : nullptr;
    for (; i < end; ++i) {
      // (hash * 2) >> 64 is the hash's top bit.
      const size_t d = static_cast<size_t>(HashKey(key_fn_(records[i])) >> 63);
      *PickOfTwo(d, r0, r1) = std::move(records[i]);
      r0 += 1 - d;
      r1 += d;
      if constexpr (kWithTs) {
        *PickOfTwo(d, t0, t1) = timestamps[i];
        t0 += 1 - d;
        t1 += d;
      }
    }
    open_[0].n = static_cast<size_t>(r0 - open_[0].records);
    open_[1].n = static_cast<size_t>(r1 - open_[1].records);
    return i;
  }

  // With event time, one count per destination, shared by its record and timestamp arrays, so a
  // record costs one load and one store of bookkeeping; without, a write cursor.
  template <bool kWithTs>
  size_t RouteToMany(T* records, const EventTime* timestamps, size_t i, size_t end) {
    const size_t parts = open_.size();
    if constexpr (kWithTs) {
      size_t* count = counts_.data();
      for (size_t d = 0; d < parts; ++d) count[d] = open_[d].n;
      for (; i < end; ++i) {
        const size_t d = Destination(records[i], parts);
        const size_t at = count[d]++;
        open_[d].records[at] = std::move(records[i]);
        open_[d].timestamps[at] = timestamps[i];
      }
      for (size_t d = 0; d < parts; ++d) open_[d].n = count[d];
    } else {
      T** cursor = cursors_.data();
      for (size_t d = 0; d < parts; ++d) cursor[d] = open_[d].records + open_[d].n;
      for (; i < end; ++i) *cursor[Destination(records[i], parts)]++ = std::move(records[i]);
      for (size_t d = 0; d < parts; ++d) {
        open_[d].n = static_cast<size_t>(cursor[d] - open_[d].records);
      }
    }
    return i;
  }

  // Row batches: each record's rows go to the open record of their destination; a destination's
  // record is published once it holds a batch's worth of rows.
  void PushSplit(Batch<T>& in) {
    const size_t parts = outs_.size();
    split_outs_.resize(parts);
    for (T& record : in.records) {
      for (size_t d = 0; d < parts; ++d) {
        Open& o = open_[d];
        if (o.slot == nullptr) {
          o.slot = outs_[d]->Claim();
          o.slot->kind = SlotKind::kData;
          o.slot->batch.timestamps.clear();
          o.slot->batch.records.resize(1);
          o.n = 1;
        }
        split_outs_[d] = &o.slot->batch.records[0];
      }
      key_fn_.split(record, parts, split_outs_.data());
      for (size_t d = 0; d < parts; ++d) {
        if (split_outs_[d]->row_count() >= batch_size_) Close(d, false);
      }
    }
  }

  void OpenSlot(size_t d, bool with_ts) { InitSlot(d, outs_[d]->Claim(), with_ts); }

  // OpenSlot without blocking: false when the channel is full.
  bool TryOpenSlot(size_t d, bool with_ts) {
    Slot<T>* slot = outs_[d]->TryClaim();
    if (slot == nullptr) return false;
    InitSlot(d, slot, with_ts);
    return true;
  }

  void InitSlot(size_t d, Slot<T>* slot, bool with_ts) {
    Open& o = open_[d];
    o.slot = slot;
    o.slot->kind = SlotKind::kData;
    o.slot->batch.records.resize(batch_size_);
    o.slot->batch.timestamps.resize(with_ts ? batch_size_ : 0);
    o.records = o.slot->batch.records.data();
    o.timestamps = with_ts ? o.slot->batch.timestamps.data() : nullptr;
    o.n = 0;
  }

  // Publishes destination d's open slot, if any; else, when `flush`, sends a newer watermark
  // alone so the destination can progress.
  void Close(size_t d, bool flush) {
    Open& o = open_[d];
    if constexpr (kIsRowSplit<KeyFn>) {
      if (o.slot != nullptr && o.slot->batch.records[0].row_count() == 0) {
        // Nothing gathered for d: the slot stays unpublished (the next Claim returns it again).
        o.slot->batch.records.clear();
        o = Open{};
      }
    } else if (o.slot != nullptr && o.n == 0) {
      o = Open{};  // likewise: no empty batch wakes the consumer
    }
    if (o.slot != nullptr) {
      o.slot->batch.records.resize(o.n);
      o.slot->batch.timestamps.resize(o.timestamps != nullptr ? o.n : 0);
      Publish(d, o.slot, flush);
      o = Open{};
    } else if (flush && sent_wm_[d] < wm_) {
      SendControl(d, SlotKind::kWatermark, 0, true);
    }
  }

  void SendControl(size_t d, SlotKind kind, uint64_t barrier_id, bool urgent) {
    Slot<T>* slot = outs_[d]->Claim();
    slot->kind = kind;
    slot->barrier_id = barrier_id;
    slot->batch.clear();
    Publish(d, slot, urgent);
  }

  void Publish(size_t d, Slot<T>* slot, bool urgent) {
    slot->watermark = wm_;
    sent_wm_[d] = wm_;
    held_[d] = 0;
    outs_[d]->Publish(*slot, urgent);
  }

  static constexpr int kMaxHeldWatermarks = 8;

  std::string consumer_;
  Partitioning kind_;
  std::vector<Channel<T>*> outs_;
  KeyFn key_fn_;
  std::vector<Open> open_;
  std::vector<size_t> counts_;      // RouteToMany's write positions with event time
  std::vector<T*> cursors_;         // and without
  std::vector<EventTime> sent_wm_;  // watermark last sent to each destination
  std::vector<int> held_;           // watermarks not sent to each destination since then
  std::vector<T*> split_outs_;      // row batches: the open record of each destination
  EventTime wm_ = kMinTime;
  size_t batch_size_;
  size_t next_;
};

// Consumer side: reads every input channel of one task, merges watermarks (the minimum over
// live inputs), forwards barriers once all inputs delivered them, and ends after every input
// ended. Runs the task's loop for non-source chains.
class GateBase : public TaskPart {
 public:
  // Runs until all inputs end. Throws PipelineCancelled on cancellation.
  virtual void Run(RunState& run) = 0;
};

template <class T>
class InputGate final : public GateBase {
 public:
  InputGate(std::vector<Channel<T>*> ins, Input<T>* head, Doorbell* bell, OperatorMetrics* metrics)
      : ins_(std::move(ins)),
        head_(head),
        metrics_(metrics),
        bell_(bell),
        wm_(ins_.size(), kMinTime),
        ended_(ins_.size(), false),
        idle_(ins_.size(), false),
        blocked_(ins_.size(), false),
        barriers_(ins_.size(), 0) {}

  void Run(RunState& run) override {
    size_t live = ins_.size();
    if (live == 0) {
      head_->End();
      return;
    }
    while (live > 0) {
      bool progressed = false;
      for (size_t c = 0; c < ins_.size(); ++c) {
        if (ended_[c] || blocked_[c]) continue;
        // A few slots per channel per round keeps inputs fair.
        for (int k = 0; k < 4; ++k) {
          // Checked before every slot, not only when the inputs run dry: a slow consumer stops
          // (and an upstream failure is reported) after the batch at hand, not after every
          // queued one.
          if (run.cancelled.load(std::memory_order_relaxed)) throw PipelineCancelled{};
          Slot<T>* slot = ins_[c]->Peek();
          if (slot == nullptr) break;
          progressed = true;
          bool ended = Handle(c, *slot);
          ins_[c]->Release();
          if (ended) {
            --live;
            break;
          }
          if (blocked_[c]) break;  // delivered a barrier the others have not yet
        }
      }
      if (live == 0) break;
      if (!progressed) {
        head_->Idle();
        bell_->WaitUntil([&] {
          if (run.cancelled.load(std::memory_order_relaxed)) return true;
          for (size_t c = 0; c < ins_.size(); ++c) {
            if (!ended_[c] && !blocked_[c] && !ins_[c]->Empty()) return true;
          }
          return false;
        });
        if (run.cancelled.load(std::memory_order_relaxed)) throw PipelineCancelled{};
      }
    }
    head_->End();
  }

 private:
  // Returns true when channel c ended.
  bool Handle(size_t c, Slot<T>& slot) {
    switch (slot.kind) {
      case SlotKind::kData:
        idle_[c] = false;
        if (!slot.batch.empty()) head_->Push(slot.batch);
        slot.batch.clear();
        UpdateWatermark(c, slot.watermark);
        return false;
      case SlotKind::kWatermark:
        idle_[c] = false;
        UpdateWatermark(c, slot.watermark);
        return false;
      case SlotKind::kIdle:
        idle_[c] = true;
        UpdateWatermark(c, slot.watermark);
        return false;
      case SlotKind::kBarrier:
        if (slot.barrier_id > forwarded_barrier_) {
          // Alignment: nothing after the barrier is read from this input until every input
          // delivered it, so the state snapshot holds exactly what came before it.
          barriers_[c] = slot.barrier_id;
          blocked_[c] = true;
          MaybeForwardBarrier();
        }
        return false;
      case SlotKind::kEnd:
        ended_[c] = true;
        UpdateWatermark(c, slot.watermark);  // its last watermark stays, for the flush below
        MaybeForwardBarrier();
        return true;
    }
    return false;
  }

  // The task's watermark is the minimum over inputs that are neither ended nor idle. When every
  // live input is idle, nothing holds event time back any more: as Flink's watermark valve does,
  // the task flushes the largest watermark any input reached (an ended input counts with its last
  // one, not with end of stream, so an idle input that resumes is not wholly late), then marks
  // its own output idle.
  void UpdateWatermark(size_t c, EventTime w) {
    if (w > wm_[c]) wm_[c] = w;
    EventTime low = kMaxTime;
    EventTime high = kMinTime;
    bool any_active = false, any_live = false;
    for (size_t i = 0; i < wm_.size(); ++i) {
      if (wm_[i] != kMaxTime && wm_[i] > high) high = wm_[i];
      if (ended_[i]) continue;
      any_live = true;
      if (idle_[i]) continue;
      any_active = true;
      low = wm_[i] < low ? wm_[i] : low;
    }
    if (any_live && !any_active) {
      if (high > emitted_) {
        emitted_ = high;
        metrics_->SetWatermark(high);
        head_->Watermark(high);
        marked_idle_ = false;
      }
      if (!marked_idle_) {
        marked_idle_ = true;
        head_->MarkIdle();
      }
      return;
    }
    marked_idle_ = false;
    // kMaxTime from all inputs is end of stream, which End() handles.
    if (low > emitted_ && low != kMaxTime) {
      emitted_ = low;
      metrics_->SetWatermark(low);
      head_->Watermark(low);
    }
  }

  // Forwards a barrier once every live input has delivered one (an input that ended delivered
  // everything it had), then reads again from the inputs it came from. Inputs normally carry
  // the same barrier; when a checkpoint was abandoned and a source skipped its id, the lowest
  // is forwarded first (the coordinator ignores the abandoned one) and inputs already at a
  // higher one stay blocked until the others reach it.
  void MaybeForwardBarrier() {
    uint64_t low = UINT64_MAX;
    for (size_t c = 0; c < ins_.size(); ++c) {
      if (ended_[c]) continue;
      if (!blocked_[c]) return;
      low = std::min(low, barriers_[c]);
    }
    if (low == UINT64_MAX) return;  // every input ended
    forwarded_barrier_ = low;
    head_->Barrier(low);
    for (size_t c = 0; c < ins_.size(); ++c) {
      if (barriers_[c] <= low) blocked_[c] = false;
    }
  }

  std::vector<Channel<T>*> ins_;
  Input<T>* head_;
  OperatorMetrics* metrics_;  // the head's (its watermark)
  Doorbell* bell_;
  std::vector<EventTime> wm_;
  std::vector<bool> ended_;
  std::vector<bool> idle_;
  std::vector<bool> blocked_;  // delivered barriers_[c], waiting for the other inputs
  bool marked_idle_ = false;   // MarkIdle sent downstream and no watermark since
  std::vector<uint64_t> barriers_;
  EventTime emitted_ = kMinTime;
  uint64_t forwarded_barrier_ = 0;
};

struct NoKey {
  template <class T>
  int operator()(const T&) const {
    return 0;
  }
};

// An edge carrying T; the consumer side lists its channels through this.
template <class T>
class ChannelEdge : public EdgeBase {
 public:
  using EdgeBase::EdgeBase;
  // Channels into downstream instance j.
  virtual std::vector<Channel<T>*> ChannelsInto(int j) const = 0;
};

// An edge carrying T, partitioned by KeyFn when kind is kHash.
template <class T, class KeyFn = NoKey>
class TypedEdge final : public ChannelEdge<T> {
 public:
  TypedEdge(NodeBase* from, int from_port, NodeBase* to, Partitioning kind, KeyFn key_fn = {})
      : ChannelEdge<T>(from, from_port, to, kind), key_fn_(std::move(key_fn)) {}
  using EdgeBase::kind;

  void CreateChannels(int up, int down, const std::vector<TaskInfo*>& down_tasks,
                      RunState& run) override {
    up_ = up;
    down_ = down;
    one_to_one_ = kind == Partitioning::kForward && up == down;
    channels_.assign(static_cast<size_t>(up) * static_cast<size_t>(down), nullptr);
    for (int i = 0; i < up; ++i) {
      for (int j = 0; j < down; ++j) {
        if (one_to_one_ && i != j) continue;
        owned_.push_back(std::make_unique<Channel<T>>(run.channel_slots, &down_tasks[j]->bell,
                                                      &run.cancelled, run.spins));
        channels_[Index(i, j)] = owned_.back().get();
      }
    }
  }

  std::unique_ptr<TaskPart> MakePartitioner(int up, RunState& run) override {
    std::vector<Channel<T>*> outs;
    if (one_to_one_) {
      outs.push_back(channels_[Index(up, up)]);
    } else {
      for (int j = 0; j < down_; ++j) outs.push_back(channels_[Index(up, j)]);
    }
    Partitioning k = kind;
    if (k == Partitioning::kForward && !one_to_one_) k = Partitioning::kRebalance;
    return std::make_unique<Partitioner<T, KeyFn>>(k, std::move(outs), key_fn_, run.batch_size, up,
                                                   this->to->name);
  }

  void* PartitionerInput(TaskPart* p) override {
    return static_cast<Input<T>*>(static_cast<Partitioner<T, KeyFn>*>(p));
  }

  void* InputOf(OperatorBase* op) override {
    auto* input = dynamic_cast<Input<T>*>(op);
    return input;
  }

  std::unique_ptr<TaskPart> ConnectPort(OperatorBase* op, int port,
                                        const std::vector<void*>& targets) override {
    auto* out = dynamic_cast<Output<T>*>(op->Port(port));
    if (targets.size() == 1) {
      out->Connect(static_cast<Input<T>*>(targets[0]));
      return nullptr;
    }
    std::vector<Input<T>*> typed;
    for (void* t : targets) typed.push_back(static_cast<Input<T>*>(t));
    auto tee = std::make_unique<TeePart>(std::move(typed));
    out->Connect(&tee->tee);
    return tee;
  }

  std::vector<Channel<T>*> ChannelsInto(int j) const override {
    std::vector<Channel<T>*> result;
    for (int i = 0; i < up_; ++i) {
      if (Channel<T>* c = channels_[Index(i, j)]) result.push_back(c);
    }
    return result;
  }

  void WakeProducers() override {
    for (auto& c : owned_) c->WakeProducer();
  }

  void ChannelStats(int j, size_t* fill, size_t* capacity, uint64_t* blocked_ns, uint64_t* records,
                    uint64_t* bytes) const override {
    for (Channel<T>* c : ChannelsInto(j)) {
      *fill += c->Fill();
      *capacity += c->capacity();
      *blocked_ns += c->metrics().blocked_ns.load(std::memory_order_relaxed);
      *records += c->metrics().records.load(std::memory_order_relaxed);
      *bytes += c->metrics().bytes.load(std::memory_order_relaxed);
    }
  }

  void SentStats(int i, uint64_t* records, uint64_t* bytes) const override {
    if (i >= up_) return;
    for (int j = 0; j < down_; ++j) {
      if (Channel<T>* c = channels_[Index(i, j)]) {
        *records += c->metrics().records.load(std::memory_order_relaxed);
        *bytes += c->metrics().bytes.load(std::memory_order_relaxed);
      }
    }
  }

 private:
  struct TeePart : TaskPart {
    explicit TeePart(std::vector<Input<T>*> targets) : tee(std::move(targets)) {}
    Tee<T> tee;
  };

  size_t Index(int i, int j) const {
    return static_cast<size_t>(i) * static_cast<size_t>(down_) + static_cast<size_t>(j);
  }

  KeyFn key_fn_;
  int up_ = 0;
  int down_ = 0;
  bool one_to_one_ = false;
  std::vector<Channel<T>*> channels_;
  std::vector<std::unique_ptr<Channel<T>>> owned_;
};

// A node whose operator consumes In (all its input edges carry In).
template <class In>
class ConsumerNode : public NodeBase {
 public:
  std::unique_ptr<TaskPart> MakeGate(int instance, OperatorBase* head, TaskInfo& task,
                                     RunState&) override {
    std::vector<Channel<In>*> ins;
    for (EdgeBase* e : inputs) {
      for (Channel<In>* c : static_cast<ChannelEdge<In>*>(e)->ChannelsInto(instance)) {
        ins.push_back(c);
      }
    }
    return std::make_unique<InputGate<In>>(std::move(ins), dynamic_cast<Input<In>*>(head),
                                           &task.bell, &head->metrics());
  }
};

}  // namespace barge::stream::detail
