// The exec shim (see detail/exec_shim.h): a freestanding static program, no libc, built with
// -nostdlib and embedded into barge. It makes the report pipe close-on-exec and execs the
// container's command; if that fails it reports the errno to barge and exits 127. As
// "barge-init" (barge run --init) it stays as pid 1: the command runs as its child, signals sent
// to pid 1 are forwarded to it, orphans are reaped, and pid 1 exits with the command's status.
#include <asm/unistd.h>

#include "runtime/detail/exec_shim.h"

namespace {

using barge::runtime::detail::ChildReport;
using barge::runtime::detail::kExecShimInitName;
using barge::runtime::detail::kExecShimName;

long Syscall(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0) {
#if defined(__x86_64__)
  long ret;
  register long r10 asm("r10") = d;
  register long r8 asm("r8") = e;
  asm volatile("syscall"
               : "=a"(ret)
               : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
               : "rcx", "r11", "memory");
  return ret;
#elif defined(__aarch64__)
  register long x8 asm("x8") = n;
  register long x0 asm("x0") = a;
  register long x1 asm("x1") = b;
  register long x2 asm("x2") = c;
  register long x3 asm("x3") = d;
  register long x4 asm("x4") = e;
  asm volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
  return x0;
#else
#error "the exec shim supports x86-64 and aarch64"
#endif
}

// From the kernel's ABI (uapi headers would pull in more than a freestanding build wants).
constexpr long kFcntlSetFd = 2;              // F_SETFD
constexpr long kCloseOnExec = 1;             // FD_CLOEXEC
constexpr long kSigBlock = 0;                // SIG_BLOCK
constexpr long kSigSetMask = 2;              // SIG_SETMASK
constexpr long kSigChld = 17;                // SIGCHLD
constexpr long kSigCont = 18;                // SIGCONT
constexpr long kWaitUntraced = 2;            // WUNTRACED
constexpr long kWaitNoHang = 1;              // WNOHANG
constexpr long kSignalFdCloExec = 02000000;  // SFD_CLOEXEC
constexpr long kTcGets = 0x5401;             // TCGETS
constexpr long kTiocSpgrp = 0x5410;          // TIOCSPGRP
constexpr long kSigInfoSize = 128;           // struct signalfd_siginfo
constexpr long kPrSetName = 15;              // PR_SET_NAME

[[noreturn]] void Exit(int code) {
  for (;;) Syscall(__NR_exit_group, code);
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

// Reports a failure to barge on `report` ("<what><object>: <strerror(err)>") and exits `code`.
[[noreturn]] void Report(int report, const char* what, const char* object, long err,
                         bool exec_stage, int code) {
  ChildReport r;
  r.err = static_cast<int>(err);
  r.exec_stage = exec_stage;
  unsigned long n = 0;
  for (const char* p = what; *p != '\0' && n + 1 < sizeof r.message; ++p) r.message[n++] = *p;
  for (const char* p = object; *p != '\0' && n + 1 < sizeof r.message; ++p) r.message[n++] = *p;
  Syscall(__NR_write, report, reinterpret_cast<long>(&r), sizeof r);
  Exit(code);
}

// Execs the command; on failure reports why on `report` and exits 127.
[[noreturn]] void ExecCommand(int report, char** argv, char** envp) {
  long err = -Syscall(__NR_execve, reinterpret_cast<long>(argv[2]),
                      reinterpret_cast<long>(argv + 3), reinterpret_cast<long>(envp));
  Report(report, "exec ", argv[3], err, true, 127);
}

// The exit status of a process as a shell reports it.
int ExitCode(int status) {
  int signal = status & 0x7f;
  return signal == 0 ? (status >> 8) & 0xff : 128 + signal;
}

[[noreturn]] void Init(int report, char** argv, char** envp) {
  const char name[] = "barge-init";  // /proc/1/comm, instead of the memfd's descriptor number
  Syscall(__NR_prctl, kPrSetName, reinterpret_cast<long>(name));
  // Every signal waits in a signalfd; only the command's own ones reach it, forwarded.
  unsigned long all = ~0UL, none = 0;
  Syscall(__NR_rt_sigprocmask, kSigBlock, reinterpret_cast<long>(&all), 0, sizeof all);
  long signals =
      Syscall(__NR_signalfd4, -1, reinterpret_cast<long>(&all), sizeof all, kSignalFdCloExec);
  if (signals < 0) Report(report, "barge-init: signalfd", "", -signals, false, 126);
  long child = Syscall(__NR_clone, kSigChld, 0, 0, 0, 0);
  if (child == 0) {
    // A process group of its own, in the terminal's foreground if there is one: the terminal's
    // ^C goes to the command alone, not also to pid 1 to be forwarded a second time.
    Syscall(__NR_setpgid, 0, 0);
    char termios[64];
    if (Syscall(__NR_ioctl, 0, kTcGets, reinterpret_cast<long>(termios)) == 0) {
      int self = static_cast<int>(Syscall(__NR_getpid));
      Syscall(__NR_ioctl, 0, kTiocSpgrp, reinterpret_cast<long>(&self));
    }
    Syscall(__NR_rt_sigprocmask, kSigSetMask, reinterpret_cast<long>(&none), 0, sizeof none);
    ExecCommand(report, argv, envp);
  }
  if (child < 0) Report(report, "barge-init: clone", "", -child, false, 126);
  // barge learns that the command started when the child's exec closes the last copy.
  Syscall(__NR_close, report);
  for (;;) {
    unsigned char info[kSigInfoSize];
    if (Syscall(__NR_read, signals, reinterpret_cast<long>(info), sizeof info) != kSigInfoSize) {
      continue;
    }
    unsigned signo = info[0] | info[1] << 8 | info[2] << 16 | static_cast<unsigned>(info[3]) << 24;
    if (signo != kSigChld) {
      Syscall(__NR_kill, child, signo);
      continue;
    }
    for (;;) {
      int status = 0;
      long pid =
          Syscall(__NR_wait4, -1, reinterpret_cast<long>(&status), kWaitNoHang | kWaitUntraced, 0);
      if (pid <= 0) break;
      if (pid != child) continue;  // an orphan, reaped
      // Stopped (^Z, SIGTTIN, SIGSTOP): nobody could continue it, so continue it at once, as a
      // pid 1 that ignores job-control signals would.
      if ((status & 0xff) == 0x7f) {
        Syscall(__NR_kill, child, kSigCont);
        continue;
      }
      Exit(ExitCode(status));  // the rest of the namespace dies with pid 1
    }
  }
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
  bool init = argc >= 4 && Equal(argv[0], kExecShimInitName);
  if (argc < 4 || (!init && !Equal(argv[0], kExecShimName))) {
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
  if (init) Init(report, argv, envp);
  ExecCommand(report, argv, envp);
}

// The entry point: the kernel starts here with argc, argv and envp on the stack.
#if defined(__x86_64__)
asm(".text\n.global _start\n_start:\n  xor %ebp, %ebp\n  mov %rsp, %rdi\n  and $-16, %rsp\n"
    "  call ShimMain\n  hlt\n");
#elif defined(__aarch64__)
asm(".text\n.global _start\n_start:\n  mov x29, #0\n  mov x0, sp\n  bl ShimMain\n");
#endif
