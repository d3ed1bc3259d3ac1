"""The whole system for real: a coordinator, two worker processes with CPU slots, real trainer
processes, configs/ci_tiny.yaml submitted with the real grpcurl, trials to COMPLETED, the real
`gauntlet compare`, and a real Prometheus server scraping the coordinator, queried over PromQL."""

import json
import os
import signal
import subprocess
import time
import unittest
import urllib.parse
import urllib.request

from tests import testlib


def repo_data_root():
    """The repository's data/ in the runfiles: configs name corpora relative to it."""
    root = os.path.join(testlib.workspace_root(), "data")
    if not os.path.exists(os.path.join(root, "tinyshakespeare/input.txt")):
        raise FileNotFoundError(f"{root}/tinyshakespeare/input.txt: add //data:tinyshakespeare to data")
    return root


def http_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read().decode())


class EndToEndTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.started = time.time()
        cls.dir = testlib.tmpdir()
        cls.procs = []
        cls.coordinator = testlib.Coordinator(
            extra_args=[f"--db={cls.dir}/gauntlet.db",
                        "--metrics_listen=127.0.0.1:0",
                        f"--metrics_port_file={cls.dir}/metrics_port",
                        "--heartbeat_interval_seconds=0.5"],
            workdir=cls.dir)
        cls.metrics_port = int(testlib.wait_for_file(f"{cls.dir}/metrics_port"))
        cls.prometheus = testlib.Prometheus(
            targets=[f"127.0.0.1:{cls.metrics_port}"], workdir=os.path.join(cls.dir, "prom"))
        data_root = repo_data_root()
        for i, port_base in enumerate((testlib.free_port_block(), testlib.free_port_block())):
            name = f"w{i + 1}"
            log = open(os.path.join(cls.dir, f"{name}.log"), "ab")
            cls.procs.append((subprocess.Popen(
                [testlib.binary("worker/worker"),
                 f"--coordinator={cls.coordinator.address}",
                 f"--worker_id={name}", "--address=127.0.0.1", "--gpus=none", "--cpu_slots=2",
                 f"--work_dir={cls.dir}/{name}", f"--trainer={testlib.binary('trainer/trainer')}",
                 f"--data_root={data_root}", f"--rendezvous_port_base={port_base}",
                 "--kill_grace_seconds=2"],
                stdout=log, stderr=subprocess.STDOUT), log))

    @classmethod
    def tearDownClass(cls):
        for proc, log in cls.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            log.close()
        cls.prometheus.stop()
        cls.coordinator.stop()

    def dump_logs(self):
        for name in ("coordinator.log", "w1.log", "w2.log"):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    print(f"===== {name} (tail) =====\n" + f.read()[-6000:])

    def wait_completed(self, exp_id, timeout=300):
        deadline = time.time() + timeout
        got = {}
        while time.time() < deadline:
            got = json.loads(self.coordinator.grpcurl(
                "gauntlet.v1.Coordinator/GetExperiment", data={"experiment": exp_id}).stdout)
            if got.get("state") in ("EXPERIMENT_STATE_COMPLETED", "EXPERIMENT_STATE_FAILED",
                                    "EXPERIMENT_STATE_CANCELED"):
                break
            time.sleep(0.5)
        if got.get("state") != "EXPERIMENT_STATE_COMPLETED":
            self.dump_logs()
            print(json.dumps(got, indent=1)[:8000])
        self.assertEqual(got.get("state"), "EXPERIMENT_STATE_COMPLETED")
        return got

    def test_attention_drop_stage_rows_reach_compare(self):
        # A trial with the post-hoc attention-drop stage, through the coordinator and a worker:
        # compare shows the dropped and the fine-tuned model as rows of the variant.
        spec_yaml = """\
name: attn-drop-stage
data: {path: tinyshakespeare/input.txt, tokenizer: char}
model: {arch: mixed, size: tiny, n_layers: 3, mixers: [attn, attn, attn]}
train: {batch_size: 4, optimizer: {name: adamw, lr: 1.0e-3}, log_every: 10}
budget: {steps: 20}
eval: {protocol: fair, every_steps: 0, max_tokens: 4096}
resources: {device: cpu, gpus_per_trial: 1}
checkpoint: {every_steps: 0, keep_last: 1}
stages:
  attn_drop: {drop: 1, finetune_steps: 5, calibration_windows: 2}
variants:
  - name: mixed
baseline: mixed
seeds: [1]
max_restarts: 0
"""
        out = self.coordinator.grpcurl("gauntlet.v1.Coordinator/SubmitExperiment",
                                       data={"spec_yaml": spec_yaml}).stdout
        exp_id = json.loads(out)["experiment"]["id"]
        self.wait_completed(exp_id)
        env = dict(os.environ, GAUNTLET_COORDINATOR=self.coordinator.address)
        compare = subprocess.run([testlib.binary("cli/gauntlet"), "compare", exp_id],
                                 capture_output=True, text=True, env=env, timeout=60)
        print(compare.stdout)
        self.assertEqual(compare.returncode, 0, compare.stderr)
        self.assertRegex(compare.stdout, r"mixed/drop_attn=[0-2](?!\+)")
        self.assertRegex(compare.stdout, r"mixed/drop_attn=[0-2]\+ft5")

    def test_ci_tiny_end_to_end(self):
        with open(os.path.join(testlib.workspace_root(), "configs/ci_tiny.yaml")) as f:
            spec_yaml = f.read()

        # Submit through the real grpcurl, using server reflection only.
        submitted_at = time.time()
        out = self.coordinator.grpcurl("gauntlet.v1.Coordinator/SubmitExperiment",
                                       data={"spec_yaml": spec_yaml}).stdout
        experiment = json.loads(out)["experiment"]
        exp_id = experiment["id"]
        self.assertEqual(len(experiment["trials"]), 4, out)

        # Poll with grpcurl until every trial is COMPLETED.
        first_step_latency = None
        deadline = time.time() + 300
        state = None
        while time.time() < deadline:
            got = json.loads(self.coordinator.grpcurl(
                "gauntlet.v1.Coordinator/GetExperiment", data={"experiment": exp_id}).stdout)
            state = got.get("state")
            if first_step_latency is None and any(
                    int(t.get("latest_step", 0)) > 0 for t in got.get("trials", [])):
                first_step_latency = time.time() - submitted_at
            if state in ("EXPERIMENT_STATE_COMPLETED", "EXPERIMENT_STATE_FAILED",
                         "EXPERIMENT_STATE_CANCELED"):
                break
            time.sleep(0.5)
        if state != "EXPERIMENT_STATE_COMPLETED":
            self.dump_logs()
            print(json.dumps(got, indent=1)[:8000])
        self.assertEqual(state, "EXPERIMENT_STATE_COMPLETED")
        for trial in got["trials"]:
            self.assertEqual(trial["state"], "TRIAL_STATE_COMPLETED", trial)
        # Both workers took part.
        workers = {s["worker_id"] for t in got["trials"] for s in t["placement"]["slices"]}
        self.assertEqual(workers, {"w1", "w2"})
        print(f"submit-to-first-step latency: {first_step_latency:.2f} s; "
              f"submit-to-completed: {time.time() - submitted_at:.2f} s")

        # The real CLI prints the comparison table.
        env = dict(os.environ, GAUNTLET_COORDINATOR=self.coordinator.address)
        compare = subprocess.run([testlib.binary("cli/gauntlet"), "compare", exp_id],
                                 capture_output=True, text=True, env=env, timeout=60)
        print(compare.stdout)
        self.assertEqual(compare.returncode, 0, compare.stderr)
        for variant in {t["variant"] for t in got["trials"]}:
            self.assertIn(variant, compare.stdout)
        self.assertIn("±", compare.stdout)

        # Prometheus scraped the coordinator during training: every trial has a loss series.
        self.prometheus.wait_scraped(min_scrapes=2)
        query = 'count_over_time(gauntlet_trial_train_loss{experiment="%s"}[10m])' % exp_id
        result = http_json(self.prometheus.url + "/api/v1/query?" +
                           urllib.parse.urlencode({"query": query}))
        self.assertEqual(result["status"], "success", result)
        series = {r["metric"]["trial"]: float(r["value"][1]) for r in result["data"]["result"]}
        self.assertEqual(set(series), {t["id"] for t in got["trials"]}, result)
        val = http_json(self.prometheus.url + "/api/v1/query?" + urllib.parse.urlencode(
            {"query": 'gauntlet_trial_val_loss{experiment="%s"}' % exp_id}))
        self.assertEqual(len(val["data"]["result"]), 4, val)
        print(f"end-to-end test time: {time.time() - self.started:.1f} s")


if __name__ == "__main__":
    unittest.main()
