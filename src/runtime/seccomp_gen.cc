// Build tool: compiles barge's default seccomp profile (seccomp_profile.cc) for this machine's
// architecture and writes the BPF program to the file named by its argument, for barge to embed.
#include <fcntl.h>

#include <cstdio>
#include <string_view>

#include "base/file_util.h"
#include "runtime/seccomp_profile.h"

int main(int argc, char** argv) {
  using namespace barge;
  if (argc != 2) {
    std::fprintf(stderr, "usage: barge_seccomp_gen OUTPUT\n");
    return 2;
  }
  Result<std::vector<sock_filter>> program = runtime::CompileDefaultProfile();
  Status written =
      program.ok()
          ? WriteFile(argv[1], std::string_view(reinterpret_cast<const char*>(program->data()),
                                                program->size() * sizeof(sock_filter)))
          : program.status();
  if (!written.ok()) {
    std::fprintf(stderr, "barge_seccomp_gen: %s\n", written.message().c_str());
    return 1;
  }
  return 0;
}
