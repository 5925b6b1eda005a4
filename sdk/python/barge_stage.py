"""barge_stage: container stages for barge pipelines, in Python.

A stage is a step of a pipeline spec that runs an image; with ``protocol: shm`` (the default)
barge feeds each replica batches of rows through two rings in shared memory and reads its answers
from them. This module is the stage's side of that protocol (sdk/c/barge_stage.h is the contract,
docs/stage-protocol.md and docs/python-stages.md explain it), in pure Python: mmap and struct, ctypes
for futex waits and wakes, numpy and pandas when they are installed.

    import barge_stage

    def double(df):                      # a pandas DataFrame: one batch of rows
        num = df.select_dtypes("number").columns
        df[num] = df[num] * 2            # new columns; the input's are read-only views
        return df

    barge_stage.map_batches(double)      # returns after the end of the stream

* ``map_batches(fn)`` calls ``fn`` once per batch with a pandas DataFrame (a dict of numpy arrays
  when pandas is missing) and writes back what it returns: a DataFrame, a dict of columns, or None
  for no rows. Columns may be added, dropped or retyped (declare them with ``output:`` in the
  spec). Numeric, BOOLEAN and (without pandas) TIMESTAMP columns are zero-copy, read-only views
  on the input ring, valid only during the call. A returned frame whose rows are not the input's
  one for one (filtered, reordered, repeated) says where each row came from with its index (the
  input's RangeIndex positions), or with an explicit ``__row`` column; barge takes each row's event
  time from there, so never ``reset_index()`` a filtered frame.
* ``map(fn)`` calls ``fn`` once per row with a dict and writes back the dict it returns (None drops
  the row), which has exactly the output's fields (None for NULL). It needs neither numpy nor
  pandas.
* ``Stage`` is the protocol itself, for other loops: ``next()``, ``reply()``, ``echo()``.

Types (barge, pandas, numpy without pandas, map): BIGINT int64 / numpy int64 / int; DOUBLE
float64 / float64 / float; BOOLEAN bool / bool / bool; VARCHAR object of str / object of str / str;
TIMESTAMP (milliseconds since the epoch, UTC) datetime64[ns, UTC] / datetime64[ms] (a view) /
datetime.datetime with tzinfo UTC. NULLs: pandas nullable arrays (Int64, Float64, boolean; None in
object columns; NaT) in pandas, numpy masked arrays without it, None in map. On the way back NaN in
a float64 column is a value (NaN), not a NULL: use a Float64 column with pd.NA, or None, for NULL.
A column returned as another type than the spec declares is converted when nothing is lost
(integers to DOUBLE, integral floats to BIGINT with NaN as NULL); otherwise the stage stops with an
error naming the column.

Memory ordering: barge publishes with release stores and reads with acquire loads. CPython's
native-size struct accesses of aligned words are single loads and stores, which x86-64 orders as
the protocol needs (TSO); Python has no fences, so this module waits with futex timeouts of 1 ms
(a wake barge could miss costs at most that) and always wakes barge after publishing (futex wake
orders itself in the kernel). It refuses to run on other architectures.
"""

import ctypes
import datetime as _dt
import mmap
import os
import platform
import struct
import sys
import time

try:
    import numpy as np
except ImportError:  # map() needs neither numpy nor pandas
    np = None
try:
    import pandas as pd
except ImportError:
    pd = None

__all__ = ["map_batches", "map", "Stage", "Message", "ProtocolError", "BATCH", "WATERMARK",
           "BARRIER", "END", "BIGINT", "DOUBLE", "BOOLEAN", "VARCHAR", "TIMESTAMP", "ROW"]

# ---- The layout (sdk/c/barge_stage.h, version 1).

RING_MAGIC = b"BARGERNG"
RING_VERSION = 1
RING_HEADER_BYTES = 4096
ALIGN = 64
DEFAULT_DIR = "/run/barge/stage"

BATCH, WATERMARK, BARRIER, END, PAD = 1, 2, 3, 4, 5
FLAG_LAST = 1
BIGINT, DOUBLE, BOOLEAN, VARCHAR, TIMESTAMP, ROW = 1, 2, 3, 4, 5, 6
TYPE_NAMES = {BIGINT: "BIGINT", DOUBLE: "DOUBLE", BOOLEAN: "BOOLEAN", VARCHAR: "VARCHAR",
              TIMESTAMP: "TIMESTAMP", ROW: "ROW"}
_TYPES_BY_NAME = {v: k for k, v in TYPE_NAMES.items()}
_WIDTH = {BIGINT: 8, DOUBLE: 8, BOOLEAN: 1, VARCHAR: 4, TIMESTAMP: 8, ROW: 4}
_ARRAY_CODE = {BIGINT: "q", DOUBLE: "d", BOOLEAN: "B", VARCHAR: "I", TIMESTAMP: "q", ROW: "I"}

# Ring header offsets (barge_ring_header).
_CAPACITY = 16
_TAIL, _PRODUCER_SLEEPING, _SPACE_SEQ, _CLOSED = 64, 72, 76, 80
_HEAD, _CONSUMER_SLEEPING, _DATA_SEQ = 128, 136, 140
_ACK = 192

