"""TLS on the real binaries: a coordinator serving TLS (and mutual TLS) on loopback with
certificates made by `openssl` at test time; the CLI, a worker agent and grpcurl that hold the CA
get in, and plaintext, an unknown CA or a missing client certificate are refused with a clear
error."""

import os
import signal
import subprocess
import time
import unittest

from tests import testlib


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=directory)


def make_cert(directory, ca, name, san):
    """A certificate for `name` signed by `ca`; san is the subjectAltName list (or None)."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=directory)
    ext = os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", f"{name}.pem",
            cwd=directory)


class Certificates:
    """A CA, a loopback server certificate and a client certificate, plus an unrelated CA."""

    def __init__(self):
        self.dir = testlib.tmpdir()
        make_ca(self.dir, "ca")
        make_ca(self.dir, "other-ca")
        make_cert(self.dir, "ca", "server", "IP:127.0.0.1,DNS:localhost")
        make_cert(self.dir, "ca", "client", None)

    def path(self, name):
        return os.path.join(self.dir, name)


CERTS = None


def setUpModule():
    global CERTS
    CERTS = Certificates()


def run_cli(coordinator, *args):
    return subprocess.run([testlib.binary("cli/gauntlet"), f"--coordinator={coordinator.address}",
                           *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "GAUNTLET_TLS_CA": ""})


def grpcurl(coordinator, *flags):
    return subprocess.run([testlib.grpcurl(), "-connect-timeout", "5", *flags, coordinator.address,
                           "grpc.health.v1.Health/Check"],
                          capture_output=True, text=True, timeout=60)


class TlsTest(unittest.TestCase):

    def setUp(self):
        self.coordinator = testlib.Coordinator(extra_args=[
            f"--tls_cert={CERTS.path('server.pem')}", f"--tls_key={CERTS.path('server.key')}"])
        self.addCleanup(self.coordinator.stop, signal.SIGKILL)

    def test_announces_tls(self):
        self.assertIn("(TLS)", self.coordinator.logs())

    def test_grpcurl_with_the_ca_gets_health(self):
        result = grpcurl(self.coordinator, "-cacert", CERTS.path("ca.pem"))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn('"SERVING"', result.stdout)

    def test_grpcurl_plaintext_is_refused(self):
        result = grpcurl(self.coordinator, "-plaintext")
        self.assertNotEqual(result.returncode, 0)
        self.assertNotIn("SERVING", result.stdout)

    def test_grpcurl_with_another_ca_is_refused(self):
        result = grpcurl(self.coordinator, "-cacert", CERTS.path("other-ca.pem"))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("certificate", result.stderr)

    def test_cli_with_the_ca_lists(self):
        result = run_cli(self.coordinator, f"--tls_ca={CERTS.path('ca.pem')}", "ls")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("NAME", result.stdout)

    def test_cli_ca_from_environment(self):
        result = subprocess.run([testlib.binary("cli/gauntlet"), "-c", self.coordinator.address,
                                 "ls"], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "GAUNTLET_TLS_CA": CERTS.path("ca.pem")})
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_cli_plaintext_is_refused_with_a_hint(self):
        result = run_cli(self.coordinator, "ls")
        self.assertEqual(result.returncode, 1, result.stderr)  # kExitRpcError
        self.assertIn("unavailable", result.stderr)
        self.assertIn("if the coordinator serves TLS, pass --tls_ca", result.stderr)

    def test_cli_with_another_ca_is_refused(self):
        result = run_cli(self.coordinator, "--tls_ca", CERTS.path("other-ca.pem"), "ls")
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("connecting over TLS: check that --tls_ca signed", result.stderr)

    def test_cli_names_a_bad_tls_flag(self):
        result = run_cli(self.coordinator, f"--tls_ca={CERTS.path('ca.key')}", "ls")
        self.assertEqual(result.returncode, 2, result.stderr)  # usage
        self.assertIn("--tls_ca: ", result.stderr)
        self.assertIn("holds no PEM CERTIFICATE", result.stderr)
        result = run_cli(self.coordinator, f"--tls_ca={CERTS.path('nope.pem')}", "ls")
        self.assertIn("--tls_ca: cannot read", result.stderr)

    def test_worker_with_the_ca_connects_and_plaintext_worker_does_not(self):
        logs = {}
        for name, extra in (("tls", [f"--tls_ca={CERTS.path('ca.pem')}"]), ("plain", [])):
            work_dir = testlib.tmpdir()
            logs[name] = os.path.join(work_dir, "worker.log")
            with open(logs[name], "wb") as log:
                proc = subprocess.Popen(
                    [testlib.binary("worker/worker"), f"--coordinator={self.coordinator.address}",
                     f"--worker_id={name}", "--address=127.0.0.1", "--gpus=none",
                     "--cpu_slots=1", f"--work_dir={work_dir}", "--trainer=/bin/false",
                     f"--data_root={work_dir}", *extra],
                    stdout=log, stderr=subprocess.STDOUT)
            self.addCleanup(proc.wait, 15)
            self.addCleanup(proc.kill)

        def read(name):
            with open(logs[name], errors="replace") as f:
                return f.read()

        deadline = time.time() + 30
        while time.time() < deadline and not (
                "connected to the coordinator" in read("tls") and
                "heartbeat failed" in read("plain")):
            time.sleep(0.1)
        self.assertIn("connected to the coordinator", read("tls"))
        self.assertIn("heartbeat failed", read("plain"))
        self.assertIn("if the coordinator serves TLS, pass --tls_ca", read("plain"))
        self.assertNotIn("connected to the coordinator", read("plain"))


class MutualTlsTest(unittest.TestCase):

    def setUp(self):
        self.coordinator = testlib.Coordinator(extra_args=[
            f"--tls_cert={CERTS.path('server.pem')}", f"--tls_key={CERTS.path('server.key')}",
            f"--tls_client_ca={CERTS.path('ca.pem')}"])
        self.addCleanup(self.coordinator.stop, signal.SIGKILL)

    def test_announces_mutual_tls(self):
        self.assertIn("(mutual TLS)", self.coordinator.logs())

    def test_client_with_certificate_gets_in(self):
        result = run_cli(self.coordinator, "--tls_ca", CERTS.path("ca.pem"),
                         "--tls_cert", CERTS.path("client.pem"),
                         "--tls_key", CERTS.path("client.key"), "ls")
        self.assertEqual(result.returncode, 0, result.stderr)
        result = grpcurl(self.coordinator, "-cacert", CERTS.path("ca.pem"),
                         "-cert", CERTS.path("client.pem"), "-key", CERTS.path("client.key"))
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_client_without_certificate_is_refused(self):
        result = run_cli(self.coordinator, "--tls_ca", CERTS.path("ca.pem"), "ls")
        self.assertEqual(result.returncode, 1, result.stderr)
        result = grpcurl(self.coordinator, "-cacert", CERTS.path("ca.pem"))
        self.assertNotEqual(result.returncode, 0)

    def test_client_cert_without_key_is_a_usage_error(self):
        result = run_cli(self.coordinator, "--tls_ca", CERTS.path("ca.pem"),
                         "--tls_cert", CERTS.path("client.pem"), "ls")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("--tls_cert and --tls_key go together", result.stderr)


class CoordinatorFlagsTest(unittest.TestCase):

    def start(self, *flags):
        workdir = testlib.tmpdir()
        return subprocess.run(
            [testlib.binary("server/coordinator"), "--listen=127.0.0.1:0",
             f"--db={workdir}/gauntlet.db", "--metrics_listen=127.0.0.1:0", *flags],
            capture_output=True, text=True, timeout=30)

    def test_cert_without_key(self):
        result = self.start(f"--tls_cert={CERTS.path('server.pem')}")
        self.assertEqual(result.returncode, 1)
        self.assertIn("--tls_cert and --tls_key go together", result.stderr)

    def test_key_given_as_cert(self):
        result = self.start(f"--tls_cert={CERTS.path('server.key')}",
                            f"--tls_key={CERTS.path('server.key')}")
        self.assertEqual(result.returncode, 1)
        self.assertIn("--tls_cert: ", result.stderr)
        self.assertIn("holds no PEM CERTIFICATE", result.stderr)

    def test_client_ca_without_cert(self):
        result = self.start(f"--tls_client_ca={CERTS.path('ca.pem')}")
        self.assertEqual(result.returncode, 1)
        self.assertIn("--tls_client_ca needs --tls_cert and --tls_key", result.stderr)


if __name__ == "__main__":
    unittest.main()
