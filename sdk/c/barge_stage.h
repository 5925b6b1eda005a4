/* barge_stage.h: the shared-memory protocol between barge and a container stage, and a small
 * header-only library for writing stages in C or C++. barge itself includes this header for the
 * layout, so the two cannot drift. docs/stage-protocol.md explains it for writers of clients in
 * other languages.
 *
 * A stage replica finds two files in the directory named by $BARGE_STAGE_DIR (barge mounts it at
 * /run/barge/stage): `in` (barge writes, the stage reads) and `out` (the stage writes, barge
 * reads). Each is a ring: a 4096-byte header, then `capacity` bytes (a power of two) of messages.
 *
 *   barge_stage s;
 *   if (barge_stage_open(&s, NULL) != 0) return 1;
 *   for (;;) {
 *     const barge_msg* m = barge_stage_next(&s, -1);          // waits
 *     if (m->kind == BARGE_MSG_BATCH) {
 *       barge_msg* r = barge_stage_reserve(&s, barge_msg_bytes(m), -1);
 *       ... fill r (see barge_batch_* below), then:
 *       barge_stage_reply(&s, m, r);                          // answers m, frees it
 *     } else {
 *       int end = m->kind == BARGE_MSG_END;
 *       barge_stage_echo(&s, m, -1);                          // control messages go back
 *       if (end) break;
 *     }
 *   }
 *   barge_stage_close(&s);
 *
 * Contract (what barge relies on):
 * - Messages are answered in order. Every BATCH gets exactly one reply: a BATCH message whose `seq`
 *   is the input's (possibly several parts: all but the last without BARGE_FLAG_LAST); every
 *   WATERMARK, BARRIER and END is echoed as it came, after the replies of everything before it.
 * - A reply has any number of rows. When its row count differs from the input's it must carry a
 *   column of type BARGE_TYPE_ROW, named "__row": for each output row, the input row it came from
 *   (barge takes event time and origin from there); otherwise rows correspond one to one.
 * - After echoing END the stage exits 0. A stage that dies is restarted (when the spec allows it)
 *   and sees again every message it had not answered; its partial replies are discarded.
 *
 * Memory ordering: indices are published with release stores and read with acquire loads; a side
 * that sleeps announces it in its `*_sleeping` word and waits on a futex word the other side bumps
 * (FUTEX_WAIT on shared memory, not process-private). Linux only.
 */
