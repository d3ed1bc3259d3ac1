#!/usr/bin/env python3
"""The architecture zoo through the real system: every variant of configs/zoo.yaml (plus a mixed
model with the post-hoc attention-drop stage) at one size, a step budget and several seeds,
submitted to a real coordinator with real worker processes, then `gauntlet compare --format
markdown`, the table docs/RESULTS.md records.

One GPU is shared by --workers worker processes (each offers GPU 0 as its one slot), so that many
seed-size trials run at once; a trial's tokens/s is then measured beside others and is not a
speed result. Losses at equal steps are what the table compares. stdlib only (runs with any
python3); bench/zoo.sh picks the binaries and the corpus.
Exit status: 0 when every trial completed, 1 otherwise, 2 for bad arguments.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from multigpu_bench import CheckFailed, Cluster  # noqa: E402  (same directory, stdlib only)

# Added to the zoo's variants: the post-hoc method as a stage of one trial (docs/ARCHITECTURES.md
# "attn_drop"): train attention everywhere, drop the two least important, fine-tune.
ATTN_DROP_STAGE_VARIANT = """\
  - name: mixed-drop2-stage              # attention everywhere, then the 2 least important dropped
    model: {{arch: mixed}}
    stages: {{attn_drop: {{drop: 2, finetune_steps: {finetune}}}}}
"""


def zoo_variants(path):
    """The `variants:` block of a zoo config, verbatim (every line up to the next top-level key)."""
    with open(path) as f:
        lines = f.read().splitlines()
    try:
        start = lines.index("variants:")
    except ValueError:
        raise SystemExit(f"error: {path}: no top-level 'variants:' line")
    block = []
    for line in lines[start + 1:]:
        if line and not line.startswith((" ", "#")):
            break
        block.append(line)
    return "\n".join(block).rstrip() + "\n"


def experiment_yaml(args, data_name):
    device = "gpu" if args.device == "cuda" else "cpu"
    seeds = ", ".join(str(s) for s in args.seeds)
    stage = ATTN_DROP_STAGE_VARIANT.format(finetune=args.finetune_steps) if args.stage else ""
    return f"""\
name: zoo-bench
description: the zoo at {args.size}, {args.steps} steps, seeds {seeds} ({args.device})
data:
  path: {data_name}
  tokenizer: char
  val_fraction: 0.1
model:
  size: {args.size}{f"{chr(10)}  n_layers: {args.n_layers}" if args.n_layers else ""}
train:
  batch_size: {args.batch_size}
  optimizer: {{name: adamw, lr: {args.lr}, weight_decay: 0.01}}
  schedule: {{kind: cosine, warmup_steps: {max(1, args.steps // 10)}}}
  log_every: {max(1, args.steps // 5)}
budget:
  steps: {args.steps}
eval:
  protocol: fair
  every_steps: 0
  max_tokens: {args.val_tokens}
resources:
  device: {device}
  gpus_per_trial: 1
checkpoint:
  every_steps: 0
  keep_last: 1
variants:
{zoo_variants(args.zoo)}{stage}baseline: standard
seeds: [{seeds}]
max_restarts: 0
"""


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", required=True, help="zoo config whose variants to run")
    parser.add_argument("--data", required=True, help="corpus file")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    parser.add_argument("--workers", type=int, default=8,
                        help="worker processes sharing GPU 0 (or one CPU slot each)")
    parser.add_argument("--size", default="seed")
    parser.add_argument("--n_layers", type=int, default=0,
                        help="override the size's layers (tiny has 2; the zoo's mixed needs 4)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--val_tokens", type=int, default=65536, help="final eval cap")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no_stage", dest="stage", action="store_false",
                        help="leave out the attention-drop stage variant")
    parser.add_argument("--finetune_steps", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the experiment")
    parser.add_argument("--work_dir", default="")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.data):
        raise SystemExit(f"error: --data: no such file {args.data}")
    if args.steps < 1 or args.workers < 1 or args.batch_size < 1:
        raise SystemExit("error: --steps, --workers and --batch_size must be >= 1")
    work = args.work_dir or tempfile.mkdtemp(prefix="gauntlet-zoo-")
    os.makedirs(work, exist_ok=True)
    data_root, data_name = os.path.split(os.path.abspath(args.data))
    started = time.time()
    cluster = Cluster(work)
    try:
        for i in range(args.workers):
            device_args = (["--gpus=0", "--cpu_slots=0"] if args.device == "cuda"
                           else ["--gpus=none", "--cpu_slots=1"])
            cluster.add_worker(f"w{i + 1}", data_root, device_args)
        exp_id = cluster.submit(experiment_yaml(args, data_name))
        print(f"submitted {exp_id} ({work})", flush=True)
        state, trials, text = cluster.wait(exp_id, args.timeout)
        print(text)
        print(f"zoo: {len(trials)} trials {state} in {time.time() - started:.0f} s "
              f"(cluster start to last trial)")
        table = cluster.cli("compare", exp_id, "--format", "markdown", check=False)
        print(table)
        if state != "COMPLETED":
            raise CheckFailed(f"{exp_id} ended {state} (logs under {work})")
        return 0
    except CheckFailed as e:
        print(f"zoo: FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
