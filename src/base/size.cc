#include "base/size.h"

#include <fmt/core.h>

#include <charconv>

namespace barge {

Result<long long> ParseSize(std::string_view text) {
  long long value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || value < 0) {
    return InvalidArgument(
        fmt::format("invalid size '{}': expected a number with an optional "
                    "unit b, k, m or g (like 256m)",
                    text));
  }
  std::string_view unit(ptr, static_cast<size_t>(text.data() + text.size() - ptr));
  long long scale = 1;
  if (unit.empty() || unit == "b" || unit == "B") {
    scale = 1;
  } else if (unit == "k" || unit == "K" || unit == "kb" || unit == "KB" || unit == "KiB") {
    scale = 1LL << 10;
  } else if (unit == "m" || unit == "M" || unit == "mb" || unit == "MB" || unit == "MiB") {
    scale = 1LL << 20;
  } else if (unit == "g" || unit == "G" || unit == "gb" || unit == "GB" || unit == "GiB") {
    scale = 1LL << 30;
  } else {
    return InvalidArgument(
        fmt::format("invalid size '{}': unknown unit '{}' (use b, k, m or g)", text, unit));
  }
  if (value > (1LL << 62) / scale)
    return InvalidArgument(fmt::format("size '{}' is too large", text));
  return value * scale;
}

}  // namespace barge
