// Turns the logical graph into running tasks: chains forward-connected operators, creates the
// channels of every exchange, starts one thread per task instance and gathers the first error.
#include "barge/stream/pipeline.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <thread>

#include "barge/stream/detail/cpus.h"

namespace barge::stream {

using detail::EdgeBase;
using detail::NodeBase;
using detail::Partitioning;

// One task: a chain of operators for one instance, fed by a source or an input gate.
struct Task {
  std::string name;
  NodeBase* head = nullptr;
  int instance = 0;
  detail::TaskInfo info;
  std::vector<std::pair<NodeBase*, std::unique_ptr<OperatorBase>>> ops;  // chain order
  std::vector<std::unique_ptr<detail::TaskPart>> parts;  // partitioners, tees, the gate
  detail::GateBase* gate = nullptr;
  detail::SourceDriverBase* source = nullptr;
  std::thread thread;
};

struct Pipeline::Runtime {
  detail::RunState run;
  std::unique_ptr<detail::CheckpointCoordinator> checkpoints;
  std::vector<std::unique_ptr<Task>> tasks;
  std::map<NodeBase*, std::vector<Task*>> tasks_of_head;
  std::mutex mu;
  Status error;
  bool started = false;

  void Fail(Status st, const std::vector<std::unique_ptr<detail::EdgeBase>>& edges) {
    {
      std::lock_guard lock(mu);
      if (error.ok()) error = std::move(st);
    }
    run.cancelled.store(true);
    for (auto& t : tasks) t->info.bell.RingAlways();
    for (auto& e : edges) e->WakeProducers();
  }
};

Pipeline::Pipeline(PipelineOptions options) : options_(options) {
  if (options_.parallelism < 1) options_.parallelism = 1;
  if (options_.batch_size < 1) options_.batch_size = 1;
  if (options_.channel_slots < 2) options_.channel_slots = 2;
}

Pipeline::~Pipeline() {
  if (runtime_) {
    for (auto& t : runtime_->tasks) {
      if (t->thread.joinable()) t->thread.join();
    }
    if (runtime_->checkpoints) runtime_->checkpoints->Stop();
  }
}

detail::NodeBase* Pipeline::AddNode(std::unique_ptr<detail::NodeBase> node) {
  nodes_.push_back(std::move(node));
  return nodes_.back().get();
}

void Pipeline::AddEdge(std::unique_ptr<detail::EdgeBase> edge) {
  edge->from->outputs.push_back(edge.get());
  edge->to->inputs.push_back(edge.get());
  edges_.push_back(std::move(edge));
}

std::string Pipeline::UniqueName(const std::string& base) {
  int same = 0;
  for (const auto& n : nodes_) {
    if (n->name == base || n->name.rfind(base + "#", 0) == 0) ++same;
  }
  return same == 0 ? base : base + "#" + std::to_string(same + 1);
}

namespace {

// Fuses `to` into `from`'s task: a single forward input at equal parallelism. A hash exchange
// between single instances routes everything to instance 0, so it fuses too. rebalance() and
// broadcast() always cut the chain: users ask for them to spread work over threads.
bool Chainable(const EdgeBase& e) {
  const NodeBase& to = *e.to;
  if (to.is_source() || to.inputs.size() != 1) return false;
  if (e.from->parallelism != to.parallelism) return false;
  if (e.kind == Partitioning::kForward) return true;
  return e.kind == Partitioning::kHash && to.parallelism == 1;
}

// The head of every node's chain. Nodes were added in topological order (an operator only reads
// existing streams), so a node's upstream head is known when the node is reached.
std::map<NodeBase*, NodeBase*> ChainHeads(const std::vector<std::unique_ptr<NodeBase>>& nodes) {
  std::map<NodeBase*, NodeBase*> head_of;
  for (const auto& n : nodes) {
    NodeBase* node = n.get();
    if (node->inputs.size() == 1 && Chainable(*node->inputs[0])) {
      head_of[node] = head_of[node->inputs[0]->from];
    } else {
      head_of[node] = node;
    }
  }
  return head_of;
}

void Pin(std::thread& t, int index) {
  std::vector<int> cpus = detail::AllowedCpuList();
  if (cpus.size() < 2) return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpus[static_cast<size_t>(index) % cpus.size()], &one);
  ::pthread_setaffinity_np(t.native_handle(), sizeof one, &one);
}

}  // namespace

