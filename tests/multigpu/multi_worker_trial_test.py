"""bench/multi_worker_trial.sh on CPU: one 2-rank trial across two worker processes."""

import re
import unittest

from tests import testlib
from tests.multigpu import multigpu_testlib


class MultiWorkerTrialTest(unittest.TestCase):

    def test_trial_spans_two_workers(self):
        work = testlib.tmpdir()
        result = multigpu_testlib.run_script(
            "multi_worker_trial.sh",
            ["--device", "cpu", "--size", "tiny", "--steps", "20", "--batch_size", "4",
             "--log_every", "5"], work)
        self.assertEqual(result.returncode, 0, result.stderr)
        out = result.stdout
        row = re.search(r"^exp-1-0\s+standard\s+\d+\s+completed\s+1\s+(w\d:0) (w\d:0)\s+20\s",
                        out, re.M)
        self.assertIsNotNone(row, out)
        self.assertEqual({row.group(1), row.group(2)}, {"w1:0", "w2:0"})
        self.assertIn("standard (baseline)", out)  # gauntlet compare ran
        losses = re.findall(r"^\| (across 2 workers|one 2-rank gang) \| 2 \| ([\d.]+) \| ([\d.]+) \|",
                            out, re.M)
        self.assertEqual(len(losses), 2, out)
        # CPU ranks are deterministic: crossing workers must not change a bit of the result.
        self.assertEqual(losses[0][1:], losses[1][1:])
        self.assertIn("multi-worker trial: PASS", out)


if __name__ == "__main__":
    unittest.main()
