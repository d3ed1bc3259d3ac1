"""inference_bench_main on CPU at the tiny size: its flags, table and JSON rows stay in working
order between GPU sessions (the library's measurements are tested in inference_bench_test)."""

import json
import os
import subprocess
import unittest

from tests import testlib


class InferenceBenchMainTest(unittest.TestCase):
    def run_bench(self, *flags):
        return subprocess.run(
            [testlib.binary("trainer/inference/inference_bench_main"), "--size=tiny",
             "--device=cpu", "--contexts=16,48", "--batches=1,3", "--decode_context=16",
             "--decode_steps=4", "--repeats=1", *flags],
            capture_output=True, text=True, timeout=300)

    def test_rows_for_each_arch(self):
        out = os.path.join(testlib.tmpdir(), "rows.json")
        proc = self.run_bench("--archs=standard,hybrid", "--precision=bf16", f"--json_out={out}")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("| standard | tiny | bf16 |", proc.stdout)
        with open(out) as f:
            rows = json.load(f)
        self.assertEqual([r["arch"] for r in rows], ["standard", "hybrid"])
        for row in rows:
            self.assertEqual([p["context"] for p in row["prefill"]], [16, 48])
            self.assertEqual([d["batch"] for d in row["decode"]], [1, 3])
            self.assertTrue(all(d["tokens_per_s"] > 0 for d in row["decode"]))
            self.assertEqual(row["kv_cache_bytes_per_token"],
                             row["kv_cache_bytes_per_token_formula"])
        # Hybrid's static-MLP half caches nothing.
        self.assertEqual(rows[1]["kv_cache_bytes_per_token"],
                         rows[0]["kv_cache_bytes_per_token"] / 2)

    def test_bad_flags_name_the_flag(self):
        proc = self.run_bench("--archs=standard", "--batches=1,x")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("--batches", proc.stderr)
        proc = self.run_bench("--archs=worker", "--static_decode")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("static_decode", proc.stderr)


if __name__ == "__main__":
    unittest.main()
