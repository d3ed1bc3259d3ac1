"""Runs the PyTorch references, each (model, mode) in its own process, one after another, and
appends one JSON row per run to --out (JSON lines). A run that fails or passes its timeout leaves a
row with "error" and no figures; the rest still run. Runs go mode by mode (every eager run, then
compile, then max-autotune), so a deadline cuts the slowest compiles first.

  python3 -m bench.reference.run --out=/tmp/reference.jsonl --cache_dir=.cache/inductor \
      [--models=seed-standard,gpt2-small] [--modes=eager,compile] [--deadline_s=540]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from bench.reference import models
from bench.reference.train import MODES, log

# Steps per timed window: about a second of steps for each size on an H200.
DEFAULT_STEPS = {"seed": 50, "gpt2-small": 20, "tiny": 5}
# A run is not started with less time than this left before the deadline.
MIN_RUN_S = 20


def run_one(model, mode, args, timeout):
    size = args.size or models.MODELS[model][1]
    steps = args.steps or DEFAULT_STEPS[size]
    with tempfile.TemporaryDirectory() as tmp:
        row_path = os.path.join(tmp, "row.json")
        cmd = [sys.executable, "-m", "bench.reference.train", f"--model={model}", f"--mode={mode}",
               f"--device={args.device}", f"--steps={steps}", f"--windows={args.windows}",
               f"--warmup_steps={args.warmup_steps}", f"--optimizer={args.optimizer}",
               f"--json_out={row_path}"]
        if args.size:
            cmd.append(f"--size={args.size}")
        # Own session: a timeout kills the run and its compile workers, nothing else.
        proc = subprocess.Popen(cmd, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return f"timed out after {timeout:.0f} s"
        if rc != 0:
            return f"exit code {rc}"
        with open(row_path) as f:
            return json.load(f)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(models.MODELS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--out", required=True, help="JSON lines, appended")
    parser.add_argument("--size", choices=list(models.SIZES), help="override every model's size")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--optimizer", default="auto", choices=("auto", "fused"))
    parser.add_argument("--steps", type=int, help="steps per window (default by size)")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--warmup_steps", type=int, default=15)
    parser.add_argument("--timeout_s", type=float, default=300, help="cap of one run")
    parser.add_argument("--deadline_s", type=float, default=0,
                        help="stop starting runs this many seconds after the start (0: none)")
    parser.add_argument("--cache_dir",
                        help="TORCHINDUCTOR_CACHE_DIR (and Triton's cache under it) for the runs")
    args = parser.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    modes = [m for m in args.modes.split(",") if m]
    for name in names:
        if name not in models.MODELS:
            parser.error(f"--models: unknown '{name}'; known: {', '.join(models.MODELS)}")
    for mode in modes:
        if mode not in MODES:
            parser.error(f"--modes: unknown '{mode}'; known: {', '.join(MODES)}")
    if args.cache_dir:
        cache = os.path.abspath(args.cache_dir)
        os.makedirs(cache, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        os.environ["TRITON_CACHE_DIR"] = os.path.join(cache, "triton")

    start = time.monotonic()
    failures = 0
    for mode in modes:
        for name in names:
            result, timeout = None, args.timeout_s
            if args.deadline_s > 0:
                left = args.deadline_s - (time.monotonic() - start)
                if left < MIN_RUN_S:
                    result = f"skipped: {args.deadline_s:.0f} s deadline reached"
                timeout = min(timeout, left)
            if result is None:
                log(f"{name} {mode}: starting (timeout {timeout:.0f} s)")
                began = time.monotonic()
                result = run_one(name, mode, args, timeout)
                log(f"{name} {mode}: finished in {time.monotonic() - began:.0f} s")
            if not isinstance(result, dict):
                failures += 1
                log(f"{name} {mode}: FAILED: {result}")
                model = name if args.size is None else f"{name}@{args.size}"
                result = {"model": model, "impl": f"pytorch-{mode}", "tokens_per_s": None,
                          "error": result}
            with open(args.out, "a") as f:
                f.write(json.dumps(result) + "\n")
    log(f"references done in {time.monotonic() - start:.0f} s, {failures} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