Status Pipeline::Run() {
  {
    std::lock_guard lock(state_mu_);
    if (runtime_) return InvalidArgument("pipeline already ran: build a new Pipeline to run again");
    runtime_ = std::make_unique<Runtime>();
  }
  if (!build_error_.ok()) return build_error_;
  Runtime& rt = *runtime_;
  rt.run.batch_size = options_.batch_size;
  rt.run.channel_slots = options_.channel_slots;

  bool has_source = false;
  for (auto& n : nodes_) {
    if (n->is_source()) has_source = true;
    if (n->parallelism < 1) {
      return InvalidArgument("operator '" + n->name + "': parallelism must be at least 1");
    }
  }
  if (!has_source) return InvalidArgument("pipeline has no source");

  // 1. Chains.
  std::map<NodeBase*, NodeBase*> head_of = ChainHeads(nodes_);
  for (auto& n : nodes_) {
    if (head_of[n.get()] != n.get()) n->inputs[0]->chained = true;
  }

  // 2. Tasks: one per chain head and instance.
  for (auto& n : nodes_) {
    NodeBase* node = n.get();
    if (head_of[node] != node) continue;
    for (int i = 0; i < node->parallelism; ++i) {
      auto task = std::make_unique<Task>();
      task->name = node->name + "[" + std::to_string(i) + "]";
      task->head = node;
      task->instance = i;
      rt.tasks_of_head[node].push_back(task.get());
      rt.tasks.push_back(std::move(task));
    }
  }

  // Waiting threads spin before they sleep only while every task has a CPU of its own (its
  // affinity and its cgroup's CPU quota allow as many CPUs as there are tasks).
  if (rt.tasks.size() > detail::UsableCpus()) rt.run.spins = 0;
  for (auto& task : rt.tasks) task->info.bell.spins = rt.run.spins;

  // 3. Channels of every exchange.
  for (auto& e : edges_) {
    if (e->chained) continue;
    std::vector<detail::TaskInfo*> down;
    for (Task* t : rt.tasks_of_head[e->to]) down.push_back(&t->info);
    e->CreateChannels(e->from->parallelism, e->to->parallelism, down, rt.run);
  }

  // 4. Operators of each task, wired in chain order. User factories may throw.
  try {
    BuildTasks();
  } catch (...) {
    return InvalidArgument("building the pipeline failed: " + DescribeCurrentException());
  }

  // 5. Checkpoints: every operator must be able to save its state; resume from a checkpoint.
  if (options_.checkpoint.store != nullptr) {
    std::vector<detail::CheckpointCoordinator::Instance> instances;
    for (auto& task : rt.tasks) {
      for (auto& [node, op] : task->ops) {
        RETURN_IF_ERROR(op->CheckpointSupport());
        op->AttachCheckpoints(nullptr, instances.size());
        instances.push_back({node->name, task->instance, node->parallelism, op.get()});
      }
    }
    if (resume_ != nullptr) RETURN_IF_ERROR(RestoreTasks(*resume_));
    rt.checkpoints = std::make_unique<detail::CheckpointCoordinator>(
        options_.checkpoint, std::move(instances), resume_ != nullptr ? resume_->id : 0,
        [this, &rt](Status st) { rt.Fail(std::move(st), edges_); });
    rt.run.checkpoints = rt.checkpoints.get();
    size_t index = 0;
    for (auto& task : rt.tasks) {
      for (auto& [node, op] : task->ops) op->AttachCheckpoints(rt.checkpoints.get(), index++);
    }
  } else if (resume_ != nullptr) {
    return InvalidArgument("resuming from a checkpoint needs checkpoints on (a store)");
  }
  for (auto& task : rt.tasks) {
    for (auto& [node, op] : task->ops) op->Open(task->instance, node->parallelism);
  }

  // 6. Run, unless Cancel() came first.
  {
    std::lock_guard lock(state_mu_);
    if (cancel_requested_) return Cancelled("pipeline cancelled");
    rt.started = true;
  }
  if (rt.checkpoints) rt.checkpoints->Start();
  int index = 0;
  for (auto& task : rt.tasks) {
    Task* t = task.get();
    t->thread = std::thread([this, t, &rt] {
      try {
        if (t->source != nullptr) {
          Status st = t->source->OpenSource(t->instance, t->head->parallelism);
          if (!st.ok()) {
            rt.Fail(st, edges_);
            return;
          }
          struct Closer {
            detail::SourceDriverBase* s;
            ~Closer() { s->CloseSource(); }
          } closer{t->source};
          while (t->source->Step(rt.run)) {
            if (rt.run.cancelled.load(std::memory_order_relaxed)) throw PipelineCancelled{};
          }
        } else {
          t->gate->Run(rt.run);
        }
        // Ended: each operator's final state stands for it in later checkpoints.
        if (rt.checkpoints) {
          for (auto& [node, op] : t->ops) {
            StateWriter w;
            Guarded(op->name(), [&] { op->Snapshot(0, w); });
            rt.checkpoints->Finished(op->checkpoint_index(), std::move(w.bytes()));
          }
        }
      } catch (const PipelineCancelled&) {
      } catch (const OperatorFailure& e) {
        rt.Fail(Internal(e.what()), edges_);
      } catch (const std::exception& e) {
        rt.Fail(Internal("task '" + t->name + "' failed: " + e.what()), edges_);
      } catch (...) {
        rt.Fail(Internal("task '" + t->name + "' failed: " + DescribeCurrentException()), edges_);
      }
    });
    if (options_.pin_threads) Pin(t->thread, index);
    ++index;
  }
  for (auto& task : rt.tasks) task->thread.join();
  if (rt.checkpoints) {
    rt.checkpoints->Stop();
    bool failed;
    {
      std::lock_guard lock(rt.mu);
      failed = !rt.error.ok();
    }
    // Everything ended: the final checkpoint commits the output written since the last one.
    if (!failed) {
      if (Status st = rt.checkpoints->Final(); !st.ok()) rt.Fail(st, edges_);
    }
  }
  std::lock_guard lock(rt.mu);
  return rt.error;
}

