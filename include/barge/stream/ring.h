// A bounded single-producer/single-consumer ring, and the futex-based waiting that lets idle
// threads sleep instead of spinning.
//
// The indices live in RingIndices, a standard-layout struct with no pointers, and the futex is
// not process-private, so indices and doorbells can be placed in shared memory between processes.
// SpscRing<Slot> itself owns its slot array on the heap and is for threads of one process; its
// in-process Slot<T> (channel.h) holds std::vectors. A ring between processes (container stages)
// pairs the same RingIndices and acquire/release protocol with fixed-size byte slots in a
// shared mapping; that is not written yet.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

namespace barge::stream {

inline constexpr size_t kCacheLine = 64;

// Blocks while *word == expected (FUTEX_WAIT without the private flag, so it also works
// between processes on shared memory). Returns on wake, on a changed value or spuriously.
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected);
// Wakes every waiter on `word`.
void FutexWakeAll(std::atomic<uint32_t>* word);

// A wake-up point for one waiting thread: a sequence number to sleep on and a flag saying
// someone sleeps. Wakers pay a fence and one load when nobody sleeps.
struct alignas(kCacheLine) Doorbell {
  static constexpr uint32_t kDefaultSpins = 256;

  std::atomic<uint32_t> seq{0};
  std::atomic<uint32_t> sleeping{0};
  // Pauses before sleeping: a wait that ends within them costs no futex round trip. Worth it
  // only while every waiting thread has a CPU of its own; with more threads than CPUs the
  // spinning steals the CPU of the thread it waits for (pipeline.cc sets 0 then).
  uint32_t spins = kDefaultSpins;

  // Waker side, after publishing whatever the sleeper waits for.
  void Ring() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (sleeping.load(std::memory_order_relaxed) != 0) {
      seq.fetch_add(1, std::memory_order_release);
      FutexWakeAll(&seq);
    }
  }
  // Unconditional wake, for cancellation.
  void RingAlways() {
    seq.fetch_add(1, std::memory_order_release);
    FutexWakeAll(&seq);
  }

  // Sleeper side: spins `spins` pauses, then sleeps until `ready()` holds (checked after announcing
  // the sleep, so a Ring() between the check and the sleep is never lost).
  template <class Ready>
  void WaitUntil(Ready&& ready) {
    for (uint32_t i = 0; i < spins; ++i) {
      if (ready()) return;
      __builtin_ia32_pause();
    }
    while (!ready()) {
      uint32_t s = seq.load(std::memory_order_acquire);
      sleeping.store(1, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (ready()) {
        sleeping.store(0, std::memory_order_relaxed);
        return;
      }
      FutexWait(&seq, s);
      sleeping.store(0, std::memory_order_relaxed);
    }
  }
};

// Producer and consumer indices on separate cache lines. Indices count up forever; slot =
// index & mask. Each side caches the other's index to touch the shared line only when needed.
struct RingIndices {
  alignas(kCacheLine) std::atomic<uint64_t> tail{0};  // written by the producer
  uint64_t cached_head = 0;                           // producer's copy of head
  alignas(kCacheLine) std::atomic<uint64_t> head{0};  // written by the consumer
  uint64_t cached_tail = 0;                           // consumer's copy of tail
};

// SPSC ring over `Slot`s. The producer claims the slot at the tail, fills it in place and
// publishes it; the consumer peeks the slot at the head, reads it in place and releases it. No
// copies: slots own reusable buffers. Acquire/release only.
template <class Slot>
class SpscRing {
 public:
  // `capacity` is rounded up to a power of two.
  explicit SpscRing(size_t capacity) {
    size_t c = 1;
    while (c < capacity) c <<= 1;
    mask_ = c - 1;
    slots_ = std::make_unique<Slot[]>(c);
  }

  size_t capacity() const { return mask_ + 1; }

  // Producer: the next free slot, or nullptr when the ring is full.
  Slot* TryClaim() {
    uint64_t t = idx_.tail.load(std::memory_order_relaxed);
    if (t - idx_.cached_head > mask_) {
      idx_.cached_head = idx_.head.load(std::memory_order_acquire);
      if (t - idx_.cached_head > mask_) return nullptr;
    }
    return &slots_[t & mask_];
  }
  // Producer: makes the claimed slot visible to the consumer.
  void Publish() {
    idx_.tail.store(idx_.tail.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }

  // Consumer: the oldest published slot, or nullptr when empty.
  Slot* TryPeek() {
    uint64_t h = idx_.head.load(std::memory_order_relaxed);
    if (h == idx_.cached_tail) {
      idx_.cached_tail = idx_.tail.load(std::memory_order_acquire);
      if (h == idx_.cached_tail) return nullptr;
    }
    return &slots_[h & mask_];
  }
  // Consumer: hands the peeked slot back to the producer.
  void Release() {
    idx_.head.store(idx_.head.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }

  // Either side: published, unreleased slots (a snapshot).
  size_t Size() const {
    return static_cast<size_t>(idx_.tail.load(std::memory_order_acquire) -
                               idx_.head.load(std::memory_order_acquire));
  }
  bool Empty() const { return Size() == 0; }

 private:
  RingIndices idx_;
  size_t mask_ = 0;
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace barge::stream
