// Image references as users type them: NAME[:TAG] or NAME@sha256:HEX. barge has no registry
// default: "busybox" stays "busybox" (not docker.io/library/busybox) and the tag defaults to
// "latest".
#pragma once

#include <string>
#include <string_view>

#include "barge/status.h"

namespace barge::oci {

struct Reference {
  std::string name;    // "example.com:5000/team/app"
  std::string tag;     // "1.0"; empty when `digest` is set
  std::string digest;  // "sha256:..." for NAME@DIGEST

  // "name:tag" (or "name@digest"): the form stored as org.opencontainers.image.ref.name.
  std::string ToString() const { return digest.empty() ? name + ":" + tag : name + "@" + digest; }
};

// Parses and validates a reference; the error names the input and what is wrong with it.
Result<Reference> ParseReference(std::string_view text);

}  // namespace barge::oci
