#!/usr/bin/env python3
"""Runs every panel query of Gauntlet's Grafana dashboards against a real Prometheus and reports,
per query, how many series and finite points it returns over a time window. Used by
tests/deploy/container_demo_test.py (CPU demo in containers) and deploy/gpu_check.sh (GPU run).

    panel_check.py PROMETHEUS_URL DASHBOARD_DIR EXPERIMENT_ID SINCE_UNIX [--gpu]

Exits 1 if a panel that should have data has none (without --gpu, the GPU-only panels must be
empty instead: a CPU trainer reports neither MFU nor CUDA memory).
"""

import json
import os
import sys
import time
import urllib.parse
import urllib.request

DASHBOARDS = ("gauntlet-training.json", "gauntlet-cluster.json")
# The demo's Prometheus scrapes every 5 s; Grafana's $__rate_interval is then 4 x 5 s.
RATE_INTERVAL = "20s"
# Series only a GPU trainer reports (MFU needs the device's peak FLOP/s; memory is CUDA's).
GPU_ONLY_METRICS = ("gauntlet_trial_mfu_ratio", "gauntlet_trial_gpu_memory_")
# Series only trials of kind inference report; an experiment without them leaves these empty.
INFERENCE_METRICS = ("gauntlet_trial_inference_",)


def panel_queries(dashboard_dir, experiment):
    """(dashboard, panel title, refId, PromQL with the dashboard variables filled in)."""
    for name in DASHBOARDS:
        with open(os.path.join(dashboard_dir, name)) as f:
            dashboard = json.load(f)
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = (target["expr"].replace("$__rate_interval", RATE_INTERVAL)
                        .replace('"$experiment"', f'"{experiment}"')
                        .replace('"$variant"', '".*"'))
                yield name, panel["title"], target["refId"], expr


def prometheus(url, path, **params):
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}/api/v1/{path}?{query}", timeout=30) as response:
        body = json.loads(response.read().decode())
    if body["status"] != "success":
        raise RuntimeError(f"{path}: {body}")
    return body["data"]


def check(url, dashboard_dir, experiment, since, gpu, inference=False):
    """(report lines, problems)."""
    now = time.time()
    report, problems = [], []
    # The training dashboard's $experiment variable offers what label_values() finds.
    offered = prometheus(url, "label/experiment/values",
                         **{"match[]": "gauntlet_trial_step", "start": f"{since:.0f}"})
    if experiment not in offered:
        problems.append(f"$experiment offers {offered}, not {experiment}")
    for dashboard, title, ref, expr in panel_queries(dashboard_dir, experiment):
        data = prometheus(url, "query_range", query=expr, start=f"{since:.0f}",
                          end=f"{now:.0f}", step="5")
        values = [float(v) for series in data["result"] for _, v in series["values"]]
        finite = [v for v in values if v == v]  # NaN != NaN
        gpu_only = any(metric in expr for metric in GPU_ONLY_METRICS)
        inference_only = any(metric in expr for metric in INFERENCE_METRICS)
        report.append(f"{dashboard} | {title} | {ref} | {len(data['result'])} series, "
                      f"{len(finite)} points, last {finite[-1] if finite else '-'}"
                      f"{' | GPU only' if gpu_only else ''}")
        where = f"{dashboard}: '{title}' {ref}: {expr}"
        if inference_only and not inference:
            if finite:
                problems.append(f"inference series without inference trials: {where}")
        elif (gpu or not gpu_only) and not finite:
            problems.append(f"no data: {where}")
        elif gpu_only and not gpu and finite:
            problems.append(f"GPU-only series on a CPU run (update GPU_ONLY_METRICS): {where}")
    return report, problems


def main(argv):
    if len(argv) not in (5, 6) or (len(argv) == 6 and argv[5] != "--gpu"):
        sys.exit(__doc__)
    report, problems = check(argv[1], argv[2], argv[3], float(argv[4]), len(argv) == 6)
    print("\n".join(report))
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
