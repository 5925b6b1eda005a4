#include "runtime/busybox_rootfs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <sstream>

#include "base/subprocess.h"

namespace barge::runtime {

Result<TempDir> MakeBusyboxRootfs() {
  constexpr const char* kBusybox = "/bin/busybox";
  if (!PathExists(kBusybox)) return NotFound("/bin/busybox is missing: run scripts/setup");
  ASSIGN_OR_RETURN(TempDir dir, TempDir::Make("barge-rootfs-"));
  const std::string& root = dir.path();
  for (const char* sub : {"bin", "etc", "proc", "dev", "sys", "tmp", "root", "home/app"}) {
    RETURN_IF_ERROR(MakeDirs(root + "/" + sub));
  }
  ::chmod((root + "/tmp").c_str(), 01777);
  ASSIGN_OR_RETURN(std::string binary, ReadFile(kBusybox));
  RETURN_IF_ERROR(WriteFile(root + "/bin/busybox", binary, 0755));
  ASSIGN_OR_RETURN(CommandOutput list, RunCommand({kBusybox, "--list"}));
  std::istringstream applets(list.out);
  std::string name;
  while (std::getline(applets, name)) {
    if (name.empty() || name == "busybox") continue;
    if (::symlink("busybox", (root + "/bin/" + name).c_str()) != 0 && errno != EEXIST) {
      return ErrnoError("symlink " + root + "/bin/" + name);
    }
  }
  RETURN_IF_ERROR(WriteFile(root + "/etc/passwd",
                            "root:x:0:0:root:/root:/bin/sh\n"
                            "app:x:1000:1000:app:/home/app:/bin/sh\n"
                            "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"));
  RETURN_IF_ERROR(WriteFile(root + "/etc/group",
                            "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n"));
  return dir;
}

}  // namespace barge::runtime
