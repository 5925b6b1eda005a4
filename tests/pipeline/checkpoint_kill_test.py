#!/usr/bin/env python3
"""Exactly-once after kill -9: keyed windows at parallelism 2 over a file source, with checkpoints.

Each trial runs the pipeline from scratch, kills it with SIGKILL at a random moment (one or
more times), resumes it until it completes, and compares the output with one uninterrupted run:
equal as a multiset, and per key in the same order. Also checks that no uncommitted part file
is left beside the output and that the checkpoints of a completed run are removed.

    checkpoint_kill_test.py BARGE [TRIALS] [SEED]
"""
import collections
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SPEC = """\
name: kill
parallelism: 2
source:
  file: events.jsonl
  event_time: {field: ts, max_delay: 2s}
steps:
  - key_by: [key]
  - window: {tumbling: 10s}
    aggregate:
      n: count(*)
      total: sum(value)
      top: max(value)
      first_value: first(value)
sink:
  file: out.jsonl
checkpoint: {interval: 100ms, dir: ck, keep: 3}
"""


def write_input(path, records, keys, rng):
    with open(path, "w") as f:
        for i in range(records):
            ts = i * 5 - rng.randrange(0, 1500)  # up to 1.5s out of order
            f.write('{"ts":%d,"key":"k%d","value":%d}\n' % (ts, rng.randrange(keys), rng.randrange(1000)))


def read_output(path):
    rows = []
    with open(path) as f:
        for line in f:
            rows.append(json.loads(line))
    return rows


def per_key(rows):
    by_key = collections.defaultdict(list)
    for r in rows:
        by_key[r["key"]].append(json.dumps(r, sort_keys=True))
    return by_key


def run(barge, work, args, kill_after=None):
    """Runs the pipeline; with kill_after, SIGKILLs it after that many seconds if still running.
    Returns the exit code (-9 when killed)."""
    p = subprocess.Popen([barge, "pipeline", "run", "-q", "spec.yaml"] + args, cwd=work,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if kill_after is None:
            _, err = p.communicate(timeout=300)
        else:
            try:
                _, err = p.communicate(timeout=kill_after)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if p.returncode not in (0, -signal.SIGKILL):
        sys.stderr.write(err.decode(errors="replace"))
    return p.returncode, err.decode(errors="replace")


def main():
    barge = os.path.abspath(sys.argv[1])
    trials = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 11
    rng = random.Random(seed)
    work = tempfile.mkdtemp(prefix="barge-ckpt-")
    try:
        with open(os.path.join(work, "spec.yaml"), "w") as f:
            f.write(SPEC)
        write_input(os.path.join(work, "events.jsonl"), 600_000, 3000, rng)

        start = time.monotonic()
        rc, err = run(barge, work, ["--fresh"])
        duration = time.monotonic() - start
        if rc != 0:
            print("FAIL: the uninterrupted run failed:", err)
            return 1
        reference = read_output(os.path.join(work, "out.jsonl"))
        if os.path.exists(os.path.join(work, "ck")) and any(
                n.startswith("chk-") for n in os.listdir(os.path.join(work, "ck"))):
            print("FAIL: a completed run left its checkpoints")
            return 1
        ref_multiset = collections.Counter(json.dumps(r, sort_keys=True) for r in reference)
        ref_keys = per_key(reference)
        print(f"reference: {len(reference)} results in {duration:.2f}s")

        failures = 0
        kills_total = 0
        for trial in range(trials):
            os.remove(os.path.join(work, "out.jsonl"))
            args = ["--fresh"]
            kills = 0
            for attempt in range(50):
                # Kill at a random moment of a run (sometimes very early, while it starts),
                # at most three times per trial; then let it finish.
                kill_after = None
                if kills < 1 + (trial % 3):
                    kill_after = rng.uniform(0.02, duration * 0.8)
                rc, err = run(barge, work, args, kill_after)
                args = []
                if rc == 0 and kills == 0:
                    # It finished before the kill: start the trial over, so every trial is killed.
                    os.remove(os.path.join(work, "out.jsonl"))
                    args = ["--fresh"]
                    continue
                if rc == 0:
                    break
                if rc != -signal.SIGKILL:
                    print(f"FAIL: trial {trial}: run exited {rc}: {err}")
                    failures += 1
                    break
                kills += 1
            kills_total += kills
            out = read_output(os.path.join(work, "out.jsonl"))
            multiset = collections.Counter(json.dumps(r, sort_keys=True) for r in out)
            if multiset != ref_multiset:
                missing = sum((ref_multiset - multiset).values())
                extra = sum((multiset - ref_multiset).values())
                print(f"FAIL: trial {trial} ({kills} kills): {missing} results missing, "
                      f"{extra} extra")
                failures += 1
                continue
            if per_key(out) != ref_keys:
                print(f"FAIL: trial {trial} ({kills} kills): a key's results are out of order")
                failures += 1
                continue
            leftovers = [n for n in os.listdir(work) if ".barge-part-" in n]
            if leftovers:
                print(f"FAIL: trial {trial}: uncommitted parts left: {leftovers}")
                failures += 1
            print(f"trial {trial}: {kills} kill(s), output exact")
        print(f"{trials - failures} of {trials} trials exact ({kills_total} kills)")
        return 1 if failures else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
