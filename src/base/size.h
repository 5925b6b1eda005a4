// Sizes as users write them: 512, 64k, 256m, 1g (binary units).
#pragma once

#include <string_view>

#include "barge/status.h"

namespace barge {

// Bytes of `text`: a number with an optional unit b, k, m or g (also kb, KiB, ...; 1k = 1024).
// Errors name the text.
Result<long long> ParseSize(std::string_view text);

}  // namespace barge
