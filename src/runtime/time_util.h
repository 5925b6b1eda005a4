// Timestamps as stored in state files and shown to users.
#pragma once

#include <cstdint>
#include <string>

namespace barge::runtime {

// Now, as RFC 3339 UTC with nanoseconds ("2026-11-28T12:00:00.123456789Z").
std::string NowRfc3339();

// "Up 5 seconds", "3 minutes ago" style durations from an RFC 3339 time to now.
std::string HumanSince(const std::string& rfc3339);

}  // namespace barge::runtime
