// A shm stage for barge's tests, its behaviour chosen by $FAULT:
//   pass         every batch back as it came
//   crash_once   after $AFTER batches, exits 3 (only the first time: a marker file in the stage
//                directory survives the restart)
//   crash        after $AFTER batches, prints to stderr and exits 3, every time
//   garbage      answers the first batch with a message of an unknown kind
//   oom          after $AFTER batches, allocates memory until the memory limit kills it
//   even         keeps the rows whose first column is even, saying where they came from (__row)
//   evil         answers the first batch with a malformed message, chosen by $EVIL: padzero (a
//                PAD of 0 bytes), padhuge (a PAD past the ring's end), nameovf (a column name
//                whose offset + size wraps around), rowsovf (2^61 rows), columnsovf (more column
//                descriptors than the ring holds), offsets (values past the message's end),
//                tailjump (a tail far ahead of what was written)
//   state        passes batches, keeping state the way docs/checkpoints.md says a stage should:
//                the count and sum of the first column (BIGINT) it saw, saved at each BARRIER to
//                $STATE_DIR/replica-R/chk-ID and loaded at start from chk-$BARGE_STAGE_CHECKPOINT;
//                at END it writes "count sum" to $STATE_DIR/replica-R/final.
// $SLOW_US: a pause per batch, in microseconds (barge's side of the ring fills up).
// With $MAX_ROWS, a batch of more rows exits 5, and so does the end of a stream without a batch of
// exactly that many rows (checks the spec's batch:).
#include <barge_stage.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

void Pass(barge_stage* s, const barge_msg* in) {
  barge_msg* out = barge_stage_reserve(s, in->bytes, -1);
  std::memcpy(out, in, in->bytes);
  barge_stage_reply(s, in, out);
}

// Replies with the rows of `in` whose first column (BIGINT) is even, and a __row column.
void Even(barge_stage* s, const barge_msg* in) {
  const barge_column* first = barge_msg_column(in, 0);
  const auto* v = static_cast<const int64_t*>(barge_msg_at(in, first->values_offset));
  std::vector<uint32_t> keep;
  for (uint64_t r = 0; r < in->rows; ++r) {
    if (v[r] % 2 == 0) keep.push_back(static_cast<uint32_t>(r));
  }
  // Every input column (fixed width only, as the test sends) plus __row.
  std::vector<uint32_t> types, name_bytes;
  std::vector<const char*> names;
  std::vector<uint64_t> data(in->columns + 1, 0);
  for (uint32_t c = 0; c < in->columns; ++c) {
    const barge_column* col = barge_msg_column(in, c);
    types.push_back(col->type);
    names.push_back(static_cast<const char*>(barge_msg_at(in, col->name_offset)));
    name_bytes.push_back(col->name_bytes);
  }
  types.push_back(BARGE_TYPE_ROW);
  names.push_back("__row");
  name_bytes.push_back(5);
  uint32_t columns = in->columns + 1;
  uint64_t bytes =
      barge_batch_size(keep.size(), columns, types.data(), name_bytes.data(), data.data(), 0);
  barge_msg* out = barge_stage_reserve(s, bytes, -1);
  barge_batch_layout(out, bytes, in->seq, keep.size(), columns, types.data(), names.data(),
                     name_bytes.data(), data.data(), 0);
  for (uint32_t c = 0; c < in->columns; ++c) {
    const barge_column* src = barge_msg_column(in, c);
    const barge_column* dst = barge_msg_column(out, c);
    size_t w = barge_type_width(src->type);
    const char* from = static_cast<const char*>(barge_msg_at(in, src->values_offset));
    char* to = static_cast<char*>(barge_msg_at(out, dst->values_offset));
    for (size_t k = 0; k < keep.size(); ++k) std::memcpy(to + k * w, from + keep[k] * w, w);
  }
  std::memcpy(barge_msg_at(out, barge_msg_column(out, in->columns)->values_offset), keep.data(),
              keep.size() * 4);
  barge_stage_reply(s, in, out);
}

// Publishes `bytes` more of the out ring as written, whatever they hold.
void RawPublish(barge_stage* s, uint64_t bytes) {
  BARGE_STORE_REL(&s->out.h->tail, BARGE_LOAD_RLX(&s->out.h->tail) + bytes);
  barge_ring_bell(&s->out.h->consumer_sleeping, &s->out.h->data_seq);
}

// The malformed replies of FAULT=evil; then waits to be killed.
[[noreturn]] void Evil(barge_stage* s, const barge_msg* in, const std::string& how) {
  barge_msg* out = barge_stage_reserve(s, in->bytes, -1);
  std::memcpy(out, in, in->bytes);
  barge_column* c0 = barge_msg_column(out, 0);
  uint64_t publish = out->bytes;
  if (how == "padzero" || how == "padhuge") {
    std::memset(out, 0, BARGE_ALIGN);
    out->kind = BARGE_MSG_PAD;
    out->flags = BARGE_FLAG_LAST;
    out->bytes = how == "padzero" ? 0 : s->out.h->capacity - 8;
    publish = BARGE_ALIGN;
  } else if (how == "nameovf") {
    c0->name_offset = ~uint64_t{0} - 15;
    c0->name_bytes = 64;
  } else if (how == "rowsovf") {
    out->rows = uint64_t{1} << 61;
  } else if (how == "columnsovf") {
    out->columns = 4000;
  } else if (how == "offsets") {
    c0->values_offset = out->bytes - 8;
  } else if (how == "tailjump") {
    publish = s->out.h->capacity * 4;
  }
  RawPublish(s, publish);
  for (;;) pause();
}

