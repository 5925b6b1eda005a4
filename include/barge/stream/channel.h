// Channel<T>: a bounded SPSC ring of batches between two tasks, with blocking on both ends.
// Records, watermarks, checkpoint barriers and end-of-stream travel in the same slots, in order.
// A full channel blocks its producer (backpressure): memory in flight is bounded by
// slots x batch capacity per channel.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "barge/stream/batch.h"
#include "barge/stream/operator.h"
#include "barge/stream/ring.h"

namespace barge::stream {

enum class SlotKind : uint8_t {
  kData,       // batch holds records; `watermark` holds after them (kMinTime: none)
  kWatermark,  // no records; `watermark` advanced
  kBarrier,    // checkpoint barrier `barrier_id`
  kEnd,        // the producer is done; nothing follows
  kIdle,       // the producer's stream is idle: leave it out of watermarks until it speaks
};

template <class T>
struct Slot {
  SlotKind kind = SlotKind::kData;
  EventTime watermark = kMinTime;
  uint64_t barrier_id = 0;
  Batch<T> batch;
};

// The bytes a batch carries: string payloads by length, records with `size_t byte_size() const`
// by what they say, anything else by sizeof, plus 8 per timestamp. An estimate for metrics,
// computed once per slot.
template <class T>
uint64_t BatchBytes(const Batch<T>& b) {
  uint64_t bytes = b.timestamps.size() * sizeof(EventTime);
  if constexpr (requires(const T& t) { t.byte_size(); }) {
    for (const T& r : b.records) bytes += r.byte_size();
  } else if constexpr (std::is_same_v<T, std::string>) {
    for (const std::string& r : b.records) bytes += r.size();
  } else {
    bytes += b.records.size() * sizeof(T);
  }
  return bytes;
}

// Counters a metrics endpoint reads while the pipeline runs. Written by one thread each.
struct ChannelMetrics {
  std::atomic<uint64_t> slots{0};       // slots published
  std::atomic<uint64_t> records{0};     // records published
  std::atomic<uint64_t> bytes{0};       // record bytes published (see BatchBytes)
  std::atomic<uint64_t> blocked_ns{0};  // producer time spent waiting on a full channel
};

template <class T>
class Channel {
 public:
  // `consumer_bell` is rung after every publish (the consuming task sleeps on one bell for all
  // its inputs). `cancelled` aborts waits. A producer blocked on a full channel spins `spins`
  // pauses before it sleeps (Doorbell::spins).
  Channel(size_t slots, Doorbell* consumer_bell, const std::atomic<bool>* cancelled,
          uint32_t spins = Doorbell::kDefaultSpins)
      : ring_(slots), consumer_bell_(consumer_bell), cancelled_(cancelled) {
    space_bell_.spins = spins;
  }

  // Producer: a free slot to fill, blocking while the channel is full.
  Slot<T>* Claim() {
    Slot<T>* slot = ring_.TryClaim();
    if (slot != nullptr) return slot;
    auto start = std::chrono::steady_clock::now();
    space_bell_.WaitUntil([&] {
      slot = ring_.TryClaim();
      return slot != nullptr || cancelled_->load(std::memory_order_relaxed);
    });
    if (slot == nullptr) throw PipelineCancelled{};
    auto waited = std::chrono::steady_clock::now() - start;
    metrics_.blocked_ns.store(metrics_.blocked_ns.load(std::memory_order_relaxed) +
                                  static_cast<uint64_t>(std::chrono::nanoseconds(waited).count()),
                              std::memory_order_relaxed);
    return slot;
  }
  // Producer: a free slot, or nullptr when the channel is full (never blocks).
  Slot<T>* TryClaim() { return ring_.TryClaim(); }
  // Producer: publishes the slot returned by the last Claim. A sleeping consumer is woken at
  // once when `urgent` (control events, flushes) or when the last wake-up is older than
  // kMaxWakeDelay; otherwise only when the ring is half full, so that one wake-up carries many
  // batches instead of one (a futex wake costs microseconds). WakeConsumer() must follow before
  // the producer itself goes idle.
  void Publish(const Slot<T>& slot, bool urgent = true) {
    metrics_.slots.store(metrics_.slots.load(std::memory_order_relaxed) + 1,
                         std::memory_order_relaxed);
    metrics_.records.store(
        metrics_.records.load(std::memory_order_relaxed) + RecordCount(slot.batch),
        std::memory_order_relaxed);
    metrics_.bytes.store(metrics_.bytes.load(std::memory_order_relaxed) + BatchBytes(slot.batch),
                         std::memory_order_relaxed);
    ring_.Publish();
    auto now = std::chrono::steady_clock::now();
    if (urgent || ring_.Size() * 2 >= ring_.capacity() || now - last_ring_ >= kMaxWakeDelay) {
      consumer_bell_->Ring();
      last_ring_ = now;
      unrung_ = false;
    } else {
      unrung_ = true;
    }
  }
  // Producer: wakes the consumer if a publish did not.
  void WakeConsumer() {
    if (unrung_) {
      consumer_bell_->Ring();
      last_ring_ = std::chrono::steady_clock::now();
      unrung_ = false;
    }
  }

  // The longest a published batch waits for a sleeping consumer to be woken (latency bound
  // for producers that neither fill the ring nor go idle).
  static constexpr std::chrono::microseconds kMaxWakeDelay{500};

  // Consumer: the oldest slot, or nullptr when empty. Never blocks (the task waits on its bell).
  Slot<T>* Peek() { return ring_.TryPeek(); }
  // Consumer: returns the peeked slot to the producer. A producer blocked on the full ring is
  // woken once the ring is down to half, so it refills many slots per wake-up.
  void Release() {
    ring_.Release();
    if (ring_.Size() * 2 <= ring_.capacity()) space_bell_.Ring();
  }

  // Wakes a producer blocked in Claim (cancellation).
  void WakeProducer() { space_bell_.RingAlways(); }

  bool Empty() const { return ring_.Empty(); }
  size_t Fill() const { return ring_.Size(); }
  size_t capacity() const { return ring_.capacity(); }
  const ChannelMetrics& metrics() const { return metrics_; }

 private:
  SpscRing<Slot<T>> ring_;
  Doorbell space_bell_;
  Doorbell* consumer_bell_;
  const std::atomic<bool>* cancelled_;
  bool unrung_ = false;  // producer side: published without waking the consumer
  std::chrono::steady_clock::time_point last_ring_{};  // producer side
  ChannelMetrics metrics_;
};

}  // namespace barge::stream
