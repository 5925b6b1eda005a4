// Lexical helpers for '/'-separated paths inside images, archives and build contexts.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace barge::oci::detail {

// Calls bool fn(std::string_view component) for each component of `path`, skipping empty and
// '.' components ('..' is passed on). Stops early, returning false, when fn returns false.
template <class Fn>
bool ForEachComponent(std::string_view path, Fn&& fn) {
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view c = path.substr(start, end - start);
    if (!c.empty() && c != "." && !fn(c)) return false;
    start = end + 1;
  }
  return true;
}

// The first `n` components joined with '/'.
inline std::string JoinPath(const std::vector<std::string>& comps, size_t n = std::string::npos) {
  std::string out;
  for (size_t i = 0; i < std::min(n, comps.size()); ++i) {
    if (i > 0) out += '/';
    out += comps[i];
  }
  return out;
}

}  // namespace barge::oci::detail
