"""The real coordinator binary, driven through the real grpcurl: submit, get, list, cancel,
worker heartbeats and metric reports, compare, logs, /metrics, auth, and restart persistence."""

import concurrent.futures
import json
import os
import signal
import subprocess
import time
import unittest
import urllib.request

from tests import testlib

CI_TINY = os.path.join(testlib.workspace_root(), "configs", "ci_tiny.yaml")
SPECS = os.path.join(testlib.workspace_root(), "tests", "testdata", "specs")


def start(workdir, extra=()):
    """A coordinator on loopback with its database and /metrics port in `workdir`."""
    metrics_port_file = os.path.join(workdir, "metrics_port")
    if os.path.exists(metrics_port_file):
        os.remove(metrics_port_file)
    coordinator = testlib.Coordinator(
        extra_args=[f"--db={os.path.join(workdir, 'gauntlet.db')}",
                    "--metrics_listen=127.0.0.1:0",
                    f"--metrics_port_file={metrics_port_file}", "--lease_seconds=30",
                    *extra],
        workdir=workdir)
    coordinator.metrics_port = int(testlib.wait_for_file(metrics_port_file, proc=coordinator.proc))
    return coordinator


def call(coordinator, method, data, check=True, headers=()):
    """grpcurl `method` with JSON `data`; the parsed reply (grpcurl prints proto field names)."""
    # The request on stdin: a large one does not fit in an argument.
    cmd = [testlib.grpcurl(), "-plaintext", "-d", "@"]
    for header in headers:
        cmd += ["-H", header]
    cmd += [coordinator.address, f"gauntlet.v1.{method}"]
    result = subprocess.run(cmd, input=json.dumps(data), capture_output=True, text=True,
                            timeout=60)
    if not check:
        return result
    if result.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({result.returncode}): {result.stderr}")
    return json.loads(result.stdout) if result.stdout.strip() else {}


def scrape(coordinator):
    url = f"http://127.0.0.1:{coordinator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def wait_until(predicate, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def heartbeat(coordinator, processes=()):
    return call(coordinator, "WorkerService/Heartbeat", {
        "workerId": "w1",
        "inventory": {"hostname": "w1", "address": "127.0.0.1", "cpuSlots": 4,
                      "rendezvousPortBase": 29500},
        "processes": list(processes),
    })


