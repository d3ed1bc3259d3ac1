#!/usr/bin/env python3
"""Multi-GPU (or multi-CPU-rank) runs of the real binaries: data-parallel scaling with a replica
check, one trial spanning two worker processes, and several trials packed on one worker.

The bench/*.sh wrappers pick the binaries (bazel-bin here, .device/bin on the GPU machine) and
call one subcommand of this file. Everything is stdlib Python so it runs with any python3 there.
Exit status: 0 when every check held, 1 when a check failed, 2 for bad arguments.
"""

import argparse
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


class CheckFailed(Exception):
    """A property the run must have did not hold; the message says which and by how much."""


# ------------------------------------------------------------------------------- binaries, env

def binaries():
    """Absolute paths of the four binaries, from GAUNTLET_*_BIN (the .sh wrappers set them)."""
    out = {}
    for name in ("trainer", "worker", "coordinator", "gauntlet"):
        var = f"GAUNTLET_{name.upper()}_BIN"
        path = os.environ.get(var, "")
        out[name] = os.path.abspath(path) if path else ""
    return out


def require(path, what):
    if not path or not os.access(path, os.X_OK):
        raise SystemExit(f"error: {what} binary not found ({path or 'unset'}): build it or set "
                         f"GAUNTLET_{what.upper()}_BIN")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_block(size=16):
    """A base port with `size` free ports after it, for a worker's rendezvous range."""
    import random
    for _ in range(200):
        base = random.randint(20000, 60000 - size)
        try:
            for port in range(base, base + size):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port block")


def read_events(path):
    events = []
    with open(path) as f:
        for line in f:
            if line.strip():
                events.append(json.loads(line))
    return events


def summary_of(events):
    for e in reversed(events):
        if "summary" in e:
            return e["summary"]
    return None


def steady_tokens_per_second(events, summary):
    """Tokens/s from the first log window's end to the last one: start-up (allocator, cuDNN and
    NCCL warm-up) is left out, which a short benchmark run would otherwise count. Falls back to
    the summary's whole-run figure when there are fewer than two log windows."""
    points = [(int(e["metric"]["tokens"]), float(e["metric"]["trainSeconds"]))
              for e in events if "metric" in e and e["metric"]["name"] == "train_loss"]
    if len(points) >= 2 and points[-1][1] > points[0][1]:
        return (points[-1][0] - points[0][0]) / (points[-1][1] - points[0][1])
    return float(summary["tokensPerSecond"])


def trial_spec_yaml(data, cache_dir, arch, size, steps, batch_size, device, log_every,
                    val_tokens, seed):
    # Evaluation only at the end and on a capped slice: the run measures training.
    return f"""\
data:
  path: {data}
  cache_dir: {cache_dir}
model:
  arch: {arch}
  size: {size}
train:
  batch_size: {batch_size}
  log_every: {log_every}
budget:
  steps: {steps}
eval:
  every_steps: 0
  max_tokens: {val_tokens}
resources:
  device: {"gpu" if device == "cuda" else "cpu"}
checkpoint:
  every_steps: 0
  keep_last: 1
seed: {seed}
"""


# ------------------------------------------------------------------------------- one gang

def run_gang(trainer, spec_path, world, device, run_dir, timeout, threads_per_rank=0,
             first_gpu=0, allow_failure=False):
    """Starts `world` trainer ranks of one trial on this host with torchrun's environment and
    returns rank 0's (summary, events). Rank 0 writes the checkpoint into run_dir."""
    os.makedirs(run_dir, exist_ok=True)
    port = free_port()
    events_path = os.path.join(run_dir, "events.jsonl")
    if os.path.exists(events_path):
        os.remove(events_path)
    procs = []
    for rank in range(world):
        env = dict(os.environ)
        env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                   LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   NCCL_NVLS_ENABLE="0")
        env.pop("GAUNTLET_EVENTS_FILE", None)
        if rank == 0:
            env["GAUNTLET_EVENTS_FILE"] = events_path
        if device == "cuda":
            # One GPU per process, as the worker does: rank r sees only GPU first_gpu + r as cuda:0.
            env["CUDA_VISIBLE_DEVICES"] = str(first_gpu + rank)
        else:
            env["CUDA_VISIBLE_DEVICES"] = ""
            if threads_per_rank > 0:
                env["OMP_NUM_THREADS"] = str(threads_per_rank)
        log = open(os.path.join(run_dir, f"rank-{rank}.log"), "w")
        procs.append((subprocess.Popen(
            [trainer, "--spec", spec_path, "--device", device, "--run_dir", run_dir],
            stdout=log, stderr=subprocess.STDOUT, env=env), log))
    deadline = time.time() + timeout
    codes = []
    try:
        for proc, _ in procs:
            codes.append(proc.wait(timeout=max(1.0, deadline - time.time())))
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"world {world}: trainers still running after {timeout:.0f} s "
                          f"(logs in {run_dir})")
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    if any(codes) and allow_failure:
        return {"exitCodes": codes}, read_events(events_path) if os.path.exists(events_path) else []
    if any(codes):
        with open(os.path.join(run_dir, "rank-0.log"), errors="replace") as f:
            tail = f.read()[-2000:]
        raise CheckFailed(f"world {world}: trainer exit codes {codes} (logs in {run_dir}):\n{tail}")
    events = read_events(events_path)
    summary = summary_of(events)
    if summary is None:
        raise CheckFailed(f"world {world}: rank 0 wrote no summary to {events_path}")
    return summary, events


