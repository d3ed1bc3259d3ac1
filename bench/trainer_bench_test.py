"""trainer_bench on CPU at the tiny size: the rows the side-by-side benchmark reads.

The GPU figures come from the same binary; this keeps its spec (defaults, flags) and its JSON in
working order between GPU sessions.
"""

import json
import os
import subprocess
import unittest

from tests import testlib


class TrainerBenchTest(unittest.TestCase):
    def test_rows_for_each_model(self):
        out = os.path.join(testlib.tmpdir(), "rows.json")
        data = os.path.join(testlib.workspace_root(), "data", "tinyshakespeare", "input.txt")
        proc = subprocess.run(
            [testlib.binary("bench/trainer_bench"), "--models=seed-standard,seed-worker",
             "--size=tiny", "--device=cpu", f"--data={data}", "--steps=3", "--warmup_steps=1",
             "--repeats=2", f"--json_out={out}"],
            capture_output=True, text=True, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        with open(out) as f:
            rows = json.load(f)
        self.assertEqual([r["model"] for r in rows], ["seed-standard@tiny", "seed-worker@tiny"])
        for row in rows:
            self.assertEqual(row["impl"], "gauntlet")
            self.assertGreater(row["tokens_per_s"], 0)
            self.assertEqual(len(row["tokens_per_s_runs"]), 2)
            self.assertGreater(row["flops_per_token"], 0)
            self.assertEqual(row["size"], "tiny")


if __name__ == "__main__":
    unittest.main()