class CoordinatorApiTest(unittest.TestCase):

    def setUp(self):
        self.workdir = testlib.tmpdir()
        self.coordinator = start(self.workdir)
        with open(CI_TINY) as f:
            self.ci_tiny = f.read()

    def tearDown(self):
        self.coordinator.stop(sig=signal.SIGKILL)

    def submit(self, yaml_text, check=True):
        return call(self.coordinator, "Coordinator/SubmitExperiment", {"specYaml": yaml_text},
                    check=check)

    def get(self, experiment):
        return call(self.coordinator, "Coordinator/GetExperiment",
                    {"experiment": experiment, "includeTransitions": True})

    def test_submit_get_list_and_errors(self):
        experiment = self.submit(self.ci_tiny)["experiment"]
        self.assertEqual(experiment["id"], "exp-1")
        self.assertEqual(experiment["state"], "EXPERIMENT_STATE_PENDING")
        trials = experiment["trials"]
        self.assertEqual([t["id"] for t in trials], [f"exp-1-{i}" for i in range(4)])
        self.assertEqual(trials[2]["variant"], "worker-k4")
        self.assertEqual(trials[2]["spec"]["model"]["arch"], "worker")
        self.assertEqual(self.get("ci-tiny")["id"], "exp-1")

        duplicate = self.submit(self.ci_tiny, check=False)
        self.assertNotEqual(duplicate.returncode, 0)
        self.assertIn("AlreadyExists", duplicate.stderr)

        # Every invalid spec case fails with its documented message.
        for name in sorted(os.listdir(os.path.join(SPECS, "invalid")))[:4]:
            with open(os.path.join(SPECS, "invalid", name)) as f:
                text = f.read()
            expected = text.splitlines()[0].removeprefix("# error: ")
            result = self.submit(text, check=False)
            self.assertIn("InvalidArgument", result.stderr, name)
            self.assertIn(expected, result.stderr, name)

        for name in sorted(os.listdir(os.path.join(SPECS, "valid"))):
            with open(os.path.join(SPECS, "valid", name)) as f:
                text = f.read()
            if name.startswith("trial_"):
                continue
            response = call(self.coordinator, "Coordinator/SubmitExperiment",
                            {"specYaml": text, "dryRun": True})
            self.assertTrue(response["experiment"]["trials"], name)

        listed = call(self.coordinator, "Coordinator/ListExperiments", {"pageSize": 1})
        self.assertEqual([e["id"] for e in listed["experiments"]], ["exp-1"])
        self.assertNotIn("next_page_token", listed)

        missing = call(self.coordinator, "Coordinator/GetExperiment", {"experiment": "nope"},
                       check=False)
        self.assertIn("NotFound", missing.stderr)

    def test_cancel(self):
        self.submit(self.ci_tiny)
        canceled = call(self.coordinator, "Coordinator/CancelExperiment",
                        {"experiment": "exp-1", "reason": "test"})
        self.assertEqual(canceled["state"], "EXPERIMENT_STATE_CANCELED")
        again = call(self.coordinator, "Coordinator/CancelExperiment", {"experiment": "exp-1"},
                     check=False)
        self.assertIn("FailedPrecondition", again.stderr)

    def test_worker_flow_metrics_compare_logs_and_restart(self):
        self.submit(self.ci_tiny)
        heartbeat(self.coordinator)
        # The control loop places all four CPU trials on the worker's four slots.
        wait_until(lambda: all(t["state"] == "TRIAL_STATE_SCHEDULED"
                               for t in self.get("exp-1")["trials"]), what="scheduling")
        launches = [a["launch"] for a in heartbeat(self.coordinator)["actions"]]
        self.assertEqual(sorted(l["trial_id"] for l in launches),
                         [f"exp-1-{i}" for i in range(4)])
        self.assertEqual(launches[0]["placement"]["master_addr"], "127.0.0.1")
        heartbeat(self.coordinator, [{"trialId": l["trial_id"], "attempt": 1,
                                      "state": "PROCESS_STATE_RUNNING"} for l in launches])
        self.assertEqual(self.get("exp-1")["state"], "EXPERIMENT_STATE_RUNNING")

        # Fabricated trainer reports: a val curve per trial, then the summary at exit.
        final = {"exp-1-0": 2.0, "exp-1-1": 2.2, "exp-1-2": 1.8, "exp-1-3": 1.9}
        for trial, loss in final.items():
            points = [{"trialId": trial, "name": "val_loss", "value": 3.0, "step": "50",
                       "tokens": "3200", "trainSeconds": 5.0, "unixTime": time.time()},
                      {"trialId": trial, "name": "val_loss", "value": loss, "step": "100",
                       "tokens": "6400", "trainSeconds": 10.0, "unixTime": time.time()}]
            call(self.coordinator, "WorkerService/ReportMetrics",
                 {"workerId": "w1", "attempt": 1, "points": points})
        # Visible in /metrics right away (the RPC sets the gauges synchronously).
        text = scrape(self.coordinator)
        self.assertRegex(text, r'gauntlet_trial_val_loss\{[^}]*trial="exp-1-2"[^}]*\} 1\.8')
        self.assertIn('gauntlet_rpc_requests_total{code="OK",method="ReportMetrics"}', text)

        call(self.coordinator, "WorkerService/ReportLogs", {"workerId": "w1", "chunks": [
            {"trialId": "exp-1-0", "rank": 0, "attempt": 1,
             "text": "step 1/100 | loss 4.1\nstep 2/100 | loss 4.0\n"}]})
        for trial, loss in final.items():
            tokens_per_second = 1000 if trial in ("exp-1-0", "exp-1-1") else 1500
            summary = {"arch": "x", "params": "5000", "steps": "100", "tokens": "6400",
                       "trainSeconds": 10.0, "tokensPerSecond": tokens_per_second,
                       "stepsPerSecond": 10.0, "finalValLoss": loss, "finalTrainLoss": loss}
            call(self.coordinator, "WorkerService/ReportTrialExit",
                 {"workerId": "w1", "trialId": trial, "attempt": 1, "exitCode": 0,
                  "summary": summary})
        self.assertEqual(self.get("exp-1")["state"], "EXPERIMENT_STATE_COMPLETED")

        table = call(self.coordinator, "Coordinator/CompareExperiment", {"experiment": "ci-tiny"})
        by_variant = {v["variant"]: v for v in table["variants"]}
        self.assertEqual(by_variant["standard"]["n"], 2)
        self.assertAlmostEqual(by_variant["standard"]["val_loss_mean"], 2.1)
        self.assertAlmostEqual(by_variant["standard"]["val_loss_std"], 0.1414213562, places=6)
        self.assertAlmostEqual(by_variant["worker-k4"]["speedup"], 1.5)
        self.assertEqual(len(table["curves"]), 4)

        logs = self.coordinator.grpcurl(
            "gauntlet.v1.Coordinator/StreamTrialLogs",
            data={"trialId": "exp-1-0", "tailLines": 1}).stdout
        self.assertEqual(json.loads(logs)["text"], "step 2/100 | loss 4.0\n")

        # A restarted coordinator on the same database has everything.
        before = self.get("exp-1")
        self.assertEqual(self.coordinator.stop(sig=signal.SIGTERM), 0)
        self.coordinator = start(self.workdir)
        after = self.get("exp-1")
        self.assertEqual(after, before)
        self.assertEqual(after["trials"][2]["latest_metrics"]["val_loss"], 1.8)
        self.assertEqual(
            call(self.coordinator, "Coordinator/CompareExperiment", {"experiment": "exp-1"}),
            table)

    def test_watch_and_follow_logs_end_with_the_experiment(self):
        self.submit(self.ci_tiny)

        def stream(method, data):
            cmd = [testlib.grpcurl(), "-plaintext", "-d", json.dumps(data),
                   self.coordinator.address, f"gauntlet.v1.{method}"]
            return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        watch = stream("Coordinator/WatchExperiment", {"experiment": "ci-tiny"})
        follow = stream("Coordinator/StreamTrialLogs", {"trialId": "exp-1-0", "follow": True})
        time.sleep(1.0)  # let both streams open; the outcome is the same if they open later
        call(self.coordinator, "WorkerService/ReportLogs", {"workerId": "w1", "chunks": [
            {"trialId": "exp-1-0", "attempt": 1, "text": "step 1/100 | loss 4.1\n"}]})
        call(self.coordinator, "Coordinator/CancelExperiment", {"experiment": "exp-1"})
        watch_out, _ = watch.communicate(timeout=10)
        follow_out, _ = follow.communicate(timeout=10)
        self.assertEqual(watch.returncode, 0)
        self.assertEqual(follow.returncode, 0)

        decoder = json.JSONDecoder()
        events, text = [], watch_out.strip()
        while text:
            event, end = decoder.raw_decode(text)
            events.append(event)
            text = text[end:].strip()
        self.assertIn("snapshot", events[0])
        self.assertEqual(events[-1]["finished"]["state"], "EXPERIMENT_STATE_CANCELED")
        updates = [e["trial_update"]["state"] for e in events if "trial_update" in e]
        self.assertEqual(updates, ["TRIAL_STATE_CANCELED"] * 4)
        self.assertIn("step 1/100 | loss 4.1", follow_out)

    def test_acknowledged_metric_points_survive_kill9(self):
        self.submit(self.ci_tiny)
        heartbeat(self.coordinator)
        wait_until(lambda: all(t["state"] == "TRIAL_STATE_SCHEDULED"
                               for t in self.get("exp-1")["trials"]), what="scheduling")
        heartbeat(self.coordinator, [{"trialId": f"exp-1-{i}", "attempt": 1,
                                      "state": "PROCESS_STATE_RUNNING"} for i in range(4)])
        # Batches from several clients at once, so some are committed together (group commit);
        # enough points that the log crosses a checkpoint threshold on the way.
        batches, per_batch = 24, 2000

        def report(b):
            points = [{"trialId": "exp-1-0", "name": "val_loss", "value": 1.0,
                       "step": str(b * per_batch + i), "tokens": str(b * per_batch + i),
                       "trainSeconds": float(b * per_batch + i), "unixTime": time.time()}
                      for i in range(per_batch)]
            call(self.coordinator, "WorkerService/ReportMetrics",
                 {"workerId": "w1", "attempt": 1, "points": points})

        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(report, range(batches)))
        # Every batch was acknowledged: kill at once, no chance to flush anything.
        self.coordinator.stop(sig=signal.SIGKILL)
        self.coordinator = start(self.workdir)
        table = call(self.coordinator, "Coordinator/CompareExperiment", {"experiment": "exp-1"})
        curve = [c for c in table["curves"] if c["trial_id"] == "exp-1-0"][0]
        self.assertEqual([int(t) for t in curve["tokens"]], list(range(batches * per_batch)))

    def test_auth_token(self):
        self.coordinator.stop(sig=signal.SIGKILL)
        token_file = os.path.join(self.workdir, "token")
        with open(token_file, "w") as f:
            f.write("s3cret\n")
        self.coordinator = start(self.workdir, [f"--auth_token_file={token_file}"])
        denied = call(self.coordinator, "Coordinator/ListExperiments", {}, check=False)
        self.assertIn("Unauthenticated", denied.stderr)
        call(self.coordinator, "Coordinator/ListExperiments", {},
             headers=["authorization: Bearer s3cret"])
        health = self.coordinator.grpcurl("grpc.health.v1.Health/Check").stdout
        self.assertEqual(json.loads(health)["status"], "SERVING")


if __name__ == "__main__":
    unittest.main()
