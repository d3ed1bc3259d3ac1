"""The load generator against a real coordinator, small: every emulated worker registers, every
trial that fits is launched and acknowledged, and metric points are stored without rejections.
Keeps the benchmark from rotting; the figures themselves come from run_load.py (-c opt)."""

import json
import subprocess
import unittest

from tests import testlib


class LoadGenTest(unittest.TestCase):

    def test_small_run(self):
        coordinator = testlib.Coordinator(extra_args=["--heartbeat_interval_seconds=0.5"])
        self.addCleanup(coordinator.stop)
        result = subprocess.run(
            [testlib.binary("bench/load/load_gen"), f"--coordinator={coordinator.address}",
             "--workers=5", "--gpus_per_worker=2", "--trials=14", "--duration_seconds=4",
             "--warmup_seconds=2", "--metric_batch=10", "--heartbeat_threads=2"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        row = json.loads(result.stdout)
        self.assertEqual(row["registered"], 5)
        self.assertEqual(row["placeable"], 10)  # 5 workers x 2 GPUs; 4 trials stay pending
        self.assertEqual(row["launches"], 10)
        self.assertGreater(row["submit_to_all_placed_s"], 0)
        self.assertEqual(row["heartbeat_errors"], 0)
        self.assertGreater(row["heartbeats"], 0)
        self.assertGreater(row["points_per_s"], 0)
        self.assertEqual(row["points_rejected"], 0)
        self.assertEqual(row["metric_errors"], 0)


if __name__ == "__main__":
    unittest.main()