// FAULT=state: what the stage has seen, kept as docs/checkpoints.md describes.
struct Kept {
  std::string dir;
  int64_t count = 0;
  int64_t sum = 0;

  bool Load(const std::string& checkpoint) {
    if (checkpoint == "0") return true;
    std::FILE* f = std::fopen((dir + "/chk-" + checkpoint).c_str(), "r");
    if (f == nullptr) return false;
    bool ok = std::fscanf(f, "%" SCNd64 " %" SCNd64, &count, &sum) == 2;
    std::fclose(f);
    return ok;
  }
  // Durably: written under a temporary name, fsynced, renamed into place.
  void Save(const std::string& name) const {
    std::string tmp = dir + "/." + name + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) std::_Exit(7);
    char text[64];
    int n = std::snprintf(text, sizeof text, "%" PRId64 " %" PRId64 "\n", count, sum);
    if (::write(fd, text, static_cast<size_t>(n)) != n || ::fsync(fd) != 0) std::_Exit(7);
    ::close(fd);
    if (std::rename(tmp.c_str(), (dir + "/" + name).c_str()) != 0) std::_Exit(7);
  }
  void Add(const barge_msg* in) {
    const barge_column* first = barge_msg_column(in, 0);
    const auto* v = static_cast<const int64_t*>(barge_msg_at(in, first->values_offset));
    count += static_cast<int64_t>(in->rows);
    for (uint64_t r = 0; r < in->rows; ++r) sum += v[r];
  }
};

}  // namespace

int main() {
  const char* fault_env = std::getenv("FAULT");
  std::string fault = fault_env != nullptr ? fault_env : "pass";
  long after = std::getenv("AFTER") != nullptr ? std::atol(std::getenv("AFTER")) : 0;
  std::string marker = std::string(std::getenv("BARGE_STAGE_DIR")) + "/crashed";
  if (fault == "crash_once") {
    if (std::FILE* f = std::fopen(marker.c_str(), "r")) {
      std::fclose(f);
      fault = "pass";  // restarted: behave
    }
  }
  Kept kept;
  const long slow_us = std::getenv("SLOW_US") != nullptr ? std::atol(std::getenv("SLOW_US")) : 0;
  if (fault == "state") {
    kept.dir =
        std::string(std::getenv("STATE_DIR")) + "/replica-" + std::getenv("BARGE_STAGE_REPLICA");
    ::mkdir(kept.dir.c_str(), 0755);
    if (!kept.Load(std::getenv("BARGE_STAGE_CHECKPOINT"))) {
      std::fprintf(stderr, "no saved state for checkpoint %s\n",
                   std::getenv("BARGE_STAGE_CHECKPOINT"));
      return 6;
    }
  }
  barge_stage s;
  if (barge_stage_open(&s, nullptr) != 0) return 1;
  long batches = 0;
  const long max_rows = std::getenv("MAX_ROWS") != nullptr ? std::atol(std::getenv("MAX_ROWS")) : 0;
  bool full = false;
  for (;;) {
    const barge_msg* in = barge_stage_next(&s, -1);
    if (max_rows > 0 && in->kind == BARGE_MSG_BATCH) {
      if (static_cast<long>(in->rows) > max_rows) {
        std::fprintf(stderr, "a batch of %llu rows\n", static_cast<unsigned long long>(in->rows));
        return 5;
      }
      full = full || static_cast<long>(in->rows) == max_rows;
    }
    if (max_rows > 0 && in->kind == BARGE_MSG_END && !full) {
      std::fprintf(stderr, "no batch of %ld rows\n", max_rows);
      return 5;
    }
    if (in->kind != BARGE_MSG_BATCH) {
      const bool end = in->kind == BARGE_MSG_END;
      if (fault == "state" && in->kind == BARGE_MSG_BARRIER) {
        kept.Save("chk-" + std::to_string(in->value));  // before the echo
      }
      if (fault == "state" && end) kept.Save("final");
      barge_stage_echo(&s, in, -1);
      if (end) break;
      continue;
    }
    if (batches++ >= after) {
      if (fault == "crash_once") {
        std::fclose(std::fopen(marker.c_str(), "w"));
        std::_Exit(3);
      }
      if (fault == "crash") {
        std::fprintf(stderr, "faulty stage: giving up on batch %ld\n", batches);
        std::fflush(stderr);
        std::_Exit(3);
      }
      if (fault == "garbage") {
        barge_msg* out = barge_stage_reserve(&s, BARGE_ALIGN, -1);
        std::memset(out, 0, BARGE_ALIGN);
        out->kind = 77;
        out->bytes = BARGE_ALIGN;
        out->seq = in->seq;
        out->flags = BARGE_FLAG_LAST;
        barge_ring_publish(&s.out, out);
        for (;;) pause();
      }
      if (fault == "evil") Evil(&s, in, std::getenv("EVIL") != nullptr ? std::getenv("EVIL") : "");
      if (fault == "oom") {
        std::vector<char*> blocks;
        for (;;) {
          char* b = static_cast<char*>(std::malloc(1 << 20));
          std::memset(b, 1, 1 << 20);
          blocks.push_back(b);
        }
      }
    }
    if (fault == "state") kept.Add(in);
    if (slow_us > 0) ::usleep(static_cast<useconds_t>(slow_us));
    if (fault == "even") {
      Even(&s, in);
    } else {
      Pass(&s, in);
    }
  }
  barge_stage_close(&s);
  return 0;
}
