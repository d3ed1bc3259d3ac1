"""Shared helpers for the deploy/ tests: locating the source tree, the metric contract."""

import os
import shutil
import subprocess

from tests import testlib

# The coordinator's Prometheus contract (server/metrics.{h,cc}): family -> (type, labels).
TRIAL_LABELS = ("experiment", "trial", "variant", "arch", "seed")
TRIAL_GAUGES = (
    "gauntlet_trial_train_loss", "gauntlet_trial_val_loss", "gauntlet_trial_val_loss_native",
    "gauntlet_trial_tokens_per_second", "gauntlet_trial_steps_per_second",
    "gauntlet_trial_step_time_seconds", "gauntlet_trial_mfu_ratio",
    "gauntlet_trial_gpu_memory_allocated_bytes", "gauntlet_trial_gpu_memory_reserved_bytes",
    "gauntlet_trial_gpu_memory_peak_bytes", "gauntlet_trial_layers_per_token",
    "gauntlet_trial_grad_norm", "gauntlet_trial_learning_rate", "gauntlet_trial_step",
    "gauntlet_trial_tokens", "gauntlet_trial_train_seconds",
    "gauntlet_trial_last_metric_unix_seconds",
)
CONTRACT = {name: ("gauge", TRIAL_LABELS) for name in TRIAL_GAUGES}
# An inference trial's result (TrainerSummary.inference), set when it completes.
INFERENCE_GAUGES = {
    "gauntlet_trial_inference_prefill_seconds": TRIAL_LABELS + ("context",),
    "gauntlet_trial_inference_decode_tokens_per_second": TRIAL_LABELS + ("batch",),
    "gauntlet_trial_inference_decode_bound_ratio": TRIAL_LABELS + ("batch",),
    "gauntlet_trial_inference_kv_cache_bytes_per_token": TRIAL_LABELS,
    "gauntlet_trial_inference_peak_memory_bytes": TRIAL_LABELS,
}
CONTRACT.update({name: ("gauge", labels) for name, labels in INFERENCE_GAUGES.items()})
CONTRACT.update({
    "gauntlet_experiments": ("gauge", ("state",)),
    "gauntlet_trials": ("gauge", ("state",)),
    "gauntlet_workers": ("gauge", ("state",)),
    "gauntlet_devices": ("gauge", ("kind", "state")),
    "gauntlet_queue_depth": ("gauge", ()),
    "gauntlet_scheduling_latency_seconds": ("histogram", ()),
    "gauntlet_schedule_pass_seconds": ("histogram", ()),
    "gauntlet_trial_restarts_total": ("counter", ()),
    "gauntlet_metric_points_total": ("counter", ()),
    "gauntlet_rpc_requests_total": ("counter", ("method", "code")),
    "gauntlet_rpc_latency_seconds": ("histogram", ("method",)),
    "gauntlet_build_info": ("gauge", ("version",)),
})
HISTOGRAMS = {name for name, (kind, _) in CONTRACT.items() if kind == "histogram"}


def runfile(relative):
    return os.path.join(testlib.workspace_root(), relative)


def source_root():
    """The checkout the runfiles link to. kustomize renders from there because the base loads
    configs/*.yaml, which no Bazel package of ours exports."""
    path = os.path.realpath(runfile("deploy/k8s/base/kustomization.yaml"))
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(path))))


def tool(name):
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not on PATH (scripts/setup.sh installs the deploy tools)")
    return path


def run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)
