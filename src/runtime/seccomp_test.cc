#include "runtime/seccomp.h"

#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <gtest/gtest.h>

#include "runtime/seccomp_profile.h"

namespace barge::runtime {
namespace {

// Loads the default filter in a child and reports what a few calls return there.
int InChildWithFilter(long (*probe)()) {
  auto program = DefaultSeccompProgram();
  EXPECT_TRUE(program.ok()) << program.status().message();
  if (!program.ok()) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    detail::ChildFailure failure;
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        !detail::LoadSeccomp(**program, &failure)) {
      ::_exit(100);
    }
    ::_exit(static_cast<int>(probe()));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(SeccompTest, DeniedCallsFailWithEperm) {
  // keyctl and add_key need no capability, so only the filter can refuse them (as root, too).
  EXPECT_EQ(InChildWithFilter([]() -> long {
              long rc = ::syscall(SYS_add_key, "user", "barge-test", "x", 1, -2 /* session */);
              return rc == -1 && errno == EPERM ? 0 : 1;
            }),
            0);
  EXPECT_EQ(InChildWithFilter([]() -> long {
              long rc = ::syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3, 0);
              return rc == -1 && errno == EPERM ? 0 : 1;
            }),
            0);
  // unshare would succeed for root without the filter.
  EXPECT_EQ(InChildWithFilter([]() -> long {
              long rc = ::syscall(SYS_unshare, 0x04000000 /* CLONE_NEWUTS */);
              return rc == -1 && errno == EPERM ? 0 : 1;
            }),
            0);
}

TEST(SeccompTest, WhatIsNotAllowedIsRefusedAndWhatIsNewerIsUnknown) {
  // getpmsg is a system call number the kernel leaves unimplemented (ENOSYS): it is not on the
  // allow-list, so the filter refuses it first. A deny-list would let it through.
  EXPECT_EQ(InChildWithFilter([]() -> long {
              long rc = ::syscall(SYS_getpmsg, 0, 0, 0, 0, 0);
              return rc == -1 && errno == EPERM ? 0 : 1;
            }),
            0);
  // A call newer than every call the filter knows reports ENOSYS, so libc falls back.
  EXPECT_EQ(InChildWithFilter([]() -> long {
              long rc = ::syscall(1000);
              return rc == -1 && errno == ENOSYS ? 0 : 1;
            }),
            0);
  // personality may query and set the plain Linux personas, not turn off randomization.
  EXPECT_EQ(InChildWithFilter([]() -> long {
              long query = ::syscall(SYS_personality, 0xffffffffUL);
              long aslr_off = ::syscall(SYS_personality, 0x0040000UL /* ADDR_NO_RANDOMIZE */);
              return query >= 0 && aslr_off == -1 && errno == EPERM ? 0 : 1;
            }),
            0);
  // Sockets of any family but vsock, which no network namespace separates.
  EXPECT_EQ(InChildWithFilter([]() -> long {
              long vsock = ::syscall(SYS_socket, 40 /* AF_VSOCK */, SOCK_STREAM, 0);
              int vsock_errno = errno;
              long unix_socket = ::syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
              return vsock == -1 && vsock_errno == EPERM && unix_socket >= 0 ? 0 : 1;
            }),
            0);
  // Allowed, as in Docker on Linux >= 4.8: ptrace of one's own children (strace, gdb).
  EXPECT_EQ(InChildWithFilter([]() -> long {
              pid_t pid = ::fork();
              if (pid == 0)
                ::_exit(::syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0) == 0 ? 5 : 6);
              int status = 0;
              ::waitpid(pid, &status, 0);
              return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
            }),
            5);
}

TEST(SeccompTest, KernelLogAndIoUringAreRefused) {
  // syslog needs CAP_SYSLOG only while kernel.dmesg_restrict is 1; Docker refuses it outright.
  EXPECT_EQ(InChildWithFilter([]() -> long {
              long rc = ::syscall(SYS_syslog, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, nullptr, 0);
              return rc == -1 && errno == EPERM ? 0 : 1;
            }),
            0);
  // io_uring performs its operations outside the filter's sight (Docker refuses it since 25.0).
  EXPECT_EQ(InChildWithFilter([]() -> long {
              char params[120] = {};  // struct io_uring_params
              long rc = ::syscall(SYS_io_uring_setup, 1, params);
              return rc == -1 && errno == EPERM ? 0 : 1;
            }),
            0);
}

