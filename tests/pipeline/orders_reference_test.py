#!/usr/bin/env python3
"""The issue's orders spec against a reference computation written here, independently of barge.

Generates a CSV of orders (out of order, with late records, bad values, wrong field counts and
missing times), runs `barge pipeline run` on the spec exactly as the issue writes it at parallelism
1 and 2 with each on_error mode, and compares the output, as a multiset, with what this file
computes record by record from Flink's window rules. Standard library only.

usage: orders_reference_test.py BARGE [SEED]
"""
import collections
import decimal
import json
import os
import random
import subprocess
import sys
import tempfile

SPEC = """name: orders
parallelism: 2
source:
  file: {path: orders.csv, format: csv}          # csv (header row names the fields), jsonl, lines
  event_time: {field: ts, max_delay: 2s}          # ts in milliseconds since the epoch
steps:
  - filter: amount > 0 AND country <> 'XX'
  - select:
      user: user
      country: upper(country)
      cents: CAST(round(amount * 100) AS BIGINT)
      ts: ts
  - key_by: [country]
  - window: {tumbling: 10s, allowed_lateness: 1s}
    aggregate:
      orders: count(*)
      total_cents: sum(cents)
      biggest: max(cents)
      mean: avg(cents)
sink:
  file: {path: out.jsonl, format: jsonl}
on_error: fail                                    # fail | skip | {dead_letter: PATH}
"""

MAX_DELAY = 2000
LATENESS = 1000
SIZE = 10000


def generate(seed, rows=20000):
    """CSV text and, per line number, what the line is: ('ok', ts, user, country, amount) or
    ('bad', reason)."""
    rnd = random.Random(seed)
    lines = ["ts,user,country,amount"]
    truth = {}
    base = 1_700_000_000_000
    clock = base
    for i in range(rows):
        line_no = len(lines) + 1
        clock += rnd.randint(0, 40)
        ts = clock
        r = rnd.random()
        if r < 0.08:
            ts -= rnd.randint(0, 2500)  # out of order, within the delay
        elif r < 0.10:
            ts -= rnd.randint(3000, 14000)  # late, some within the lateness
        user = "u%d" % rnd.randint(1, 50)
        country = rnd.choice(["de", "fr", "us", "it", "XX", "xx", "Es"])
        amount = "%.2f" % rnd.uniform(-5, 120)
        kind = rnd.random()
        if kind < 0.01:
            lines.append("%d,%s,%s,abc" % (ts, user, country))
            truth[line_no] = ("bad", "amount")
        elif kind < 0.015:
            lines.append("%d,%s,%s" % (ts, user, country))
            truth[line_no] = ("bad", "fields")
        elif kind < 0.02:
            lines.append(",%s,%s,%s" % (user, country, amount))
            truth[line_no] = ("bad", "ts")
        elif kind < 0.03:
            lines.append("%d,%s,%s," % (ts, user, country))
            truth[line_no] = ("ok", ts, user, country, None)
        else:
            lines.append("%d,%s,%s,%s" % (ts, user, country, amount))
            truth[line_no] = ("ok", ts, user, country, float(amount))
    return "\n".join(lines) + "\n", truth


def round_half_away(x):
    """SQL's round(): half away from zero, on the exact binary value of the double."""
    return int(decimal.Decimal(x).quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP))


def reference(truth):
    """Window results of the spec, record by record in file order (Flink's rules)."""
    out = []
    windows = {}  # start -> {"fired": bool, "keys": {country: [count, sum, max]}}
    max_ts = None

    def emit(start, key, st):
        out.append((key, start, start + SIZE, st[0], st[1], st[2], st[1] / st[0]))

    def advance(wm):
        for start in sorted(windows):
            win = windows[start]
            end = start + SIZE
            if end - 1 > wm:
                break
            if not win["fired"]:
                for key, st in win["keys"].items():
                    emit(start, key, st)
                win["fired"] = True
            if end - 1 + LATENESS <= wm:
                del windows[start]

    for line in sorted(truth):
        t = truth[line]
        if t[0] != "ok":
            continue
        _, ts, user, country, amount = t
        max_ts = ts if max_ts is None else max(max_ts, ts)
        wm = max_ts - MAX_DELAY - 1
        if amount is None or not (amount > 0 and country != "XX"):
            continue
        key = country.upper()
        cents = round_half_away(amount * 100)
        advance(wm)
        start = ts - ts % SIZE
        win = windows.get(start)
        if win is None:
            if start + SIZE - 1 + LATENESS <= wm:
                continue  # late: dropped
            win = {"fired": start + SIZE - 1 <= wm, "keys": {}}
            windows[start] = win
        st = win["keys"].setdefault(key, [0, 0, None])
        st[0] += 1
        st[1] += cents
        st[2] = cents if st[2] is None else max(st[2], cents)
        if win["fired"]:
            emit(start, key, st)
    advance(float("inf"))
    return collections.Counter(out)


