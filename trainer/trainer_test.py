"""The real trainer binary on CPU: resume after SIGKILL, two data-parallel ranks, exit codes."""

import json
import os
import signal
import subprocess
import sys
import time
import unittest

from tests import testlib

CORPUS = "".join(
    f"{i}: the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs.\n"
    for i in range(400))


def write_spec(workdir, run_dir, steps, extra=""):
    corpus = os.path.join(workdir, "corpus.txt")
    if not os.path.exists(corpus):
        with open(corpus, "w") as f:
            f.write(CORPUS)
    spec = os.path.join(workdir, f"trial-{os.path.basename(run_dir)}.yaml")
    with open(spec, "w") as f:
        f.write(f"""\
data:
  path: {corpus}
  cache_dir: {workdir}/cache
model:
  arch: standard
  size: tiny
  dropout: 0.1
train:
  batch_size: 4
  log_every: 1
  schedule: {{kind: cosine, warmup_steps: 5}}
budget:
  steps: {steps}
eval:
  every_steps: 25
  max_tokens: 1024
checkpoint:
  every_steps: 10
  keep_last: 2
seed: 3
run_dir: {run_dir}
{extra}""")
    return spec


def events(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def losses(evts):
    return {int(e["metric"]["step"]): e["metric"]["value"]
            for e in evts if "metric" in e and e["metric"]["name"] == "train_loss"}


def run_trainer(spec, events_file, env=None, check=True):
    full_env = dict(os.environ, GAUNTLET_EVENTS_FILE=events_file, **(env or {}))
    result = subprocess.run([testlib.binary("trainer/trainer"), f"--spec={spec}"],
                            capture_output=True, text=True, env=full_env, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"trainer failed ({result.returncode}): {result.stderr}")
    return result


class TrainerTest(unittest.TestCase):

    def setUp(self):
        self.workdir = testlib.tmpdir()

    def test_killed_run_resumes_the_same_trajectory(self):
        steps = 400
        ref_events = os.path.join(self.workdir, "ref.jsonl")
        ref = run_trainer(write_spec(self.workdir, os.path.join(self.workdir, "ref"), steps),
                          ref_events)
        summary = json.loads(ref.stdout.strip().splitlines()[-1])
        self.assertEqual(int(summary["steps"]), steps)
        self.assertIn("step 400/400 | loss", ref.stdout)
        reference = losses(events(ref_events))
        self.assertEqual(sorted(reference), list(range(1, steps + 1)))

        run_dir = os.path.join(self.workdir, "killed")
        spec = write_spec(self.workdir, run_dir, steps)
        killed_events = os.path.join(self.workdir, "killed.jsonl")
        proc = subprocess.Popen([testlib.binary("trainer/trainer"), f"--spec={spec}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=dict(os.environ, GAUNTLET_EVENTS_FILE=killed_events))
        ckpt = os.path.join(run_dir, "checkpoints", "step_000000030")
        deadline = time.time() + 120
        while not os.path.exists(ckpt) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.assertEqual(proc.returncode, -signal.SIGKILL, "finished before it could be killed")
        first = losses(events(killed_events))

        run_trainer(spec, killed_events)
        evts = events(killed_events)
        started = [e["started"] for e in evts if "started" in e]
        self.assertEqual(len(started), 2)
        resumed_from = int(started[1].get("resumedFromStep", 0))
        self.assertGreaterEqual(resumed_from, 30)
        self.assertLess(resumed_from, steps)
        # The second attempt's losses, step by step, are the uninterrupted run's.
        second_start = max(i for i, e in enumerate(evts) if "started" in e)
        resumed = losses(evts[second_start:])
        self.assertEqual(sorted(resumed), list(range(resumed_from + 1, steps + 1)))
        for step, value in resumed.items():
            self.assertEqual(value, reference[step], f"step {step}")
        for step, value in first.items():
            self.assertEqual(value, reference[step], f"first attempt, step {step}")
        final = [e["summary"] for e in evts if "summary" in e][-1]
        self.assertEqual(final["finalValLoss"], summary["finalValLoss"])

    def test_rerun_with_budget_spent_reports_the_same_summary(self):
        # A restarted gang whose trainer had already finished resumes at its last step: it must
        # re-save and report the finished run's numbers, not NaN.
        spec = write_spec(self.workdir, os.path.join(self.workdir, "done"), 20)
        first = json.loads(run_trainer(spec, os.path.join(self.workdir, "a.jsonl"))
                           .stdout.strip().splitlines()[-1])
        again = json.loads(run_trainer(spec, os.path.join(self.workdir, "b.jsonl"))
                           .stdout.strip().splitlines()[-1])
        self.assertEqual(int(again["steps"]), 20)
        for key in ("finalTrainLoss", "finalValLoss", "paramDigest", "tokens"):
            self.assertEqual(again[key], first[key], key)

    def test_matformer_scores_every_granularity_as_a_submodel(self):
        spec = write_spec(self.workdir, os.path.join(self.workdir, "matformer"), 10)
        with open(spec) as f:
            text = f.read()
        with open(spec, "w") as f:
            f.write(text.replace("arch: standard", "arch: matformer\n  matformer: "
                                 "{granularities: [0.25, 1], eval_granularity: [0, 1]}"))
        summary = json.loads(run_trainer(spec, os.path.join(self.workdir, "m.jsonl"))
                             .stdout.strip().splitlines()[-1])
        submodels = {s["name"]: s["valLoss"] for s in summary["submodels"]}
        self.assertEqual(list(submodels), ["ffn=0.25", "ffn=1", "ffn=0.25,1"])
        # The configured Mix'n'Match choice is what the final evaluation scored.
        self.assertAlmostEqual(submodels["ffn=0.25,1"], summary["finalValLoss"], places=5)
        self.assertNotAlmostEqual(submodels["ffn=0.25"], submodels["ffn=1"], places=5)

    def test_attention_importance_is_reported_for_every_attention_layer(self):
        spec = write_spec(self.workdir, os.path.join(self.workdir, "mixed"), 5)
        with open(spec) as f:
            text = f.read()
        with open(spec, "w") as f:
            f.write(text.replace("arch: standard", "arch: mixed\n  mixers: [attn, static_mlp]"))
        evts_file = os.path.join(self.workdir, "mixed.jsonl")
        run_trainer(spec, evts_file)
        scores = {e["metric"]["name"]: e["metric"]["value"] for e in events(evts_file)
                  if "metric" in e and e["metric"]["name"].startswith("attn_importance/")}
        self.assertEqual(list(scores), ["attn_importance/0"])  # layer 1 has no attention
        self.assertGreater(scores["attn_importance/0"], 0.0)
        self.assertLess(scores["attn_importance/0"], 2.0)

    def test_attention_drop_stage_on_two_ranks(self):
        # Train, score, drop the two least important attention sub-layers, evaluate, fine-tune,
        # evaluate: one trial, two data-parallel ranks that must drop the same layers.
        port = testlib.free_port()
        spec = write_spec(self.workdir, os.path.join(self.workdir, "drop"), 30, extra=(
            "stages:\n  attn_drop: {drop: 2, finetune_steps: 20, finetune_lr: 0.003, "
            "calibration_windows: 2}\n"))
        with open(spec) as f:
            text = f.read()
        with open(spec, "w") as f:
            f.write(text.replace("arch: standard",
                                 "arch: mixed\n  n_layers: 3\n  mixers: [attn, attn, attn]"))
        procs = []
        for rank in range(2):
            env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                       GAUNTLET_EVENTS_FILE=os.path.join(self.workdir, f"drop{rank}.jsonl"))
            procs.append(subprocess.Popen(
                [testlib.binary("trainer/trainer"), f"--spec={spec}"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
        outs = [p.communicate(timeout=300) for p in procs]
        for p, (out, err) in zip(procs, outs):
            self.assertEqual(p.returncode, 0, err)
        # The digest is taken after the fine-tune: both ranks dropped the same layers.
        self.assertIn("replicas: 2 ranks hold bit-identical parameters", outs[0][0])
        summary = json.loads(outs[0][0].strip().splitlines()[-1])
        result = summary["attnDrop"]
        importance = result["importance"]
        self.assertEqual(len(importance), 3)
        dropped = result["droppedLayers"]
        self.assertEqual(dropped, sorted(sorted(range(3), key=lambda i: importance[i])[:2]))
        self.assertEqual(result["valLossBefore"], summary["finalValLoss"])
        self.assertEqual(int(result["finetuneSteps"]), 20)
        self.assertEqual(result["finetuneLr"], 0.003)
        self.assertGreater(result["finetuneSeconds"], 0)
        name = "drop_attn=" + ",".join(str(i) for i in dropped)
        submodels = {s["name"]: s["valLoss"] for s in summary["submodels"]}
        self.assertEqual(submodels, {name: result["valLossAfterDrop"],
                                     name + "+ft20": result["valLossAfterFinetune"]})
        # Removing two of three attention sub-layers costs loss; fine-tuning wins some back.
        self.assertGreater(result["valLossAfterDrop"], result["valLossBefore"])
        self.assertLess(result["valLossAfterFinetune"], result["valLossAfterDrop"])
        self.assertIn(f"attention drop: layers {','.join(str(i) for i in dropped)}", outs[0][0])
        names = {e["metric"]["name"] for e in events(os.path.join(self.workdir, "drop0.jsonl"))
                 if "metric" in e}
        self.assertIn("attn_drop/val_loss_after_finetune", names)

    def test_two_ranks_train_together(self):
        port = testlib.free_port()
        spec = write_spec(self.workdir, os.path.join(self.workdir, "dp"), 30)
        procs = []
        for rank in range(2):
            env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                       GAUNTLET_EVENTS_FILE=os.path.join(self.workdir, f"dp{rank}.jsonl"))
            procs.append(subprocess.Popen(
                [testlib.binary("trainer/trainer"), f"--spec={spec}"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
        outs = [p.communicate(timeout=300) for p in procs]
        for p, (out, err) in zip(procs, outs):
            self.assertEqual(p.returncode, 0, err)
        summary = json.loads(outs[0][0].strip().splitlines()[-1])
        self.assertEqual(summary["worldSize"], 2)
        # The trainer compares final parameter digests across ranks (exit 6 if they differ).
        self.assertIn("replicas: 2 ranks hold bit-identical parameters", outs[0][0])
        self.assertRegex(summary["paramDigest"], "^[0-9a-f]{16}$")
        self.assertEqual(int(summary["tokens"]), 30 * 4 * 64 * 2)
        self.assertEqual(outs[1][0], "", "only rank 0 logs")
        self.assertFalse(os.path.exists(os.path.join(self.workdir, "dp1.jsonl")))
        trained = losses(events(os.path.join(self.workdir, "dp0.jsonl")))
        self.assertLess(trained[30], trained[1] - 0.3)

    def test_exit_codes(self):
        bad_spec = os.path.join(self.workdir, "bad.yaml")
        with open(bad_spec, "w") as f:
            f.write("model: {arch: standard, dmodel: 3}\nbudget: {steps: 1}\n")
        evts = os.path.join(self.workdir, "err.jsonl")
        r = run_trainer(bad_spec, evts, check=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("dmodel", r.stderr)
        self.assertEqual(events(evts)[-1]["error"]["exitCode"], "TRAINER_EXIT_BAD_SPEC")

        spec = write_spec(self.workdir, os.path.join(self.workdir, "nodata"), 5)
        with open(spec) as f:
            text = f.read().replace(os.path.join(self.workdir, "corpus.txt"), "/nonexistent/x.txt")
        with open(spec, "w") as f:
            f.write(text)
        r = run_trainer(spec, evts, check=False)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)


if __name__ == "__main__":
    unittest.main()
