"""bench/results_render.py on a synthetic bench/results.sh output: which trials shared a GPU (and
so lose their tokens/s and matched-seconds columns), the Welch cells taken from compare's JSON,
the flags, the published figures beside ours, the plot, the SVG fallback, and --apply's rewrite
of the generated section only."""

import json
import math
import os
import tarfile
import tempfile
import unittest

from bench import results_render as render


def test(basis, diff, lo, hi, p, n=3, flag=""):
    return dict(basis=basis, at=0, n=n, n_baseline=3, diff=diff, ci_low=lo, ci_high=hi, t=1.0,
                df=4.0, p_value=p, flag=flag)


def variant(name, arch, loss, std, tps, tests=(), n=3):
    return dict(variant=name, arch=arch, params="3448576", n=n, tokens_per_second=tps,
                val_loss_mean=loss, val_loss_std=std, epochs_max=0.58,
                trials_past_one_epoch=[], vs_baseline=list(tests), submodel="")


def write_trial(root, trial, agent, t0, t1, losses, tokens_per_eval=1000):
    """An events file with val_loss points spread over [t0, t1] and a summary, plus placement."""
    with open(os.path.join(root, "events", f"{trial}.attempt-1.jsonl"), "w") as f:
        for i, loss in enumerate(losses):
            t = t0 + (t1 - t0) * i / max(1, len(losses) - 1)
            f.write(json.dumps({"metric": {"trial_id": trial, "name": "val_loss", "value": loss,
                                           "step": str(10 * (i + 1)),
                                           "tokens": str(tokens_per_eval * (i + 1)),
                                           "train_seconds": t - t0, "unix_time": t}}) + "\n")
        f.write(json.dumps({"summary": {"final_val_loss": losses[-1]}}) + "\n")
        f.write('{"metric": {"name": "val_lo')  # a line cut by a cancellation is skipped
    with open(os.path.join(root, "placements.txt"), "a") as f:
        f.write(f"{trial} attempt-1 {agent}\n")


def describe(root, experiment, rows):
    with open(os.path.join(root, f"{experiment}.describe.txt"), "w") as f:
        f.write(f"Experiment e1  {experiment}\nState:    completed\n\n")
        f.write("TRIAL  VARIANT  SEED  STATE  ATTEMPT  PLACEMENT  STEP  LOSS  VAL  TOK/S  MESSAGE\n")
        for trial, name, seed, state in rows:
            f.write(f"{trial}  {name}  {seed}  {state}  1  agent-g0-s0:0  100  2.0  2.0  1M\n")


def make_results(root):
    os.makedirs(os.path.join(root, "events"))
    os.makedirs(os.path.join(root, "logs"))
    with open(os.path.join(root, "env.txt"), "w") as f:
        f.write("date_utc=2026-12-01T06:00:00Z\ndry_run=0\ndevice=gpu\ngpus=1\n"
                "gpu_names=NVIDIA H200\ntrials_per_gpu_phase_b=2\ndeadline_s=420\nelapsed_s=380\n"
                "e1_steps=2000\ne2_tokens=16384000\nseeds=1, 2, 3\n"
                "command=bash bench/results.sh\ngit_commit=abc123\n")
    with open(os.path.join(root, "logs", "prepare_data.log"), "w") as f:
        f.write("tokens 28947865 train 28294754 val 653111 (2 bytes/token)\n")
    # results-prose: standard and worker ran alone (one after another), sqa shared the GPU with
    # a WorkerTransformer trial.
    rows, t = [], 1000.0
    for name in ("standard", "worker-k4"):
        for seed in (1, 2, 3):
            trial = f"p-{name}-{seed}"
            write_trial(root, trial, "agent-g0-s0", t, t + 10, [5.0, 4.5, 4.0 + 0.01 * seed])
            rows.append((trial, name, seed, "completed"))
            t += 11
    for seed in (1, 2, 3):
        trial = f"p-sqa-{seed}"
        write_trial(root, trial, "agent-g0-s1" if seed != 3 else "agent-g0-s0", t, t + 10,
                    [5.1, 4.6, 4.1])
        rows.append((trial, "sqa", seed, "completed"))
        write_trial(root, f"w-standard-{seed}", "agent-g0-s0" if seed != 3 else "agent-g0-s1",
                    t + 1, t + 9, [2.0, 1.6, 1.5])
        t += 11
    rows.append(("p-sqa-4", "sqa", 4, "canceled"))
    describe(root, "results-prose", rows)
    prose = dict(baseline="standard", variants=[
        variant("standard", "standard", 4.02, 0.01, 4.5e6),
        variant("worker-k4", "worker", 4.10, 0.02, 5.7e6, [
            test("final", 0.08, 0.05, 0.11, 0.0012),
            test("matched_tokens", 0.08, 0.05, 0.11, 0.0012),
            test("matched_seconds", 0.03, -0.01, 0.07, 0.2, flag="not significant")]),
        variant("sqa", "sqa", 4.10, 0.0, 9.9e6, [
            test("final", 0.08, math.nan, math.nan, math.nan, n=1, flag="n < 3"),
            test("matched_seconds", -0.5, -0.6, -0.4, 1e-6)], n=1),
    ])
    with open(os.path.join(root, "results-prose.compare.json"), "w") as f:
        json.dump(prose, f, allow_nan=True)
    wt_rows = [(f"w-standard-{s}", "standard", s, "completed") for s in (1, 2, 3)]
    describe(root, "results-wt-fair", wt_rows)
    wt = dict(baseline="standard", variants=[
        variant("standard", "standard", 1.5012, 0.004, 4.4e6),
        variant("worker-k4", "worker", 1.5600, 0.003, 5.8e6,
                [test("final", 0.0588, 0.05, 0.067, 3.2e-5)])])
    with open(os.path.join(root, "results-wt-fair.compare.json"), "w") as f:
        json.dump(wt, f)


class RenderTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.results = os.path.join(self.tmp, "results")
        make_results(self.results)
        self.docs = os.path.join(self.tmp, "docs")
        os.makedirs(self.docs)

    def render(self):
        root = render.load_dir(self.results)
        return render.Report(root, os.path.join(self.docs, "results"), "results/").render()

    def row(self, text, name):
        for line in text.splitlines():
            if line.startswith(f"| {name} |"):
                return [c.strip() for c in line.strip("|").split("|")]
        self.fail(f"no row {name} in:\n{text}")

    def test_shared_trials(self):
        trials = render.read_trials(render.load_dir(self.results))
        render.mark_shared(trials)
        self.assertFalse(trials["p-standard-1"]["shared"])
        self.assertFalse(trials["p-worker-k4-3"]["shared"])
        # sqa seeds 1-2 ran on agent s1 while a WorkerTransformer trial ran on s0: same GPU.
        self.assertTrue(trials["p-sqa-1"]["shared"])
        self.assertTrue(trials["w-standard-1"]["shared"])
        self.assertEqual(trials["p-standard-2"]["curve"][-1][2], 4.02)

    def test_prose_table(self):
        os.makedirs(os.path.join(self.docs, "results"))
        text = self.render()
        base = self.row(text, "standard")
        self.assertEqual(base[4], "4.0200 ± 0.0100")
        self.assertEqual(base[5], "(baseline)")
        self.assertEqual(base[9], "4.50M")
        worker = self.row(text, "worker-k4")
        self.assertEqual(worker[5], "+0.0800 [+0.0500, +0.1100]")
        self.assertEqual(worker[6], "0.0012")
        self.assertEqual(worker[7], "significant")
        self.assertEqual(worker[9], "5.70M")  # every trial alone: speed and seconds shown
        self.assertEqual(worker[10], "+0.0300 [-0.0100, +0.0700]")
        sqa = self.row(text, "sqa")
        self.assertEqual(sqa[4], "4.1000")  # n = 1: no spread
        self.assertEqual(sqa[5], "+0.0800")  # no interval with n = 1
        self.assertEqual(sqa[7], "n < 3")
        self.assertEqual(sqa[9], "shared GPU")
        self.assertEqual(sqa[10], "-")  # matched seconds withheld: it shared the GPU
        self.assertIn("1 canceled", text)
        self.assertIn("28,294,754 training", text)
        self.assertTrue(os.path.exists(os.path.join(self.docs, "results", "results_prose_val_loss.png"))
                        or os.path.exists(os.path.join(self.docs, "results", "results_prose_val_loss.svg")))

    def test_worker_transformer_table(self):
        text = self.render()
        worker = self.row(text, "worker-k4")  # the first worker-k4 row is the prose table's
        rows = [line for line in text.splitlines() if line.startswith("| worker-k4 |")]
        cells = [c.strip() for c in rows[1].strip("|").split("|")]
        self.assertEqual(cells[1], "1.3195 (+0.0716)")  # published, with its difference
        self.assertEqual(cells[2:6], ["-", "-", "-", "-"])  # no seed-protocol run returned
        self.assertEqual(cells[6], "1.5600 ± 0.0030")
        self.assertEqual(cells[8], "3.2e-05")
        self.assertNotEqual(worker, cells)

    def test_welch_check(self):
        rows = {f"b{i}": dict(state="completed", variant="standard", summary={"finalValLoss": x})
                for i, x in enumerate((1.5, 1.6, 1.8))}
        rows.update({f"v{i}": dict(state="completed", variant="w", summary={"final_val_loss": x})
                     for i, x in enumerate((1.0, 1.1, 1.2))})
        rows["v9"] = dict(state="canceled", variant="w", summary=None)
        # Welch by hand: means 1.1 and 1.6333, variances 0.01 and 0.023333, n = 3 a side:
        # t = -0.53333 / sqrt(0.011111) = -5.0596, df = 3.4633, two-sided p = 0.0107.
        data = dict(baseline="standard", variants=[
            variant("w", "worker", 1.1, 0.1, 0, [test("final", -0.5, 0, 0, 0.5)])])
        count, dp, ddiff = render.welch_check(data, rows)
        self.assertEqual(count, 1)
        self.assertAlmostEqual(dp, 0.5 - 0.0107, places=3)
        self.assertAlmostEqual(ddiff, 0.0333333, places=5)

    def test_svg_fallback(self):
        path = render.write_svg({"a": [[(0, 2.0), (10, 1.5)], [(0, 2.2), (10, 1.7)]]},
                                os.path.join(self.tmp, "p.svg"), "t", "tokens")
        with open(path) as f:
            svg = f.read()
        self.assertIn("<polyline", svg)
        self.assertIn("60.0,114.3", svg)  # the mean at x = 0: (2.0 + 2.2) / 2

    def test_apply_replaces_only_the_section(self):
        doc = os.path.join(self.docs, "RESULTS.md")
        with open(doc, "w") as f:
            f.write("# Results\n\nhand-written intro\n")
        tar = os.path.join(self.tmp, "results.tar.gz")
        with tarfile.open(tar, "w:gz") as t:
            t.add(self.results, arcname="results")
        for _ in range(2):
            render.main([tar, "--doc", doc, "--apply"])
        with open(doc) as f:
            text = f.read()
        self.assertTrue(text.startswith("# Results\n\nhand-written intro\n"))
        self.assertEqual(text.count(render.BEGIN), 1)
        self.assertEqual(text.count(render.END), 1)
        self.assertIn("![validation loss vs tokens](results/results_prose_val_loss.", text)


if __name__ == "__main__":
    unittest.main()
