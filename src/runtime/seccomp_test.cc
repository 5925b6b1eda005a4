#include "runtime/seccomp.h"

#include <sched.h>
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

TEST(SeccompTest, ForeignAbiCallsKillTheProcess) {
  // int 0x80 is the i386 ABI, which a filter written for x86_64 system call numbers would misread.
  int result = InChildWithFilter([]() -> long {
    long rc;
    asm volatile("int $0x80" : "=a"(rc) : "a"(20 /* i386 getpid */) : "memory");
    return 0;
  });
  EXPECT_EQ(result, 128 + SIGSYS);
}

}  // namespace
}  // namespace barge::runtime
