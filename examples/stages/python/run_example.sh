#!/usr/bin/env bash
# The python-stage example end to end, as a user would run it: the base image (debootstrap, or the
# tarball cached under $CACHE_DIR by an earlier run of the same make-base-image.sh), the stage's
# image from the Containerfile, the spec, and its output against the same pipeline with the
# doubling done in SQL instead of the stage. Everything it makes is removed, even on failure.
#   run_example.sh BARGE [CACHE_DIR]
set -euo pipefail
barge=$(realpath "$1")
export CACHE_DIR="${2:-${CACHE_DIR:-/var/cache/barge-tests}}"
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/barge-python-example.XXXXXX")
trap 'rm -rf "$work"' EXIT
export BARGE_ROOT="$work/root"

BARGE="$barge" "$here/make-base-image.sh" python-pandas:12 >/dev/null
"$barge" build -q -t python-double:1 "$here" >/dev/null

cp "$here/double.yaml" "$work/"
cd "$work"
"$barge" pipeline run -q double.yaml &
pid=$!
wait "$pid"
# The run removed its stage directory (rings and SDK) from /dev/shm.
if compgen -G "/dev/shm/barge-stage-$pid-*" >/dev/null; then
  echo "left behind: $(echo /dev/shm/barge-stage-"$pid"-*)" >&2
  exit 1
fi
mv doubled.jsonl stage.jsonl

# The reference: the stage replaced by the same doubling in SQL.
awk '
  /^  - stage:/ { skip = 1
                  print "  - select: {id: id * 2, price: price * 2, weight: weight * 2, qty: qty * 2, label: label}"
                  next }
  skip && /^  [^ ]/ { skip = 0 }
  skip && /^[^ ]/ { skip = 0 }
  !skip { print }' double.yaml > reference.yaml
grep -q "image:" reference.yaml && { echo "the reference still has the stage" >&2; exit 1; }
"$barge" pipeline run -q reference.yaml

rows=$(wc -l < stage.jsonl)
[ "$rows" -eq 200000 ] || { echo "the stage returned $rows rows of 200000" >&2; exit 1; }
diff <(LC_ALL=C sort stage.jsonl) <(LC_ALL=C sort doubled.jsonl) > diff.txt || {
  echo "the stage's output differs from SQL's:" >&2
  head -n 20 diff.txt >&2
  exit 1
}

# Rows a Python stage drops keep their event time (the frame's index becomes __row): windows after
# a pandas filter equal windows after the same filter in SQL; map(fn) per record likewise.
window_spec() {
  cat <<SPEC
source:
  generate: {records: 100000, keys: 20, records_per_second: 20000, max_disorder: 20ms}
  event_time: {field: ts, max_delay: 30ms}
steps:
  - select: {key: key, value: value, ts: ts}
$1
  - key_by: key
  - window: {tumbling: 100ms}
    aggregate: {n: count(*), s: sum(value), f: first(value), l: last(value)}
sink:
  file: {path: $2, format: jsonl}
SPEC
}
window_spec "  - filter: value % 3 = 0" sql.jsonl > sql.yaml
window_spec "  - stage:
      image: python-double:1
      command: [python3, -c, 'import barge_stage; barge_stage.map_batches(lambda df: df[df[\"value\"] % 3 == 0])']
      parallelism: 2
      batch: 10000" pandas.jsonl > pandas.yaml
window_spec "  - stage:
      image: python-double:1
      command: [python3, -c, 'import barge_stage; barge_stage.map(lambda r: r if r[\"value\"] % 3 == 0 else None)']" \
  records.jsonl > records.yaml
for spec in sql pandas records; do "$barge" pipeline run -q "$spec.yaml"; done
windows=$(wc -l < sql.jsonl)
[ "$windows" -gt 100 ] || { echo "only $windows windows" >&2; exit 1; }
for got in pandas records; do
  diff <(LC_ALL=C sort sql.jsonl) <(LC_ALL=C sort "$got.jsonl") > diff.txt || {
    echo "windows after the $got stage differ from SQL's:" >&2
    head -n 20 diff.txt >&2
    exit 1
  }
done
echo "python-stage example: $rows rows, as SQL doubles them; $windows windows after pandas and map filters"
