"""The demo inside containers, for real: deploy/build_images.sh builds the coordinator, CLI, CPU
worker and Prometheus images (podman, from a debootstrapped Debian base, no registry); a coordinator,
two workers and Prometheus run as containers on the host network; the CLI image submits
configs/demo.yaml; every trial completes; the CLI image's `compare` prints the table; and every
query of every Grafana dashboard panel returns data from that Prometheus (but the GPU-only ones,
MFU and CUDA memory, which a CPU trainer does not report: deploy/gpu_check.sh runs those on a GPU).

Skips, saying so, where podman is not installed. Prints the image sizes and the times it measured.
"""

import json
import os
import shutil
import socket
import subprocess
import time
import unittest

from deploy.tools import panel_check
from tests import testlib
from tests.deploy import deploylib

IMAGES = ("coordinator", "cli", "worker-cpu", "prometheus")
DEMO_TIMEOUT_S = 900


def podman(*args, check=True, timeout=600, **kwargs):
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                            **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def wait_for_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class ContainerDemoTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if shutil.which("podman") is None:
            raise unittest.SkipTest("podman is not installed, so no image is built or run "
                                    "(scripts/setup.sh installs podman, runc and debootstrap)")
        # The repository's data/ (mounted read-only as the workers' --data_root); the real
        # directory, since a bind mount of the runfiles' symlink farm would not resolve inside.
        cls.data_root = os.path.dirname(os.path.dirname(
            os.path.realpath(deploylib.runfile("data/tinyshakespeare/input.txt"))))
        cls.dir = testlib.tmpdir()
        cls.name = f"gauntlet-test-{os.getpid()}"
        cls.containers, cls.volumes = [], []
        # runc and no default ulimits: what podman needs on the build machines (docs/DEPLOY.md).
        conf = os.path.join(cls.dir, "containers.conf")
        with open(conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n')
        os.environ["CONTAINERS_CONF"] = conf
        version = subprocess.run(["bash", deploylib.runfile("deploy/image_version.sh"),
                                  testlib.binary("server/coordinator")],
                                 capture_output=True, text=True, check=True).stdout.strip()
        # Not the release tag: this build's binaries are the test configuration's.
        cls.tag = f"{version}-test"
        cls.times = {}
        started = time.time()
        build = subprocess.run(
            ["bash", deploylib.runfile("deploy/build_images.sh"), "--bin-dir",
             testlib.workspace_root(), "--images", ",".join(IMAGES), "--tag", cls.tag],
            capture_output=True, text=True, timeout=1800)
        cls.times["build images"] = time.time() - started
        cls.build_log = build.stdout + build.stderr
        if build.returncode != 0:
            raise AssertionError(f"build_images.sh failed:\n{cls.build_log[-6000:]}")
        print(cls.build_log)
        try:
            cls.start_services()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def image(cls, name):
        return f"localhost/gauntlet/{name}:{cls.tag}"

    @classmethod
    def run_container(cls, suffix, image, *args, options=()):
        name = f"{cls.name}-{suffix}"
        podman("run", "-d", "--name", name, "--network", "host", *options, image, *args)
        cls.containers.append(name)
        return name

    @classmethod
    def start_services(cls):
        started = time.time()
        cls.grpc_port, cls.metrics_port = testlib.free_port(), testlib.free_port()
        cls.prom_port = testlib.free_port()
        cls.coordinator = f"127.0.0.1:{cls.grpc_port}"
        store, checkpoints = f"{cls.name}-store", f"{cls.name}-checkpoints"
        for volume in (store, checkpoints):
            podman("volume", "create", volume)
            cls.volumes.append(volume)
        # A fresh named volume takes the image directory's owner (uid 10001), so the non-root
        # processes can write it, and the same volume is mounted by the coordinator and workers.
        cls.run_container(
            "coordinator", cls.image("coordinator"),
            f"--listen=127.0.0.1:{cls.grpc_port}", f"--metrics_listen=127.0.0.1:{cls.metrics_port}",
            "--db=/var/lib/gauntlet/gauntlet.db", "--heartbeat_interval_seconds=0.5",
            options=("-v", f"{store}:/var/lib/gauntlet",
                     "-v", f"{checkpoints}:/var/lib/gauntlet-checkpoints"))
        prom_config = os.path.join(cls.dir, "prometheus.yml")
        with open(deploylib.runfile("deploy/prometheus/prometheus.yml")) as f:
            text = f.read()
        with open(prom_config, "w") as f:
            f.write(text.replace("127.0.0.1:9464", f"127.0.0.1:{cls.metrics_port}"))
        os.chmod(prom_config, 0o644)
        cls.run_container(
            "prometheus", cls.image("prometheus"),
            "--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus",
            f"--web.listen-address=127.0.0.1:{cls.prom_port}",
            options=("-v", f"{prom_config}:/etc/prometheus/prometheus.yml:ro"))
        for index in (1, 2):
            args = [f"--coordinator={cls.coordinator}", f"--worker_id=container-w{index}",
                    "--address=127.0.0.1", "--gpus=none", "--cpu_slots=2",
                    "--work_dir=/var/lib/gauntlet-worker", "--trainer=/opt/gauntlet/bin/trainer",
                    "--data_root=/data", f"--rendezvous_port_base={testlib.free_port_block()}",
                    "--kill_grace_seconds=2",
                    "--checkpoint_store=/var/lib/gauntlet-checkpoints",
                    "--checkpoint_store_shared"]
            cls.run_container(
                f"worker-{index}", cls.image("worker-cpu"), *args,
                options=("-v", f"{cls.data_root}:/data:ro",
                         "-v", f"{checkpoints}:/var/lib/gauntlet-checkpoints",
                         # One OpenMP thread per trainer: four trainers share two cores.
                         "-e", "OMP_NUM_THREADS=1"))
        wait_for_port(cls.grpc_port)
        wait_for_port(cls.prom_port)
        cls.times["start containers"] = time.time() - started

    @classmethod
    def tearDownClass(cls):
        for name in getattr(cls, "containers", []):
            podman("rm", "-f", "-t", "5", name, check=False)
        for volume in getattr(cls, "volumes", []):
            podman("volume", "rm", "-f", volume, check=False)
        if hasattr(cls, "tag"):
            for image in IMAGES:
                podman("rmi", "-f", cls.image(image), check=False)
        if getattr(cls, "times", None):
            print("times: " + ", ".join(f"{k} {v:.0f} s" for k, v in cls.times.items()))

    def dump_logs(self):
        for name in self.containers:
            logs = podman("logs", name, check=False)
            print(f"===== {name} (tail) =====\n{(logs.stdout + logs.stderr)[-4000:]}")

    def cli(self, *args, stdin=None, timeout=120):
        return podman("run", "--rm", "-i", "--network", "host", self.image("cli"),
                      "--coordinator", self.coordinator, *args, input=stdin, timeout=timeout,
                      check=False)

    def test_images_are_non_root_and_carry_no_build_tools(self):
        for name in IMAGES:
            config = json.loads(podman("image", "inspect", self.image(name)).stdout)[0]["Config"]
            user = config.get("User", "")
            self.assertTrue(user and user.split(":")[0] not in ("", "0", "root"), (name, user))
            uid = podman("run", "--rm", "--entrypoint", "/usr/bin/id", self.image(name),
                         "-u").stdout.strip()
            self.assertNotEqual("0", uid, name)
            tools = podman("run", "--rm", "--entrypoint", "/bin/sh", self.image(name), "-c",
                           "for t in gcc g++ cc make bazel python3 curl; do "
                           "command -v $t; done; true").stdout.split()
            self.assertEqual([], tools, name)

    def test_demo_in_containers_then_every_panel_has_data(self):
        try:
            self.run_demo_and_check_panels()
        except BaseException:
            self.dump_logs()
            raise

    def run_demo_and_check_panels(self):
        started = time.time()
        with open(os.path.join(testlib.workspace_root(), "configs/demo.yaml")) as f:
            spec = f.read()
        submit = self.cli("submit", "-", stdin=spec)
        self.assertEqual(0, submit.returncode, submit.stderr)
        self.assertIn("demo", submit.stdout)
        watch = self.cli("watch", "demo", timeout=DEMO_TIMEOUT_S)
        self.times["demo (submit to finished)"] = time.time() - started
        describe = self.cli("describe", "demo")
        self.assertEqual(0, describe.returncode, describe.stderr)
        print(describe.stdout)
        # 4 variants x 2 seeds, every one COMPLETED, through the real API.
        experiment = json.loads(subprocess.run(
            [testlib.grpcurl(), "-plaintext", "-d", '{"experiment": "demo"}', self.coordinator,
             "gauntlet.v1.Coordinator/GetExperiment"],
            capture_output=True, text=True, check=True, timeout=60).stdout)
        states = [t.get("state") for t in experiment.get("trials", [])]
        self.assertEqual(8, len(states), experiment.get("state"))
        self.assertEqual(["TRIAL_STATE_COMPLETED"] * 8, states, watch.stdout[-3000:])
        compare = self.cli("compare", "demo")
        self.assertEqual(0, compare.returncode, compare.stderr)
        print(compare.stdout)
        for variant in ("standard", "worker-k4", "sparse-depth", "hybrid"):
            self.assertIn(variant, compare.stdout)
        self.check_every_panel_has_data(started, experiment["id"])

    def check_every_panel_has_data(self, since, experiment_id):
        # Two scrapes after the last trial finished, so the final points are stored.
        time.sleep(12)
        report, problems = panel_check.check(
            f"http://127.0.0.1:{self.prom_port}", deploylib.runfile("deploy/grafana/dashboards"),
            experiment_id, since, gpu=False)
        print("panel queries against the demo's Prometheus:\n" + "\n".join(report))
        self.assertEqual([], problems)


if __name__ == "__main__":
    unittest.main()
