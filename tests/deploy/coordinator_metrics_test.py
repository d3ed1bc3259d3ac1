"""A real coordinator's /metrics serves every family of the contract with its type, so the
dashboards and alerts (checked against the contract) break when a metric is renamed."""

import json
import os
import re
import signal
import time
import unittest
import urllib.request

from tests import testlib
from tests.deploy import deploylib

# MetricPoint names (proto/gauntlet/v1/coordinator.proto) the per-trial gauges come from.
POINT_NAMES = ("train_loss", "val_loss", "val_loss_native", "tokens_per_second",
               "steps_per_second", "step_time_seconds", "mfu", "grad_norm", "lr",
               "gpu_memory_allocated_bytes", "gpu_memory_reserved_bytes",
               "gpu_memory_peak_bytes", "layers_per_token")
WORKER = "deploy-metrics-test"


def exported_families(text):
    """family -> type from the exposition's # TYPE lines."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M))


class CoordinatorMetricsTest(unittest.TestCase):

    def setUp(self):
        workdir = testlib.tmpdir()
        self.metrics_port_file = os.path.join(workdir, "metrics_port")
        try:
            self.coordinator = testlib.Coordinator(
                extra_args=["--metrics_listen=127.0.0.1:0",
                            f"--metrics_port_file={self.metrics_port_file}",
                            f"--db={os.path.join(workdir, 'gauntlet.db')}"],
                workdir=workdir)
        except (RuntimeError, TimeoutError) as e:
            log = open(os.path.join(workdir, "coordinator.log"), errors="replace").read()
            self.fail(f"the coordinator does not serve /metrics yet (--metrics_listen / "
                      f"--metrics_port_file): {e}\n{log[-2000:]}")
        try:
            port = int(testlib.wait_for_file(self.metrics_port_file, timeout=10,
                                             proc=self.coordinator.proc))
        except (RuntimeError, TimeoutError) as e:
            self.coordinator.stop(sig=signal.SIGKILL)
            self.fail(f"the coordinator wrote no --metrics_port_file: {e}")
        self.metrics_url = f"http://127.0.0.1:{port}/metrics"

    def tearDown(self):
        self.coordinator.stop(sig=signal.SIGKILL)

    def scrape(self):
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            return response.read().decode()

    def report_trial_metrics(self):
        """Runs one trial far enough for its per-trial gauges to exist: submit, heartbeat as a
        CPU worker until the coordinator launches a trial here, report it running, send one
        point of every metric name."""
        with open(os.path.join(deploylib.source_root(), "configs", "ci_tiny.yaml")) as f:
            spec = f.read()
        self.coordinator.grpcurl("gauntlet.v1.Coordinator/SubmitExperiment",
                                 data={"spec_yaml": spec})
        inventory = {"hostname": WORKER, "address": "127.0.0.1", "cpu_slots": 4,
                     "rendezvous_port_base": 29500}
        launch = None
        deadline = time.time() + 20
        while launch is None and time.time() < deadline:
            out = self.coordinator.grpcurl("gauntlet.v1.WorkerService/Heartbeat",
                                           data={"worker_id": WORKER, "inventory": inventory})
            actions = json.loads(out.stdout or "{}").get("actions", [])
            launch = next((a["launch"] for a in actions if "launch" in a), None)
            time.sleep(0.2)
        self.assertIsNotNone(launch, "the coordinator launched no trial on a 4-slot worker")
        # grpcurl prints proto field names (trial_id); protobuf's JSON default is trialId.
        trial = launch.get("trial_id", launch.get("trialId"))
        attempt = launch.get("attempt", 0)
        process = {"trial_id": trial, "attempt": attempt, "state": "PROCESS_STATE_RUNNING",
                   "ranks": [0]}
        self.coordinator.grpcurl("gauntlet.v1.WorkerService/Heartbeat",
                                 data={"worker_id": WORKER, "inventory": inventory,
                                       "processes": [process]})
        now = time.time()
        points = [{"trial_id": trial, "name": name, "value": 1.5, "step": 10, "tokens": 4096,
                   "train_seconds": 3.0, "unix_time": now} for name in POINT_NAMES]
        self.coordinator.grpcurl("gauntlet.v1.WorkerService/ReportMetrics",
                                 data={"worker_id": WORKER, "attempt": attempt,
                                       "points": points})
        # The inference families come from a completed trial's summary.
        inference = {"prefill": [{"context": 256, "seconds": 0.001}],
                     "decode": [{"batch": 1, "seconds_per_step": 2e-4,
                                 "tokens_per_second": 5000, "bandwidth_bound_seconds": 1e-4}],
                     "kv_cache_bytes_per_token": 4096, "peak_memory_bytes": 1e8}
        self.coordinator.grpcurl("gauntlet.v1.WorkerService/ReportTrialExit",
                                 data={"worker_id": WORKER, "trial_id": trial,
                                       "attempt": attempt, "exit_code": 0,
                                       "summary": {"arch": "standard",
                                                   "inference": inference}})

    def test_every_contract_family_is_exported_with_its_type(self):
        families = exported_families(self.scrape())
        if any(name not in families
               for name in deploylib.TRIAL_GAUGES + tuple(deploylib.INFERENCE_GAUGES)):
            # Per-trial families have no series (and no # TYPE line) before a trial reports.
            self.report_trial_metrics()
            families = exported_families(self.scrape())
        missing = sorted(set(deploylib.CONTRACT) - set(families))
        self.assertEqual([], missing, "families the dashboards and alerts use")
        for name, (kind, _) in deploylib.CONTRACT.items():
            self.assertEqual(kind, families[name], name)

    def test_build_info_and_histogram_series(self):
        text = self.scrape()
        self.assertRegex(text, r'(?m)^gauntlet_build_info\{[^}]*version="[^"]+"[^}]*\} 1(\.0)?$')
        for histogram in deploylib.HISTOGRAMS:
            if histogram == "gauntlet_rpc_latency_seconds":
                continue  # Has series only once an RPC was timed.
            for suffix in ("_bucket", "_sum", "_count"):
                self.assertIn(histogram + suffix, text)


if __name__ == "__main__":
    unittest.main()
