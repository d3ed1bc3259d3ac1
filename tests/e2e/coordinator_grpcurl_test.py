"""The real coordinator binary answers the real grpcurl: reflection, health, clean shutdown."""

import json
import os
import signal
import unittest

from tests import testlib


class CoordinatorGrpcurlTest(unittest.TestCase):

    def setUp(self):
        workdir = testlib.tmpdir()
        self.coordinator = testlib.Coordinator(
            extra_args=[f"--db={os.path.join(workdir, 'gauntlet.db')}",
                        "--metrics_listen=127.0.0.1:0"],
            workdir=workdir)

    def tearDown(self):
        self.coordinator.stop(sig=signal.SIGKILL)

    def test_reflection_lists_services(self):
        services = self.coordinator.grpcurl("list").stdout.split()
        self.assertIn("gauntlet.v1.Coordinator", services)
        self.assertIn("gauntlet.v1.WorkerService", services)
        self.assertIn("grpc.health.v1.Health", services)
        self.assertIn("grpc.reflection.v1alpha.ServerReflection", services)

    def test_reflection_describes_methods(self):
        out = self.coordinator.grpcurl("describe", "gauntlet.v1.Coordinator").stdout
        for method in ("SubmitExperiment", "GetExperiment", "ListExperiments",
                       "CancelExperiment", "WatchExperiment", "CompareExperiment",
                       "StreamTrialLogs"):
            self.assertIn(f"rpc {method}", out)

    def test_health_check_serving(self):
        out = self.coordinator.grpcurl("grpc.health.v1.Health/Check").stdout
        self.assertEqual(json.loads(out)["status"], "SERVING")

    def test_sigterm_exits_cleanly(self):
        self.assertEqual(self.coordinator.stop(sig=signal.SIGTERM), 0)
        self.assertIn("shutting down", self.coordinator.logs())


if __name__ == "__main__":
    unittest.main()
