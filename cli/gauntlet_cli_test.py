"""The real `gauntlet` binary against the real coordinator: the exit codes scripts rely on, and
the messages a user needs (field, line and column for a bad spec)."""

import os
import signal
import subprocess
import unittest

from tests import testlib

CI_TINY = os.path.join(testlib.workspace_root(), "configs", "ci_tiny.yaml")

BAD_SPEC = """name: bad-lr
data: {path: x.txt}
budget: {steps: 10}
train:
  optimizer:
    lr: -1
variants: [{name: standard, model: {arch: standard}}]
"""


class GauntletCliTest(unittest.TestCase):

    def setUp(self):
        self.dir = testlib.tmpdir()
        self.coordinator = testlib.Coordinator(
            extra_args=[f"--db={self.dir}/gauntlet.db", "--metrics_listen=127.0.0.1:0"],
            workdir=self.dir)

    def tearDown(self):
        self.coordinator.stop(sig=signal.SIGKILL)

    def gauntlet(self, *args, stdin=None, env_address=False):
        env = dict(os.environ)
        cmd = [testlib.binary("cli/gauntlet")]
        if env_address:
            env["GAUNTLET_COORDINATOR"] = self.coordinator.address
        else:
            cmd += ["--coordinator", self.coordinator.address]
        return subprocess.run(cmd + list(args), input=stdin, capture_output=True, text=True,
                              timeout=60, env=env)

    def test_bad_spec_exits_3_naming_field_and_line(self):
        result = self.gauntlet("submit", "-", stdin=BAD_SPEC)
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertIn("train.optimizer.lr", result.stderr)
        self.assertIn("line 6", result.stderr)

    def test_unknown_experiment_exits_4(self):
        result = self.gauntlet("describe", "exp-does-not-exist", env_address=True)
        self.assertEqual(result.returncode, 4, result.stderr)
        self.assertIn("not found", result.stderr)

    def test_submit_then_describe_and_list(self):
        result = self.gauntlet("submit", CI_TINY)
        self.assertEqual(result.returncode, 0, result.stderr)
        exp_id = result.stdout.split()[0]
        self.assertTrue(exp_id.startswith("exp-"), result.stdout)
        described = self.gauntlet("describe", exp_id)
        self.assertEqual(described.returncode, 0, described.stderr)
        self.assertIn(f"Experiment {exp_id}", described.stdout)
        self.assertIn("pending", described.stdout)
        listed = self.gauntlet("ls")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn(exp_id, listed.stdout)

    def test_usage_error_exits_2_and_help_lists_exit_codes(self):
        self.assertEqual(self.gauntlet("describe").returncode, 2)
        helped = self.gauntlet("help")
        self.assertEqual(helped.returncode, 0)
        self.assertIn("Exit codes:", helped.stdout)

    def test_unreachable_coordinator_exits_1(self):
        result = subprocess.run([testlib.binary("cli/gauntlet"), "--coordinator", "127.0.0.1:1",
                                 "ls"], capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 1, result.stderr)


if __name__ == "__main__":
    unittest.main()
