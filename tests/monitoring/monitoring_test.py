#!/usr/bin/env python3
"""End-to-end tests of barge's monitoring, driving the real binary as a user would.

    monitoring_test.py BARGE SOURCE_DIR [unittest args, e.g. MonitoringTest.test_promtool]

A pipeline with a container stage (busybox cat, 64 MiB memory limit) reads records from stdin and
serves --metrics-addr; the tests check its /metrics with promtool, scrape it with a real Prometheus
using deploy/prometheus/prometheus.yml, check that every metric the Grafana dashboard in deploy/
queries exists, and that `barge stats` shows a container's memory rising. Every process a test
starts is killed when the test ends (and when this script dies, by PR_SET_PDEATHSIG).
"""
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

BARGE = None
SOURCE = None
RECORDS = 1000
STAGE_MEMORY = 64 * 1024 * 1024

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def sample_value(text, name, labels=None):
    """The value of the first sample of `name` (whose labels include `labels`), or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        if labels and not all(f'{k}="{v}"' in (m.group(2) or "") for k, v in labels.items()):
            continue
        return float(m.group(3))
    return None


def sample_sum(text, name, labels):
    """The sum of the samples of `name` whose labels include `labels`."""
    total = 0
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if m and m.group(1) == name and all(f'{k}="{v}"' in (m.group(2) or "")
                                             for k, v in labels.items()):
            total += float(m.group(3))
    return total


def wait_for(what, fn, timeout):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def make_busybox_image(root, work, name):
    tree = os.path.join(work, "busybox-tree")
    os.makedirs(os.path.join(tree, "bin"))
    shutil.copy("/bin/busybox", os.path.join(tree, "bin", "busybox"))
    for applet in ["sh", "cat", "head", "tail", "yes", "sleep", "touch"]:
        os.symlink("busybox", os.path.join(tree, "bin", applet))
    tar = subprocess.run(["tar", "-C", tree, "-c", "."], check=True, capture_output=True).stdout
    subprocess.run([BARGE, "--root", root, "import", "-", name], input=tar, check=True,
                   capture_output=True)


class Processes:
    """Processes a test started, killed and waited for at cleanup."""

    def __init__(self):
        self.procs = []

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, preexec_fn=_die_with_parent, **kw)
        self.procs.append(p)
        return p

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()


class MonitoringTest(unittest.TestCase):
    """One pipeline with a container stage, serving metrics, shared by the tests."""

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="barge-monitoring-")
        cls.addClassCleanup(shutil.rmtree, cls.work, ignore_errors=True)
        cls.procs = Processes()
        cls.addClassCleanup(cls.procs.cleanup)
        cls.root = os.path.join(cls.work, "root")
        make_busybox_image(cls.root, cls.work, "mon-busybox:1")
        spec = os.path.join(cls.work, "monitored.yaml")
        with open(spec, "w") as f:
            f.write(f"""name: monitored
parallelism: 2
source:
  stdin: jsonl
  schema: {{ts: BIGINT, n: BIGINT, k: BIGINT}}
  event_time: {{field: ts, max_delay: 1s}}
steps:
  - stage:
      image: mon-busybox:1
      protocol: lines
      command: cat
      memory: 64m
    parallelism: 2
  - key_by: [k]
  - window: {{tumbling: 10s}}
    aggregate: {{c: count(*)}}
sink:
  file: {cls.work}/out.jsonl
