"""Fault tests of the control plane with real processes on loopback: a real coordinator, real
worker agents, real trainers, and real kill -9 / SIGSTOP / SIGTERM. Leases and heartbeats are
short (flags) so every scenario takes seconds; every wait polls with a deadline.

Each scenario prints one `RELIABILITY |` line with what it measured (docs/RELIABILITY.md)."""

import json
import os
import random
import signal
import subprocess
import threading
import time
import unittest

from tests import testlib

LEASE = 3.0          # --lease_seconds
INTERVAL = 0.25      # --heartbeat_interval_seconds
# The coordinator outage of the outage scenario, in seconds (60 in docs/RELIABILITY.md's run).
OUTAGE = float(os.environ.get("GAUNTLET_FAULT_OUTAGE_SECONDS", 4 * LEASE))

SPEC = """
name: {name}
data: {{path: corpus.txt, tokenizer: char, val_fraction: 0.1}}
model: {{size: tiny}}
train: {{batch_size: 4, log_every: 5}}
budget: {{steps: {steps}}}
eval: {{every_steps: 0, max_tokens: 1024}}
checkpoint: {{every_steps: {ckpt}, keep_last: 2}}
resources: {{device: cpu}}
variants: [{{name: standard, model: {{arch: standard}}}}]
seeds: [{seeds}]
max_restarts: {restarts}
"""


