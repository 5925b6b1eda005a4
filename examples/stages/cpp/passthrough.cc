// The smallest shm stage: every batch back as it came (the stage-shm benchmark's stage).
#include <barge_stage.h>

#include <cstring>

int main() {
  barge_stage s;
  if (barge_stage_open(&s, nullptr) != 0) return 1;
  for (;;) {
    const barge_msg* in = barge_stage_next(&s, -1);
    if (in->kind != BARGE_MSG_BATCH) {
      const bool end = in->kind == BARGE_MSG_END;
      barge_stage_echo(&s, in, -1);
      if (end) break;
      continue;
    }
    barge_msg* out = barge_stage_reserve(&s, in->bytes, -1);
    std::memcpy(out, in, in->bytes);
    barge_stage_reply(&s, in, out);
  }
  barge_stage_close(&s);
  return 0;
}
