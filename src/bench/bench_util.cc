#include "bench/bench_util.h"

#include <fmt/core.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "base/file_util.h"
#include "base/subprocess.h"

namespace barge::bench {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2);
}

Result<double> TimeCommand(const std::vector<std::string>& argv) {
  auto start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(CommandOutput out, RunCommand(argv));
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (out.exit_code != 0) {
    std::string err = out.err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    if (err.rfind('\n') != std::string::npos) err = err.substr(err.rfind('\n') + 1);
    return Internal(fmt::format("{} {} failed (exit {}): {}", argv[0],
                                argv.size() > 3 ? argv[3] : "", out.exit_code, err));
  }
  return ms;
}

void UnmountBelow(const std::string& dir) {
  Result<std::string> table = ReadFile("/proc/self/mountinfo");
  if (!table.ok()) return;
  std::vector<std::string> points;
  size_t pos = 0;
  while (pos < table->size()) {
    size_t end = table->find('\n', pos);
    if (end == std::string::npos) end = table->size();
    std::string line = table->substr(pos, end - pos);
    pos = end + 1;
    // Field 5 is the mount point.
    size_t f = 0;
    for (int i = 0; i < 4 && f != std::string::npos; ++i) f = line.find(' ', f + 1);
    if (f == std::string::npos) continue;
    size_t g = line.find(' ', f + 1);
    std::string point = line.substr(f + 1, g == std::string::npos ? std::string::npos : g - f - 1);
    if (point.rfind(dir + "/", 0) == 0) points.push_back(point);
  }
  std::sort(points.begin(), points.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const std::string& p : points) ::umount2(p.c_str(), MNT_DETACH);
}

std::string SelfExe() {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  return n > 0 ? std::string(self, static_cast<size_t>(n)) : "/proc/self/exe";
}

}  // namespace barge::bench