checkpoint: {{interval: 200ms, dir: {cls.work}/ck}}
on_error: skip
""")
        cls.stderr_path = os.path.join(cls.work, "pipeline.stderr")
        cls.stderr = open(cls.stderr_path, "w")
        cls.addClassCleanup(cls.stderr.close)
        cls.pipeline = cls.procs.start(
            [BARGE, "--root", cls.root, "pipeline", "run", spec, "--metrics-addr", "127.0.0.1:0"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=cls.stderr)
        # Event times 1000 ms apart: the watermark ends at the last minus max_delay minus 1 ms.
        for i in range(RECORDS):
            cls.pipeline.stdin.write(
                f'{{"ts": {1_700_000_000_000 + i * 1000}, "n": {i}, "k": {i % 4}}}\n'.encode())
            if i == 10:
                cls.pipeline.stdin.write(b'{"ts": "not a time"}\n')  # one bad record
        cls.pipeline.stdin.flush()  # and kept open: the pipeline runs until the tests end

        def url():
            with open(cls.stderr_path) as f:
                m = re.search(r"metrics on (http://\S+)/metrics", f.read())
            if cls.pipeline.poll() is not None:
                raise AssertionError("barge exited: " + open(cls.stderr_path).read())
            return m and m.group(1)

        cls.url = wait_for("the metrics address on stderr", url, 30)

        def all_out():
            text = http_get(cls.url + "/metrics")[1]
            through = sample_sum(text, "barge_step_records_out_total", {"step": "step 1 (stage)"})
            return through == RECORDS and text

        cls.metrics = wait_for(f"{RECORDS} records through the stage", all_out, 60)

    def test_healthz(self):
        self.assertEqual(http_get(self.url + "/healthz"), (200, "ok\n"))
        with self.assertRaises(urllib.error.HTTPError) as e:
            http_get(self.url + "/nope")
        self.assertEqual(e.exception.code, 404)

    def test_metrics_values(self):
        m = self.metrics
        self.assertEqual(sample_value(m, "barge_pipeline_records_in_total"), RECORDS)
        self.assertEqual(sample_value(m, "barge_pipeline_bad_records_total"), 1)
        self.assertEqual(sample_value(m, "barge_step_bad_records_total", {"step": "source"}), 1)
        self.assertEqual(sample_value(m, "barge_pipeline_max_event_time_seconds"),
                         1_700_000_000 + (RECORDS - 1))
        # Windows see the source's watermark: max - max_delay - 1 ms, once it passed the stage.
        lag = sample_value(m, "barge_pipeline_event_time_lag_seconds")
        self.assertIsNotNone(lag)
        self.assertGreaterEqual(lag, 1.001)
        for replica in ["0", "1"]:
            self.assertEqual(sample_value(m, "barge_stage_replica_up", {"replica": replica}), 1)
        self.assertGreater(sample_sum(m, "barge_step_input_bytes_total", {}), 0)
        # What the stage's output side sends on to the key_by exchange, byte for byte what the
        # window's inputs received.
        sent = sample_sum(m, "barge_step_output_bytes_total", {"step": "step 1 (stage)"})
        self.assertGreater(sent, 0)
        window = "step 3 (window)"
        self.assertEqual(sent, sample_sum(m, "barge_step_input_bytes_total", {"step": window}))
        # Per step: the window's watermark (as the pipeline's) and its lag.
        self.assertEqual(sample_value(m, "barge_step_watermark_seconds", {"step": window}),
                         sample_value(m, "barge_pipeline_watermark_seconds"))
        self.assertGreaterEqual(
            sample_value(m, "barge_step_event_time_lag_seconds", {"step": window}), 1.001)
        self.assertEqual(sample_value(m, "barge_stage_replica_memory_limit_bytes"), STAGE_MEMORY)
        self.assertGreater(sample_value(m, "barge_stage_replica_memory_usage_bytes"), 0)
        self.assertEqual(sample_value(m, "barge_stage_replica_restarts_total"), 0)
        self.assertIsNotNone(sample_value(m, "barge_stage_replica_cpu_seconds_total"))
        self.assertEqual(sample_sum(m, "barge_step_records_in_total", {"step": "step 1 (stage)"}),
                         RECORDS)

    def test_checkpoint_metrics(self):
        def two():
            text = http_get(self.url + "/metrics")[1]
            return (sample_value(text, "barge_checkpoints_total") or 0) >= 2 and text
        m = wait_for("two checkpoints", two, 30)
        self.assertEqual(sample_value(m, "barge_checkpoint_failures_total"), 0)
        self.assertGreater(sample_value(m, "barge_checkpoint_size_bytes"), 0)
        duration = sample_value(m, "barge_checkpoint_duration_seconds")
        self.assertGreaterEqual(duration, sample_value(m, "barge_checkpoint_write_duration_seconds"))
        self.assertLess(duration, 30)
        age = time.time() - sample_value(m, "barge_checkpoint_last_completed_timestamp_seconds")
        self.assertGreater(age, -5)
        self.assertLess(age, 30)

    def test_promtool_accepts_metrics(self):
        text = http_get(self.url + "/metrics")[1]
        r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                           capture_output=True)
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode() + "\n" + text)
        self.assertEqual(r.stdout.decode() + r.stderr.decode(), "", "promtool lint findings")

    def test_dashboard_queries_exist(self):
        with open(os.path.join(SOURCE, "deploy/grafana/barge-pipeline.json")) as f:
            dashboard = json.load(f)
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        exprs += [v["definition"] for v in dashboard["templating"]["list"]]
        queried = set()
        for e in exprs:
            queried |= set(re.findall(r"\bbarge_[a-z_]+\b", e))
        self.assertGreaterEqual(len(queried), 10)
        # Once a checkpoint completed (the figures of the last one exist from then on).
        def checkpointed():
            text = http_get(self.url + "/metrics")[1]
            return (sample_value(text, "barge_checkpoints_total") or 0) >= 1 and text
        metrics = wait_for("a checkpoint", checkpointed, 30)
        families = set(re.findall(r"^# TYPE (\S+) ", metrics, re.M))
        exposed = {name for name in families if sample_value(metrics, name) is not None}
        self.assertEqual(queried - families, set(), "queried by the dashboard, not exposed")
        # The pipeline here has no late or bad records, but every queried family has samples.
        self.assertEqual(queried - exposed, set(), "queried by the dashboard, without samples")

    def test_prometheus_scrapes_pipeline(self):
        with open(os.path.join(SOURCE, "deploy/prometheus/prometheus.yml")) as f:
            config = f.read()
        target = urllib.parse.urlparse(self.url).netloc
        self.assertIn('"127.0.0.1:9464"', config)
        config = config.replace('"127.0.0.1:9464"', f'"{target}"')
        data = tempfile.mkdtemp(prefix="prometheus-", dir=self.work)
        config_path = os.path.join(data, "prometheus.yml")
        with open(config_path, "w") as f:
            f.write(config)
        port = free_port()
        log = open(os.path.join(data, "log"), "w")
        self.addCleanup(log.close)
        procs = Processes()
        self.addCleanup(procs.cleanup)
        procs.start(["prometheus", f"--config.file={config_path}",
                     f"--storage.tsdb.path={data}/tsdb",
                     f"--web.listen-address=127.0.0.1:{port}"],
                    stdout=log, stderr=subprocess.STDOUT)
        api = f"http://127.0.0.1:{port}"

        def ready():
            try:
                return http_get(api + "/-/ready")[0] == 200
            except OSError:
                return False

        wait_for("Prometheus to be ready", ready, 60)

        def query(q):
            body = http_get(api + "/api/v1/query?" + urllib.parse.urlencode({"query": q}))[1]
            result = json.loads(body)["data"]["result"]
            return result and result[0]["value"][1]

        q = 'barge_pipeline_records_in_total{job="barge-pipeline"}'
        self.assertEqual(wait_for(q, lambda: query(q), 60), str(RECORDS))
        q = 'barge_stage_replica_memory_limit_bytes{job="barge-pipeline",replica="0"}'
        self.assertEqual(wait_for(q, lambda: query(q), 30), str(STAGE_MEMORY))


class StatsTest(unittest.TestCase):
    def test_memory_rises_when_a_container_allocates(self):
        work = tempfile.mkdtemp(prefix="barge-stats-")
        self.addCleanup(shutil.rmtree, work, ignore_errors=True)
        root = os.path.join(work, "root")
        make_busybox_image(root, work, "mon-busybox:1")
        names = []

        def remove():
            if names:
                subprocess.run([BARGE, "--root", root, "rm", "-f", *names], capture_output=True)

        self.addCleanup(remove)
        # One with a memory cgroup, one without limits (measured from its processes): once /go
        # exists, each holds 64 MB in tail's buffer (tail then blocks writing to a sleep).
        script = ("while [ ! -e /go ]; do sleep 0.1; done; "
                  "yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa | head -c 64000000 | tail -c 64000000 | "
                  "sleep 600")
        for name, limit in [("limited", ["--memory", "256m"]), ("unlimited", [])]:
            subprocess.run([BARGE, "--root", root, "run", "-d", "--name", name, *limit,
                            "mon-busybox:1", "sh", "-c", script], check=True, capture_output=True)
            names.append(name)

        def stats():
            r = subprocess.run([BARGE, "--root", root, "stats", "--no-stream", "--format", "json",
                                *names], check=True, capture_output=True)
            return {j["name"]: j for j in map(json.loads, r.stdout.decode().splitlines())}

        before = stats()
        self.assertEqual(before["limited"]["memory_limit_bytes"], 256 * 1024 * 1024)
        self.assertGreater(before["unlimited"]["memory_limit_bytes"], 256 * 1024 * 1024)
        for name in names:
            self.assertTrue(before[name]["running"])
            self.assertGreaterEqual(before[name]["pids"], 1)
            subprocess.run([BARGE, "--root", root, "exec", name, "touch", "/go"], check=True,
                           capture_output=True)

        def risen():
            now = stats()
            grown = {n: now[n]["memory_usage_bytes"] - before[n]["memory_usage_bytes"] for n in names}
            return all(g > 50_000_000 for g in grown.values()) and grown

        wait_for("memory to rise by 50 MB in both containers", risen, 60)
        table = subprocess.run([BARGE, "--root", root, "stats", "--no-stream", *names],
                               check=True, capture_output=True).stdout.decode()
        self.assertIn("MEM USAGE / LIMIT", table)
        self.assertRegex(table, r"limited .*MiB / 256MiB")


if __name__ == "__main__":
    BARGE, SOURCE = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[3:])
