#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "barge/stream/ring.h"

namespace barge::stream {

// Not FUTEX_PRIVATE_FLAG: rings may live in memory shared between processes.
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected) {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, nullptr, nullptr,
            0);
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT32_MAX, nullptr, nullptr,
            0);
}

}  // namespace barge::stream