TEST(SeccompTest, CloneMayNotCreateAUserNamespace) {
  EXPECT_EQ(InChildWithFilter([]() -> long {
              long rc = ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, 0);
              if (rc == 0) ::_exit(0);  // the filter let it through: this is the new child
              return rc == -1 && errno == EPERM ? 0 : 1;
            }),
            0);
  EXPECT_EQ(InChildWithFilter([]() -> long {
              long rc = ::syscall(SYS_clone3, nullptr, 0);
              return rc == -1 && errno == ENOSYS ? 0 : 1;
            }),
            0);
  // fork (clone without namespace flags) still works.
  EXPECT_EQ(InChildWithFilter([]() -> long {
              pid_t pid = ::fork();
              if (pid == 0) ::_exit(9);
              int status = 0;
              ::waitpid(pid, &status, 0);
              return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
            }),
            9);
}

TEST(SeccompTest, TheEmbeddedFilterIsTheProfileCompiledNow) {
  auto embedded = DefaultSeccompProgram();
  ASSERT_TRUE(embedded.ok()) << embedded.status().message();
  auto compiled = CompileDefaultProfile();
  ASSERT_TRUE(compiled.ok()) << compiled.status().message();
  ASSERT_EQ((*embedded)->instructions.size(), compiled->size());
  EXPECT_EQ(memcmp((*embedded)->instructions.data(), compiled->data(),
                   compiled->size() * sizeof(sock_filter)),
            0);
}

TEST(SeccompTest, OrdinaryCallsStillWork) {
  EXPECT_EQ(InChildWithFilter(
                []() -> long { return ::getpid() > 0 && ::getuid() == ::getuid() ? 7 : 1; }),
            7);
}

// The result of running `program` (classic BPF, as seccomp runs it) on `data`. Enough of an
// interpreter for any filter: loads of the data, the scratch memory and the registers, the ALU,
// jumps and returns. An instruction it does not know fails the test.
uint32_t RunFilter(const std::vector<sock_filter>& program, const seccomp_data& data) {
  uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {};
  auto word = [&](uint32_t offset) {
    uint32_t w = 0;
    if (offset % 4 == 0 && offset + 4 <= sizeof data)
      std::memcpy(&w, reinterpret_cast<const char*>(&data) + offset, 4);
    else
      ADD_FAILURE() << "load at offset " << offset;
    return w;
  };
  for (size_t pc = 0; pc < program.size(); ++pc) {
    const sock_filter& in = program[pc];
    uint32_t src = BPF_SRC(in.code) == BPF_X ? x : in.k;
    switch (BPF_CLASS(in.code)) {
      case BPF_LD:
        a = BPF_MODE(in.code) == BPF_ABS   ? word(in.k)
            : BPF_MODE(in.code) == BPF_IMM ? in.k
            : BPF_MODE(in.code) == BPF_MEM ? mem[in.k % BPF_MEMWORDS]
                                           : static_cast<uint32_t>(sizeof data);
        break;
      case BPF_LDX:
        x = BPF_MODE(in.code) == BPF_IMM   ? in.k
            : BPF_MODE(in.code) == BPF_MEM ? mem[in.k % BPF_MEMWORDS]
                                           : static_cast<uint32_t>(sizeof data);
        break;
      case BPF_ST:
        mem[in.k % BPF_MEMWORDS] = a;
        break;
      case BPF_STX:
        mem[in.k % BPF_MEMWORDS] = x;
        break;
      case BPF_ALU:
        switch (BPF_OP(in.code)) {
          case BPF_ADD:
            a += src;
            break;
          case BPF_SUB:
            a -= src;
            break;
          case BPF_MUL:
            a *= src;
            break;
          case BPF_DIV:
            a = src == 0 ? 0 : a / src;
            break;
          case BPF_MOD:
            a = src == 0 ? 0 : a % src;
            break;
          case BPF_OR:
            a |= src;
            break;
          case BPF_AND:
            a &= src;
            break;
          case BPF_XOR:
            a ^= src;
            break;
          case BPF_LSH:
            a <<= (src & 31);
            break;
          case BPF_RSH:
            a >>= (src & 31);
            break;
          case BPF_NEG:
            a = -a;
            break;
          default:
            ADD_FAILURE() << "alu op " << in.code;
            return 0;
        }
        break;
      case BPF_JMP: {
        if (BPF_OP(in.code) == BPF_JA) {
          pc += in.k;
          break;
        }
        bool taken = BPF_OP(in.code) == BPF_JEQ   ? a == src
                     : BPF_OP(in.code) == BPF_JGT ? a > src
                     : BPF_OP(in.code) == BPF_JGE ? a >= src
                                                  : (a & src) != 0;  // BPF_JSET
        pc += taken ? in.jt : in.jf;
        break;
      }
      case BPF_RET:
        return BPF_RVAL(in.code) == BPF_A ? a : in.k;
      case BPF_MISC:
        if (BPF_MISCOP(in.code) == BPF_TAX) {
          x = a;
        } else {
          a = x;
        }
        break;
    }
  }
  ADD_FAILURE() << "the filter ran off its end";
  return 0;
}

