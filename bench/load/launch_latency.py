#!/usr/bin/env python3
"""Submit -> trainer launch with one real worker agent and the tiny CPU trainer: starts a
coordinator (default 2 s heartbeat interval and 15 s lease, temporary database) and one worker
agent (4 CPU slots) on loopback, then has load_gen submit one-trial experiments of a tiny CPU
model one after another (`--workers 0 --probes N`). The time of each launch is when the agent
logs "launched <trial>" (it logs that right after forking the trainer), read from its stderr as
it arrives; both sides use CLOCK_MONOTONIC. Prints one JSON object.

Build first:
  bazel build --jobs=2 //server:coordinator //worker:worker //trainer:trainer //bench/load:load_gen
  python3 bench/load/launch_latency.py --probes 40
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time

from run_load import wait_for_file  # this directory is on sys.path when run as a script

PROBE_SPEC = """data: {path: corpus.txt, tokenizer: char, val_fraction: 0.1}
model: {size: tiny, arch: standard}
train: {batch_size: 2, log_every: 5}
budget: {steps: 2}
eval: {every_steps: 0, max_tokens: 256}
resources: {device: cpu}
variants: [{name: standard}]
seeds: [1]
"""
LAUNCHED = re.compile(r"^worker: launched (\S+)-0 attempt 1 ")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100.0 * len(values)))] if values else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default="bazel-bin", help="where the built binaries are")
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--probe_every", type=float, default=1.5)
    args = parser.parse_args()
    binary = lambda label: os.path.abspath(os.path.join(args.bin, label))

    with tempfile.TemporaryDirectory(prefix="launch-latency-") as tmp:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        rng = random.Random(1)
        words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"]
        with open(os.path.join(data, "corpus.txt"), "w") as f:
            f.write(" ".join(rng.choice(words) for _ in range(20000)))
        with open(os.path.join(tmp, "probe.yaml"), "w") as f:
            f.write(PROBE_SPEC)
        port_file = os.path.join(tmp, "port")
        coordinator = subprocess.Popen(
            [binary("server/coordinator"), "--listen=127.0.0.1:0", f"--port_file={port_file}",
             f"--db={tmp}/gauntlet.db", "--metrics_listen=127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "coordinator.log"), "w"))
        address = f"127.0.0.1:{wait_for_file(port_file, coordinator)}"
        worker = subprocess.Popen(
            [binary("worker/worker"), f"--coordinator={address}", "--worker_id=w1",
             "--address=127.0.0.1", "--gpus=none", "--cpu_slots=4",
             f"--work_dir={tmp}/w1", f"--trainer={binary('trainer/trainer')}",
             f"--data_root={data}", "--kill_grace_seconds=1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1)
        launched = {}
        connected = threading.Event()

        def read_worker_log():
            for line in worker.stderr:
                now = time.monotonic()
                if "connected to the coordinator" in line:
                    connected.set()
                m = LAUNCHED.match(line)
                if m:
                    launched.setdefault(m.group(1), now)

        reader = threading.Thread(target=read_worker_log, daemon=True)
        reader.start()
        try:
            if not connected.wait(30):
                raise RuntimeError("the worker did not connect")
            time.sleep(3)  # past the worker's first interval: launches must come by the stream
            out = subprocess.run(
                [binary("bench/load/load_gen"), f"--coordinator={address}", "--workers=0",
                 f"--probes={args.probes}", f"--probe_every={args.probe_every}",
                 f"--probe_spec={tmp}/probe.yaml"],
                check=True, capture_output=True, text=True, timeout=600).stdout
            probes = json.loads(out)["probes"]
            deadline = time.time() + 30
            while time.time() < deadline and any(p["experiment"] not in launched for p in probes):
                time.sleep(0.1)
        finally:
            worker.terminate()
            coordinator.terminate()
            worker.wait(30)
            coordinator.wait(30)
        latencies = [launched[p["experiment"]] - p["sent_monotonic_s"]
                     for p in probes if p["experiment"] in launched]
        print(json.dumps({
            "probes": len(probes), "launched": len(latencies),
            "submit_to_launch_p50_ms": round(1000 * percentile(latencies, 50), 1),
            "submit_to_launch_p99_ms": round(1000 * percentile(latencies, 99), 1),
            "submit_to_launch_max_ms": round(1000 * max(latencies), 1),
            "submit_to_launch_min_ms": round(1000 * min(latencies), 1),
        }))
        return 0 if len(latencies) == len(probes) else 1


if __name__ == "__main__":
    sys.exit(main())
