// Shared by the container's child (process.cc) and the exec shim (exec_shim_main.cc), which is a
// freestanding program: this header includes nothing and declares only plain data.
//
// Why a shim: until its execve, the child is a copy of barge, so /proc/self/exe is barge's binary
// on the host. An image whose command is a script starting "#!/proc/self/exe" would make the
// kernel run that binary as the container's pid 1, and the container could then open the host's
// barge for writing (CVE-2019-5736). So the child does not exec the command itself: it execs the
// shim, a few hundred bytes of machine code in a sealed memfd, and the shim execs the command. By
// then /proc/self/exe is the sealed copy of the shim, which nobody can write, and a "#!" line that
// names it runs the shim again, which refuses.
#pragma once

namespace barge::runtime::detail {

// What the child, or the shim, writes to barge when it fails before the command runs: a
// successful exec of the command closes the pipe instead.
struct ChildReport {
  int err = 0;              // errno, 0 if none applies
  bool exec_stage = false;  // the command could not be executed (127/126 in the CLI)
  char message[1000] = {};  // the attempted action and its object, without strerror
};

// The shim's argv: {kExecShimName, "<report fd>", "<command path>", command argv...}. A "#!"
// interpreter line that names the shim gives a different argv[0], and the shim refuses it.
inline constexpr char kExecShimName[] = "barge-exec-shim";
// The same argv with this name instead (barge run --init): the shim stays as the container's
// pid 1, runs the command as its child, forwards signals to it, reaps every orphan, and exits
// with the command's status (128 + N when signal N killed it).
inline constexpr char kExecShimInitName[] = "barge-init";

}  // namespace barge::runtime::detail
