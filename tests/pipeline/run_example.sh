#!/usr/bin/env bash
# Runs an example of examples/pipelines as a user would and compares its output with the expected
# file beside it (rows sorted: parallel windows emit in any order; a CSV keeps its header first).
#   run_example.sh BARGE EXAMPLE_DIR orders|errors|sessions
set -euo pipefail
barge=$1
examples=$2
name=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$examples"/. "$work"/
cd "$work"
sorted() { { head -n "$1" "$2"; tail -n +"$(($1 + 1))" "$2" | LC_ALL=C sort; }; }
case "$name" in
  orders)
    "$barge" pipeline run -q orders.yaml
    diff <(sorted 0 orders.expected.jsonl) <(sorted 0 out.jsonl)
    ;;
  errors)
    # stdin to stdout, in a shell pipeline.
    cat logs.jsonl | "$barge" pipeline run -q errors.yaml | LC_ALL=C sort > got
    diff errors.expected got
    ;;
  sessions)
    "$barge" pipeline run -q sessions.yaml
    diff <(sorted 1 sessions.expected.csv) <(sorted 1 sessions.csv)
    ;;
  *)
    echo "unknown example $name" >&2
    exit 2
    ;;
esac
echo "example $name: ok"