def wait_until(predicate, timeout, what, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


# Only trainers under this directory count: other tests on the machine run trials with the same
# ids. Set by each test's Cluster.
ROOT = [None]


def trainer_processes(trial_id):
    """{pid: attempt} of live (not zombie) trainer processes of `trial_id` started by this
    test's workers (their working directory is under the test's temp dir), from /proc."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            if not os.readlink(f"/proc/{entry}/cwd").startswith(ROOT[0]):
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        except (OSError, IndexError, ValueError):
            continue
        if env.get(b"GAUNTLET_TRIAL_ID") == trial_id.encode():
            found[int(entry)] = int(env.get(b"GAUNTLET_ATTEMPT", b"0"))
    return found


class CopyMonitor:
    """Samples the trainer processes of one trial every 20 ms: how many attempts ran at once,
    and for how long two did."""

    def __init__(self, trial_id):
        self.trial_id = trial_id
        self.max_attempts_at_once = 0
        self.overlap_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        last = time.time()
        while not self._stop.is_set():
            attempts = set(trainer_processes(self.trial_id).values())
            now = time.time()
            self.max_attempts_at_once = max(self.max_attempts_at_once, len(attempts))
            if len(attempts) > 1:
                self.overlap_seconds += now - last
            last = now
            time.sleep(0.02)

    def stop(self):
        self._stop.set()
        self._thread.join()


class Cluster:
    """A coordinator and named workers sharing one checkpoint store, all in one temp dir."""

    def __init__(self, test):
        self.dir = os.path.realpath(testlib.tmpdir())
        ROOT[0] = self.dir
        self.data_root = os.path.join(self.dir, "data")
        os.makedirs(self.data_root)
        rng = random.Random(1)
        words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "cat"]
        with open(os.path.join(self.data_root, "corpus.txt"), "w") as f:
            f.write(" ".join(rng.choice(words) for _ in range(40000)))
        self.store = os.path.join(self.dir, "checkpoints")
        self.port = testlib.free_port()
        self.coordinator = None
        self.workers = {}
        self.logs = []
        self.start_coordinator()
        test.addCleanup(self.stop)

    def start_coordinator(self):
        self.coordinator = testlib.Coordinator(
            extra_args=[f"--db={self.dir}/gauntlet.db", f"--lease_seconds={LEASE}",
                        f"--heartbeat_interval_seconds={INTERVAL}",
                        "--unhealthy_after_failures=2"],
            workdir=self.dir, port=self.port)

    def start_worker(self, name, trainer=None, extra=(), env=None):
        log = open(os.path.join(self.dir, f"{name}.log"), "ab")
        self.logs.append(log)
        proc = subprocess.Popen(
            [testlib.binary("worker/worker"), f"--coordinator={self.coordinator.address}",
             f"--worker_id={name}", "--address=127.0.0.1", "--gpus=none", "--cpu_slots=1",
             f"--work_dir={os.path.join(self.dir, name)}",
             f"--trainer={trainer or testlib.binary('trainer/trainer')}",
             f"--data_root={self.data_root}",
             f"--rendezvous_port_base={testlib.free_port_block()}", "--kill_grace_seconds=1",
             f"--checkpoint_store={self.store}", "--checkpoint_store_shared", *extra],
            stdout=log, stderr=subprocess.STDOUT, env=None if env is None else {**os.environ, **env})
        self.workers[name] = proc
        return proc

    def submit(self, name, steps, ckpt=20, seeds="1", restarts=2, spec=None):
        spec = (spec or SPEC).format(name=name, steps=steps, ckpt=ckpt, seeds=seeds,
                                     restarts=restarts)
        out = self.coordinator.grpcurl("gauntlet.v1.Coordinator/SubmitExperiment",
                                       data={"spec_yaml": spec}).stdout
        return json.loads(out)["experiment"]["id"]

    def get(self, exp_id, transitions=False):
        out = self.coordinator.grpcurl("gauntlet.v1.Coordinator/GetExperiment",
                                       data={"experiment": exp_id,
                                             "include_transitions": transitions}).stdout
        return json.loads(out)

    def trial(self, exp_id, index=0):
        return self.get(exp_id)["trials"][index]

    def log(self, name):
        with open(os.path.join(self.dir, f"{name}.log"), errors="replace") as f:
            return f.read()

    def stop(self):
        for proc in self.workers.values():
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGCONT)
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=15)
                except (OSError, subprocess.TimeoutExpired):
                    proc.kill()
        if self.coordinator is not None and self.coordinator.proc.poll() is None:
            self.coordinator.stop()
        for log in self.logs:
            log.close()

    def dump(self):
        for name in ["coordinator", *self.workers]:
            path = os.path.join(self.dir, f"{name}.log")
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    print(f"===== {name}.log (tail) =====\n{f.read()[-4000:]}")


def state(trial):
    return trial.get("state", "")


def step(trial):
    return int(trial.get("latest_step", 0))


def report(scenario, **measured):
    print("RELIABILITY | " + scenario + " | " +
          ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in measured.items()), flush=True)


class FaultTest(unittest.TestCase):

    def setUp(self):
        self.cluster = Cluster(self)

    def run(self, result=None):
        failures = len(result.failures) + len(result.errors) if result else 0
        super().run(result)
        if result and len(result.failures) + len(result.errors) > failures:
            self.cluster.dump()

    def running_trial(self, exp_id, min_step):
        def running():
            t = self.cluster.trial(exp_id)
            if state(t) in ("TRIAL_STATE_FAILED", "TRIAL_STATE_CANCELED"):
                raise AssertionError(f"{exp_id} ended: {t.get('status_message')}")
            return t if state(t) == "TRIAL_STATE_RUNNING" and step(t) >= min_step else None
        return wait_until(running, 120, f"{exp_id} running past step {min_step}", interval=0.2)

    def test_kill9_agent_takes_its_trainer_and_a_restarted_agent_reports_it(self):
        c = self.cluster
        w1 = c.start_worker("w1")
        exp = c.submit("kill-agent", steps=100000)
        trial_id = f"{exp}-0"
        self.running_trial(exp, 40)
        trainers = trainer_processes(trial_id)
        self.assertEqual(set(trainers.values()), {1})
        killed_at = time.time()
        w1.kill()  # SIGKILL: the agent cannot clean up
        w1.wait()
        wait_until(lambda: not trainer_processes(trial_id), 10, "the orphaned trainer to die")
        trainer_gone = time.time() - killed_at
        # Restarted with the same id and work dir, well within the lease.
        c.start_worker("w1")

        def attempt2_training():
            t = c.trial(exp)
            ok = int(t.get("attempt", 1)) == 2 and state(t) == "TRIAL_STATE_RUNNING" and step(t) > 0
            return t if ok else None
        t = wait_until(attempt2_training, 60, "attempt 2 training")
        recovered = time.time() - killed_at
        self.assertEqual(set(trainer_processes(trial_id).values()), {2})
        report("agent kill -9, restarted with the same id", trainer_gone_s=trainer_gone,
               recovered_s=recovered, steps_lost=int(t.get("steps_lost", 0)),
               copies_at_once=1)
        self.assertLess(trainer_gone, 5)
        self.assertLess(recovered, LEASE + 30)
        self.assertIn("the worker agent restarted", json.dumps(c.get(exp, transitions=True)))

    def test_sigstop_agent_past_its_lease_fences_the_old_trainer(self):
        c = self.cluster
        w1 = c.start_worker("w1")
        exp = c.submit("stop-agent", steps=100000)
        trial_id = f"{exp}-0"
        self.running_trial(exp, 40)
        monitor = CopyMonitor(trial_id)
        os.kill(w1.pid, signal.SIGSTOP)
        stopped_at = time.time()
        c.start_worker("w2")
        # Lost after the lease, placed on w2, which claims the checkpoint dir for attempt 2.
        fence = os.path.join(c.store, trial_id, "fence")
        def claimed():
            try:
                with open(fence) as f:
                    return f.read().strip() == "2"
            except OSError:
                return False
        wait_until(claimed, 60, "attempt 2 to claim the checkpoint dir")
        claimed_at = time.time()
        wait_until(lambda: set(trainer_processes(trial_id).values()) == {2}, 20,
                   "the stale trainer to stop")
        stale_stopped = time.time() - claimed_at
        t = wait_until(lambda: (lambda t: t if state(t) == "TRIAL_STATE_RUNNING" and
                                int(t["attempt"]) == 2 and step(t) > 0 else None)(c.trial(exp)),
                       60, "attempt 2 running")
        recovered = time.time() - stopped_at
        os.kill(w1.pid, signal.SIGCONT)
        monitor.stop()
        # The old trainer stopped on its own (exit code 7, FENCED) while its agent was frozen.
        wait_until(lambda: "exited with code 7" in c.log("w1"), 20, "w1 to reap the fenced trainer")
        report("agent SIGSTOP past its lease", recovered_s=recovered,
               stale_trainer_stopped_s=stale_stopped, steps_lost=int(t.get("steps_lost", 0)),
               copies_at_once=monitor.max_attempts_at_once,
               two_copies_s=monitor.overlap_seconds)
        self.assertLessEqual(stale_stopped, 1.0 + INTERVAL * 4)
        self.assertLessEqual(monitor.overlap_seconds, 1.5)
        self.assertIn("shared checkpoint store", json.dumps(c.get(exp, transitions=True)))

    def test_coordinator_outage_loses_nothing_and_restarts_nothing(self):
        c = self.cluster
        c.start_worker("w1")
        # One long trial that keeps running through the outage, one short that ends during it.
        long_exp = c.submit("outage-long", steps=100000)
        self.running_trial(long_exp, 20)
        c.start_worker("w2")
        short_exp = c.submit("outage-short", steps=150, ckpt=50)
        self.running_trial(short_exp, 5)
        c.coordinator.proc.kill()
        c.coordinator.proc.wait()
        c.coordinator.log.close()
        time.sleep(OUTAGE)  # the outage itself: nothing to poll for
        restarted_at = time.time()
        c.start_coordinator()
        short = wait_until(lambda: (lambda t: t if state(t) == "TRIAL_STATE_COMPLETED" else None)(
            c.trial(short_exp)), 60, "the short trial's result")
        long_trial = c.trial(long_exp)
        report("coordinator down (kill -9) for %.0f s" % OUTAGE,
               result_back_s=time.time() - restarted_at,
               restarts=int(short["attempt"]) - 1 + int(long_trial["attempt"]) - 1,
               steps_lost=int(long_trial.get("steps_lost", 0)), copies_at_once=1)
        self.assertEqual(short["attempt"], 1)
        self.assertEqual(long_trial["attempt"], 1)
        self.assertEqual(state(long_trial), "TRIAL_STATE_RUNNING")
        self.assertEqual(short.get("exit_code", 0), 0)

    def test_sigterm_deregisters_and_the_trial_moves_without_waiting_for_the_lease(self):
        c = self.cluster
        w1 = c.start_worker("w1")
        exp = c.submit("term-agent", steps=100000)
        self.running_trial(exp, 20)
        c.start_worker("w2")
        w1.send_signal(signal.SIGTERM)
        termed_at = time.time()
        self.assertEqual(w1.wait(timeout=20), 0)
        t = wait_until(lambda: (lambda t: t if int(t.get("attempt", 1)) >= 2 and
                                t["placement"]["slices"][0]["worker_id"] == "w2" else None)(
            c.trial(exp)) if c.trial(exp).get("placement") else None, 30, "the move to w2")
        moved = time.time() - termed_at
        report("worker SIGTERM", requeued_on_other_worker_s=moved, copies_at_once=1)
        self.assertIn("deregistered", c.log("w1"))

    def test_out_of_memory_retries_with_a_smaller_micro_batch(self):
        c = self.cluster
        # The trainer runs out of "memory" above a micro-batch of 2 (a test-only variable).
        c.start_worker("w1", env={"GAUNTLET_TEST_OOM_ABOVE_BATCH_SIZE": "2"})
        spec = SPEC.replace("train: {{batch_size: 4, log_every: 5}}",
                            "train: {{batch_size: 8, grad_accum_steps: 1, log_every: 5, "
                            "oom_min_batch_size: 2}}")
        exp = c.submit("oom-retry", steps=10, restarts=0, spec=spec)
        started = time.time()
        trial = wait_until(lambda: (lambda t: t if state(t) in (
            "TRIAL_STATE_COMPLETED", "TRIAL_STATE_FAILED") else None)(c.trial(exp)),
            120, "the OOM trial to end")
        self.assertEqual(state(trial), "TRIAL_STATE_COMPLETED", trial.get("status_message"))
        # 8 -> 4 -> 2: two OOM exits, each retried with half the micro-batch and twice the
        # accumulation, although max_restarts is 0.
        self.assertEqual(trial["attempt"], 3)
        self.assertEqual(trial["spec"]["train"]["batch_size"], 2)
        self.assertEqual(trial["spec"]["train"]["grad_accum_steps"], 4)
        reasons = [t.get("reason", "") for t in c.get(exp, transitions=True)["trials"][0]
                   ["transitions"]]
        self.assertTrue(any("retrying with micro-batch 4 x 2" in r for r in reasons), reasons)
        self.assertTrue(any("retrying with micro-batch 2 x 4" in r for r in reasons), reasons)
        report("OOM retry with a smaller micro-batch", attempts=trial["attempt"],
               final_batch=2, final_accum=4, seconds_to_complete=time.time() - started)

    def test_a_worker_that_cannot_launch_is_marked_unhealthy(self):
        c = self.cluster
        # Executable but not a program: every launch on this worker fails in exec.
        bad_trainer = os.path.join(c.dir, "broken-trainer")
        with open(bad_trainer, "w") as f:
            f.write("not a program\n")
        os.chmod(bad_trainer, 0o755)
        c.start_worker("bad", trainer=bad_trainer)
        exp = c.submit("unhealthy", steps=30, ckpt=0, seeds="1, 2, 3", restarts=3)
        wait_until(lambda: "marked unhealthy" in c.coordinator.logs(), 60, "bad marked unhealthy")
        c.start_worker("good")
        wait_until(lambda: c.get(exp).get("state") == "EXPERIMENT_STATE_COMPLETED", 120,
                   "every trial to complete on the healthy worker")


if __name__ == "__main__":
    unittest.main()
