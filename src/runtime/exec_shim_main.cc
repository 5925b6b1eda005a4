// The exec shim (see detail/exec_shim.h): a freestanding static program, no libc, built with
// -nostdlib and embedded into barge. It makes the report pipe close-on-exec and execs the
// container's command; if that fails it reports the errno to barge and exits 127.
#include <asm/unistd.h>

#include "runtime/detail/exec_shim.h"

namespace {

using barge::runtime::detail::ChildReport;
using barge::runtime::detail::kExecShimName;

long Syscall(long n, long a, long b, long c) {
#if defined(__x86_64__)
  long ret;
  asm volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return ret;
#elif defined(__aarch64__)
  register long x8 asm("x8") = n;
  register long x0 asm("x0") = a;
  register long x1 asm("x1") = b;
  register long x2 asm("x2") = c;
  asm volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
  return x0;
#else
#error "the exec shim supports x86-64 and aarch64"
#endif
}

constexpr long kFcntlSetFd = 2;   // F_SETFD
constexpr long kCloseOnExec = 1;  // FD_CLOEXEC

[[noreturn]] void Exit(int code) {
  for (;;) Syscall(__NR_exit_group, code, 0, 0);
}

bool Equal(const char* a, const char* b) {
  while (*a != '\0' && *a == *b) ++a, ++b;
  return *a == *b;
}

void Write(int fd, const char* text) {
  long n = 0;
  while (text[n] != '\0') ++n;
  Syscall(__NR_write, fd, reinterpret_cast<long>(text), n);
}

}  // namespace

// The compiler may turn the zeroing of a ChildReport into a call; there is no libc to answer it.
extern "C" void* memset(void* s, int c, unsigned long n) {
  auto* p = static_cast<volatile unsigned char*>(s);
  for (unsigned long i = 0; i < n; ++i) p[i] = static_cast<unsigned char>(c);
  return s;
}

extern "C" [[noreturn]] void ShimMain(long* stack) {
  long argc = stack[0];
  char** argv = reinterpret_cast<char**>(stack + 1);
  char** envp = argv + argc + 1;
  if (argc < 4 || !Equal(argv[0], kExecShimName)) {
    Write(2,
          "barge: refusing to run barge's exec shim as a command (a \"#!/proc/self/exe\" line?)\n");
    Exit(126);
  }
  int report = 0;
  for (const char* p = argv[1]; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9') Exit(126);
    report = report * 10 + (*p - '0');
  }
  Syscall(__NR_fcntl, report, kFcntlSetFd, kCloseOnExec);
  long err = -Syscall(__NR_execve, reinterpret_cast<long>(argv[2]),
                      reinterpret_cast<long>(argv + 3), reinterpret_cast<long>(envp));
  ChildReport r;
  r.err = static_cast<int>(err);
  r.exec_stage = true;
  const char prefix[] = "exec ";
  unsigned long n = 0;
  for (; prefix[n] != '\0'; ++n) r.message[n] = prefix[n];
  for (const char* p = argv[3]; *p != '\0' && n + 1 < sizeof r.message; ++p) r.message[n++] = *p;
  Syscall(__NR_write, report, reinterpret_cast<long>(&r), sizeof r);
  Exit(127);
}

// The entry point: the kernel starts here with argc, argv and envp on the stack.
#if defined(__x86_64__)
asm(".text\n.global _start\n_start:\n  xor %ebp, %ebp\n  mov %rsp, %rdi\n  and $-16, %rsp\n"
    "  call ShimMain\n  hlt\n");
#elif defined(__aarch64__)
asm(".text\n.global _start\n_start:\n  mov x29, #0\n  mov x0, sp\n  bl ShimMain\n");
#endif
