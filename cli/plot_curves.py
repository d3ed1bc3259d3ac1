"""Draws `gauntlet compare --plot`: validation loss against training wall-clock time and against
tokens, one color per variant (each seed a line). Input: the CompareExperimentResponse curves as
JSON (written by the gauntlet CLI). Usage: python3 plot_curves.py CURVES.json OUT.png"""

import json
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: plot_curves.py CURVES.json OUT.png")
    with open(argv[1]) as f:
        data = json.load(f)
    curves = data.get("curves", [])
    if not curves:
        sys.exit("no curves to plot (no trial reported a validation loss yet)")
    variants = sorted({c.get("variant", "") for c in curves})
    colors = {v: plt.cm.tab10(i % 10) for i, v in enumerate(variants)}
    fig, (by_time, by_tokens) = plt.subplots(1, 2, figsize=(12, 4.5))
    labeled = set()
    for c in curves:
        variant = c.get("variant", "")
        loss = c.get("val_loss", [])
        seconds = c.get("train_seconds", [])
        tokens = [int(t) for t in c.get("tokens", [])]  # int64 arrives as JSON strings
        label = None if variant in labeled else variant
        labeled.add(variant)
        by_time.plot(seconds[:len(loss)], loss, color=colors[variant], label=label, alpha=0.85)
        by_tokens.plot(tokens[:len(loss)], loss, color=colors[variant], alpha=0.85)
    by_time.set_xlabel("training wall-clock (s)")
    by_tokens.set_xlabel("tokens trained")
    for ax in (by_time, by_tokens):
        ax.set_ylabel("validation loss")
        ax.grid(alpha=0.3)
    by_time.legend()
    fig.suptitle(f"{data.get('experiment_id', '')} (baseline {data.get('baseline', '')})")
    fig.tight_layout()
    fig.savefig(argv[2], dpi=120)


if __name__ == "__main__":
    main(sys.argv)
