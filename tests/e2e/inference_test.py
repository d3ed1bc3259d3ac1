"""Inference trials through the real system: a coordinator, a CPU worker and real trainer
processes run an experiment with a training variant, an inference variant that loads its
checkpoint (so it starts only after the training trial completed) and one with random weights;
`gauntlet compare` prints the inference table beside the training one, and the coordinator's
/metrics exports the inference gauges."""

import json
import os
import re
import signal
import subprocess
import time
import unittest
import urllib.request

from tests import testlib

SPEC = """
name: inference-e2e
data: {path: tinyshakespeare/input.txt, tokenizer: char}
model: {size: tiny}
train: {batch_size: 4, log_every: 5}
budget: {steps: 10}
eval: {every_steps: 0, max_tokens: 2048}
resources: {device: cpu, gpus_per_trial: 1}
inference: {prefill_contexts: [16, 64], decode_batches: [1, 4], decode_context: 16,
            decode_steps: 8, repeats: 2}
variants:
  - {name: std-train, model: {arch: standard}}
  - {name: std-trained, kind: inference, model: {arch: standard},
     inference: {checkpoint_variant: std-train}}
  - {name: hybrid-random, kind: inference, model: {arch: hybrid}}
baseline: std-train
seeds: [1]
max_restarts: 0
"""


class InferenceEndToEndTest(unittest.TestCase):

    def setUp(self):
        self.dir = testlib.tmpdir()
        self.coordinator = testlib.Coordinator(
            extra_args=[f"--db={self.dir}/gauntlet.db", "--metrics_listen=127.0.0.1:0",
                        f"--metrics_port_file={self.dir}/metrics_port",
                        "--heartbeat_interval_seconds=0.5"],
            workdir=self.dir)
        self.metrics_port = int(testlib.wait_for_file(f"{self.dir}/metrics_port"))
        self.log = open(os.path.join(self.dir, "worker.log"), "ab")
        self.worker = subprocess.Popen(
            [testlib.binary("worker/worker"), f"--coordinator={self.coordinator.address}",
             "--worker_id=w1", "--address=127.0.0.1", "--gpus=none", "--cpu_slots=2",
             f"--work_dir={self.dir}/w1", f"--trainer={testlib.binary('trainer/trainer')}",
             f"--data_root={os.path.join(testlib.workspace_root(), 'data')}",
             f"--rendezvous_port_base={testlib.free_port_block()}", "--kill_grace_seconds=2"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def tearDown(self):
        if self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.worker.kill()
        self.log.close()
        self.coordinator.stop()

    def dump_logs(self):
        for name in ("coordinator.log", "worker.log"):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    print(f"===== {name} (tail) =====\n" + f.read()[-6000:])

    def compare(self, exp_id, *args):
        env = dict(os.environ, GAUNTLET_COORDINATOR=self.coordinator.address)
        out = subprocess.run([testlib.binary("cli/gauntlet"), "compare", exp_id, *args],
                             capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def test_inference_trials_end_to_end(self):
        out = self.coordinator.grpcurl("gauntlet.v1.Coordinator/SubmitExperiment",
                                       data={"spec_yaml": SPEC}).stdout
        experiment = json.loads(out)["experiment"]
        exp_id = experiment["id"]
        by_variant = {t["variant"]: t for t in experiment["trials"]}
        # The coordinator resolved the variant to its trial: the run directory to load.
        self.assertEqual(by_variant["std-trained"]["spec"]["inference"]["checkpoint_path"],
                         by_variant["std-train"]["id"])

        deadline = time.time() + 240
        state = None
        while time.time() < deadline:
            got = json.loads(self.coordinator.grpcurl(
                "gauntlet.v1.Coordinator/GetExperiment",
                data={"experiment": exp_id, "include_transitions": True}).stdout)
            state = got.get("state")
            if state in ("EXPERIMENT_STATE_COMPLETED", "EXPERIMENT_STATE_FAILED",
                         "EXPERIMENT_STATE_CANCELED"):
                break
            time.sleep(0.5)
        if state != "EXPERIMENT_STATE_COMPLETED":
            self.dump_logs()
            print(json.dumps(got, indent=1)[:8000])
        self.assertEqual(state, "EXPERIMENT_STATE_COMPLETED")
        trials = {t["variant"]: t for t in got["trials"]}

        def entered(trial, to):
            return min(float(x["unix_time"]) for x in trial["transitions"] if x["to"] == to)

        # The trained model's inference waited for its training trial.
        self.assertGreaterEqual(entered(trials["std-trained"], "TRIAL_STATE_SCHEDULED"),
                                entered(trials["std-train"], "TRIAL_STATE_COMPLETED"))

        table = self.compare(exp_id)
        print(table)
        self.assertIn("inference variant", table)
        self.assertIn("prefill 64 ms", table)
        self.assertIn("decode b4 tok/s", table)
        for variant in ("std-train", "std-trained", "hybrid-random"):
            self.assertIn(variant, table)
        rows = json.loads(self.compare(exp_id, "--format", "json"))
        inference = {r["variant"]: r for r in rows["inference"]}
        self.assertEqual(set(inference), {"std-trained", "hybrid-random"})
        self.assertEqual([v["variant"] for v in rows["variants"]], ["std-train"])
        trained = inference["std-trained"]
        # The worker resolved the trial id to its directory in the checkpoint store.
        self.assertTrue(trained["weights"].endswith(f'/{trials["std-train"]["id"]} step 10'),
                        trained["weights"])
        self.assertEqual(trained["precision"], "fp32")
        self.assertEqual([p["context"] for p in trained["prefill"]], [16, 64])
        self.assertTrue(all(float(d["tokens_per_second"]) > 0 for d in trained["decode"]))
        self.assertEqual(float(trained["prefill_speedup"]), 1.0)  # the first inference variant
        self.assertGreater(float(inference["hybrid-random"]["decode_speedup"]), 0)
        # Hybrid's static-MLP layers cache nothing: fewer KV bytes per token than standard's.
        self.assertLess(float(inference["hybrid-random"]["kv_cache_bytes_per_token"]),
                        float(trained["kv_cache_bytes_per_token"]))
        csv = self.compare(exp_id, "--format", "csv")
        self.assertIn("\ninference_variant,arch,", csv)

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=10) as response:
            metrics = response.read().decode()
        decode = re.findall(r'^gauntlet_trial_inference_decode_tokens_per_second\{[^}]*'
                            r'variant="hybrid-random"[^}]*\} (\S+)$', metrics, flags=re.M)
        self.assertEqual(len(decode), 2, metrics[-3000:])  # batch 1 and 4


if __name__ == "__main__":
    unittest.main()
