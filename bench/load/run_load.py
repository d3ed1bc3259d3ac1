#!/usr/bin/env python3
"""Runs the coordinator load benchmark: for each size WORKERSxTRIALS, starts a fresh coordinator
(loopback, temporary database, default lease 15 s and heartbeat 2 s), runs load_gen against it,
then scrapes the coordinator's /metrics (server-side RPC latency histograms, scheduling latency,
restarts, lost workers) and its CPU time, and prints one JSON object per size.

Build first with optimisation:
  bazel build -c opt --jobs=2 //server:coordinator //bench/load:load_gen
  python3 bench/load/run_load.py --sizes 100x1000,1000x10000
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request


def wait_for_file(path, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path) as f:
                return f.read().strip()
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        time.sleep(0.05)
    raise TimeoutError(path)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SAMPLE = re.compile(r'^([a-z_:]+)(?:\{(.*)\})? (\S+)$')


def parse_metrics(text):
    samples = []
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def histogram_quantile(samples, name, q, **match):
    """Upper bound of the bucket holding quantile q (Prometheus buckets, cumulative)."""
    buckets = sorted((float(l["le"]), v) for n, l, v in samples if n == name + "_bucket" and
                     all(l.get(k) == want for k, want in match.items()))
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    for le, count in buckets:
        if count >= q * total:
            return le
    return None


def value(samples, name, **match):
    return sum(v for n, l, v in samples if n == name and
               all(l.get(k) == want for k, want in match.items()))


def run_size(args, workers, trials):
    work = tempfile.mkdtemp(prefix="gauntlet-load-")
    log = open(os.path.join(work, "coordinator.log"), "wb")
    coordinator = subprocess.Popen(
        [args.coordinator, "--listen=127.0.0.1:0", f"--port_file={work}/port",
         "--metrics_listen=127.0.0.1:0", f"--metrics_port_file={work}/metrics_port",
         f"--db={work}/gauntlet.db"], stdout=log, stderr=subprocess.STDOUT)
    try:
        port = wait_for_file(f"{work}/port", coordinator)
        metrics_port = wait_for_file(f"{work}/metrics_port", coordinator)
        started = time.time()
        result = subprocess.run(
            [args.load_gen, f"--coordinator=127.0.0.1:{port}", f"--workers={workers}",
             f"--trials={trials}", f"--duration_seconds={args.duration}",
             f"--warmup_seconds={args.warmup}", f"--metric_batch={args.metric_batch}",
             f"--metric_threads={args.metric_threads}",
             f"--heartbeat_threads={args.heartbeat_threads}", f"--probes={args.probes}",
             f"--probe_every={args.probe_every}"],
            capture_output=True, text=True, timeout=args.duration + 120)
        if result.returncode != 0:
            raise RuntimeError(f"load_gen failed: {result.stderr}")
        row = json.loads(result.stdout)
        wall = time.time() - started
        row["coordinator_cpu_cores"] = round(cpu_seconds(coordinator.pid) / wall, 2)
        scrape_start = time.time()
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics",
                                      timeout=60).read().decode()
        row["metrics_scrape_s"] = round(time.time() - scrape_start, 3)
        samples = parse_metrics(text)
        for method in ("Heartbeat", "ReportMetrics"):
            for q in (0.5, 0.99):
                bound = histogram_quantile(samples, "gauntlet_rpc_latency_seconds", q,
                                           method=method)
                row[f"server_{method}_p{int(q * 100)}_le_ms"] = (
                    None if bound is None else bound * 1000)
        for q in (0.5, 0.99):
            bound = histogram_quantile(samples, "gauntlet_scheduling_latency_seconds", q)
            row[f"scheduling_latency_p{int(q * 100)}_le_s"] = bound
            bound = histogram_quantile(samples, "gauntlet_schedule_pass_seconds", q)
            row[f"schedule_pass_p{int(q * 100)}_le_ms"] = None if bound is None else bound * 1000
        row["schedule_passes"] = value(samples, "gauntlet_schedule_pass_seconds_count")
        row["restarts"] = value(samples, "gauntlet_trial_restarts_total")
        row["workers_lost"] = value(samples, "gauntlet_workers", state="lost")
        row["queue_depth"] = value(samples, "gauntlet_queue_depth")
        row["points_total_server"] = value(samples, "gauntlet_metric_points_total")
        lost_lines = sum(1 for line in open(log.name, errors="replace") if " lost" in line)
        row["lost_log_lines"] = lost_lines
        return row
    finally:
        coordinator.terminate()
        try:
            coordinator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            coordinator.kill()
        log.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100x1000,1000x10000",
                        help="comma-separated WORKERSxTRIALS")
    parser.add_argument("--duration", type=float, default=40)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--metric_batch", type=int, default=100)
    parser.add_argument("--metric_threads", type=int, default=2)
    parser.add_argument("--heartbeat_threads", type=int, default=4)
    parser.add_argument("--probes", type=int, default=20,
                        help="one-trial experiments timed from submit to launch (need free GPUs)")
    parser.add_argument("--probe_every", type=float, default=0.5)
    parser.add_argument("--coordinator", default="bazel-bin/server/coordinator")
    parser.add_argument("--load_gen", default="bazel-bin/bench/load/load_gen")
    args = parser.parse_args()
    for size in args.sizes.split(","):
        workers, trials = (int(x) for x in size.lower().split("x"))
        print(json.dumps(run_size(args, workers, trials)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
