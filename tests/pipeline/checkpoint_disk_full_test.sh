#!/usr/bin/env bash
# Checkpoints and a full disk: the output lives on a small tmpfs that a filler file fills up; the
# run fails with a clear error; once the filler is removed, the next run resumes and the output is
# exactly that of an uninterrupted run. Needs root (mount); skipped otherwise.
#   checkpoint_disk_full_test.sh BARGE
set -uo pipefail
barge=$(realpath "$1")
if [ "$(id -u)" -ne 0 ]; then
  echo "skipped: needs root to mount a tmpfs"
  exit 0
fi
work=$(mktemp -d)
cleanup() {
  # Never remove files through a live mount: unmount first, and keep the directory if that fails.
  if mountpoint -q "$work/small"; then umount "$work/small" || { echo "umount failed"; return; }; fi
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
mkdir small
mount -t tmpfs -o size=8m tmpfs small || { echo "skipped: cannot mount a tmpfs"; exit 0; }

python3 -c "
import random
r = random.Random(5)
with open('events.jsonl', 'w') as f:
    for i in range(200000):
        f.write('{\"ts\":%d,\"key\":\"k%d\",\"value\":%d}\n' % (i * 5 - r.randrange(1500), r.randrange(300), r.randrange(1000)))
"
cat > spec.yaml <<'EOF'
name: full
parallelism: 2
source:
  file: events.jsonl
  event_time: {field: ts, max_delay: 2s}
steps:
  - key_by: [key]
  - window: {tumbling: 10s}
    aggregate: {n: count(*), total: sum(value)}
sink:
  file: small/out.jsonl
checkpoint: {interval: 50ms, dir: ck, keep: 3}
EOF
sed '/^checkpoint/d; s#small/out.jsonl#ref.jsonl#' spec.yaml > ref.yaml
"$barge" pipeline run -q ref.yaml || { echo "FAIL: reference run"; exit 1; }

# Leave about 1.5 MB for the 2.2 MB of output (once freed, 8 MB hold the output and the parts of
# the checkpoints not yet committed).
head -c 6800000 /dev/zero > small/filler
"$barge" pipeline run -q spec.yaml 2> err.txt
rc=$?
if [ "$rc" -eq 0 ]; then
  echo "FAIL: the run succeeded on a full disk"
  exit 1
fi
if ! grep -q "No space left on device" err.txt; then
  echo "FAIL: the error does not say the disk is full:"
  cat err.txt
  exit 1
fi
echo "full disk: $(head -1 err.txt)"
rm small/filler
"$barge" pipeline run -q spec.yaml 2> err2.txt || { echo "FAIL: resume after freeing space:"; cat err2.txt; exit 1; }
grep -q "resuming from checkpoint" err2.txt || echo "note: the failed run had completed no checkpoint"
if ! cmp -s <(sort small/out.jsonl) <(sort ref.jsonl); then
  echo "FAIL: output after resuming differs from an uninterrupted run"
  exit 1
fi
if ls -a small | grep -q barge-part; then
  echo "FAIL: uncommitted parts left"
  exit 1
fi
echo "PASS: full disk fails clearly, and the resumed output is exact"
