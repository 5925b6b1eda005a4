#!/usr/bin/env bash
# Runs an example of examples/stages as a user would: builds its image with barge build into a
# fresh root, runs its spec, and compares the output (rows sorted) with the expected file.
#   run_stage_example.sh BARGE EXAMPLES_DIR awk-filter|cpp [STAGE_BINARY]
set -euo pipefail
barge=$1
examples=$2
name=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
# The busybox image the awk example builds FROM.
mkdir -p "$work/busybox/bin"
cp /bin/busybox "$work/busybox/bin/"
for applet in sh awk cat; do ln -s busybox "$work/busybox/bin/$applet"; done
tar -C "$work/busybox" -c . | "$barge" --root "$root" import - busybox:latest >/dev/null
cp -r "$examples/$name" "$work/example"
cd "$work/example"
case "$name" in
  awk-filter)
    "$barge" --root "$root" build -q -t awk-filter:1 . >/dev/null
    "$barge" --root "$root" pipeline run -q errors.yaml
    diff <(LC_ALL=C sort errors.expected.jsonl) <(LC_ALL=C sort errors.jsonl)
    ;;
  cpp)
    cp "$4" double
    "$barge" --root "$root" build -q -t double-stage:1 . >/dev/null
    "$barge" --root "$root" pipeline run -q double.yaml
    diff <(LC_ALL=C sort doubled.expected.jsonl) <(LC_ALL=C sort doubled.jsonl)
    ;;
  *)
    echo "unknown example $name" >&2
    exit 2
    ;;
esac
echo "stage example $name: ok"
