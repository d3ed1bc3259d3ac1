"""bench/reference/report.py on synthetic rows: merging, MFU from Gauntlet's FLOPs, the ratio table,
targets, flagged mismatches and failures, and --apply's rewrite of docs/BENCHMARKS.md."""

import json
import os
import tempfile
import unittest

from bench.reference import report

CONFIG = dict(vocab_size=65, d_model=256, n_layers=4, n_heads=4, d_ff=1024, seq_len=1024,
              dropout=0.1)
PEAK = 1e15


def gauntlet(model, tps, flops=1e8, params=3_000_000, **extra):
    row = dict(model=model, impl="gauntlet", tokens_per_s=tps, mfu=tps * flops / PEAK,
               flops_per_token=flops, peak_flops=PEAK, gpu="NVIDIA H200", batch=16,
               params=params, **CONFIG)
    row.update(extra)
    return row


def reference(model, mode, tps, params=3_000_000, **config):
    return dict(model=model, impl=f"pytorch-{mode}", tokens_per_s=tps, params=params,
                config=dict(CONFIG, **config), compile_s=42.0 if mode != "eager" else 1.0,
                gpu="NVIDIA H200", torch="2.11.0+cu130")


def rows():
    g = [gauntlet("seed-standard", 3e6), gauntlet("seed-worker", 4.8e6, flops=5e7),
         gauntlet("gpt2-small", 5e5, flops=8.5e8, params=124_000_000)]
    r = [reference("seed-standard", "eager", 1.5e6), reference("seed-standard", "compile", 2e6),
         reference("seed-standard", "max-autotune", 2.5e6),
         reference("seed-worker", "eager", 1e6),
         dict(model="seed-worker", impl="pytorch-max-autotune", tokens_per_s=None,
              error="timed out after 300 s"),
         reference("gpt2-small", "compile", 4.5e5, params=124_000_000, vocab_size=50304)]
    return report.merge(g, r, "2026-12-01", "bash bench/side_by_side.sh")


class ReportTest(unittest.TestCase):

    def test_rows_carry_the_issue_keys_and_gauntlets_mfu_basis(self):
        merged = rows()
        for row in merged:
            for key in ("model", "impl", "tokens_per_s", "mfu", "gpu", "date", "command"):
                self.assertIn(key, row)
            self.assertEqual(row["date"], "2026-12-01")
        eager = next(r for r in merged if r["impl"] == "pytorch-eager"
                     and r["model"] == "seed-standard")
        # Gauntlet's FLOPs per token (1e8) and peak (1e15) for the same model.
        self.assertAlmostEqual(eager["mfu"], 1.5e6 * 1e8 / 1e15)
        failed = next(r for r in merged if r.get("error"))
        self.assertIsNone(failed["tokens_per_s"])
        self.assertIsNone(failed["mfu"])

    def test_table_ratios_and_targets(self):
        text = report.markdown(rows(), "side_by_side-2026-12-01.json")
        lines = text.splitlines()
        standard = next(l for l in lines if l.startswith("| seed-standard |"))
        # best PyTorch is max-autotune's 2.5M; Gauntlet 3.0M -> 1.20x, short of 1.25x.
        self.assertIn("| 1.50M (15.0%) | 2.00M (20.0%) | 2.50M (25.0%) | 3.00M (30.0%) | 1.20x |",
                      standard)
        worker = next(l for l in lines if l.startswith("| seed-worker |"))
        self.assertIn("| not run | timeout |", worker)  # compile never ran; max-autotune timed out
        self.assertIn("| 4.80x\u2020 |", worker)  # only eager to compare with
        self.assertIn("| seed-standard: Gauntlet / best PyTorch >= 1.25x | 1.20x | **no** |", text)
        self.assertIn("| seed-worker: Gauntlet worker / Gauntlet standard >= 1.5x | 1.60x | yes |",
                      text)
        self.assertIn("| gpt2-small: Gauntlet / best PyTorch >= 1.2x | 1.11x\u2020 |"
                      " **no** (provisional) |", text)
        self.assertIn("seed-worker pytorch-max-autotune: timed out after 300 s", text)
        self.assertIn("side_by_side-2026-12-01.json", text)
        self.assertIn("`bash bench/side_by_side.sh`", text)

    def test_a_reference_of_other_dimensions_is_flagged(self):
        text = report.markdown(rows(), "x.json")
        # The gpt2-small reference used V = 50,304 but the Gauntlet row says 65.
        self.assertIn("gpt2-small pytorch-compile: differs from Gauntlet's model: vocab_size 65 vs"
                      " 50304", text)

    def test_size_override_rows_still_get_targets(self):
        g = [gauntlet("seed-standard@tiny", 100.0), gauntlet("seed-worker@tiny", 200.0)]
        r = [reference("seed-standard@tiny", "eager", 50.0)]
        text = report.markdown(report.merge(g, r, "d", "c"), "x.json")
        self.assertIn("(seed-standard@tiny) >= 1.25x | 2.00x\u2020 | yes (provisional) |", text)
        self.assertIn("(seed-worker@tiny) >= 1.5x | 2.00x | yes |", text)

    def test_write_then_apply_replaces_only_the_marked_section(self):
        with tempfile.TemporaryDirectory() as tmp:
            out, repo = os.path.join(tmp, "out"), os.path.join(tmp, "repo")
            os.makedirs(os.path.join(repo, "docs"))
            doc = os.path.join(repo, "docs", "BENCHMARKS.md")
            with open(doc, "w") as f:
                f.write("# Benchmarks\n\n## Older section\nkept\n")
            name = report.write(out, rows())
            self.assertEqual(name, "side_by_side-2026-12-01.json")
            self.assertTrue(os.path.exists(os.path.join(out, "side_by_side-2026-12-01.md")))

            dest = report.apply(out, repo)
            self.assertEqual(dest, os.path.join(repo, "docs", "benchmarks", name))
            with open(dest) as f:
                self.assertEqual(json.load(f), json.loads(json.dumps(rows())))
            with open(doc) as f:
                first = f.read()
            self.assertIn("## Older section\nkept\n", first)
            self.assertEqual(first.count(report.BEGIN), 1)
            self.assertIn("| 1.20x |", first)

            # A later run replaces the section in place; the rest of the file is untouched.
            with open(doc, "a") as f:
                f.write("\n## Written after\nalso kept\n")
            later = [dict(r, date="2026-12-02") for r in rows()]
            for row in later:
                if row["impl"] == "gauntlet" and row["model"] == "seed-standard":
                    row["tokens_per_s"] = 5e6
            report.write(out, later)
            report.apply(out, repo)
            with open(doc) as f:
                second = f.read()
            self.assertEqual(second.count(report.BEGIN), 1)
            self.assertIn("2026-12-02", second)
            self.assertNotIn("2026-12-01.json", second)
            self.assertIn("| 2.00x |", second)  # 5.0M / 2.5M
            self.assertIn("## Written after\nalso kept\n", second)
            self.assertLess(second.index("## Older section"), second.index(report.BEGIN))

    def test_apply_rejects_rows_without_the_issue_keys(self):
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "side_by_side-2026-12-01.json"), "w") as f:
                json.dump([{"model": "seed-standard", "impl": "gauntlet"}], f)
            with self.assertRaisesRegex(ValueError, "row 0 has no 'tokens_per_s'"):
                report.apply(tmp, tmp)
            with self.assertRaises(FileNotFoundError):
                report.apply(os.path.join(tmp, "missing"), tmp)


if __name__ == "__main__":
    unittest.main()
