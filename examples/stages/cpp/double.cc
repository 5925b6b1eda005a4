// A container stage in C++ with barge's SDK (sdk/c/barge_stage.h): doubles every DOUBLE column of
// each batch, in the reply written straight into the output ring (other columns, event time
// among them, pass as they are). Built static, so the image needs nothing else: see
// examples/stages/cpp/Containerfile.
//
//   barge pipeline run examples/stages/cpp/double.yaml
#include <barge_stage.h>

#include <cstdio>
#include <cstring>

int main() {
  barge_stage s;
  if (int rc = barge_stage_open(&s, nullptr); rc != 0) {
    std::fprintf(stderr, "double: cannot open the stage's rings: %s\n", std::strerror(-rc));
    return 1;
  }
  for (;;) {
    const barge_msg* in = barge_stage_next(&s, -1);
    if (in->kind != BARGE_MSG_BATCH) {
      const bool end = in->kind == BARGE_MSG_END;
      barge_stage_echo(&s, in, -1);
      if (end) break;
      continue;
    }
    // Same layout, same size: copy the batch, then double the numbers in place.
    barge_msg* out = barge_stage_reserve(&s, in->bytes, -1);
    std::memcpy(out, in, in->bytes);
    for (uint32_t c = 0; c < out->columns; ++c) {
      const barge_column* col = barge_msg_column(out, c);
      if (col->type == BARGE_TYPE_DOUBLE) {
        auto* v = static_cast<double*>(barge_msg_at(out, col->values_offset));
        for (uint64_t r = 0; r < out->rows; ++r) v[r] *= 2;
      }
    }
    barge_stage_reply(&s, in, out);
  }
  barge_stage_close(&s);
  return 0;
}