def replica_check(trainer, spec_path, device, gang_dir, gang_summary, rtol, timeout):
    """Replicas are identical when rank 0's weights alone reproduce the gang's validation loss.

    The trainer checkpoints on rank 0 only, but every rank scores its own share of the
    validation windows with its own replica and the shares are summed. Resuming rank 0's final
    checkpoint in a 1-rank run (its budget already spent, so it only evaluates) scores every
    window with rank 0's weights; a rank whose parameters drifted would move the gang's number.
    Same windows (tokens scored must match), so the only allowed difference is summation order
    and batch shape (rtol)."""
    check_dir = gang_dir + "-replica-check"
    shutil.rmtree(check_dir, ignore_errors=True)
    shutil.copytree(os.path.join(gang_dir, "checkpoints"), os.path.join(check_dir, "checkpoints"))
    solo, events = run_gang(trainer, spec_path, 1, device, check_dir, timeout, allow_failure=True)
    if "exitCodes" in solo:
        # The resumed run evaluates, then re-saves the checkpoint of the same step. If only that
        # re-save fails, the final val_loss event (written before it) still answers the question.
        vals = [e["metric"] for e in events if "metric" in e and e["metric"]["name"] == "val_loss"
                and int(e["metric"]["step"]) == int(gang_summary["steps"])]
        if not vals:
            raise CheckFailed(f"replica check: resumed run exited {solo['exitCodes']} before its "
                              f"final evaluation (logs in {check_dir})")
        print(f"WARNING: replica-check run exited {solo['exitCodes'][0]} after its final "
              f"evaluation (re-saving checkpoint step {gang_summary['steps']}); judged on its "
              f"val_loss event. Logs in {check_dir}", file=sys.stderr)
        solo = {"steps": gang_summary["steps"], "valTokensScored": gang_summary["valTokensScored"],
                "finalValLoss": vals[-1]["value"]}
    if int(solo["steps"]) != int(gang_summary["steps"]):
        raise CheckFailed(f"replica check: resumed run ended at step {solo['steps']}, gang at "
                          f"{gang_summary['steps']}")
    if int(solo["valTokensScored"]) != int(gang_summary["valTokensScored"]):
        raise CheckFailed(f"replica check: val tokens scored differ: rank-0 weights "
                          f"{solo['valTokensScored']}, gang {gang_summary['valTokensScored']}")
    a, b = float(solo["finalValLoss"]), float(gang_summary["finalValLoss"])
    rel = abs(a - b) / max(abs(b), 1e-12)
    return {"gang_val_loss": b, "rank0_val_loss": a, "rel_diff": rel, "ok": rel <= rtol}