#ifndef BARGE_STAGE_H_
#define BARGE_STAGE_H_

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifdef __cplusplus
#include <atomic>
#define BARGE_ATOMIC(T) std::atomic<T>
#define BARGE_LOAD_ACQ(p) (p)->load(std::memory_order_acquire)
#define BARGE_LOAD_RLX(p) (p)->load(std::memory_order_relaxed)
#define BARGE_STORE_REL(p, v) (p)->store((v), std::memory_order_release)
#define BARGE_STORE_RLX(p, v) (p)->store((v), std::memory_order_relaxed)
#define BARGE_FETCH_ADD(p, v) (p)->fetch_add((v), std::memory_order_acq_rel)
#define BARGE_FENCE() std::atomic_thread_fence(std::memory_order_seq_cst)
extern "C" {
#else
#include <stdatomic.h>
#define BARGE_ATOMIC(T) _Atomic T
#define BARGE_LOAD_ACQ(p) atomic_load_explicit((p), memory_order_acquire)
#define BARGE_LOAD_RLX(p) atomic_load_explicit((p), memory_order_relaxed)
#define BARGE_STORE_REL(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define BARGE_STORE_RLX(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define BARGE_FETCH_ADD(p, v) atomic_fetch_add_explicit((p), (v), memory_order_acq_rel)
#define BARGE_FENCE() atomic_thread_fence(memory_order_seq_cst)
#endif

/* ---- The layout (version 1). All integers little-endian, as the machine's. */

#define BARGE_RING_MAGIC "BARGERNG"
#define BARGE_RING_VERSION 1u
#define BARGE_RING_HEADER_BYTES 4096u
#define BARGE_ALIGN 64u /* messages and every buffer in them start at multiples of 64 */

/* The ring header: the first 4096 bytes of a ring file. */
typedef struct barge_ring_header {
  char magic[8];         /* "BARGERNG" */
  uint32_t version;      /* BARGE_RING_VERSION */
  uint32_t header_bytes; /* BARGE_RING_HEADER_BYTES: messages start here */
  uint64_t capacity;     /* bytes of the message area, a power of two */
  uint8_t pad0[40];
  /* Cache line 1, written by the producer. */
  BARGE_ATOMIC(uint64_t) tail;              /* bytes published, counting from 0 forever */
  BARGE_ATOMIC(uint32_t) producer_sleeping; /* 1 while the producer waits for space */
  BARGE_ATOMIC(uint32_t) space_seq;         /* futex word: bumped when space was freed */
  BARGE_ATOMIC(uint32_t) closed;            /* 1: the producer will publish nothing more */
  uint8_t pad1[44];
  /* Cache line 2, written by the consumer. */
  BARGE_ATOMIC(uint64_t) head;              /* bytes consumed */
  BARGE_ATOMIC(uint32_t) consumer_sleeping; /* 1 while the consumer waits for data */
  BARGE_ATOMIC(uint32_t) data_seq;          /* futex word: bumped when data was published */
  uint8_t pad2[48];
  /* Cache line 3: space below `ack` may be reused. In `in` barge advances it once a message's
   * reply is complete (so a restarted stage can read again what was not answered); in `out`
   * barge advances it as it consumes. */
  BARGE_ATOMIC(uint64_t) ack;
  uint8_t pad3[56];
} barge_ring_header;

/* Message kinds. */
enum {
  BARGE_MSG_BATCH = 1,     /* rows, in columns */
  BARGE_MSG_WATERMARK = 2, /* event time has reached `value` (ms): no older record will come */
  BARGE_MSG_BARRIER = 3,   /* checkpoint barrier `value` */
  BARGE_MSG_END = 4,       /* end of stream: echo it, then exit 0 */
  BARGE_MSG_PAD = 5        /* filler to the end of the ring: skip to offset 0 */
};
/* The last part of a reply (set on every message but partial replies). */
#define BARGE_FLAG_LAST 1u

/* Every message starts with this 64-byte header. */
typedef struct barge_msg {
  uint32_t kind;
  uint32_t flags;
  uint64_t bytes;   /* of the whole message, header included; a multiple of 64 */
  uint64_t seq;     /* barge numbers its messages 1, 2, ...; replies and echoes carry the input's */
  int64_t value;    /* WATERMARK: milliseconds; BARRIER: checkpoint id */
  uint64_t rows;    /* BATCH: rows */
  uint32_t columns; /* BATCH: columns (descriptors follow this header) */
  uint32_t reserved0;
  uint64_t reserved1[2];
} barge_msg;

/* Column types. */
enum {
  BARGE_TYPE_BIGINT = 1,    /* int64 values */
  BARGE_TYPE_DOUBLE = 2,    /* IEEE double values */
  BARGE_TYPE_BOOLEAN = 3,   /* one byte per value, 0 or 1 */
  BARGE_TYPE_VARCHAR = 4,   /* rows + 1 uint32 offsets into UTF-8 bytes */
  BARGE_TYPE_TIMESTAMP = 5, /* int64 milliseconds since the epoch, UTC */
  BARGE_TYPE_ROW = 6        /* uint32: the input row an output row came from ("__row") */
};

/* A BATCH message: the header, `columns` descriptors, then names and buffers. Offsets count from
 * the start of the message; each buffer starts at a multiple of 64. */
typedef struct barge_column {
  uint32_t type;
  uint32_t name_bytes; /* the name, UTF-8, not NUL-terminated */
  uint64_t name_offset;
  uint64_t
      validity_offset; /* 0: no NULLs; else (rows + 7) / 8 bytes, bit i (LSB first) = row i valid */
  uint64_t values_offset; /* fixed-width values, or VARCHAR's rows + 1 uint32 offsets */
  uint64_t data_offset;   /* VARCHAR: the bytes the offsets index */
  uint64_t data_bytes;
  uint64_t reserved[2];
} barge_column;

#define BARGE_DEFAULT_DIR "/run/barge/stage"

static inline uint64_t barge_align(uint64_t n) {
  return (n + BARGE_ALIGN - 1) & ~(uint64_t)(BARGE_ALIGN - 1);
}

static inline size_t barge_type_width(uint32_t type) {
  switch (type) {
    case BARGE_TYPE_BIGINT:
    case BARGE_TYPE_DOUBLE:
    case BARGE_TYPE_TIMESTAMP:
      return 8;
    case BARGE_TYPE_BOOLEAN:
      return 1;
    case BARGE_TYPE_VARCHAR:
    case BARGE_TYPE_ROW:
      return 4;
  }
  return 0;
}

static inline barge_column* barge_msg_column(const barge_msg* m, uint32_t i) {
  return (barge_column*)((char*)m + sizeof(barge_msg)) + i;
}
static inline void* barge_msg_at(const barge_msg* m, uint64_t offset) { return (char*)m + offset; }
static inline uint64_t barge_msg_bytes(const barge_msg* m) { return m->bytes; }

/* ---- Waiting. */

static inline void barge_futex_wait(BARGE_ATOMIC(uint32_t) * word, uint32_t seen, int timeout_ms) {
  struct timespec ts, *tp = NULL;
  if (timeout_ms >= 0) {
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
    tp = &ts;
  }
  syscall(SYS_futex, (void*)word, FUTEX_WAIT, seen, tp, NULL, 0);
}
static inline void barge_futex_wake(BARGE_ATOMIC(uint32_t) * word) {
  syscall(SYS_futex, (void*)word, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
}

/* Wakes the other side if it sleeps on `seq` (after publishing what it waits for). */
static inline void barge_ring_bell(BARGE_ATOMIC(uint32_t) * sleeping,
                                   BARGE_ATOMIC(uint32_t) * seq) {
  BARGE_FENCE();
  if (BARGE_LOAD_RLX(sleeping) != 0) {
    BARGE_FETCH_ADD(seq, 1u);
    barge_futex_wake(seq);
  }
}

/* ---- Rings. */

typedef struct barge_ring {
  barge_ring_header* h;
  char* data;
  uint64_t mask;
  size_t map_bytes;
} barge_ring;

/* Maps ring file `path`; 0 or -errno. */
static inline int barge_ring_map(barge_ring* r, const char* path) {
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < (off_t)BARGE_RING_HEADER_BYTES) {
    close(fd);
    return -EINVAL;
  }
  void* p =
      mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return -errno;
  r->h = (barge_ring_header*)p;
  if (memcmp(r->h->magic, BARGE_RING_MAGIC, 8) != 0 || r->h->version != BARGE_RING_VERSION ||
      r->h->capacity == 0 || (r->h->capacity & (r->h->capacity - 1)) != 0 ||
      (uint64_t)st.st_size < r->h->header_bytes + r->h->capacity) {
    munmap(p, (size_t)st.st_size);
    return -EPROTO;
  }
  r->data = (char*)p + r->h->header_bytes;
  r->mask = r->h->capacity - 1;
  r->map_bytes = (size_t)st.st_size;
  return 0;
}

static inline void barge_ring_unmap(barge_ring* r) {
  if (r->h != NULL) munmap(r->h, r->map_bytes);
  r->h = NULL;
}

/* Consumer: the next message, or NULL when none came within `timeout_ms` (-1: wait forever, 0:
 * do not wait). PAD messages are skipped. The message stays valid until it is released. */
static inline const barge_msg* barge_ring_peek(barge_ring* r, int timeout_ms) {
  for (;;) {
    uint64_t head = BARGE_LOAD_RLX(&r->h->head);
    uint64_t tail = BARGE_LOAD_ACQ(&r->h->tail);
    if (head == tail) {
      if (timeout_ms == 0) return NULL;
      uint32_t seen = BARGE_LOAD_ACQ(&r->h->data_seq);
      BARGE_STORE_RLX(&r->h->consumer_sleeping, 1u);
      BARGE_FENCE();
      if (BARGE_LOAD_ACQ(&r->h->tail) == head) barge_futex_wait(&r->h->data_seq, seen, timeout_ms);
      BARGE_STORE_RLX(&r->h->consumer_sleeping, 0u);
      if (timeout_ms > 0 && BARGE_LOAD_ACQ(&r->h->tail) == head) return NULL;
      continue;
    }
    const barge_msg* m = (const barge_msg*)(r->data + (head & r->mask));
    if (m->kind == BARGE_MSG_PAD) {
      BARGE_STORE_REL(&r->h->head, head + m->bytes);
      continue;
    }
    return m;
  }
}

/* Consumer: done with a message of `bytes` bytes that peek returned: the read position moves past
 * it. (Its space is reused once acknowledged; for a stage's input that is as soon as its reply is
 * published, so its size is read before.) */
static inline void barge_ring_release_bytes(barge_ring* r, uint64_t bytes) {
  BARGE_STORE_REL(&r->h->head, BARGE_LOAD_RLX(&r->h->head) + bytes);
}

/* Consumer: done reading the message peek returned. */
static inline void barge_ring_release(barge_ring* r, const barge_msg* m) {
  barge_ring_release_bytes(r, m->bytes);
}

/* Producer: room for a message of `bytes` (a multiple of 64) in one piece, or NULL when the ring
 * had no room within `timeout_ms`. Fill it, then publish. */
static inline barge_msg* barge_ring_reserve(barge_ring* r, uint64_t bytes, int timeout_ms) {
  const uint64_t cap = r->h->capacity;
  if (bytes > cap / 2) return NULL; /* too large for this ring */
  for (;;) {
    uint64_t tail = BARGE_LOAD_RLX(&r->h->tail);
    uint64_t at = tail & r->mask;
    uint64_t pad = at + bytes > cap ? cap - at : 0; /* a message never wraps */
    uint64_t ack = BARGE_LOAD_ACQ(&r->h->ack);
    if (tail + pad + bytes - ack <= cap) {
      if (pad != 0) {
        barge_msg* p = (barge_msg*)(r->data + at);
        memset(p, 0, sizeof *p);
        p->kind = BARGE_MSG_PAD;
        p->flags = BARGE_FLAG_LAST;
        p->bytes = pad;
        BARGE_STORE_REL(&r->h->tail, tail + pad);
        tail += pad;
      }
      return (barge_msg*)(r->data + (tail & r->mask));
    }
    if (timeout_ms == 0) return NULL;
    uint32_t seen = BARGE_LOAD_ACQ(&r->h->space_seq);
    BARGE_STORE_RLX(&r->h->producer_sleeping, 1u);
    BARGE_FENCE();
    if (tail + pad + bytes - BARGE_LOAD_ACQ(&r->h->ack) > cap) {
      barge_futex_wait(&r->h->space_seq, seen, timeout_ms);
    }
    BARGE_STORE_RLX(&r->h->producer_sleeping, 0u);
    if (timeout_ms > 0 && tail + pad + bytes - BARGE_LOAD_ACQ(&r->h->ack) > cap) return NULL;
  }
}

/* Producer: makes the reserved message (its `bytes` set) visible and wakes a sleeping consumer. */
static inline void barge_ring_publish(barge_ring* r, barge_msg* m) {
  BARGE_STORE_REL(&r->h->tail, BARGE_LOAD_RLX(&r->h->tail) + m->bytes);
  barge_ring_bell(&r->h->consumer_sleeping, &r->h->data_seq);
}

/* ---- Batches. */

/* Bytes of a BATCH message with these columns: `name_bytes` and `data_bytes` per column (VARCHAR
 * data; 0 otherwise). */
static inline uint64_t barge_batch_size(uint64_t rows, uint32_t columns, const uint32_t* types,
                                        const uint32_t* name_bytes, const uint64_t* data_bytes,
                                        int with_validity) {
  uint64_t n = barge_align(sizeof(barge_msg) + (uint64_t)columns * sizeof(barge_column));
  for (uint32_t i = 0; i < columns; ++i) {
    n += barge_align(name_bytes[i]);
    if (with_validity) n += barge_align((rows + 7) / 8);
    uint64_t w = barge_type_width(types[i]);
    n += barge_align(types[i] == BARGE_TYPE_VARCHAR ? (rows + 1) * 4 : rows * w);
    if (types[i] == BARGE_TYPE_VARCHAR) n += barge_align(data_bytes[i]);
  }
  return n;
}

/* Lays out a BATCH message in `m` (of `bytes`, from barge_batch_size with the same arguments):
 * sets every offset and copies the names; the caller fills values, validity and VARCHAR data.
 * Validity bitmaps are laid out when `with_validity` (then set to all valid); else absent. */
static inline void barge_batch_layout(barge_msg* m, uint64_t bytes, uint64_t seq, uint64_t rows,
                                      uint32_t columns, const uint32_t* types,
                                      const char* const* names, const uint32_t* name_bytes,
                                      const uint64_t* data_bytes, int with_validity) {
  memset(m, 0, sizeof *m);
  m->kind = BARGE_MSG_BATCH;
  m->flags = BARGE_FLAG_LAST;
  m->bytes = bytes;
  m->seq = seq;
  m->rows = rows;
  m->columns = columns;
  uint64_t at = barge_align(sizeof(barge_msg) + (uint64_t)columns * sizeof(barge_column));
  for (uint32_t i = 0; i < columns; ++i) {
    barge_column* c = barge_msg_column(m, i);
    memset(c, 0, sizeof *c);
    c->type = types[i];
    c->name_bytes = name_bytes[i];
    c->name_offset = at;
    memcpy(barge_msg_at(m, at), names[i], name_bytes[i]);
    at += barge_align(name_bytes[i]);
    if (with_validity) {
      c->validity_offset = at;
      memset(barge_msg_at(m, at), 0xff, (rows + 7) / 8);
      at += barge_align((rows + 7) / 8);
    }
    c->values_offset = at;
    at += barge_align(types[i] == BARGE_TYPE_VARCHAR ? (rows + 1) * 4
                                                     : rows * barge_type_width(types[i]));
    if (types[i] == BARGE_TYPE_VARCHAR) {
      c->data_offset = at;
      c->data_bytes = data_bytes[i];
      at += barge_align(data_bytes[i]);
    }
  }
}

/* The column called `name` in a batch, or NULL. */
static inline const barge_column* barge_batch_find(const barge_msg* m, const char* name) {
  size_t n = strlen(name);
  for (uint32_t i = 0; i < m->columns; ++i) {
    const barge_column* c = barge_msg_column(m, i);
    if (c->name_bytes == n && memcmp(barge_msg_at(m, c->name_offset), name, n) == 0) return c;
  }
  return NULL;
}

static inline int barge_column_valid(const barge_msg* m, const barge_column* c, uint64_t row) {
  if (c->validity_offset == 0) return 1;
  const uint8_t* bits = (const uint8_t*)barge_msg_at(m, c->validity_offset);
  return (bits[row >> 3] >> (row & 7)) & 1;
}

/* ---- A stage replica's side. */

typedef struct barge_stage {
  barge_ring in;  /* barge -> stage */
  barge_ring out; /* stage -> barge */
} barge_stage;

/* Maps the rings of directory `dir` (NULL: $BARGE_STAGE_DIR, else BARGE_DEFAULT_DIR). 0 or
 * -errno. */
static inline int barge_stage_open(barge_stage* s, const char* dir) {
  char path[4096];
  if (dir == NULL) dir = getenv("BARGE_STAGE_DIR");
  if (dir == NULL) dir = BARGE_DEFAULT_DIR;
  memset(s, 0, sizeof *s);
  size_t n = strlen(dir);
  if (n + 5 > sizeof path) return -ENAMETOOLONG;
  memcpy(path, dir, n);
  memcpy(path + n, "/in", 4);
  int rc = barge_ring_map(&s->in, path);
  if (rc != 0) return rc;
  memcpy(path + n, "/out", 5);
  rc = barge_ring_map(&s->out, path);
  if (rc != 0) barge_ring_unmap(&s->in);
  return rc;
}

static inline void barge_stage_close(barge_stage* s) {
  barge_ring_unmap(&s->in);
  barge_ring_unmap(&s->out);
}

/* The next message from barge (-1: wait as long as it takes). */
static inline const barge_msg* barge_stage_next(barge_stage* s, int timeout_ms) {
  return barge_ring_peek(&s->in, timeout_ms);
}

/* Room for a reply of `bytes` in the output ring (waits for barge to make room). */
static inline barge_msg* barge_stage_reserve(barge_stage* s, uint64_t bytes, int timeout_ms) {
  return barge_ring_reserve(&s->out, bytes, timeout_ms);
}

/* Publishes `reply` (laid out for `input`'s seq, BARGE_FLAG_LAST set) and releases `input`.
 * Once the reply is published barge may reuse the input's space: `input` is not read after. */
static inline void barge_stage_reply(barge_stage* s, const barge_msg* input, barge_msg* reply) {
  const uint64_t input_bytes = input->bytes;
  reply->seq = input->seq;
  reply->flags |= BARGE_FLAG_LAST;
  barge_ring_publish(&s->out, reply);
  barge_ring_release_bytes(&s->in, input_bytes);
}

/* Sends a control message back as it came and releases it. 0, or -EAGAIN when the output ring had
 * no room within `timeout_ms`. */
static inline int barge_stage_echo(barge_stage* s, const barge_msg* input, int timeout_ms) {
  barge_msg* r = barge_ring_reserve(&s->out, BARGE_ALIGN, timeout_ms);
  if (r == NULL) return -EAGAIN;
  const uint64_t input_bytes = input->bytes; /* not read once the echo is published */
  memcpy(r, input, sizeof *r);
  r->bytes = BARGE_ALIGN;
  r->flags = BARGE_FLAG_LAST;
  barge_ring_publish(&s->out, r);
  barge_ring_release_bytes(&s->in, input_bytes);
  return 0;
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* BARGE_STAGE_H_ */
