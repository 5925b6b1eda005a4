// What a running container uses: CPU time, memory, processes, block and network I/O, OOM kills.
// Read from its cgroup where it has one for that controller (barge makes a cgroup only for the
// controllers a container has a limit for), else summed over the processes of its pid namespace
// from /proc, so that a container without limits is measured too. Works on v1, v2 and hybrid
// hierarchies: each figure comes from whichever of the container's cgroup directories has the
// file for it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "barge/status.h"
#include "runtime/container_store.h"

namespace barge::runtime {

struct ResourceUsage {
  double cpu_seconds = 0;     // user + system, of live processes and those they reaped
  uint64_t memory_bytes = 0;  // cgroup: usage less inactive file cache (as docker stats); else RSS
  uint64_t memory_limit = 0;  // the cgroup's limit, else the host's memory
  bool memory_limited = false;
  uint64_t pids = 0;
  uint64_t block_read_bytes = 0;  // storage I/O of live processes (/proc/PID/io)
  uint64_t block_write_bytes = 0;
  uint64_t net_rx_bytes = 0;  // every interface of its network namespace but lo
  uint64_t net_tx_bytes = 0;
  uint64_t oom_kills = 0;  // processes the memory controller killed (0 without a memory cgroup)
};

// The usage of the container whose pid 1 is `pid` (as the host sees it), with `cgroup_dirs` its
// cgroup directories (ContainerState::cgroup_dirs, Cgroup::dirs()). NotFound when the process is
// gone. `host_network`: its network namespace is the host's, whose traffic is not its own (left 0).
Result<ResourceUsage> ReadResourceUsage(pid_t pid, const std::vector<std::string>& cgroup_dirs,
                                        bool host_network);

// One container's line of `barge stats`.
struct ContainerStats {
  std::string id;
  std::string name;
  bool running = false;  // false: the usage figures are zero
  ResourceUsage usage;
  double cpu_percent = 0;  // of one CPU over the last interval (200 = two CPUs busy), as docker's
};

// Samples containers again and again, like `docker stats`: CPU % is the CPU time used between two
// samples over the time between them.
class StatsSampler {
 public:
  // `names`: containers by id, id prefix or name, each of which must exist; empty: every running
  // container at each sample (those started meanwhile included).
  StatsSampler(ContainerStore& store, std::vector<std::string> names)
      : store_(store), names_(std::move(names)) {}
  // Reads the containers now. The first sample's CPU % is 0: there is no interval yet.
  Result<std::vector<ContainerStats>> Sample();

 private:
  struct Previous {
    std::string id;
    double cpu_seconds = 0;
    double when = 0;  // steady clock, seconds
  };
  ContainerStore& store_;
  std::vector<std::string> names_;
  std::vector<Previous> previous_;
};

namespace detail {
// Parsers, exposed for tests. Each returns 0 for what the text does not have.
// The value of `key` in "key value" lines (memory.stat, memory.events, cpu.stat, /proc/PID/io
// with "key: value").
uint64_t KeyedValue(const std::string& text, const std::string& key);
// utime + stime + cutime + cstime, in clock ticks, from /proc/PID/stat text.
uint64_t StatCpuTicks(const std::string& stat);
// Received and transmitted bytes of every interface but lo, from /proc/PID/net/dev text.
void NetDevBytes(const std::string& text, uint64_t* rx, uint64_t* tx);
}  // namespace detail

}  // namespace barge::runtime
