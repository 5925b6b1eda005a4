"""Tests of barge_stage.py against rings made here, with this file playing barge's part.

Each test writes ring files (the layout of sdk/c/barge_stage.h, encoded here independently of the
module), starts a stage script in a child process on them, sends it batches and control messages,
and checks every reply. No container and no barge binary are needed.

    python3 sdk/python/barge_stage_test.py [-v]
"""

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import barge_stage as bs  # noqa: E402  (for its ring waits only: the layout is encoded below)

BATCH, WATERMARK, BARRIER, END = 1, 2, 3, 4
BIGINT, DOUBLE, BOOLEAN, VARCHAR, TIMESTAMP, ROW = 1, 2, 3, 4, 5, 6
WIDTH = {BIGINT: 8, DOUBLE: 8, BOOLEAN: 1, TIMESTAMP: 8, ROW: 4}
FMT = {BIGINT: "q", DOUBLE: "d", BOOLEAN: "B", TIMESTAMP: "q", ROW: "I"}
DEADLINE = 30.0  # seconds any one step may take


def align(n):
    return (n + 63) // 64 * 64


def make_ring(path, capacity):
    header = bytearray(4096)
    header[0:8] = b"BARGERNG"
    struct.pack_into("<IIQ", header, 8, 1, 4096, capacity)
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(4096 + capacity)