Status Pipeline::RestoreTasks(const Checkpoint& checkpoint) {
  Runtime& rt = *runtime_;
  size_t matched = 0;
  for (auto& task : rt.tasks) {
    for (auto& [node, op] : task->ops) {
      const OperatorState* state = checkpoint.Find(node->name, task->instance);
      if (state == nullptr) {
        return InvalidArgument("checkpoint " + std::to_string(checkpoint.id) +
                               " has no state for operator '" + node->name + "' instance " +
                               std::to_string(task->instance) +
                               ": the pipeline is not the one that took it");
      }
      if (state->parallelism != node->parallelism) {
        return InvalidArgument("checkpoint " + std::to_string(checkpoint.id) +
                               " was taken with operator '" + node->name + "' at parallelism " +
                               std::to_string(state->parallelism) + ", the pipeline has " +
                               std::to_string(node->parallelism) +
                               " (state cannot be redistributed yet)");
      }
      ++matched;
      StateReader in(state->bytes);
      Status st;
      try {
        st = op->Restore(in);
      } catch (const StateFormatError& e) {
        st = Corruption(e.what());
      } catch (...) {
        st = Internal(DescribeCurrentException());
      }
      if (!st.ok()) {
        return st.Wrap("restoring operator '" + node->name + "' from checkpoint " +
                       std::to_string(checkpoint.id));
      }
    }
  }
  if (matched != checkpoint.operators.size()) {
    for (const OperatorState& s : checkpoint.operators) {
      bool found = false;
      for (auto& task : rt.tasks) {
        for (auto& [node, op] : task->ops) found = found || node->name == s.op;
      }
      if (!found) {
        return InvalidArgument("checkpoint " + std::to_string(checkpoint.id) +
                               " holds state of operator '" + s.op +
                               "', which the pipeline does not have");
      }
    }
    return InvalidArgument("checkpoint " + std::to_string(checkpoint.id) +
                           " holds more operator instances than the pipeline has");
  }
  return Status::Ok();
}

Result<uint64_t> Pipeline::StopWithSavepoint(std::chrono::milliseconds timeout) {
  detail::CheckpointCoordinator* coordinator = nullptr;
  {
    std::lock_guard lock(state_mu_);
    if (runtime_ && runtime_->started) coordinator = runtime_->checkpoints.get();
  }
  if (coordinator == nullptr) {
    Cancel();
    return Unsupported("the pipeline runs without checkpoints: stopped without a savepoint");
  }
  Result<uint64_t> id = coordinator->Savepoint(timeout);
  Cancel();
  return id;
}

CheckpointStats Pipeline::checkpoint_stats() const {
  std::lock_guard lock(state_mu_);
  if (!runtime_ || !runtime_->started || !runtime_->checkpoints) return {};
  return runtime_->checkpoints->stats();
}