def read_output(path):
    got = collections.Counter()
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            assert list(r) == ["country", "window_start", "window_end", "orders", "total_cents",
                               "biggest", "mean"], line
            got[(r["country"], r["window_start"], r["window_end"], r["orders"], r["total_cents"],
                 r["biggest"], r["mean"])] += 1
    return got


def run(barge, workdir, spec_text, parallelism):
    spec = os.path.join(workdir, "orders.yaml")
    with open(spec, "w") as f:
        f.write(spec_text)
    out = os.path.join(workdir, "out.jsonl")
    if os.path.exists(out):
        os.unlink(out)
    return subprocess.run([barge, "pipeline", "run", "-q", "--parallelism", str(parallelism), spec],
                          capture_output=True, text=True, timeout=300)


def main():
    barge = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    failures = []
    csv_text, truth = generate(seed)
    expected = reference(truth)
    bad_lines = sorted(line for line, t in truth.items() if t[0] == "bad")
    assert bad_lines and len(expected) > 100
    # The data must exercise what the test claims: late firings (a key emitted twice for a window).
    windows_emitted = collections.Counter((k[0], k[1]) for k in expected.elements())
    assert any(n > 1 for n in windows_emitted.values()), "no late firing in the data"
    with tempfile.TemporaryDirectory() as workdir:
        with open(os.path.join(workdir, "orders.csv"), "w") as f:
            f.write(csv_text)
        for parallelism in (1, 2):
            # fail: stops at the first bad record, naming file, line and step.
            r = run(barge, workdir, SPEC, parallelism)
            want = "orders.csv:%d: source: " % bad_lines[0]
            if r.returncode != 1 or want not in r.stderr:
                failures.append("P=%d fail: exit %d, stderr %r (want %r)" %
                                (parallelism, r.returncode, r.stderr, want))
            # skip: the reference over the good records.
            r = run(barge, workdir, SPEC.replace("on_error: fail ", "on_error: skip "), parallelism)
            if r.returncode != 0:
                failures.append("P=%d skip: exit %d: %s" % (parallelism, r.returncode, r.stderr))
            else:
                got = read_output(os.path.join(workdir, "out.jsonl"))
                if got != expected:
                    failures.append("P=%d skip: %d records differ (missing %s, extra %s)" % (
                        parallelism, sum(((expected - got) + (got - expected)).values()),
                        list((expected - got).items())[:3], list((got - expected).items())[:3]))
            # dead_letter: the same output, and every bad record written with its line.
            dead = os.path.join(workdir, "dead.jsonl")
            r = run(barge, workdir,
                    SPEC.replace("on_error: fail ", "on_error: {dead_letter: dead.jsonl} "),
                    parallelism)
            if r.returncode != 0:
                failures.append("P=%d dead_letter: exit %d: %s" %
                                (parallelism, r.returncode, r.stderr))
                continue
            if read_output(os.path.join(workdir, "out.jsonl")) != expected:
                failures.append("P=%d dead_letter: output differs from the reference" % parallelism)
            with open(dead) as f:
                letters = [json.loads(line) for line in f]
            lines = sorted(l["line"] for l in letters)
            if lines != bad_lines:
                failures.append("P=%d dead_letter: lines %s, want %s" %
                                (parallelism, lines[:10], bad_lines[:10]))
            for l in letters:
                if l["input"] != "orders.csv" or l["step"] != "source" or not l["error"] or \
                        "raw" not in l:
                    failures.append("P=%d dead_letter: bad letter %r" % (parallelism, l))
                    break
    for f in failures:
        print("FAIL:", f)
    if failures:
        sys.exit(1)
    print("ok: %d results, %d bad records, seed %d" % (sum(expected.values()), len(bad_lines), seed))


if __name__ == "__main__":
    main()
