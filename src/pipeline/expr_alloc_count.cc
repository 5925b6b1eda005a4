// Replaces the global operator new of the test binary to count the allocations of a thread, so
// that a test can show that evaluating a batch allocates nothing once warm.
#include <cstdlib>
#include <new>

#include "pipeline/expr_test_util.h"

namespace {
thread_local bool counting = false;
thread_local size_t allocations = 0;

void* Allocate(size_t n, size_t align) {
  if (counting) ++allocations;
  void* p = align <= alignof(std::max_align_t)
                ? std::malloc(n == 0 ? 1 : n)
                : std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(size_t n) { return Allocate(n, 0); }
void* operator new[](size_t n) { return Allocate(n, 0); }
void* operator new(size_t n, std::align_val_t a) { return Allocate(n, static_cast<size_t>(a)); }
void* operator new[](size_t n, std::align_val_t a) { return Allocate(n, static_cast<size_t>(a)); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }

namespace barge::pipeline::testing {

void CountAllocations(bool on) {
  if (on) allocations = 0;
  counting = on;
}

size_t CountedAllocations() { return allocations; }

}  // namespace barge::pipeline::testing