uint64_t Pipeline::last_checkpoint() const {
  std::lock_guard lock(state_mu_);
  if (!runtime_ || !runtime_->started || !runtime_->checkpoints) return 0;
  return runtime_->checkpoints->last_completed();
}

void Pipeline::BuildTasks() {
  Runtime& rt = *runtime_;
  for (auto& task : rt.tasks) {
    std::map<NodeBase*, OperatorBase*> op_of;
    std::vector<NodeBase*> chain{task->head};
    for (size_t k = 0; k < chain.size(); ++k) {
      for (EdgeBase* e : chain[k]->outputs) {
        if (e->chained) chain.push_back(e->to);
      }
    }
    for (NodeBase* node : chain) {
      std::unique_ptr<OperatorBase> op = node->MakeOperator(task->instance, rt.run);
      op_of[node] = op.get();
      task->ops.emplace_back(node, std::move(op));
    }
    for (NodeBase* node : chain) {
      std::map<int, std::vector<EdgeBase*>> by_port;
      for (EdgeBase* e : node->outputs) by_port[e->from_port].push_back(e);
      for (auto& [port, edges] : by_port) {
        std::vector<void*> targets;
        for (EdgeBase* e : edges) {
          if (e->chained) {
            targets.push_back(e->InputOf(op_of[e->to]));
          } else {
            std::unique_ptr<detail::TaskPart> part = e->MakePartitioner(task->instance, rt.run);
            targets.push_back(e->PartitionerInput(part.get()));
            task->parts.push_back(std::move(part));
          }
        }
        if (auto tee = edges[0]->ConnectPort(op_of[node], port, targets)) {
          task->parts.push_back(std::move(tee));
        }
      }
    }
    OperatorBase* head_op = op_of[task->head];
    if (task->head->is_source()) {
      task->source = static_cast<detail::SourceDriverBase*>(head_op);
    } else {
      auto gate = task->head->MakeGate(task->instance, head_op, task->info, rt.run);
      task->gate = static_cast<detail::GateBase*>(gate.get());
      task->parts.push_back(std::move(gate));
    }
  }
}

std::vector<TaskPlan> Pipeline::Plan() const {
  std::map<NodeBase*, NodeBase*> head_of = ChainHeads(nodes_);
  std::vector<TaskPlan> plan;
  std::map<NodeBase*, size_t> index;
  for (const auto& n : nodes_) {
    NodeBase* head = head_of[n.get()];
    if (head == n.get()) {
      index[head] = plan.size();
      plan.push_back({{}, head->parallelism});
    }
    plan[index[head]].operators.push_back(n->name);
  }
  return plan;
}

void Pipeline::Cancel() {
  {
    std::lock_guard lock(state_mu_);
    cancel_requested_ = true;
    if (!runtime_ || !runtime_->started) return;  // Run() sees the request before starting
  }
  runtime_->Fail(Cancelled("pipeline cancelled"), edges_);
}

void Pipeline::Invalid(std::string message) {
  if (build_error_.ok()) build_error_ = InvalidArgument(std::move(message));
}

std::vector<OperatorStats> Pipeline::Stats() const {
  std::vector<OperatorStats> out;
  {
    std::lock_guard lock(state_mu_);
    if (!runtime_ || !runtime_->started) return out;
  }
  for (const auto& task : runtime_->tasks) {
    for (const auto& [node, op] : task->ops) {
      OperatorStats s;
      s.name = node->name;
      s.instance = task->instance;
      s.records_in = op->metrics().records_in.load(std::memory_order_relaxed);
      s.records_out = op->metrics().records_out.load(std::memory_order_relaxed);
      s.batches_in = op->metrics().batches_in.load(std::memory_order_relaxed);
      s.late_records = op->metrics().late_records.load(std::memory_order_relaxed);
      if (node == task->head && task->source != nullptr) s.skipped = task->source->skipped();
      if (node == task->head) {
        for (EdgeBase* e : node->inputs) {
          e->ChannelStats(task->instance, &s.channel_fill, &s.channel_capacity, &s.blocked_ns,
                          &s.channel_records, &s.channel_bytes);
        }
      }
      for (EdgeBase* e : node->outputs) {
        if (e->chained) continue;
        s.sends = true;
        e->SentStats(task->instance, &s.sent_records, &s.sent_bytes);
      }
      s.watermark = op->metrics().watermark.load(std::memory_order_relaxed);
      out.push_back(std::move(s));
    }
  }
  return out;
}

}  // namespace barge::stream