seccomp_data Call(uint32_t arch, int nr) {
  seccomp_data d{};
  d.arch = arch;
  d.nr = nr;
  return d;
}

TEST(SeccompTest, TheFilterKillsCallsOfEveryForeignAbi) {
  // Checked on the filter itself, so on any kernel: one without IA32 emulation never lets an
  // int 0x80 reach seccomp, but the filter must refuse it wherever the kernel does.
  auto program = DefaultSeccompProgram();
  ASSERT_TRUE(program.ok()) << program.status().message();
  const std::vector<sock_filter>& bpf = (*program)->instructions;
  const uint32_t native = seccomp_arch_native();
  EXPECT_EQ(RunFilter(bpf, Call(native, SYS_getpid)), SECCOMP_RET_ALLOW);
  EXPECT_EQ(RunFilter(bpf, Call(native, SYS_keyctl)), SECCOMP_RET_ERRNO | EPERM);
  EXPECT_EQ(RunFilter(bpf, Call(native, 1000)), SECCOMP_RET_ERRNO | ENOSYS);
  for (uint32_t arch : std::initializer_list<uint32_t>{
           AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64, AUDIT_ARCH_ARM,
           AUDIT_ARCH_PPC64LE, AUDIT_ARCH_S390X, AUDIT_ARCH_RISCV64}) {
    if (arch == native) continue;
    for (int nr : {0, 20, SYS_getpid, SYS_keyctl, 1000}) {
      EXPECT_EQ(RunFilter(bpf, Call(arch, nr)), SECCOMP_RET_KILL_PROCESS)
          << "arch " << std::hex << arch << std::dec << " call " << nr;
    }
  }
#if defined(__x86_64__)
  // x32 calls come with the x86_64 arch and bit 30 set in their number.
  for (int nr : {SYS_getpid, SYS_keyctl, 1000}) {
    EXPECT_EQ(RunFilter(bpf, Call(AUDIT_ARCH_X86_64, 0x40000000 | nr)), SECCOMP_RET_KILL_PROCESS)
        << "x32 call " << nr;
  }
#endif
}

#if defined(__x86_64__)
// i386 getpid by int 0x80, in a child without any filter: whether the kernel runs i386 system
// calls at all (CONFIG_IA32_EMULATION, and not turned off by ia32_emulation=0 on the command
// line). Without it the instruction faults (SIGSEGV) before seccomp could see it.
bool KernelRunsI386Calls() {
  pid_t pid = ::fork();
  if (pid == 0) {
    long rc;
    asm volatile("int $0x80" : "=a"(rc) : "a"(20 /* i386 getpid */) : "memory");
    ::_exit(rc == ::getpid() ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
#endif

TEST(SeccompTest, ForeignAbiCallsKillTheProcess) {
#if !defined(__x86_64__)
  GTEST_SKIP() << "the i386 ABI (int 0x80) exists on x86_64 only";
#else
  if (!KernelRunsI386Calls()) {
    GTEST_SKIP() << "this kernel runs no i386 system calls (no IA32 emulation: "
                    "CONFIG_IA32_EMULATION off or ia32_emulation=0), so int 0x80 faults before "
                    "seccomp sees it; TheFilterKillsCallsOfEveryForeignAbi checks the filter";
  }
  // int 0x80 is the i386 ABI, which a filter written for x86_64 system call numbers would misread.
  int result = InChildWithFilter([]() -> long {
    long rc;
    asm volatile("int $0x80" : "=a"(rc) : "a"(20 /* i386 getpid */) : "memory");
    return 0;
  });
  EXPECT_EQ(result, 128 + SIGSYS);
#endif
}

}  // namespace
}  // namespace barge::runtime
