// A minimal root file system made from Debian's static busybox (/bin/busybox, installed by
// scripts/setup), for tests and benchmarks that need a container image without an image store; in a
// temporary directory, usable as a container's only lower layer.
#pragma once

#include <string>

#include "barge/status.h"
#include "base/file_util.h"

namespace barge::runtime {

// bin/busybox plus a link per applet, /etc/passwd (root, nobody, user 1000 "app"), /etc/group,
// and empty /proc, /dev, /sys, /tmp.
Result<TempDir> MakeBusyboxRootfs();

}  // namespace barge::runtime