# Shared words use native sizes ("Q", "I"): CPython copies them with one aligned load or store.
# Message contents, written before they are published, use explicit little-endian layouts.
_U64 = struct.Struct("Q")
_U32 = struct.Struct("I")
_MSG = struct.Struct("<IIQQqQII16x")        # barge_msg
_COLUMN = struct.Struct("<IIQQQQQ16x")      # barge_column

_WAIT_MS = 1     # longest futex wait: what a wake lost to missing fences can cost
_SPIN = 200      # polls of the ring before sleeping


def _align(n):
    return (n + ALIGN - 1) & ~(ALIGN - 1)


class ProtocolError(Exception):
    """The rings are not what the protocol says (or a reply cannot be laid out)."""


# ---- Futexes (ctypes). Without them the waits below are short sleeps and barge is never woken:
# it then notices replies within its own poll interval.

_SYS_FUTEX = {"x86_64": 202}.get(platform.machine())
_FUTEX_WAIT, _FUTEX_WAKE = 0, 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _syscall = _libc.syscall
    _syscall.restype = ctypes.c_long
    _syscall.argtypes = [ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32,
                         ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32]
    _WAIT_TIMEOUT = _Timespec(0, _WAIT_MS * 1000000)
    _WAIT_TIMEOUT_P = ctypes.cast(ctypes.pointer(_WAIT_TIMEOUT), ctypes.c_void_p)
except (OSError, AttributeError):  # pragma: no cover - a Python without ctypes' libc
    _syscall = None


def _keep_freed_memory():
    """Asks glibc's malloc to keep freed memory for reuse: numpy allocates every result of a batch
    anew, and without this each batch would fault in fresh pages (and return them to the kernel
    after), which costs more than the arithmetic. Memory stays at the largest batches' size."""
    try:
        mallopt = _libc.mallopt
    except (NameError, AttributeError):  # pragma: no cover - not glibc
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    mallopt(M_MMAP_THRESHOLD, 32 << 20)   # glibc's largest: buffers below it come from the heap
    mallopt(M_TRIM_THRESHOLD, 1 << 30)    # and the heap is not shrunk after every batch


def _check_platform():
    if sys.byteorder != "little" or _SYS_FUTEX is None:
        raise RuntimeError(
            "barge_stage: this module relies on x86-64's memory ordering (Python has no fences); "
            "on %s use the C SDK (sdk/c/barge_stage.h) or the lines protocol" % platform.machine())


# ---- Rings


