"""One (model, mode) training-throughput run of a PyTorch reference; prints progress and writes one
JSON row. bench/reference/run.py runs each pair in its own process.

The step is Gauntlet's (trainer/train/train_loop.cc): bf16 autocast on CUDA, LM loss in fp32,
backward, global-norm clipping at 1.0 (clip_grad_norm_: scale min(1, 1 / (norm + 1e-6)), the same
rule), AdamW with Gauntlet's defaults (lr 3e-4 on a cosine to 0.1x over the run, betas (0.9,
0.999), eps 1e-8, weight decay 0.01 on every parameter), dropout as the size sets it. Tokens are
random and already on the device.

Modes: eager (fused AdamW, foreach clipping); compile (torch.compile of the model: forward, loss
and, through AOTAutograd, backward) and max-autotune (the same with mode="max-autotune": autotuned
GEMMs and CUDA graphs). In both compiled modes on CUDA the optimizer step (clipping + capturable
foreach AdamW with a tensor learning rate) is compiled too, with the same mode, unless
--optimizer=fused; on CPU it stays the eager fused AdamW.

Timing: --warmup_steps untimed steps (the first one, which compiles, is reported as compile_s),
then --windows windows of --steps steps, each bracketed by CUDA events; tokens/s is the median
window's.

  python3 -m bench.reference.train --model=seed-standard --mode=compile --json_out=/tmp/row.json
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch

from bench.reference import models

MODES = ("eager", "compile", "max-autotune")
LR, MIN_LR_RATIO = 3e-4, 0.1
BETAS, EPS, WEIGHT_DECAY, GRAD_CLIP = (0.9, 0.999), 1e-8, 0.01, 1.0


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def cosine_lr(step, total):
    progress = min(1.0, step / max(1, total))
    return LR * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * progress)))


class Timer:
    """CUDA events on GPUs (device time between the marks), wall time on CPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def seconds(self, start, end):
        if self.cuda:
            return start.elapsed_time(end) / 1e3
        return end - start

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()


def run(args):
    device = torch.device(args.device)
    config = models.model_config(args.model, args.size)
    torch.manual_seed(args.seed)
    model = models.build(config).to(device)
    model.train()
    bf16 = device.type == "cuda" if args.precision == "auto" else args.precision == "bf16"
    if bf16:
        model.compute_dtype = torch.bfloat16
    params = list(model.parameters())
    n_params = sum(p.numel() for p in params)
    # The compiled optimizer needs a tensor learning rate, hence capturable AdamW: CUDA only.
    compiled_opt = args.mode != "eager" and args.optimizer != "fused" and device.type == "cuda"
    total_steps = args.warmup_steps + args.windows * args.steps
    if compiled_opt:
        # A tensor learning rate: changing it does not recompile (or re-record a CUDA graph).
        lr = torch.tensor(cosine_lr(0, total_steps), device=device)
        optimizer = torch.optim.AdamW(params, lr=lr, betas=BETAS, eps=EPS,
                                      weight_decay=WEIGHT_DECAY, foreach=True, capturable=True)
    else:
        optimizer = torch.optim.AdamW(params, lr=cosine_lr(0, total_steps), betas=BETAS, eps=EPS,
                                      weight_decay=WEIGHT_DECAY,
                                      fused=device.type in ("cuda", "cpu"))

    def clip_and_step():
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP, foreach=True)
        optimizer.step()

    forward = model
    update = clip_and_step
    if args.mode != "eager":
        compile_mode = None if args.mode == "compile" else args.mode
        forward = torch.compile(model, mode=compile_mode)
        if compiled_opt:
            update = torch.compile(clip_and_step, mode=compile_mode)
    cudagraphs = args.mode == "max-autotune" and device.type == "cuda"

    batch, seq_len = args.batch_size, config.seq_len
    generator = torch.Generator(device=device).manual_seed(args.seed + 1)
    pool = [torch.randint(config.vocab_size, (batch, seq_len + 1), device=device,
                          generator=generator) for _ in range(4)]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def step(i):
        if cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        value = cosine_lr(i, total_steps)
        if compiled_opt:
            lr.fill_(value)
        else:
            for group in optimizer.param_groups:
                group["lr"] = value
        tokens = pool[i % len(pool)]
        with autocast:
            loss = forward(tokens[:, :-1], tokens[:, 1:])
        loss.backward()
        update()
        optimizer.zero_grad(set_to_none=True)
        return loss

    timer = Timer(device)
    log(f"{args.model} {args.mode}: {n_params:,} params, {config}")
    start = time.perf_counter()
    step(0)
    timer.sync()
    compile_s = time.perf_counter() - start
    log(f"{args.model} {args.mode}: first step {compile_s:.1f} s")
    for i in range(1, args.warmup_steps):
        step(i)
    timer.sync()
    warmup_s = time.perf_counter() - start
    log(f"{args.model} {args.mode}: {args.warmup_steps} warm-up steps {warmup_s:.1f} s")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    marks = []
    i = args.warmup_steps
    for _ in range(args.windows):
        begin = timer.mark()
        for _ in range(args.steps):
            loss = step(i)
            i += 1
        marks.append((begin, timer.mark()))
    timer.sync()
    final_loss = float(loss.detach().float())
    seconds = [timer.seconds(a, b) for a, b in marks]
    tokens_per_window = batch * seq_len * args.steps
    rates = [tokens_per_window / s for s in seconds]
    median = statistics.median(rates)
    log(f"{args.model} {args.mode}: {median:,.0f} tok/s (windows: "
        + ", ".join(f"{r:,.0f}" for r in rates) + f"), loss {final_loss:.3f}")
    if not math.isfinite(final_loss):
        raise RuntimeError(f"non-finite loss {final_loss}")
    return {
        "model": args.model if args.size is None else f"{args.model}@{args.size}",
        "impl": f"pytorch-{args.mode}",
        "tokens_per_s": median,
        "tokens_per_s_windows": rates,
        "step_ms": 1e3 * tokens_per_window / median / args.steps,
        "compile_s": compile_s,
        "warmup_s": warmup_s,
        "optimizer": "compiled foreach AdamW + clipping" if compiled_opt else "fused AdamW",
        "params": n_params,
        "config": {k: v for k, v in vars(config).items()},
        "batch": batch,
        "seq_len": seq_len,
        "precision": "bf16" if bf16 else "fp32",
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "peak_memory_gib": (torch.cuda.max_memory_allocated(device) / 2**30
                            if device.type == "cuda" else None),
        "final_loss": final_loss,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, choices=list(models.MODELS))
    parser.add_argument("--mode", required=True, choices=MODES)
    parser.add_argument("--size", choices=list(models.SIZES),
                        help="replace the model's named size (tiny: CPU plumbing checks)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--optimizer", default="auto", choices=("auto", "fused"),
                        help="fused: eager fused AdamW even in the compiled modes")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--warmup_steps", type=int, default=15)
    parser.add_argument("--steps", type=int, default=50, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json_out", help="write the row here (else stdout)")
    args = parser.parse_args(argv)
    if args.warmup_steps < 1 or args.steps < 1 or args.windows < 1:
        parser.error("--warmup_steps, --steps and --windows must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    row = run(args)
    text = json.dumps(row)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
