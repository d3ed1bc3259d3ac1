"""Helpers for tests that run the real binaries: locating them, free ports, processes, grpcurl."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time


def workspace_root():
    """Directory of runfiles for this workspace (where //x:y binaries live as x/y)."""
    base = os.environ.get("TEST_SRCDIR")
    if base:
        return os.path.join(base, os.environ.get("TEST_WORKSPACE", "gauntlet"))
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def binary(label_path):
    """Path of a built binary given 'server/coordinator' style path."""
    path = os.path.join(workspace_root(), label_path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not built; add it to the test's data")
    return path


def tmpdir():
    return tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))


def grpcurl():
    path = shutil.which("grpcurl")
    if path is None:
        raise RuntimeError("grpcurl is not on PATH: run scripts/setup.sh")
    return path


def wait_for_file(path, timeout=30.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path) as f:
                return f.read().strip()
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before writing {path}")
        time.sleep(0.05)
    raise TimeoutError(f"{path} did not appear in {timeout}s")


class Coordinator:
    """A real coordinator process on a free loopback port."""

    def __init__(self, extra_args=(), workdir=None, port=0):
        self.workdir = workdir or tmpdir()
        self.port_file = os.path.join(self.workdir, "port")
        if os.path.exists(self.port_file):
            os.remove(self.port_file)
        self.log_path = os.path.join(self.workdir, "coordinator.log")
        self.log = open(self.log_path, "ab")
        args = list(extra_args)
        # Private store and metrics port unless the test chose them: tests run in parallel.
        if not any(a.startswith("--db=") for a in args):
            args.append(f"--db={self.workdir}/gauntlet.db")
        if not any(a.startswith("--metrics_listen=") for a in args):
            args.append("--metrics_listen=127.0.0.1:0")
        self.proc = subprocess.Popen(
            [binary("server/coordinator"), f"--listen=127.0.0.1:{port}",
             f"--port_file={self.port_file}", *args],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.port = int(wait_for_file(self.port_file, proc=self.proc))
        self.address = f"127.0.0.1:{self.port}"

    def grpcurl(self, *args, data=None, check=True):
        cmd = [grpcurl(), "-plaintext"]
        if data is not None:
            cmd += ["-d", data if isinstance(data, str) else json.dumps(data)]
        cmd += [self.address, *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{cmd} failed ({result.returncode}): {result.stderr}")
        return result

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        self.log.close()
        return self.proc.returncode

    def logs(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


def free_port_block(size=16):
    """A base port with `size` free ports after it (best effort, for rendezvous port ranges)."""
    import random
    import socket
    for _ in range(200):
        base = random.randint(20000, 60000 - size)
        ok = True
        for port in range(base, base + size):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port block")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """A real Prometheus server (Debian package) scraping `targets` every second on loopback."""

    def __init__(self, targets, workdir, config_template=None):
        os.makedirs(workdir, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = os.path.join(workdir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: gauntlet-coordinator\n"
                    "    static_configs:\n      - targets: [%s]\n"
                    % ", ".join(f'"{t}"' for t in targets))
        self.log = open(os.path.join(workdir, "prometheus.log"), "ab")
        self.proc = subprocess.Popen(
            [shutil.which("prometheus") or "/usr/bin/prometheus", f"--config.file={config}",
             f"--storage.tsdb.path={workdir}/data", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                import urllib.request
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}")
            time.sleep(0.2)
        raise TimeoutError("prometheus did not become ready")

    def wait_scraped(self, min_scrapes=1, timeout=30):
        import urllib.parse
        import urllib.request
        deadline = time.time() + timeout
        query = urllib.parse.urlencode({"query": "count_over_time(up[10m])"})
        while time.time() < deadline:
            with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=5) as r:
                result = json.loads(r.read().decode())["data"]["result"]
            if result and float(result[0]["value"][1]) >= min_scrapes:
                return
            time.sleep(0.5)
        raise TimeoutError("prometheus did not scrape")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
