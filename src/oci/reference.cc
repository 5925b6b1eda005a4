#include "oci/reference.h"

#include <fmt/core.h>

#include <regex>

#include "oci/digest.h"

namespace barge::oci {
namespace {

// The distribution-spec grammar: an optional registry host[:port], then lowercase path
// components separated by '/', each made of [a-z0-9] runs joined by '.', '_', '__' or dashes.
const std::regex& NameRegex() {
  static const std::regex re(
      R"(^(([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*(:[0-9]+)?/)?)"
      R"([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$)");
  return re;
}

const std::regex& TagRegex() {
  static const std::regex re(R"(^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$)");
  return re;
}

}  // namespace

Result<Reference> ParseReference(std::string_view text) {
  Reference ref;
  std::string rest(text);
  if (rest.empty()) return InvalidArgument("invalid image reference '': it is empty");
  // Checked before any regex: std::regex recurses per character and overflows the stack on
  // long input. 255 (name) + 1 + 128 (tag) + 1 + 71 (digest).
  constexpr size_t kMaxReference = 456;
  if (rest.size() > kMaxReference) {
    return InvalidArgument(fmt::format("invalid image reference '{}...': longer than {} characters",
                                       rest.substr(0, 32), kMaxReference));
  }
  if (size_t at = rest.find('@'); at != std::string::npos) {
    ref.digest = rest.substr(at + 1);
    if (Status st = ValidateDigest(ref.digest); !st.ok()) {
      return InvalidArgument(fmt::format("invalid image reference '{}': {}", text, st.message()));
    }
    rest.resize(at);
  }
  // A ':' after the last '/' starts the tag; an earlier one is a registry port.
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    ref.tag = rest.substr(colon + 1);
    rest.resize(colon);
    if (ref.tag.size() > 128 || !std::regex_match(ref.tag, TagRegex())) {
      return InvalidArgument(fmt::format(
          "invalid image reference '{}': bad tag '{}' (use letters, digits, '_', '.', '-')", text,
          ref.tag));
    }
  }
  if (rest.size() > 255 || !std::regex_match(rest, NameRegex())) {
    return InvalidArgument(
        fmt::format("invalid image reference '{}': the name must be lowercase letters, digits and "
                    "separators like 'team/app'",
                    text));
  }
  ref.name = rest;
  if (ref.digest.empty() && ref.tag.empty()) ref.tag = "latest";
  if (!ref.digest.empty()) ref.tag.clear();
  return ref;
}

}  // namespace barge::oci