def encode_batch(seq, columns):
    """A BATCH message of `columns`: [(name, type, values)], None values being NULL."""
    rows = len(columns[0][2]) if columns else 0
    at = align(64 + 64 * len(columns))
    body = bytearray()
    descriptors = []

    def put(blob):
        nonlocal at
        start = at
        body.extend(blob)
        body.extend(b"\0" * (align(len(blob)) - len(blob)))
        at += align(len(blob))
        return start

    for name, type_, values in columns:
        name_off = put(name.encode())
        validity = 0
        if any(v is None for v in values):
            bits = bytearray((rows + 7) // 8)
            for i, v in enumerate(values):
                if v is not None:
                    bits[i >> 3] |= 1 << (i & 7)
            validity = put(bytes(bits))
        data = data_bytes = 0
        if type_ == VARCHAR:
            blobs = [(v or "").encode() for v in values]
            offsets = [0]
            for b in blobs:
                offsets.append(offsets[-1] + len(b))
            values_off = put(struct.pack("<%dI" % (rows + 1), *offsets))
            data_bytes = offsets[-1]
            data = put(b"".join(blobs))
        else:
            zero = 0.0 if type_ == DOUBLE else 0
            fixed = [zero if v is None else (int(v) if type_ == BOOLEAN else v) for v in values]
            values_off = put(struct.pack("<%d%s" % (rows, FMT[type_]), *fixed))
        descriptors.append(struct.pack("<IIQQQQQ16x", type_, len(name.encode()), name_off,
                                       validity, values_off, data, data_bytes))
    head = struct.pack("<IIQQqQII16x", BATCH, 1, at, seq, 0, rows, len(columns), 0)
    table = b"".join(descriptors)
    table += b"\0" * (align(64 + len(table)) - 64 - len(table))
    msg = head + table + bytes(body)
    assert len(msg) == at
    return msg


def decode_batch(buf):
    """(header dict, {name: (type, [values])}) of a BATCH message in `buf`."""
    kind, flags, nbytes, seq, value, rows, ncols, _ = struct.unpack_from("<IIQQqQII16x", buf, 0)
    assert kind == BATCH and nbytes % 64 == 0, (kind, nbytes)
    cols = {}
    for i in range(ncols):
        type_, name_bytes, name_off, validity, values, data, data_bytes = struct.unpack_from(
            "<IIQQQQQ16x", buf, 64 + 64 * i)
        for off in (name_off, validity, values, data):
            assert off % 64 == 0 and off <= nbytes, off
        name = bytes(buf[name_off:name_off + name_bytes]).decode()
        if type_ == VARCHAR:
            offsets = struct.unpack_from("<%dI" % (rows + 1), buf, values)
            assert offsets[0] == 0 and offsets[-1] == data_bytes
            vals = [bytes(buf[data + offsets[r]:data + offsets[r + 1]]).decode()
                    for r in range(rows)]
        else:
            vals = list(struct.unpack_from("<%d%s" % (rows, FMT[type_]), buf, values))
            if type_ == BOOLEAN:
                assert all(v in (0, 1) for v in vals), vals
                vals = [bool(v) for v in vals]
        if validity:
            vals = [v if (buf[validity + (r >> 3)] >> (r & 7)) & 1 else None
                    for r, v in enumerate(vals)]
        cols[name] = (type_, vals)
    return {"kind": kind, "flags": flags, "seq": seq, "rows": rows, "bytes": nbytes}, cols


class FakeBarge:
    """barge's side of one replica: writes `in`, reads `out`, acknowledges answered messages."""

    def __init__(self, directory, alive, in_capacity=1 << 20, out_capacity=1 << 20):
        self.alive = alive  # raises when the stage died
        make_ring(os.path.join(directory, "in"), in_capacity)
        make_ring(os.path.join(directory, "out"), out_capacity)
        self.in_ = bs._Ring(os.path.join(directory, "in"))
        self.out = bs._Ring(os.path.join(directory, "out"))
        self.seq = 0
        self.unanswered = []  # (seq, kind, value, end of the message in `in`)
        self.parts = []
        self.replies = []     # (kind, seq, value or (header, columns) merged over parts)

    def _send(self, msg, kind, value):
        while True:
            at = self.in_.reserve(len(msg), timeout=0)
            if at is not None:
                break
            self._receive(DEADLINE)
        self.in_.mm[at:at + len(msg)] = msg
        end = self.in_.load64(64) + len(msg)
        self.unanswered.append((self.seq, kind, value, end))
        self.in_.publish(len(msg))

    def batch(self, columns):
        self.seq += 1
        self._send(encode_batch(self.seq, columns), BATCH, None)
        return self.seq

    def control(self, kind, value=0):
        self.seq += 1
        self._send(struct.pack("<IIQQqQII16x", kind, 1, 64, self.seq, value, 0, 0, 0), kind,
                   value)
        return self.seq

    def _receive(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            at = self.out.peek(0.05)
            if at is not None:
                break
            self.alive()
            if time.monotonic() > deadline:
                raise TimeoutError("the stage sent nothing for %s s" % timeout)
        kind, flags, nbytes, seq, value = struct.unpack_from("<IIQQq", self.out.mm, at)
        assert self.unanswered, "a reply for nothing"
        want_seq, want_kind, want_value, end = self.unanswered[0]
        assert (seq, kind) == (want_seq, want_kind), ((seq, kind), (want_seq, want_kind))
        if kind == BATCH:
            self.parts.append(decode_batch(self.out.mm[at:at + nbytes]))
        else:
            assert nbytes == 64 and flags == 1 and value == want_value, (nbytes, flags, value)
        self.out.release(nbytes)
        self.out.store64(192, self.out.load64(128))  # ack what was read
        if kind != BATCH or flags & 1:
            self.unanswered.pop(0)
            self.in_.store64(192, end)
            if kind == BATCH:
                self.replies.append((kind, seq, self.parts))
                self.parts = []
            else:
                self.replies.append((kind, seq, value))

    def drain(self):
        while self.unanswered:
            self._receive(DEADLINE)


def merged(parts):
    """One reply's parts as {name: [values]}; checks that only the last is marked last."""
    for i, (header, _) in enumerate(parts):
        assert bool(header["flags"] & 1) == (i == len(parts) - 1), [h for h, _ in parts]
    out = {}
    for _, cols in parts:
        for name, (_, vals) in cols.items():
            out.setdefault(name, []).extend(vals)
    return out


def types(parts):
    return {name: t for name, (t, _) in parts[0][1].items()}


class StageTestCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="barge-stage-py-test-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def start(self, body, env=None, hide=(), **ring):
        """Starts `body` (a stage script) on fresh rings; `hide` lists modules it must not see."""
        self.barge = FakeBarge(self.dir, self._alive, **ring)
        prelude = "import sys\nsys.path.insert(0, %r)\n" % HERE
        for m in hide:
            prelude += "sys.modules[%r] = None\n" % m
        script = prelude + "import barge_stage\n" + textwrap.dedent(body)
        e = dict(os.environ, BARGE_STAGE_DIR=self.dir)
        e.pop("BARGE_STAGE_OUTPUT", None)
        e.update(env or {})
        self.proc = subprocess.Popen([sys.executable, "-c", script], env=e,
                                     stderr=subprocess.PIPE, text=True)
        self.addCleanup(self._stop)
        return self.barge

    def _alive(self):
        if self.proc.poll() is not None and self.proc.returncode != 0:
            raise AssertionError("the stage exited with %d: %s"
                                 % (self.proc.returncode, self.proc.stderr.read()))

    def _stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stderr.close()

    def finish(self):
        """Sends END, reads everything, and checks that the stage exited 0."""
        self.barge.control(END)
        self.barge.drain()
        try:
            code = self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.fail("the stage did not exit after END")
        err = self.proc.stderr.read()
        self.assertEqual(code, 0, err)
        self.assertEqual(self.barge.replies[-1][0], END)
        return self.barge.replies

    def failure(self):
        """Waits for the stage to exit non-zero; its stderr."""
        try:
            code = self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.fail("the stage did not fail")
        self.assertNotEqual(code, 0)
        return self.proc.stderr.read()


MIXED = [
    ("n", BIGINT, [1, 2, 3, 4, 5]),
    ("i", BIGINT, [10, None, -30, None, 2 ** 61]),
    ("d", DOUBLE, [0.5, 1.5, None, float("inf"), -2.25]),
    ("b", BOOLEAN, [True, False, None, True, False]),
    ("s", VARCHAR, ["a", "", None, "héllo", "日本"]),
    ("t", TIMESTAMP, [0, 1700000000123, None, -1, 86400000]),
]


class MapBatchesPandas(StageTestCase):
    def test_every_type_with_nulls_round_trips_and_is_transformed(self):
        b = self.start("""
            import numpy as np, pandas as pd, mmap
            def fn(df):
                assert list(df.columns) == ["n", "i", "d", "b", "s", "t"], df.columns
                assert str(df["i"].dtype) == "Int64" and str(df["d"].dtype) == "Float64"
                assert str(df["b"].dtype) == "boolean" and df["s"].dtype == object
                assert str(df["t"].dtype) == "datetime64[ns, UTC]", df["t"].dtype
                # Zero-copy, read-only views on the ring.
                n = df["n"].to_numpy()
                assert not n.flags.writeable
                base = n
                while getattr(base, "base", None) is not None:
                    base = base.base
                assert isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap), base
                out = pd.DataFrame({
                    "n": df["n"] * 2,
                    "i": df["i"] * 2,
                    "d": df["d"] + 1,
                    "b": ~df["b"],
                    "s": df["s"].str.upper(),
                    "t": df["t"] + pd.Timedelta(days=1),
                })
                return out
            barge_stage.map_batches(fn)
        """)
        b.batch(MIXED)
        replies = self.finish()
        kind, _, parts = replies[0]
        self.assertEqual(kind, BATCH)
        self.assertEqual(types(parts), {"n": BIGINT, "i": BIGINT, "d": DOUBLE, "b": BOOLEAN,
                                        "s": VARCHAR, "t": TIMESTAMP})
        got = merged(parts)
        self.assertEqual(got["n"], [2, 4, 6, 8, 10])
        self.assertNotIn("__row", got)  # one for one
        self.assertEqual(got["i"], [20, None, -60, None, 2 ** 62])
        self.assertEqual(got["d"], [1.5, 2.5, None, float("inf"), -1.25])
        self.assertEqual(got["b"], [False, True, None, False, True])
        self.assertEqual(got["s"], ["A", "", None, "HÉLLO", "日本"])
        day = 86400000
        self.assertEqual(got["t"], [day, 1700000000123 + day, None, day - 1, 2 * day])

    def test_filtered_reordered_and_repeated_rows_say_where_they_came_from(self):
        b = self.start("""
            import pandas as pd
            def fn(df):
                kind = df["k"].iloc[0]
                if kind == 0:
                    return df[df["v"] % 3 == 0]                     # filtered
                if kind == 1:
                    return df.iloc[::-1]                            # reordered
                if kind == 2:
                    return pd.concat([df, df.iloc[:2]])             # repeated
                if kind == 3:
                    return None                                     # none
                out = df.reset_index(drop=True).head(2)
                out["__row"] = [4, 0]                               # explicit
                return out
            barge_stage.map_batches(fn)
        """)
        for kind in range(5):
            b.batch([("k", BIGINT, [kind] * 6), ("v", BIGINT, [0, 1, 2, 3, 4, 5])])
        replies = self.finish()
        got = [merged(p) for _, _, p in replies[:5]]
        self.assertEqual(got[0], {"k": [0, 0], "v": [0, 3], "__row": [0, 3]})
        self.assertEqual(got[1]["v"], [5, 4, 3, 2, 1, 0])
        self.assertEqual(got[1]["__row"], [5, 4, 3, 2, 1, 0])
        self.assertEqual(got[2]["__row"], [0, 1, 2, 3, 4, 5, 0, 1])
        self.assertEqual(got[3], {"k": [], "v": [], "__row": []})
        self.assertEqual(types(replies[3][2]), {"k": BIGINT, "v": BIGINT, "__row": ROW})
        self.assertEqual(got[4], {"k": [4, 4], "v": [0, 1], "__row": [4, 0]})

    def test_large_replies_go_in_parts_each_saying_where_rows_came_from(self):
        b = self.start("""
            def fn(df):
                df["w"] = df["v"] * 3
                df["s"] = df["v"].astype(str)
                return df
            barge_stage.map_batches(fn)
        """, out_capacity=64 << 10)
        n = 6000
        b.batch([("v", BIGINT, list(range(n)))])
        b.control(WATERMARK, 42)
        replies = self.finish()
        kind, _, parts = replies[0]
        self.assertGreater(len(parts), 2)
        for header, _ in parts:
            self.assertLessEqual(header["bytes"], 32 << 10)
        got = merged(parts)
        self.assertEqual(got["v"], list(range(n)))
        self.assertEqual(got["w"], [3 * v for v in range(n)])
        self.assertEqual(got["s"], [str(v) for v in range(n)])
        self.assertEqual(got["__row"], list(range(n)))
        self.assertEqual(replies[1], (WATERMARK, 2, 42))

    def test_control_messages_are_echoed_in_order_through_a_small_wrapping_ring(self):
        b = self.start("""
            barge_stage.map_batches(lambda df: df.assign(v=df["v"] + 1))
        """, in_capacity=64 << 10, out_capacity=64 << 10)
        sent = []
        for i in range(300):
            if i % 7 == 0:
                sent.append((WATERMARK, b.control(WATERMARK, 1000 + i)))
            if i % 50 == 0:
                sent.append((BARRIER, b.control(BARRIER, i)))
            sent.append((BATCH, b.batch([("v", BIGINT, list(range(i, i + 150)))])))
        replies = self.finish()
        self.assertEqual([(k, s) for k, s, _ in replies[:-1]], sent)
        for kind, seq, body in replies[:-1]:
            if kind == BATCH:
                v = merged(body)["v"]
                self.assertEqual(v[1:], [x + 1 for x in v[:-1]])
        # The rings wrapped several times: more bytes went through than they hold.
        self.assertGreater(b.in_.load64(128), 4 * (64 << 10))

    def test_in_place_writes_are_refused_with_a_hint_and_copy_allows_them(self):
        self.start("""
            def fn(df):
                df.loc[df["v"] > 1, "v"] = 0
                return df
            barge_stage.map_batches(fn)
        """).batch([("v", BIGINT, [1, 2, 3])])
        err = self.failure()
        self.assertIn("read-only views on barge's ring", err)

    def test_copy_gives_writable_columns(self):
        b = self.start("""
            def fn(df):
                df.loc[df["v"] > 1, "v"] = 0
                return df
            barge_stage.map_batches(fn, copy=True)
        """)
        b.batch([("v", BIGINT, [1, 2, 3])])
        replies = self.finish()
        self.assertEqual(merged(replies[0][2])["v"], [1, 0, 0])

    def test_declared_output_converts_when_nothing_is_lost_and_names_what_is_wrong(self):
        output = '[{"name":"v","type":"DOUBLE"},{"name":"m","type":"BIGINT"},' \
                 '{"name":"e","type":"VARCHAR"}]'
        b = self.start("""
            import numpy as np, pandas as pd
            def fn(df):
                return pd.DataFrame({"v": df["v"], "m": df["v"] / 1.0 * np.where(df["v"] > 1, 1, np.nan),
                                     "e": [None] * len(df)})
            barge_stage.map_batches(fn)
        """, env={"BARGE_STAGE_OUTPUT": output})
        b.batch([("v", BIGINT, [1, 2, 3])])
        replies = self.finish()
        self.assertEqual(types(replies[0][2]), {"v": DOUBLE, "m": BIGINT, "e": VARCHAR})
        self.assertEqual(merged(replies[0][2]), {"v": [1.0, 2.0, 3.0], "m": [None, 2, 3],
                                                 "e": [None, None, None]})

    def test_an_undeclared_column_stops_the_stage_naming_it(self):
        self.start("""
            barge_stage.map_batches(lambda df: df.assign(extra=1))
        """, env={"BARGE_STAGE_OUTPUT": '[{"name":"v","type":"BIGINT"}]'}).batch(
            [("v", BIGINT, [1])])
        self.assertIn("returned column 'extra', which the stage's output does not declare",
                      self.failure())

    def test_an_index_that_is_not_row_positions_is_an_error(self):
        self.start("""
            barge_stage.map_batches(lambda df: df[df["v"] > 1].set_index("v"))
        """).batch([("v", BIGINT, [1, 2, 3]), ("w", DOUBLE, [1.0, 2.0, 3.0])])
        self.assertIn("names row", self.failure())


class MapBatchesNumpy(StageTestCase):
    def test_without_pandas_columns_are_numpy_arrays_and_masked_arrays(self):
        b = self.start("""
            import numpy as np
            def fn(cols):
                assert isinstance(cols, dict)
                assert isinstance(cols["i"], np.ma.MaskedArray) and cols["n"].dtype == np.int64
                assert cols["t"].dtype == np.dtype("datetime64[ms]")
                assert not cols["n"].flags.writeable
                keep = np.flatnonzero(cols["n"] % 2 == 1)
                return {"n": cols["n"][keep] * 10, "i": cols["i"][keep],
                        "s": cols["s"][keep], "t": cols["t"][keep], "__row": keep}
            barge_stage.map_batches(fn)
        """, hide=("pandas",))
        b.batch(MIXED)
        replies = self.finish()
        got = merged(replies[0][2])
        self.assertEqual(got, {"n": [10, 30, 50], "i": [10, -30, 2 ** 61],
                               "s": ["a", None, "日本"], "t": [0, None, 86400000],
                               "__row": [0, 2, 4]})


class MapRecords(StageTestCase):
    BODY = """
        import datetime
        def fn(r):
            if r["n"] == 2:
                return None
            return {"n": r["n"], "twice": None if r["i"] is None else r["i"] * 2,
                    "s": r["s"], "b": r["b"], "later": r["t"] and r["t"] + datetime.timedelta(seconds=1),
                    "half": r["n"] / 2}
        barge_stage.map(fn)
    """

    def check(self, replies):
        got = merged(replies[0][2])
        self.assertEqual(got["n"], [1, 3, 4, 5])
        self.assertEqual(got["twice"], [20, -60, None, 14])
        self.assertEqual(got["s"], ["a", None, "héllo", "日本"])
        self.assertEqual(got["b"], [True, None, True, False])
        self.assertEqual(got["later"], [1000, None, 999, 86401000])
        self.assertEqual(got["half"], [0.5, 1.5, 2.0, 2.5])
        self.assertEqual(got["__row"], [0, 2, 3, 4])
        self.assertEqual(types(replies[0][2])["later"], TIMESTAMP)

    def test_per_record_with_numpy_and_pandas(self):
        b = self.start(self.BODY)
        b.batch(MIXED[:1] + [("i", BIGINT, [10, None, -30, None, 7])] + MIXED[2:])
        self.check(self.finish())

    def test_per_record_with_the_standard_library_only(self):
        b = self.start(self.BODY, hide=("numpy", "pandas"))
        b.batch(MIXED[:1] + [("i", BIGINT, [10, None, -30, None, 7])] + MIXED[2:])
        b.batch([("n", BIGINT, [2, 2]), ("i", BIGINT, [1, 1]), ("d", DOUBLE, [0.0, 0.0]),
                 ("b", BOOLEAN, [True, True]), ("s", VARCHAR, ["x", "y"]),
                 ("t", TIMESTAMP, [0, 0])])
        replies = self.finish()
        self.check(replies)
        # Every row dropped: an empty reply, the input's fields and types.
        self.assertEqual(merged(replies[1][2]).get("__row", []), [])
        self.assertEqual(types(replies[1][2])["n"], BIGINT)

    OUTPUT = '[{"name":"id","type":"BIGINT"},{"name":"v","type":"DOUBLE"}]'
    INPUT = [("id", BIGINT, [1, 2, 3]), ("v", DOUBLE, [0.5, 1.5, 2.5])]

    def map_failure(self, fn, output=OUTPUT):
        """The stderr of a map stage that fails on INPUT; `output` None: nothing declared."""
        env = None if output is None else {"BARGE_STAGE_OUTPUT": output}
        self.start("barge_stage.map(%s)\n" % fn, env=env).batch(self.INPUT)
        return self.failure()

    def test_a_declared_field_left_out_stops_the_stage_naming_it(self):
        self.assertIn("map's function returned no field 'v' (the stage's output declares it; "
                      "give None for NULL)", self.map_failure('lambda r: {"id": r["id"]}'))

    def test_an_undeclared_field_stops_the_stage_naming_it(self):
        self.assertIn("map's function returned field 'bogus', which the stage's output does not "
                      "declare (declare it under output: in the spec)",
                      self.map_failure('lambda r: dict(r, bogus=1)'))

    def test_the_input_fields_under_a_narrower_output_stop_the_stage_naming_one(self):
        self.assertIn("returned field 'v', which the stage's output does not declare",
                      self.map_failure("lambda r: r", '[{"name":"id","type":"BIGINT"}]'))

    def test_another_field_in_place_of_a_declared_one_is_named(self):
        self.assertIn("returned field 'w', which the stage's output does not declare",
                      self.map_failure('lambda r: {"id": r["id"], "w": 1.0}'))

    SHRINKS = 'lambda r: {"id": r["id"], "v": r["v"]} if r["id"] < 3 else {"id": r["id"]}'

    def test_a_row_unlike_the_rows_before_it_is_an_error(self):
        self.assertIn("returned no field 'v' (the stage's output declares it",
                      self.map_failure(self.SHRINKS))

    def test_without_a_declared_output_the_first_row_says_what_every_row_has(self):
        self.assertIn("returned no field 'v' (the first row it returned has it",
                      self.map_failure(self.SHRINKS, output=None))

    def test_a_row_with_a_field_the_first_row_lacks_is_an_error(self):
        fn = 'lambda r: {"id": r["id"]} if r["id"] == 1 else {"id": r["id"], "x": 1}'
        self.assertIn("returned field 'x', which the first row it returned does not have",
                      self.map_failure(fn, output=None))

    def test_exactly_the_declared_fields_in_any_order_pass(self):
        b = self.start("""
            barge_stage.map(lambda r: {"v": None, "id": r["id"] * 10})
        """, env={"BARGE_STAGE_OUTPUT": self.OUTPUT})
        b.batch(self.INPUT)
        replies = self.finish()
        self.assertEqual(merged(replies[0][2]), {"id": [10, 20, 30], "v": [None, None, None]})

    def test_a_failing_function_stops_the_stage_with_its_traceback(self):
        self.start("""
            barge_stage.map(lambda r: 1 // 0)
        """).batch([("n", BIGINT, [1])])
        self.assertIn("ZeroDivisionError", self.failure())


class Rings(unittest.TestCase):
    def test_a_file_that_is_not_a_ring_is_refused(self):
        d = tempfile.mkdtemp(prefix="barge-stage-py-test-")
        self.addCleanup(shutil.rmtree, d, True)
        with open(os.path.join(d, "in"), "wb") as f:
            f.write(b"NOTARING" + b"\0" * 8192)
        make_ring(os.path.join(d, "out"), 1 << 16)
        with self.assertRaisesRegex(bs.ProtocolError, "is not a barge ring"):
            bs.Stage(d)

    def test_a_wait_without_data_returns_after_its_timeout(self):
        d = tempfile.mkdtemp(prefix="barge-stage-py-test-")
        self.addCleanup(shutil.rmtree, d, True)
        make_ring(os.path.join(d, "in"), 1 << 16)
        make_ring(os.path.join(d, "out"), 1 << 16)
        s = bs.Stage(d)
        start = time.monotonic()
        self.assertIsNone(s.next(timeout=0.05))
        self.assertLess(time.monotonic() - start, 1.0)


if __name__ == "__main__":
    unittest.main()