def scaling(args):
    bins = binaries()
    trainer = require(bins["trainer"], "trainer")
    worlds = [int(w) for w in args.ranks.split()]
    if not worlds or worlds[0] != 1 or any(w < 1 for w in worlds):
        raise SystemExit(f"error: --ranks must start with 1 (the baseline), got '{args.ranks}'")
    work = args.work_dir or tempfile.mkdtemp(prefix="gauntlet-scaling-")
    spec_path = os.path.join(work, "trial.yaml")
    os.makedirs(work, exist_ok=True)
    with open(spec_path, "w") as f:
        f.write(trial_spec_yaml(args.data, os.path.join(work, "cache"), args.arch, args.size,
                                args.steps, args.batch_size, args.device, args.log_every,
                                args.val_tokens, args.seed))
    if args.device == "cpu" and args.threads_per_rank == 0:
        # Each rank is one CPU "slot" of the largest world, as the worker sizes them: the same
        # threads per rank at every world size, and no oversubscription at the largest.
        args.threads_per_rank = max(1, (os.cpu_count() or 1) // max(worlds))
    rows = []
    for world in worlds:
        run_dir = os.path.join(work, f"world-{world}")
        shutil.rmtree(run_dir, ignore_errors=True)
        summary, events = run_gang(trainer, spec_path, world, args.device, run_dir, args.timeout,
                                   args.threads_per_rank)
        rows.append({"world": world, "summary": summary, "run_dir": run_dir,
                     "tok_s": steady_tokens_per_second(events, summary)})
        print(f"world {world}: {rows[-1]['tok_s']:.0f} tok/s (steady), "
              f"{float(summary['tokensPerSecond']):.0f} tok/s (whole run), "
              f"loss {float(summary['finalTrainLoss']):.4f}", file=sys.stderr)
    base = rows[0]["tok_s"]
    print(f"\nScaling: {args.arch} {args.size} on {args.device}, batch {args.batch_size}/rank, "
          f"{args.steps} steps\n")
    print("| world size | tok/s | speedup | efficiency | final train loss | final val loss |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    result = {"device": args.device, "arch": args.arch, "size": args.size, "rows": []}
    for r in rows:
        speedup = r["tok_s"] / base
        s = r["summary"]
        print(f"| {r['world']} | {r['tok_s']:.0f} | {speedup:.2f}x | "
              f"{100 * speedup / r['world']:.1f}% | {float(s['finalTrainLoss']):.4f} | "
              f"{float(s['finalValLoss']):.4f} |")
        result["rows"].append({"world": r["world"], "tokens_per_second": r["tok_s"],
                               "speedup": speedup, "efficiency": speedup / r["world"]})
    ok = True
    print("\nReplica check (rank 0's final weights alone reproduce the gang's val loss):\n")
    print("| world size | gang val loss | rank-0 weights val loss | rel diff | ok | "
          "param digest (bit-identical on every rank, checked by the trainer) |")
    print("| ---: | ---: | ---: | ---: | :---: | --- |")
    result["replica"] = []
    for r in rows:
        if r["world"] == 1:
            continue
        c = replica_check(trainer, spec_path, args.device, r["run_dir"], r["summary"],
                          args.replica_rtol, args.timeout)
        ok = ok and c["ok"]
        result["replica"].append(dict(c, world=r["world"]))
        print(f"| {r['world']} | {c['gang_val_loss']:.6f} | {c['rank0_val_loss']:.6f} | "
              f"{c['rel_diff']:.2e} | {'yes' if c['ok'] else 'NO'} | "
              f"{r['summary'].get('paramDigest', '-')} |")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=1)
    print(f"\nreplica check: {'PASS' if ok else 'FAIL'} (rtol {args.replica_rtol:g}); "
          f"runs in {work}")
    return 0 if ok else 1


# ------------------------------------------------------------------------------- a real cluster

class Cluster:
    """A real coordinator and worker processes on 127.0.0.1, driven through the real CLI."""

    def __init__(self, work):
        self.bins = binaries()
        for name in ("coordinator", "worker", "gauntlet", "trainer"):
            require(self.bins[name], name)
        self.work = work
        self.procs = []
        port_file = os.path.join(work, "coordinator.port")
        self._start("coordinator", [
            self.bins["coordinator"], "--listen=127.0.0.1:0", f"--port_file={port_file}",
            f"--db={work}/gauntlet.db", "--metrics_listen=127.0.0.1:0",
            "--heartbeat_interval_seconds=0.5"])
        deadline = time.time() + 30
        while not (os.path.exists(port_file) and os.path.getsize(port_file) > 0):
            if time.time() > deadline or self.procs[0][0].poll() is not None:
                raise CheckFailed(f"coordinator did not start (log {work}/coordinator.log)")
            time.sleep(0.05)
        with open(port_file) as f:
            self.address = f"127.0.0.1:{int(f.read().strip())}"
        self.worker_dirs = {}

    def _start(self, name, argv):
        log = open(os.path.join(self.work, f"{name}.log"), "ab")
        self.procs.append((subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT), log))

    def add_worker(self, worker_id, data_root, device_args):
        work_dir = os.path.join(self.work, worker_id)
        self.worker_dirs[worker_id] = work_dir
        self._start(worker_id, [
            self.bins["worker"], f"--coordinator={self.address}", f"--worker_id={worker_id}",
            "--address=127.0.0.1", f"--work_dir={work_dir}", f"--trainer={self.bins['trainer']}",
            f"--data_root={data_root}", f"--rendezvous_port_base={free_port_block()}",
            "--kill_grace_seconds=2", *device_args])

    def cli(self, *args, check=True):
        result = subprocess.run([self.bins["gauntlet"], "--coordinator", self.address, *args],
                                capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise CheckFailed(f"gauntlet {' '.join(args)} exited {result.returncode}: "
                              f"{result.stderr.strip()}")
        return result.stdout

    def submit(self, spec_yaml):
        path = os.path.join(self.work, "experiment.yaml")
        with open(path, "w") as f:
            f.write(spec_yaml)
        return self.cli("submit", path).split()[0]

    def wait(self, exp_id, timeout, on_poll=None):
        """Polls `gauntlet describe` until the experiment ends; returns (state, trials)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.cli("describe", exp_id)
            state, trials = parse_describe(text)
            if on_poll is not None:
                on_poll(trials)
            if state in ("COMPLETED", "FAILED", "CANCELED"):
                return state, trials, text
            time.sleep(0.2)
        raise CheckFailed(f"{exp_id} did not finish in {timeout:.0f} s:\n{text}")

    def trial_events(self, trial_id):
        """Rank 0's events of the trial's last attempt, from whichever worker hosted rank 0."""
        found = []
        for work_dir in self.worker_dirs.values():
            found += glob.glob(os.path.join(work_dir, trial_id, "attempt-*", "events.jsonl"))
        if not found:
            raise CheckFailed(f"no events.jsonl for {trial_id} under {self.work}")
        found.sort(key=lambda p: int(p.split("attempt-")[-1].split("/")[0]))
        return read_events(found[-1])

    def trial_spec_path(self, trial_id):
        for work_dir in self.worker_dirs.values():
            path = os.path.join(work_dir, trial_id, "trial.yaml")
            if os.path.exists(path):
                return path
        raise CheckFailed(f"no trial.yaml for {trial_id}")

    def close(self):
        for proc, log in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()


def parse_describe(text):
    """(experiment state, [trial rows as dicts]) from `gauntlet describe`'s aligned table. Columns
    are located by the header's offsets because PLACEMENT and MESSAGE may contain spaces."""
    state = None
    lines = text.splitlines()
    for line in lines:
        if line.startswith("State:"):
            state = line.split()[1].upper()
    header_at = next((i for i, line in enumerate(lines) if line.startswith("TRIAL ")), None)
    if header_at is None:
        return state, []
    header = lines[header_at]
    names = header.split()
    starts = [header.index(" " + n) + 1 if i else 0 for i, n in enumerate(names)]
    trials = []
    for line in lines[header_at + 1:]:
        if not line.strip():
            break
        row = {}
        for i, name in enumerate(names):
            end = starts[i + 1] if i + 1 < len(names) else len(line)
            row[name] = line[starts[i]:end].strip()
        row["STATE"] = row.get("STATE", "").upper()
        trials.append(row)
    return state, trials


def placement_slices(row):
    """'w1:0 w2:0' -> [('w1', [0]), ('w2', [0])]."""
    if row["PLACEMENT"] in ("", "-"):
        return []
    slices = []
    for part in row["PLACEMENT"].split():
        worker, devices = part.rsplit(":", 1)
        slices.append((worker, [int(d) for d in devices.split(",")]))
    return slices


def experiment_yaml(name, data, args, gpus_per_trial, max_nodes, seeds):
    device = "gpu" if args.device == "cuda" else "cpu"
    return f"""\
name: {name}
description: {name} ({args.arch} {args.size} on {args.device})
data:
  path: {data}
model:
  arch: {args.arch}
  size: {args.size}
train:
  batch_size: {args.batch_size}
  log_every: {args.log_every}
budget:
  steps: {args.steps}
eval:
  every_steps: 0
  max_tokens: {args.val_tokens}
resources:
  device: {device}
  gpus_per_trial: {gpus_per_trial}
  max_nodes: {max_nodes}
checkpoint:
  every_steps: 0
  keep_last: 1
variants:
  - name: {args.arch}
    model: {{arch: {args.arch}}}
seeds: [{", ".join(str(s) for s in seeds)}]
max_restarts: 0
"""


def close_enough(a, b, rtol):
    return abs(a - b) <= rtol * max(abs(b), 1e-12)


def multi_worker(args):
    work = args.work_dir or tempfile.mkdtemp(prefix="gauntlet-multiworker-")
    os.makedirs(work, exist_ok=True)
    data_root, data_name = os.path.split(os.path.abspath(args.data))
    cluster = Cluster(work)
    try:
        for i in range(2):
            device_args = ([f"--gpus={args.first_gpu + i}", "--cpu_slots=0"]
                           if args.device == "cuda" else ["--gpus=none", "--cpu_slots=1"])
            cluster.add_worker(f"w{i + 1}", data_root, device_args)
        exp_id = cluster.submit(experiment_yaml("multi-worker-trial", data_name, args, 2, 2,
                                                [args.seed]))
        state, trials, text = cluster.wait(exp_id, args.timeout)
        print(text)
        print(cluster.cli("compare", exp_id, check=False))
        if state != "COMPLETED" or len(trials) != 1:
            raise CheckFailed(f"{exp_id} ended {state} with {len(trials)} trial(s)")
        slices = placement_slices(trials[0])
        workers = {w for w, _ in slices}
        print(f"placement: {trials[0]['PLACEMENT']}")
        if len(slices) != 2 or len(workers) != 2:
            raise CheckFailed(f"placement {trials[0]['PLACEMENT']!r}: want 2 slices on 2 workers")
        trial_id = trials[0]["TRIAL"]
        summary = summary_of(cluster.trial_events(trial_id))
        if summary is None or int(summary["worldSize"]) != 2:
            raise CheckFailed(f"{trial_id}: rank 0's summary is missing or not world size 2")
        # The same trial.yaml launched as one 2-rank gang on one host must train the same model:
        # spanning workers changes where ranks live, not what they compute. Threads per rank as
        # the workers set them (cpu_slots=1 each), since thread count can change CPU float sums.
        reference, _ = run_gang(cluster.bins["trainer"], cluster.trial_spec_path(trial_id), 2,
                                args.device, os.path.join(work, "reference-gang"), args.timeout,
                                threads_per_rank=os.cpu_count() or 1, first_gpu=args.first_gpu)
        print("| run | world | final train loss | final val loss | tok/s |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for label, s in (("across 2 workers", summary), ("one 2-rank gang", reference)):
            print(f"| {label} | {s['worldSize']} | {float(s['finalTrainLoss']):.6f} | "
                  f"{float(s['finalValLoss']):.6f} | {float(s['tokensPerSecond']):.0f} |")
        for key in ("finalTrainLoss", "finalValLoss"):
            if not close_enough(float(summary[key]), float(reference[key]), args.loss_rtol):
                raise CheckFailed(f"{key}: {summary[key]} across workers vs {reference[key]} in "
                                  f"one gang (rtol {args.loss_rtol:g})")
        print(f"multi-worker trial: PASS ({trial_id}, 2 slices on workers {sorted(workers)})")
        return 0
    finally:
        cluster.close()


def packing(args):
    if args.slots < 2 * args.trials:
        raise SystemExit(f"error: --slots {args.slots} cannot hold --trials {args.trials} x 2")
    work = args.work_dir or tempfile.mkdtemp(prefix="gauntlet-packing-")
    os.makedirs(work, exist_ok=True)
    data_root, data_name = os.path.split(os.path.abspath(args.data))
    cluster = Cluster(work)
    try:
        if args.device == "cuda":
            device_args = ["--gpus=" + ",".join(str(g) for g in range(args.slots)),
                           "--cpu_slots=0"]
        else:
            device_args = ["--gpus=none", f"--cpu_slots={args.slots}"]
        cluster.add_worker("w1", data_root, device_args)
        seeds = list(range(1, args.trials + 1))
        exp_id = cluster.submit(experiment_yaml("packing", data_name, args, 2, 1, seeds))
        peak = {"running": 0, "devices": set()}

        def on_poll(trials):
            running = [t for t in trials if t["STATE"] == "RUNNING"]
            if len(running) > peak["running"]:
                peak["running"] = len(running)
                peak["devices"] = [d for t in running for _, ds in placement_slices(t) for d in ds]

        state, trials, text = cluster.wait(exp_id, args.timeout, on_poll)
        print(text)
        if state != "COMPLETED":
            raise CheckFailed(f"{exp_id} ended {state}")
        print(f"peak concurrency: {peak['running']} trials RUNNING at once on devices "
              f"{sorted(peak['devices'])}")
        if peak["running"] != args.trials:
            raise CheckFailed(f"only {peak['running']} of {args.trials} trials ran at once")
        if len(set(peak["devices"])) != len(peak["devices"]):
            raise CheckFailed(f"concurrent trials share devices: {peak['devices']}")
        packed = []
        for t in trials:
            events = cluster.trial_events(t["TRIAL"])
            packed.append((t["TRIAL"], t["PLACEMENT"], steady_tokens_per_second(
                events, summary_of(events))))
        # The same trial alone on the worker's first two devices: the interference baseline.
        solo_summary, solo_events = run_gang(
            cluster.bins["trainer"], cluster.trial_spec_path(trials[0]["TRIAL"]), 2, args.device,
            os.path.join(work, "solo"), args.timeout,
            threads_per_rank=max(1, (os.cpu_count() or 1) // args.slots))
        solo = steady_tokens_per_second(solo_events, solo_summary)
        print(f"\nPacking: {args.trials} trials x 2 {args.device} devices on one worker\n")
        print("| trial | placement | tok/s packed | tok/s solo | packed / solo |")
        print("| --- | --- | ---: | ---: | ---: |")
        for trial_id, placement, tps in packed:
            print(f"| {trial_id} | {placement} | {tps:.0f} | {solo:.0f} | {tps / solo:.2f} |")
        print(f"packing: PASS ({args.trials} trials concurrent)")
        return 0
    finally:
        cluster.close()


# ------------------------------------------------------------------------------- CLI

def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, size, steps, batch):
        p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
        p.add_argument("--arch", default="standard")
        p.add_argument("--size", default=size)
        p.add_argument("--steps", type=int, default=steps)
        p.add_argument("--batch_size", type=int, default=batch, help="sequences per rank")
        p.add_argument("--log_every", type=int, default=10)
        p.add_argument("--val_tokens", type=int, default=8192, help="final eval cap")
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--data", required=True, help="corpus file")
        p.add_argument("--work_dir", default="")
        p.add_argument("--timeout", type=float, default=1800, help="seconds per run")

    p = sub.add_parser("scaling")
    common(p, "124m", 200, 16)
    p.add_argument("--ranks", default="1 2 4 8")
    p.add_argument("--threads_per_rank", type=int, default=0,
                   help="OMP_NUM_THREADS on CPU (default nproc / largest world size)")
    p.add_argument("--replica_rtol", type=float, default=None,
                   help="default 1e-5 on cpu (fp32), 2e-3 on cuda (bf16 autocast)")
    p.add_argument("--json_out", default="")
    p = sub.add_parser("multi-worker")
    common(p, "tiny", 60, 8)
    p.add_argument("--first_gpu", type=int, default=0)
    p.add_argument("--loss_rtol", type=float, default=None,
                   help="default 0 on cpu (bitwise), 1e-3 on cuda")
    p = sub.add_parser("packing")
    common(p, "tiny", 60, 8)
    p.add_argument("--slots", type=int, default=4, help="GPUs 0..slots-1, or CPU slots")
    p.add_argument("--trials", type=int, default=2)
    args = parser.parse_args(argv)
    if not os.path.isfile(args.data):
        raise SystemExit(f"error: --data: no such file {args.data}")
    if args.steps < 1 or args.batch_size < 1:
        raise SystemExit("error: --steps and --batch_size must be >= 1")
    try:
        if args.command == "scaling":
            if args.replica_rtol is None:
                args.replica_rtol = 2e-3 if args.device == "cuda" else 1e-5
            return scaling(args)
        if args.command == "multi-worker":
            if args.loss_rtol is None:
                args.loss_rtol = 1e-3 if args.device == "cuda" else 0.0
            return multi_worker(args)
        return packing(args)
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
