#!/usr/bin/env python3
"""Exactly-once after kill -9: keyed windows at parallelism 2 over a file source, with checkpoints.

Each trial runs the pipeline from scratch, kills it with SIGKILL at a random moment (one or
more times), resumes it until it completes, and compares the output with one uninterrupted run:
equal as a multiset, and per key in the same order. Also checks that no uncommitted part file
is left beside the output and that the checkpoints of a completed run are removed.

With --stage, the records pass two container stages first, two replicas each: an awk filter over
the lines protocol (busybox) and the C++ SDK's doubling stage over shared memory (STAGE_BINARY,
examples/stages/cpp/double.cc), so barriers go through both protocols.

    checkpoint_kill_test.py BARGE [TRIALS] [SEED] [--stage STAGE_BINARY]
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

# The same windows behind two stages: keys ending in 7 are dropped by awk, and `amount` (a
# DOUBLE) is doubled by the C++ stage.
STAGE_SPEC = """\
name: kill-stage
parallelism: 2
source:
  file: events.jsonl
  event_time: {field: ts, max_delay: 2s}
steps:
  - select: {ts: ts, key: key, value: value, amount: value * 1.5}
  - stage:
      image: kill-awk:1
      protocol: lines
      parallelism: 2
      command: "awk '{ if ($0 ~ /\\"k[0-9]*7\\"/) print \\"\\"; else print; fflush() }'"
  - stage:
      image: kill-double:1
      parallelism: 2
  - key_by: [key]
  - window: {tumbling: 10s}
    aggregate:
      n: count(*)
      total: sum(value)
      doubled: sum(amount)
      first_value: first(value)
sink:
  file: out.jsonl
checkpoint: {interval: 100ms, dir: ck, keep: 3}
"""


def build_stage_images(barge, root, work, stage_binary):
    """The two stage images, built with barge into `root`: busybox's awk, and the C++ stage."""
    bb = os.path.join(work, "busybox")
    os.makedirs(os.path.join(bb, "bin"))
    shutil.copy("/bin/busybox", os.path.join(bb, "bin", "busybox"))
    for applet in ("sh", "awk"):
        os.symlink("busybox", os.path.join(bb, "bin", applet))
    tar = subprocess.Popen(["tar", "-C", bb, "-c", "."], stdout=subprocess.PIPE)
    subprocess.run([barge, "--root", root, "import", "-", "kill-awk:1"], stdin=tar.stdout,
                   stdout=subprocess.DEVNULL, check=True)
    tar.wait()
    ctx = os.path.join(work, "double-ctx")
    os.makedirs(ctx)
    shutil.copy(stage_binary, os.path.join(ctx, "double"))
    with open(os.path.join(ctx, "Containerfile"), "w") as f:
        f.write('FROM scratch\nCOPY double /app/double\nENTRYPOINT ["/app/double"]\n')
    subprocess.run([barge, "--root", root, "build", "-q", "-t", "kill-double:1", ctx],
                   stdout=subprocess.DEVNULL, check=True)


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
    p = subprocess.Popen(barge + ["pipeline", "run", "-q", "spec.yaml"] + args, cwd=work,
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
    args = sys.argv[1:]
    stage_binary = None
    if "--stage" in args:
        i = args.index("--stage")
        stage_binary = os.path.abspath(args[i + 1])
        del args[i:i + 2]
    barge = [os.path.abspath(args[0])]
    trials = int(args[1]) if len(args) > 1 else 20
    seed = int(args[2]) if len(args) > 2 else 11
    rng = random.Random(seed)
    work = tempfile.mkdtemp(prefix="barge-ckpt-")
    try:
        if stage_binary:
            root = os.path.join(work, "root")
            build_stage_images(barge[0], root, work, stage_binary)
            barge += ["--root", root]
        with open(os.path.join(work, "spec.yaml"), "w") as f:
            f.write(STAGE_SPEC if stage_binary else SPEC)
        write_input(os.path.join(work, "events.jsonl"), 300_000 if stage_binary else 600_000,
                    3000, rng)

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
            if stage_binary:
                # Killed runs leave no stage container behind (each dies with barge).
                ps = subprocess.run(barge + ["ps", "-q"], capture_output=True, text=True)
                if ps.stdout.strip():
                    print(f"FAIL: trial {trial}: containers left running: {ps.stdout.split()}")
                    failures += 1
            print(f"trial {trial}: {kills} kill(s), output exact")
        print(f"{trials - failures} of {trials} trials exact ({kills_total} kills)")
        return 1 if failures else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
