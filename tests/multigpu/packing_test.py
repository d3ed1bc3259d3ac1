"""bench/packing.sh on CPU: two 2-slot trials packed on one 4-slot worker, concurrently."""

import re
import unittest

from tests import testlib
from tests.multigpu import multigpu_testlib


class PackingTest(unittest.TestCase):

    def test_two_trials_share_a_worker_concurrently(self):
        work = testlib.tmpdir()
        result = multigpu_testlib.run_script(
            "packing.sh", ["--device", "cpu", "--slots", "4", "--trials", "2", "--size", "tiny",
                           "--steps", "40", "--batch_size", "4", "--log_every", "5"], work)
        self.assertEqual(result.returncode, 0, result.stderr)
        out = result.stdout
        peak = re.search(r"peak concurrency: (\d+) trials RUNNING at once on devices \[(.*)\]", out)
        self.assertIsNotNone(peak, out)
        self.assertEqual(peak.group(1), "2")
        self.assertEqual(sorted(int(d) for d in peak.group(2).split(",")), [0, 1, 2, 3])
        rows = re.findall(r"^\| (exp-1-\d) \| w1:(\d,\d) \| (\d+) \| (\d+) \| ([\d.]+) \|$", out, re.M)
        self.assertEqual(len(rows), 2, out)
        self.assertEqual(sorted(r[1] for r in rows), ["0,1", "2,3"])
        for _, _, packed, solo, ratio in rows:
            self.assertGreater(int(packed), 0)
            self.assertAlmostEqual(float(ratio), int(packed) / int(solo), delta=0.01)

    def test_too_few_slots_is_refused(self):
        work = testlib.tmpdir()
        result = multigpu_testlib.run_script("packing.sh", ["--slots", "2", "--trials", "2"], work)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--slots 2 cannot hold --trials 2 x 2", result.stderr)


if __name__ == "__main__":
    unittest.main()
