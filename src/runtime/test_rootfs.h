// For tests: a minimal root file system made from Debian's static busybox (/bin/busybox), in a
// temporary directory, usable as a container's only lower layer.
#pragma once

#include <string>

#include "barge/status.h"
#include "base/file_util.h"

namespace barge::runtime::testing {

// bin/busybox plus a link per applet, /etc/passwd (root, nobody, user 1000 "app"), /etc/group,
// and empty /proc, /dev, /sys, /tmp.
Result<TempDir> MakeBusyboxRootfs();

}  // namespace barge::runtime::testing