class _Ring:
    """One ring file, mapped. A stage consumes `in` and produces into `out`."""

    def __init__(self, path):
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            if size < RING_HEADER_BYTES:
                raise ProtocolError("%s: %d bytes, less than a ring header" % (path, size))
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
            self.mm = mmap.mmap(fd, size, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        mm = self.mm
        magic = bytes(mm[0:8])
        version, header_bytes, capacity = struct.unpack_from("<IIQ", mm, 8)
        if (magic != RING_MAGIC or version != RING_VERSION or capacity == 0 or
                capacity & (capacity - 1) or size < header_bytes + capacity):
            raise ProtocolError("%s is not a barge ring of version %d" % (path, RING_VERSION))
        self.path = path
        self.data = header_bytes           # where messages start in the mapping
        self.capacity = capacity
        self.mask = capacity - 1
        # The mapping's address, for futex calls; the ctypes object pins the mapping.
        self._anchor = ctypes.c_char.from_buffer(mm)
        self.address = ctypes.addressof(self._anchor)
        self.u8 = np.frombuffer(mm, dtype=np.uint8) if np is not None else None

    # Shared words.
    def load64(self, off):
        return _U64.unpack_from(self.mm, off)[0]

    def store64(self, off, v):
        _U64.pack_into(self.mm, off, v)

    def load32(self, off):
        return _U32.unpack_from(self.mm, off)[0]

    def store32(self, off, v):
        _U32.pack_into(self.mm, off, v)

    def _wait(self, seq_off, seen):
        if _syscall is not None:
            _syscall(_SYS_FUTEX, self.address + seq_off, _FUTEX_WAIT, seen, _WAIT_TIMEOUT_P,
                     None, 0)
        else:
            time.sleep(_WAIT_MS / 1000.0)

    def _wake(self, seq_off):
        # Always bump and wake: the kernel orders the wake with barge's wait, so no wake is lost
        # even though this side cannot fence between its store of `tail` and its load of the
        # sleeping word.
        self.store32(seq_off, (self.load32(seq_off) + 1) & 0xFFFFFFFF)
        if _syscall is not None:
            _syscall(_SYS_FUTEX, self.address + seq_off, _FUTEX_WAKE, 0x7FFFFFFF, None, None, 0)

    # Consumer.
    def peek(self, timeout=None):
        """The offset (in the mapping) of the next message, or None when none came in `timeout`
        seconds (None: wait as long as it takes; 0: do not wait). PAD messages are skipped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        spins = 0
        mm = self.mm
        while True:
            head = self.load64(_HEAD)
            tail = self.load64(_TAIL)
            if head == tail:
                if timeout == 0:
                    return None
                if spins < _SPIN:
                    spins += 1
                    continue
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                seen = self.load32(_DATA_SEQ)
                self.store32(_CONSUMER_SLEEPING, 1)
                if self.load64(_TAIL) == head:
                    self._wait(_DATA_SEQ, seen)
                self.store32(_CONSUMER_SLEEPING, 0)
                continue
            at = self.data + (head & self.mask)
            kind = _U32.unpack_from(mm, at)[0]
            if kind == PAD:
                self.store64(_HEAD, head + _U64.unpack_from(mm, at + 8)[0])
                continue
            return at

    def release(self, nbytes):
        self.store64(_HEAD, self.load64(_HEAD) + nbytes)

    # Producer.
    def reserve(self, nbytes, timeout=None):
        """The offset (in the mapping) of room for a message of `nbytes` (a multiple of 64) in one
        piece, or None when none was made within `timeout` seconds."""
        cap = self.capacity
        if nbytes > cap // 2:
            raise ProtocolError("a message of %d bytes does not fit a ring of %d" % (nbytes, cap))
        deadline = None if timeout is None else time.monotonic() + timeout
        spins = 0
        while True:
            tail = self.load64(_TAIL)
            at = tail & self.mask
            pad = cap - at if at + nbytes > cap else 0
            if tail + pad + nbytes - self.load64(_ACK) <= cap:
                if pad:
                    _MSG.pack_into(self.mm, self.data + at, PAD, FLAG_LAST, pad, 0, 0, 0, 0, 0)
                    tail += pad
                    self.store64(_TAIL, tail)
                return self.data + (tail & self.mask)
            if timeout == 0:
                return None
            if spins < _SPIN:
                spins += 1
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return None
            seen = self.load32(_SPACE_SEQ)
            self.store32(_PRODUCER_SLEEPING, 1)
            if tail + pad + nbytes - self.load64(_ACK) > cap:
                self._wait(_SPACE_SEQ, seen)
            self.store32(_PRODUCER_SLEEPING, 0)

    def publish(self, nbytes):
        self.store64(_TAIL, self.load64(_TAIL) + nbytes)
        self._wake(_DATA_SEQ)


# ---- Messages


class Column:
    """A column of a BATCH message: offsets are absolute in the ring's mapping."""
    __slots__ = ("name", "type", "validity", "values", "data", "data_bytes")

    def __init__(self, name, type_, validity, values, data, data_bytes):
        self.name, self.type, self.validity = name, type_, validity
        self.values, self.data, self.data_bytes = values, data, data_bytes


class Message:
    """A message read in place from the `in` ring (valid until it is answered)."""
    __slots__ = ("at", "kind", "flags", "bytes", "seq", "value", "rows", "columns")

    def __init__(self, ring, at):
        mm = ring.mm
        (self.kind, self.flags, self.bytes, self.seq, self.value, self.rows, ncols,
         _) = _MSG.unpack_from(mm, at)
        self.at = at
        if self.bytes < ALIGN or self.bytes % ALIGN or self.bytes > ring.capacity // 2:
            raise ProtocolError("a message of %d bytes" % self.bytes)
        if not BATCH <= self.kind <= END:
            raise ProtocolError("a message of unknown kind %d" % self.kind)
        self.columns = []
        if self.kind != BATCH:
            return
        if 64 + ncols * 64 > self.bytes:
            raise ProtocolError("a batch of %d columns in %d bytes" % (ncols, self.bytes))
        for i in range(ncols):
            (type_, name_bytes, name_off, validity, values, data,
             data_bytes) = _COLUMN.unpack_from(mm, at + 64 + 64 * i)
            name = bytes(mm[at + name_off:at + name_off + name_bytes]).decode("utf-8")
            self.columns.append(Column(name, type_, at + validity if validity else 0,
                                       at + values, at + data if data else 0, data_bytes))


# ---- Replies: columns to lay out, from numpy arrays, array.array or bytes.


class _Out:
    """An output column: `values` a C-contiguous buffer of the type's width (rows, or rows + 1
    offsets for VARCHAR), `valid` None or one byte per row (1 = valid), `data` VARCHAR bytes."""
    __slots__ = ("name", "nameb", "type", "values", "valid", "data")

    def __init__(self, name, type_, values, valid=None, data=b""):
        self.name = name
        self.nameb = name.encode("utf-8")
        self.type = type_
        self.values = values
        self.valid = valid
        self.data = data


def _pack_bits(valid, a, b):
    """Validity bitmap (LSB first) of rows [a, b) of a one-byte-per-row buffer."""
    if np is not None:
        return np.packbits(np.frombuffer(valid, dtype=np.uint8)[a:b] != 0,
                           bitorder="little").tobytes()
    out = bytearray((b - a + 7) // 8)
    for i in range(a, b):
        if valid[i]:
            out[(i - a) >> 3] |= 1 << ((i - a) & 7)
    return bytes(out)


def _part_size(cols, a, b, offsets):
    rows = b - a
    n = _align(64 + 64 * len(cols))
    for c, off in zip(cols, offsets):
        n += _align(len(c.nameb))
        if c.valid is not None:
            n += _align((rows + 7) // 8)
        if c.type == VARCHAR:
            n += _align((rows + 1) * 4) + _align(off[b] - off[a])
        else:
            n += _align(rows * _WIDTH[c.type])
    return n


def _write_part(ring, at, nbytes, seq, flags, cols, a, b, offsets):
    mm = ring.mm
    rows = b - a
    _MSG.pack_into(mm, at, BATCH, flags, nbytes, seq, 0, rows, len(cols), 0)
    pos = _align(64 + 64 * len(cols))
    for i, (c, off) in enumerate(zip(cols, offsets)):
        name_off = pos
        mm[at + pos:at + pos + len(c.nameb)] = c.nameb
        pos += _align(len(c.nameb))
        validity = 0
        if c.valid is not None:
            bits = _pack_bits(c.valid, a, b)
            mm[at + pos:at + pos + len(bits)] = bits
            validity = pos
            pos += _align(len(bits))
        values = pos
        data = data_bytes = 0
        if c.type == VARCHAR:
            base = off[a]
            if np is not None:
                rebased = (np.frombuffer(c.values, dtype=np.uint32)[a:b + 1] - np.uint32(base))
                raw = rebased.tobytes()
            else:
                import array
                raw = array.array("I", [o - base for o in off[a:b + 1]]).tobytes()
            mm[at + pos:at + pos + len(raw)] = raw
            pos += _align(len(raw))
            data, data_bytes = pos, off[b] - base
            if data_bytes:
                mm[at + pos:at + pos + data_bytes] = memoryview(c.data)[base:off[b]]
            pos += _align(data_bytes)
        else:
            w = _WIDTH[c.type]
            if rows:
                mm[at + pos:at + pos + rows * w] = memoryview(c.values).cast("B")[a * w:b * w]
            pos += _align(rows * w)
        _COLUMN.pack_into(mm, at + 64 + 64 * i, c.type, len(c.nameb), name_off, validity, values,
                          data, data_bytes)
    assert pos == nbytes, (pos, nbytes)


def _identity_rows(rows):
    if np is not None:
        return np.arange(rows, dtype=np.uint32)
    import array
    return array.array("I", range(rows))


# ---- The stage


class Stage:
    """A replica's side of the protocol: its two rings.

        s = Stage()
        while True:
            m = s.next()
            if m.kind == BATCH:
                s.reply(m, columns)      # answers m, releases it
            else:
                s.echo(m)                # WATERMARK, BARRIER, END go back as they came
                if m.kind == END:
                    break
    """

    def __init__(self, directory=None):
        _check_platform()
        directory = directory or os.environ.get("BARGE_STAGE_DIR") or DEFAULT_DIR
        self.directory = directory
        self.in_ = _Ring(os.path.join(directory, "in"))
        self.out = _Ring(os.path.join(directory, "out"))
        # The fields barge expects back (output: in the spec, else the input's), when it says.
        self.output = None
        spec = os.environ.get("BARGE_STAGE_OUTPUT")
        if spec:
            self.output = _parse_output(spec)

    def next(self, timeout=None):
        """The next message from barge; None when none came within `timeout` seconds."""
        at = self.in_.peek(timeout)
        return None if at is None else Message(self.in_, at)

    def echo(self, msg):
        """Sends control message `msg` back as it came and releases it."""
        at = self.out.reserve(ALIGN)
        self.out.mm[at:at + ALIGN] = self.in_.mm[msg.at:msg.at + ALIGN]
        _U32.pack_into(self.out.mm, at + 4, FLAG_LAST)
        _U64.pack_into(self.out.mm, at + 8, ALIGN)
        self.out.publish(ALIGN)
        self.in_.release(msg.bytes)

    def reply(self, msg, columns, row=None):
        """Answers BATCH `msg` with `columns` (a list of _Out) and releases it. `row` (uint32 per
        output row: the input row it came from) is required when the row count differs. Replies
        larger than half the output ring go in several parts."""
        rows = _rows_of(columns, row, msg.rows)
        cols = list(columns)
        if row is not None:
            cols.append(_Out("__row", ROW, row))
        offsets = [_offsets_list(c) for c in cols]
        limit = self.out.capacity // 2
        if _part_size(cols, 0, rows, offsets) <= limit:
            self._send(msg.seq, FLAG_LAST, cols, 0, rows, offsets)
        else:
            if row is None:  # parts never match the input one for one: say where rows came from
                cols.append(_Out("__row", ROW, _identity_rows(rows)))
                offsets.append(None)
            self._send_parts(msg.seq, cols, 0, rows, offsets, True, limit)
        self.in_.release(msg.bytes)

    def _send(self, seq, flags, cols, a, b, offsets):
        nbytes = _part_size(cols, a, b, offsets)
        at = self.out.reserve(nbytes)
        _write_part(self.out, at, nbytes, seq, flags, cols, a, b, offsets)
        self.out.publish(nbytes)

    def _send_parts(self, seq, cols, a, b, offsets, last, limit):
        if _part_size(cols, a, b, offsets) <= limit:
            self._send(seq, FLAG_LAST if last else 0, cols, a, b, offsets)
            return
        if b - a <= 1:
            raise ProtocolError("one row of the reply needs more than %d bytes (half the ring; "
                                "set ring: larger in the stage)" % limit)
        mid = (a + b) // 2
        self._send_parts(seq, cols, a, mid, offsets, False, limit)
        self._send_parts(seq, cols, mid, b, offsets, last, limit)

    def messages(self):
        """Every message up to END: batches are yielded; control messages are echoed here, in
        order, and END ends the iteration (after its echo)."""
        while True:
            m = self.next()
            if m.kind == BATCH:
                yield m
                continue
            self.echo(m)
            if m.kind == END:
                return


def _offsets_list(c):
    if c is None or c.type != VARCHAR:
        return None
    return memoryview(c.values).cast("B").cast("I")


def _rows_of(columns, row, input_rows):
    rows = None
    for c in columns:
        n = len(memoryview(c.values).cast("B")) // _WIDTH[c.type]
        if c.type == VARCHAR:
            n -= 1
        if rows is None:
            rows = n
        elif n != rows:
            raise ProtocolError("column '%s' has %d rows, others %d" % (c.name, n, rows))
    if row is not None:
        n = len(memoryview(row).cast("B")) // 4
        if rows is not None and n != rows:
            raise ProtocolError("__row has %d rows, the columns %d" % (n, rows))
        rows = n
        bad = _first_out_of_range(row, input_rows)
        if bad is not None:
            raise ProtocolError("__row names input row %d of a batch of %d" % (bad, input_rows))
    if rows is None:
        rows = 0
    if row is None and rows != input_rows:
        raise ProtocolError("a reply of %d rows for %d without __row saying where they came from"
                            % (rows, input_rows))
    return rows


def _first_out_of_range(row, n):
    if np is not None:
        r = np.frombuffer(row, dtype=np.uint32)
        if len(r) and int(r.max()) >= n:
            return int(r.max())
        return None
    for v in memoryview(row).cast("B").cast("I"):
        if v >= n:
            return v
    return None


def _parse_output(spec):
    """BARGE_STAGE_OUTPUT: a JSON list of {"name": ..., "type": "BIGINT"|...} in order."""
    import json
    fields = []
    for f in json.loads(spec):
        if f.get("type") not in _TYPES_BY_NAME:
            raise ProtocolError("BARGE_STAGE_OUTPUT: unknown type %r" % f.get("type"))
        fields.append((f["name"], _TYPES_BY_NAME[f["type"]]))
    return fields


# ---- Columns in: numpy and pandas


def _np_values(ring, c, rows, copy):
    """A fixed-width column's values as a numpy array: a read-only view on the ring (or a copy)."""
    dtype = {BIGINT: np.int64, DOUBLE: np.float64, BOOLEAN: np.bool_, TIMESTAMP: np.int64,
             ROW: np.uint32}[c.type]
    width = _WIDTH[c.type]
    v = ring.u8[c.values:c.values + rows * width].view(dtype)
    if copy:
        return v.copy()
    v.flags.writeable = False
    return v


def _np_valid(ring, c, rows):
    """True per valid row, or None when the column has no NULLs."""
    if not c.validity:
        return None
    bits = ring.u8[c.validity:c.validity + (rows + 7) // 8]
    return np.unpackbits(bits, count=rows, bitorder="little").view(np.bool_)


def _strings(ring, c, rows, valid):
    """A VARCHAR column as a list of str (None where NULL)."""
    mm = ring.mm
    off = memoryview(mm)[c.values:c.values + (rows + 1) * 4].cast("I").tolist()
    raw = bytes(mm[c.data:c.data + off[rows]]) if rows else b""
    text = raw.decode("utf-8")
    if len(text) == len(raw):  # ASCII: byte offsets are character offsets
        out = [text[off[i]:off[i + 1]] for i in range(rows)]
    else:
        out = [raw[off[i]:off[i + 1]].decode("utf-8") for i in range(rows)]
    if valid is not None:
        for i in range(rows):
            if not valid[i]:
                out[i] = None
    return out


def _numpy_columns(ring, msg, copy):
    """The batch as a dict of numpy arrays (masked arrays where there are NULLs)."""
    cols = {}
    for c in msg.columns:
        valid = _np_valid(ring, c, msg.rows)
        if c.type == VARCHAR:
            a = np.array(_strings(ring, c, msg.rows, valid), dtype=object)
        else:
            a = _np_values(ring, c, msg.rows, copy)
            if c.type == TIMESTAMP:
                a = a.view("datetime64[ms]")
        if valid is not None:
            a = np.ma.masked_array(a, mask=~valid)
        cols[c.name] = a
    return cols


_UTC = _dt.timezone.utc


def _pandas_frame(ring, msg, copy):
    data = {}
    rows = msg.rows
    for c in msg.columns:
        valid = _np_valid(ring, c, rows)
        if c.type == VARCHAR:
            data[c.name] = pd.Series(_strings(ring, c, rows, valid), dtype=object)
            continue
        v = _np_values(ring, c, rows, copy)
        if c.type == TIMESTAMP:
            # pandas 1.x keeps datetimes in nanoseconds: a converted copy.
            ns = v.astype("datetime64[ms]").astype("datetime64[ns]")
            if valid is not None:
                ns[~valid] = np.datetime64("NaT")
            data[c.name] = pd.Series(pd.DatetimeIndex(ns).tz_localize("UTC"))
        elif valid is None:
            data[c.name] = v
        elif c.type == BIGINT:
            data[c.name] = pd.arrays.IntegerArray(v, ~valid)
        elif c.type == DOUBLE:
            data[c.name] = pd.arrays.FloatingArray(v, ~valid)
        else:
            data[c.name] = pd.arrays.BooleanArray(v, ~valid)
    frame = pd.DataFrame(data, index=pd.RangeIndex(rows), copy=False)
    return frame


# ---- Columns out


def _encode_strings(name, values):
    """VARCHAR from a sequence of str (None, pd.NA or NaN as NULL): (offsets, data, valid)."""
    parts = []
    valid = bytearray(len(values))
    all_valid = True
    for i, x in enumerate(values):
        if isinstance(x, str):
            parts.append(x.encode("utf-8"))
            valid[i] = 1
        elif x is None or (pd is not None and (x is pd.NA or x is pd.NaT)) or (
                isinstance(x, float) and x != x):
            parts.append(b"")
            all_valid = False
        else:
            raise TypeError("column '%s': %r is not a string (VARCHAR columns hold str or None)"
                            % (name, x))
    import array
    offsets = array.array("I", [0])
    total = 0
    for p in parts:
        total += len(p)
        offsets.append(total)
    if total >= 1 << 32:
        raise ProtocolError("column '%s': more than 4 GiB of strings in one batch" % name)
    return offsets, b"".join(parts), (None if all_valid else bytes(valid))


def _to_out(name, want, values, valid):
    """Builds the _Out of column `name`: `values` a numpy array (or list), `valid` None or a bool
    numpy array. `want` is the declared type, or None to infer it from the dtype."""
    if isinstance(values, list):
        values = np.array(values, dtype=object) if values else np.array([], dtype=np.float64)
    kind = values.dtype.kind
    if kind == "O":
        return _object_to_out(name, want, values, valid)
    if kind == "M":  # datetime64 (naive: UTC)
        t = values.astype("datetime64[ms]")
        nat = np.isnat(t)
        if nat.any():
            valid = ~nat if valid is None else (valid & ~nat)
        ints = t.view(np.int64)
        return _fixed(name, want, TIMESTAMP, ints, valid)
    if kind == "b":
        return _fixed(name, want, BOOLEAN, values.astype(np.uint8, copy=False), valid)
    if kind in "iu":
        return _fixed(name, want, BIGINT, values.astype(np.int64, copy=False), valid)
    if kind == "f":
        return _fixed(name, want, DOUBLE, values.astype(np.float64, copy=False), valid)
    raise TypeError("column '%s': cannot return dtype %s to barge" % (name, values.dtype))


def _fixed(name, want, got, values, valid):
    """A fixed-width column of type `got`, converted to the declared type `want` when nothing is
    lost."""
    if want is not None and want != got:
        if want == DOUBLE and got in (BIGINT, BOOLEAN):
            values = values.astype(np.float64)
        elif want == BIGINT and got == DOUBLE:
            nan = np.isnan(values)
            ok = np.where(nan, 0.0, values)
            if not np.all(np.trunc(ok) == ok) or (len(ok) and np.abs(ok).max() >= 2.0 ** 63):
                raise TypeError("column '%s': the spec declares BIGINT, the stage returned "
                                "non-integral DOUBLE values" % name)
            if nan.any():
                valid = ~nan if valid is None else (valid & ~nan)
            values = ok.astype(np.int64)
        elif want == TIMESTAMP and got == BIGINT:
            pass  # milliseconds since the epoch
        elif want == VARCHAR and len(values) == 0:
            return _Out(name, VARCHAR, np.zeros(1, dtype=np.uint32))
        else:
            raise TypeError("column '%s': the spec declares %s, the stage returned %s"
                            % (name, TYPE_NAMES[want], TYPE_NAMES[got]))
        got = want
    values = np.ascontiguousarray(values)
    return _Out(name, got, values,
                None if valid is None or valid.all() else valid.astype(np.uint8))


def _object_to_out(name, want, values, valid):
    """An object column: strings, or Python numbers, bools or datetimes with None for NULL."""
    items = values.tolist()
    if valid is not None:
        items = [x if ok else None for x, ok in zip(items, valid)]
    present = [x for x in items if not (x is None or (pd is not None and (x is pd.NA or x is pd.NaT))
                                          or (isinstance(x, float) and x != x))]
    if want is None:
        want = _infer_python_type(name, present)
    if want == VARCHAR:
        offsets, data, v = _encode_strings(name, items)
        return _Out(name, VARCHAR, offsets, v, data)
    return _python_fixed(name, want, items)


def _infer_python_type(name, present):
    if not present:
        return VARCHAR  # nothing says otherwise
    t = type(present[0])
    if isinstance(present[0], str):
        return VARCHAR
    if isinstance(present[0], bool):
        return BOOLEAN
    if isinstance(present[0], int):
        return BIGINT if all(isinstance(x, int) for x in present) else DOUBLE
    if isinstance(present[0], float):
        return DOUBLE
    if isinstance(present[0], _dt.datetime):
        return TIMESTAMP
    raise TypeError("column '%s': cannot return values of type %s to barge" % (name, t.__name__))


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_UTC)
_MS = _dt.timedelta(milliseconds=1)


def _millis(x):
    if pd is not None and isinstance(x, pd.Timestamp):
        if x.tzinfo is None:
            x = x.tz_localize("UTC")
        return x.value // 1000000
    if isinstance(x, _dt.datetime):
        if x.tzinfo is None:
            x = x.replace(tzinfo=_UTC)
        return (x - _EPOCH) // _MS
    raise TypeError("%r is not a datetime" % (x,))


def _python_fixed(name, want, items):
    """A fixed-width column from Python values (None for NULL), as type `want`."""
    import array
    n = len(items)
    valid = bytearray(b"\x01" * n)
    out = array.array(_ARRAY_CODE[want], bytes(_WIDTH[want] * n))
    for i, x in enumerate(items):
        if x is None or (pd is not None and (x is pd.NA or x is pd.NaT)):
            valid[i] = 0
            continue
        try:
            if want == BIGINT:
                if isinstance(x, float):
                    if x != x:
                        valid[i] = 0
                        continue
                    if x != int(x):
                        raise ValueError
                out[i] = int(x)
            elif want == DOUBLE:
                out[i] = float(x)
            elif want == BOOLEAN:
                if not isinstance(x, (bool, int)) or x not in (0, 1):
                    raise ValueError
                out[i] = 1 if x else 0
            elif want == TIMESTAMP:
                out[i] = x if isinstance(x, int) and not isinstance(x, bool) else _millis(x)
        except (ValueError, TypeError, OverflowError):
            raise TypeError("column '%s': %r is not a %s value" % (name, x, TYPE_NAMES[want]))
    return _Out(name, want, out, None if all(valid) else bytes(valid))


def _series_parts(s):
    """(numpy values, valid or None) of a pandas Series, NULLs of nullable dtypes unmasked."""
    dtype = s.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        ns = s.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        return ns, None
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and hasattr(s.array, "_mask"):
        arr = s.array
        return np.asarray(arr._data), ~np.asarray(arr._mask)
    if isinstance(dtype, pd.StringDtype):
        return s.to_numpy(dtype=object, na_value=None), None
    if isinstance(dtype, pd.CategoricalDtype):
        return np.asarray(s.astype(object)), None
    return s.to_numpy(), None


_EMPTY = {BIGINT: "int64", DOUBLE: "float64", BOOLEAN: "bool", TIMESTAMP: "datetime64[ms]",
          VARCHAR: "object"}


def _frame_out(result, msg, output):
    """Columns and __row of what map_batches' fn returned for batch `msg`."""
    rows = msg.rows
    row = None
    cols = {}
    if result is None:  # no rows: the declared fields (else the input's), empty
        row = np.zeros(0, dtype=np.uint32)
        fields = output if output is not None else [(c.name, c.type) for c in msg.columns]
        for name, type_ in fields:
            cols[name] = (np.zeros(0, dtype=_EMPTY[type_]), None)
    elif pd is not None and isinstance(result, pd.DataFrame):
        if not result.columns.is_unique:
            raise ValueError("the returned frame has repeated column names")
        if "__row" in result.columns:
            row = result["__row"].to_numpy()
            result = result.drop(columns="__row")
        elif not (len(result) == rows and result.index.equals(pd.RangeIndex(rows))):
            row = np.asarray(result.index)
            if row.dtype.kind not in "iu":
                raise ValueError("the returned frame has %d rows for %d and an index that is not "
                                 "input row positions: keep the input's index (no reset_index) or "
                                 "return a __row column" % (len(result), rows))
        for name in result.columns:
            values, valid = _series_parts(result[name])
            cols[str(name)] = (values, valid)
    elif isinstance(result, dict):
        for name, v in result.items():
            if pd is not None and isinstance(v, pd.Series):
                values, valid = _series_parts(v)
            elif isinstance(v, np.ma.MaskedArray):
                values, valid = v.data, ~np.ma.getmaskarray(v)
            else:
                values, valid = np.asarray(v), None
            if name == "__row":
                row = values
                continue
            cols[name] = (values, valid)
    else:
        raise TypeError("map_batches' function returned %s; return a DataFrame, a dict of columns "
                        "or None" % type(result).__name__)
    if row is not None:
        row = np.asarray(row)
        if len(row) and (row.min() < 0 or row.max() >= rows):
            raise ValueError("__row (or the index) names row %d of a batch of %d"
                             % (int(row.max()) if row.max() >= rows else int(row.min()), rows))
        row = np.ascontiguousarray(row, dtype=np.uint32)
    return _lay_out(cols, output), row


def _lay_out(cols, output):
    """_Out columns in the declared order (or as returned), each of its declared type."""
    if output is None:
        return [_to_out(name, None, v, ok) for name, (v, ok) in cols.items()]
    declared = dict(output)
    for name in cols:
        if name not in declared:
            raise ValueError("returned column '%s', which the stage's output does not declare "
                             "(declare it under output: in the spec)" % name)
    out = []
    for name, type_ in output:
        if name not in cols:
            raise ValueError("returned no column '%s' (the stage's output declares it)" % name)
        v, ok = cols[name]
        out.append(_to_out(name, type_, v, ok))
    return out


# ---- The loops


def map_batches(fn, directory=None, copy=False):
    """Runs the stage: calls fn(batch) for every batch until the end of the stream.

    `batch` is a pandas DataFrame (a dict of numpy arrays when pandas is missing) indexed 0..n-1.
    Its numeric and boolean columns are read-only views on the input ring (copy=True: writable
    copies); they are valid only during the call. fn returns a DataFrame, a dict of columns, or
    None (no rows). Rows that do not match the input one for one carry their origin in the index
    or a __row column (see the module's documentation)."""
    if np is None:
        raise RuntimeError("barge_stage.map_batches needs numpy (map() does not)")
    stage = Stage(directory)
    _keep_freed_memory()
    ring = stage.in_
    use_pandas = pd is not None
    for msg in stage.messages():
        batch = _pandas_frame(ring, msg, copy) if use_pandas else _numpy_columns(ring, msg, copy)
        try:
            result = fn(batch)
        except ValueError as e:
            if "read-only" in str(e) and hasattr(e, "add_note"):
                e.add_note("barge_stage: the batch's columns are read-only views on barge's ring; "
                           "assign new columns (df['x'] = df['x'] * 2) or use "
                           "map_batches(fn, copy=True)")
            raise
        cols, row = _frame_out(result, msg, stage.output)
        del batch, result
        stage.reply(msg, cols, row)


def _python_columns(ring, msg):
    """A batch as lists of Python values (None for NULL), by column name."""
    import array
    mm = ring.mm
    rows = msg.rows
    out = {}
    for c in msg.columns:
        valid = None
        if c.validity:
            bits = mm[c.validity:c.validity + (rows + 7) // 8]
            valid = [(bits[i >> 3] >> (i & 7)) & 1 for i in range(rows)]
        if c.type == VARCHAR:
            off = memoryview(mm)[c.values:c.values + (rows + 1) * 4].cast("I").tolist()
            raw = bytes(mm[c.data:c.data + (off[rows] if rows else 0)])
            vals = [raw[off[i]:off[i + 1]].decode("utf-8") for i in range(rows)]
        else:
            code = _ARRAY_CODE[c.type]
            a = array.array(code)
            a.frombytes(mm[c.values:c.values + rows * _WIDTH[c.type]])
            vals = a.tolist()
            if c.type == BOOLEAN:
                vals = [v != 0 for v in vals]
            elif c.type == TIMESTAMP:
                vals = [_EPOCH + v * _MS for v in vals]
        if valid is not None:
            vals = [v if ok else None for v, ok in zip(vals, valid)]
        out[c.name] = vals
    return out


def _map_fields_error(r, names, declared):
    """The error for a row `r` returned by map's function whose fields are not `names`."""
    for k in r:
        if k not in names:
            return ValueError(
                "map's function returned field '%s', which %s" % (k, (
                    "the stage's output does not declare (declare it under output: in the spec)"
                    if declared else "the first row it returned does not have (every row needs "
                    "the same fields)")))
    for k in names:
        if k not in r:
            return ValueError(
                "map's function returned no field '%s' (%s; give None for NULL)" % (k, (
                    "the stage's output declares it" if declared
                    else "the first row it returned has it")))
    return ValueError("map's function returned a row with other fields than %s" % list(names))


def map(fn, directory=None):  # noqa: A001 - the issue's name for the per-record API
    """Runs the stage: calls fn(record) for every row until the end of the stream.

    `record` is a dict of field names to Python values (int, float, bool, str, datetime in UTC;
    None for NULL). fn returns a dict (the output row) or None (the row is dropped). The dict has
    exactly the fields the stage's output declares (else those of the first row returned); a
    field left out or not declared stops the stage with an error naming it."""
    stage = Stage(directory)
    declared = stage.output is not None
    for msg in stage.messages():
        cols = _python_columns(stage.in_, msg)
        names = list(cols)
        records = [dict(zip(names, values)) for values in zip(*cols.values())] if names else []
        kept, rows_out = [], []
        # Every row has the expected fields: as many as expected (one len() per row), and each
        # expected one (a KeyError below) - so no other.
        fields = stage.output
        want = len(fields) if declared else -1
        for i, rec in enumerate(records):
            r = fn(rec)
            if r is None:
                continue
            if not isinstance(r, dict):
                raise TypeError("map's function returned %s; return a dict or None"
                                % type(r).__name__)
            if len(r) != want:
                if want < 0:  # as the first row returned
                    fields = [(k, None) for k in r]
                    want = len(r)
                else:
                    raise _map_fields_error(r, [name for name, _ in fields], declared)
            kept.append(i)
            rows_out.append(r)
        if fields is None:  # no row returned: the input's fields
            fields = [(k, None) for k in names]
        out = []
        for name, type_ in fields:
            try:
                items = [r[name] for r in rows_out]
            except KeyError:
                bad = next(r for r in rows_out if name not in r)
                raise _map_fields_error(bad, [n for n, _ in fields], declared) from None
            if type_ is None:
                present = [x for x in items if x is not None]
                type_ = _infer_python_type(name, present) if present else next(
                    (c.type for c in msg.columns if c.name == name), VARCHAR)
            if type_ == VARCHAR:
                offsets, data, v = _encode_strings(name, items)
                out.append(_Out(name, VARCHAR, offsets, v, data))
            else:
                out.append(_python_fixed(name, type_, items))
        import array
        row = None if len(kept) == msg.rows else array.array("I", kept)
        stage.reply(msg, out, row)
