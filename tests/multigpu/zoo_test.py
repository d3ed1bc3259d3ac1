"""bench/zoo.sh on CPU slots: every variant of configs/zoo.yaml plus the attention-drop stage,
through a real coordinator and two workers, ending in compare's markdown table."""

import os
import re
import unittest

from tests import testlib
from tests.multigpu import multigpu_testlib


def zoo_variant_names():
    with open(os.path.join(testlib.workspace_root(), "configs/zoo.yaml")) as f:
        return re.findall(r"^  - name: ([\w.-]+)", f.read(), re.M)


class ZooTest(unittest.TestCase):

    def test_every_zoo_variant_completes_and_reaches_the_table(self):
        work = testlib.tmpdir()
        result = multigpu_testlib.run_script(
            "zoo.sh",
            ["--device", "cpu", "--size", "tiny", "--n_layers", "4", "--steps", "10",
             "--seeds", "1", "--workers", "2", "--batch_size", "4", "--val_tokens", "4096",
             "--finetune_steps", "3", "--timeout", "240"], work, timeout=280)
        self.assertEqual(result.returncode, 0, result.stderr)
        out = result.stdout
        variants = zoo_variant_names() + ["mixed-drop2-stage"]
        self.assertGreaterEqual(len(variants), 16)
        self.assertIn(f"zoo: {len(variants)} trials COMPLETED", out)
        rows = re.findall(r"^\| ([^|]+?) \|", out, re.M)
        for name in variants:
            self.assertTrue(name in rows or f"{name} (baseline)" in rows, f"{name} not in {rows}")
        # The stage's two rows: the dropped model and the fine-tuned one.
        self.assertTrue(any(re.fullmatch(r"mixed-drop2-stage/drop_attn=\d,\d", r) for r in rows))
        self.assertTrue(
            any(re.fullmatch(r"mixed-drop2-stage/drop_attn=\d,\d\+ft3", r) for r in rows))


if __name__ == "__main__":
    unittest.main()
