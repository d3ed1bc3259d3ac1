"""bench/scaling.sh with 1 and 2 CPU ranks: the scaling table and the replica check."""

import importlib.util
import os
import re
import unittest

from tests import testlib
from tests.multigpu import multigpu_testlib


def load_bench():
    path = os.path.join(testlib.workspace_root(), "bench", "multigpu_bench.py")
    spec = importlib.util.spec_from_file_location("multigpu_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ScalingTest(unittest.TestCase):

    def test_one_and_two_ranks(self):
        work = testlib.tmpdir()
        result = multigpu_testlib.run_script(
            "scaling.sh", ["--device", "cpu", "--size", "tiny", "--ranks", "1 2", "--steps", "20",
                           "--batch_size", "4", "--log_every", "5",
                           "--json_out", os.path.join(work, "scaling.json")], work)
        self.assertEqual(result.returncode, 0, result.stderr)
        out = result.stdout
        self.assertIn("| world size | tok/s | speedup | efficiency |", out)
        rows = re.findall(r"^\| (\d) \| (\d+) \| ([\d.]+)x \| ([\d.]+)% \|", out, re.M)
        self.assertEqual([r[0] for r in rows], ["1", "2"], out)
        self.assertEqual(rows[0][2:], ("1.00", "100.0"))
        self.assertTrue(all(int(r[1]) > 0 for r in rows), rows)
        # Speedup and efficiency are consistent with the measured tok/s.
        speedup = int(rows[1][1]) / int(rows[0][1])
        self.assertAlmostEqual(float(rows[1][2]), speedup, delta=0.01)
        self.assertAlmostEqual(float(rows[1][3]), 100 * speedup / 2, delta=0.6)
        replica = re.search(r"^\| 2 \| ([\d.]+) \| ([\d.]+) \| (\S+) \| yes \| [0-9a-f]{16} \|$", out, re.M)
        self.assertIsNotNone(replica, out)
        self.assertIn("replica check: PASS", out)

        # The check is not vacuous: different weights (the 1-rank run's checkpoint, trained on
        # other data) must fail it against the 2-rank gang's val loss.
        bench = load_bench()
        run = os.path.join(work, "run")
        events = bench.read_events(os.path.join(run, "world-2", "events.jsonl"))
        gang = bench.summary_of(events)
        os.makedirs(os.path.join(work, "other"))
        import shutil
        shutil.copytree(os.path.join(run, "world-1", "checkpoints"),
                        os.path.join(work, "other", "checkpoints"))
        os.environ["OMP_NUM_THREADS"] = "1"
        check = bench.replica_check(testlib.binary("trainer/trainer"),
                                    os.path.join(run, "trial.yaml"), "cpu",
                                    os.path.join(work, "other"), gang, 1e-5, 60)
        self.assertFalse(check["ok"], check)
        self.assertGreater(check["rel_diff"], 1e-4, check)

    def test_bad_ranks_named(self):
        work = testlib.tmpdir()
        result = multigpu_testlib.run_script("scaling.sh", ["--ranks", "2 4"], work)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--ranks must start with 1", result.stderr)


if __name__ == "__main__":
    unittest.main()
