#!/usr/bin/env bash
# Review of issue 8 (branch review-8): the binary, run as a user would, on inputs that show bugs
# found by the review. Each check names the bug it demonstrates; the script fails while any of
# them is present.
#   review8_cli_test.sh BARGE
set -uo pipefail
barge=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# Bug 6: a JSON Lines record with arrays nested 100,000 deep (a 200 KB line) crashes the whole
# pipeline (SIGSEGV, stack overflow in nlohmann's dump), even under on_error: skip.
python3 -c "
d = 100000
print('{\"ts\":1,\"a\":[1]}')
print('{\"ts\":2,\"a\":' + '[' * d + ']' * d + '}')
print('{\"ts\":3,\"a\":[2]}')" > deep.jsonl
cat > deep.yaml <<'EOF'
source:
  file: deep.jsonl
  schema: {ts: BIGINT, a: VARCHAR}
steps:
  - select: {ts: ts}
on_error: skip
EOF
"$barge" pipeline run -q deep.yaml > deep.out 2> deep.err
rc=$?
if [ "$rc" -ne 0 ]; then
  fail "bug 6: deeply nested JSON: exit $rc (want 0, the line read or skipped as a bad record)"
fi

# Bug 7: Ctrl-C while stdin's first records are awaited (schema inference) exits 1 with a spec
# error ("sin.yaml:2:3: interrupted while reading the first records of stdin") instead of
# stopping cleanly with exit 130 and saying how far it got, as docs/pipelines.md promises.
cat > sin.yaml <<'EOF'
source:
  stdin: jsonl
EOF
mkfifo ff
(sleep 4 > ff &)
"$barge" pipeline run sin.yaml < ff > sin.out 2> sin.err &
pid=$!
sleep 1
kill -INT "$pid"
wait "$pid"
rc=$?
if [ "$rc" -ne 130 ] || ! grep -q "stopped by Ctrl-C" sin.err; then
  fail "bug 7: Ctrl-C during stdin inference: exit $rc, stderr: $(cat sin.err) (want 130, 'stopped by Ctrl-C')"
fi

# Bug 8: with `sources:` of a file and an idle stdin (idle: 1s), once the file has been read
# nothing ever fires: the engine's watermark valve treats "every live input idle" as idle and
# never emits the ended file's watermark, so the file's windows wait for stdin forever.
for i in $(seq 0 99); do echo "{\"ts\":$((i * 100)),\"k\":1}"; done > hist.jsonl
cat > idle.yaml <<'EOF'
sources:
  - file: hist.jsonl
    event_time: {field: ts, max_delay: 0}
  - stdin: jsonl
    schema: {ts: BIGINT, k: BIGINT}
    event_time: {field: ts, max_delay: 0, idle: 500ms}
steps:
  - window: {tumbling: 1s}
    aggregate: {n: count(*)}
sink: {file: idle.jsonl}
EOF
(sleep 6) | timeout -s INT 3 "$barge" pipeline run -q idle.yaml 2> idle.err
lines=$(cat idle.jsonl 2> /dev/null | wc -l)
if [ "$lines" -lt 9 ]; then
  fail "bug 8: file + idle stdin: $lines windows after 3 s (want the file's 9 complete windows)"
fi

# Bug 9: a TCP port past 65535 is accepted and silently wrapped (99999 listens on 34463).
cat > port.yaml <<'EOF'
source:
  tcp: {listen: "127.0.0.1:99999"}
EOF
if "$barge" pipeline validate port.yaml > /dev/null 2>&1; then
  fail "bug 9: tcp listen 127.0.0.1:99999 passes validate (want an error naming the port)"
fi

# Bug 12: Ctrl-C does not stop a pipeline whose sink is blocked (a TCP receiver that stopped
# reading; the same with a stdout pipe nobody reads), and a second Ctrl-C does not either: it runs
# until the receiver goes away.
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 0)); s.listen()
open('port', 'w').write(str(s.getsockname()[1]))
c, _ = s.accept(); time.sleep(12)" &
listener=$!
for _ in $(seq 50); do [ -s port ] && break; sleep 0.1; done
cat > blocked.yaml <<EOF
source:
  generate: {}
sink:
  tcp: {connect: 127.0.0.1:$(cat port)}
EOF
"$barge" pipeline run -q blocked.yaml 2> blocked.err &
pid=$!
sleep 1.5
kill -INT "$pid"
sleep 1
kill -INT "$pid" 2> /dev/null
stopped=no
for _ in $(seq 30); do
  if ! kill -0 "$pid" 2> /dev/null; then stopped=yes; break; fi
  sleep 0.1
done
if [ "$stopped" != yes ]; then
  fail "bug 12: still running 4 s after two Ctrl-C while the tcp sink is blocked"
fi
wait "$pid" 2> /dev/null
kill "$listener" 2> /dev/null
wait "$listener" 2> /dev/null

# validate --format json reports errors as JSON on stdout too (exit 1, the message on stderr).
printf 'source: {file: in.csv}\nsteps:\n  - filtr: x\n' > bad.yaml
"$barge" pipeline validate --format json bad.yaml > bad.json 2> bad.err
rc=$?
if [ "$rc" -ne 1 ] || ! python3 -c "
import json, sys
d = json.load(open('bad.json'))
sys.exit(0 if d['valid'] is False and 'bad.yaml:3:5' in d['error'] else 1)" || ! grep -q "bad.yaml:3:5" bad.err; then
  fail "validate --format json on a bad spec: exit $rc, stdout $(cat bad.json), stderr $(cat bad.err)"
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "review8 cli: ok"
