#!/usr/bin/env python3
"""Writes the Grafana dashboards under deploy/grafana/dashboards/ from the panel lists below.

Dashboards are generated rather than hand-edited so that every panel shares one layout, one
datasource variable and one label filter; tests/deploy checks that the checked-in JSON equals
this script's output. Run it after changing a panel:

    python3 deploy/tools/gen_dashboards.py
"""

import json
import os
import sys

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Every training panel is filtered by both template variables.
TRIAL = 'experiment=~"$experiment", variant=~"$variant"'
SCHEMA_VERSION = 39


def _target(expr, legend, ref):
    return {"refId": ref, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend,
            "range": True}


def panel(title, targets, unit="short", description="", kind="timeseries", stack=False,
          width=12):
    """A panel of `kind`; targets are (expr, legend) pairs. Position is set by layout()."""
    defaults = {"unit": unit, "custom": {}}
    if kind == "timeseries":
        defaults["custom"] = {"lineWidth": 1, "fillOpacity": 20 if stack else 0,
                              "showPoints": "never", "spanNulls": True,
                              "stacking": {"mode": "normal" if stack else "none"}}
    result = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [_target(expr, legend, chr(ord("A") + i))
                    for i, (expr, legend) in enumerate(targets)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "right",
                               "calcs": ["lastNotNull"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }
    if width != 12:
        result["width"] = width
    if kind == "stat":
        result["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                               "values": False},
                             "colorMode": "value", "graphMode": "none", "textMode": "auto"}
    return result


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def layout(items, width=12, height=8):
    """Assigns ids and grid positions: rows span the width, panels flow two per line."""
    x = y = 0
    for index, item in enumerate(items, start=1):
        item["id"] = index
        if item["type"] == "row":
            if x:
                x, y = 0, y + height
            item["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            y += 1
            continue
        w = item.pop("width", width)
        if x + w > 24:
            x, y = 0, y + height
        item["gridPos"] = {"h": height, "w": w, "x": x, "y": y}
        x += w
    return items


def datasource_variable():
    return {"name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1,
            "regex": "", "options": []}


def query_variable(name, label, query):
    return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE,
            "query": {"query": query, "refId": name},
            "multi": True, "includeAll": True, "allValue": ".*", "current": {},
            "refresh": 2, "sort": 1, "hide": 0, "regex": "", "options": []}


def dashboard(uid, title, description, variables, items):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["gauntlet"],
        "timezone": "browser",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["gauntlet"], "asDropdown": False,
                   "title": "Gauntlet", "includeVars": False, "keepTime": True}],
        "templating": {"list": variables},
        "panels": layout(items),
    }


def training_dashboard():
    by_variant = "experiment, variant"
    items = [
        row("Loss"),
        panel("Validation loss by variant (mean over seeds)",
              [(f"avg by ({by_variant}) (gauntlet_trial_val_loss{{{TRIAL}}})",
                "{{variant}} · {{experiment}}")],
              description="Fair-protocol validation loss against wall-clock time, averaged "
                          "over the seeds of each variant."),
        panel("Validation loss per trial",
              [(f"gauntlet_trial_val_loss{{{TRIAL}}}", "{{variant}} seed {{seed}}")]),
        panel("Train loss per trial",
              [(f"gauntlet_trial_train_loss{{{TRIAL}}}", "{{variant}} seed {{seed}}")]),
        panel("Native validation loss by variant",
              [(f"avg by ({by_variant}) (gauntlet_trial_val_loss_native{{{TRIAL}}})",
                "{{variant}} · {{experiment}}")],
              description="Loss on each architecture's own training positions."),
        row("Throughput"),
        panel("Tokens/s per trial (mean over seeds)",
              [(f"avg by ({by_variant}) (gauntlet_trial_tokens_per_second{{{TRIAL}}})",
                "{{variant}} · {{experiment}}")]),
        panel("Model FLOPs utilization (mean over seeds)",
              [(f"avg by ({by_variant}) (gauntlet_trial_mfu_ratio{{{TRIAL}}})",
                "{{variant}} · {{experiment}}")], unit="percentunit"),
        panel("Step time (mean over seeds)",
              [(f"avg by ({by_variant}) (gauntlet_trial_step_time_seconds{{{TRIAL}}})",
                "{{variant}} · {{experiment}}")], unit="s"),
        panel("Steps/s per trial",
              [(f"gauntlet_trial_steps_per_second{{{TRIAL}}}", "{{variant}} seed {{seed}}")]),
        row("Memory"),
        panel("Peak GPU memory by variant",
              [(f"max by ({by_variant}) (gauntlet_trial_gpu_memory_peak_bytes{{{TRIAL}}})",
                "{{variant}} · {{experiment}}")], unit="bytes"),
        panel("GPU memory per trial",
              [(f"gauntlet_trial_gpu_memory_allocated_bytes{{{TRIAL}}}",
                "allocated {{variant}} seed {{seed}}"),
               (f"gauntlet_trial_gpu_memory_reserved_bytes{{{TRIAL}}}",
                "reserved {{variant}} seed {{seed}}")], unit="bytes"),
        row("Progress and diagnostics"),
        panel("Step per trial",
              [(f"gauntlet_trial_step{{{TRIAL}}}", "{{variant}} seed {{seed}}")]),
        panel("Tokens trained per trial",
              [(f"gauntlet_trial_tokens{{{TRIAL}}}", "{{variant}} seed {{seed}}")]),
        panel("Training seconds per trial",
              [(f"gauntlet_trial_train_seconds{{{TRIAL}}}", "{{variant}} seed {{seed}}")],
              unit="s", description="Wall-clock training time, evaluation excluded."),
        panel("Seconds since the last metric point",
              [(f"time() - gauntlet_trial_last_metric_unix_seconds{{{TRIAL}}}",
                "{{variant}} seed {{seed}}")], unit="s",
              description="Finished trials keep growing here: their series are frozen."),
        panel("Gradient norm per trial",
              [(f"gauntlet_trial_grad_norm{{{TRIAL}}}", "{{variant}} seed {{seed}}")]),
        panel("Learning rate per trial",
              [(f"gauntlet_trial_learning_rate{{{TRIAL}}}", "{{variant}} seed {{seed}}")]),
        panel("Layers per token (adaptive-depth variants)",
              [(f"avg by ({by_variant}) (gauntlet_trial_layers_per_token{{{TRIAL}}})",
                "{{variant}} · {{experiment}}")]),
        row("Inference (trials of kind: inference)"),
        panel("Decode tokens/s by variant and batch (mean over seeds)",
              [(f"avg by ({by_variant}, batch) "
                f"(gauntlet_trial_inference_decode_tokens_per_second{{{TRIAL}}})",
                "{{variant}} batch {{batch}}")],
              description="Decode throughput through the KV cache after the trial's prompt "
                          "(the value is set once, when the trial completes)."),
        panel("Prefill time by variant and context (mean over seeds)",
              [(f"avg by ({by_variant}, context) "
                f"(gauntlet_trial_inference_prefill_seconds{{{TRIAL}}})",
                "{{variant}} context {{context}}")], unit="s",
              description="One prompt of `context` tokens (batch 1) into an empty KV cache."),
        panel("Decode step time over its memory-bandwidth bound",
              [(f"avg by ({by_variant}, batch) "
                f"(gauntlet_trial_inference_decode_bound_ratio{{{TRIAL}}})",
                "{{variant}} batch {{batch}}")],
              description="1 = the step reads its weights and KV cache at the GPU's peak memory "
                          "bandwidth; 2 = half that speed."),
        panel("KV-cache bytes per token and peak memory",
              [(f"max by ({by_variant}) "
                f"(gauntlet_trial_inference_kv_cache_bytes_per_token{{{TRIAL}}})",
                "KV/token {{variant}}"),
               (f"max by ({by_variant}) "
                f"(gauntlet_trial_inference_peak_memory_bytes{{{TRIAL}}})",
                "peak {{variant}}")], unit="bytes"),
    ]
    variables = [
        datasource_variable(),
        query_variable("experiment", "Experiment",
                       "label_values(gauntlet_trial_step, experiment)"),
        query_variable("variant", "Variant",
                       'label_values(gauntlet_trial_step{experiment=~"$experiment"}, variant)'),
    ]
    return dashboard("gauntlet-training", "Gauntlet / Training",
                     "Per-trial training curves, throughput and memory by experiment and "
                     "variant.", variables, items)


def cluster_dashboard():
    rate = "$__rate_interval"
    items = [
        row("Experiments and trials"),
        panel("Trials by state", [("sum by (state) (gauntlet_trials)", "{{state}}")],
              stack=True),
        panel("Experiments by state",
              [("sum by (state) (gauntlet_experiments)", "{{state}}")], stack=True),
        panel("Queue depth (pending trials)", [("gauntlet_queue_depth", "pending")]),
        panel("Scheduling latency (pending to scheduled)",
              [(f"histogram_quantile({q}, sum by (le) "
                f"(rate(gauntlet_scheduling_latency_seconds_bucket[{rate}])))", f"p{p}")
               for q, p in ((0.5, 50), (0.95, 95), (0.99, 99))], unit="s"),
        panel("Trial restarts (last hour)",
              [("increase(gauntlet_trial_restarts_total[1h])", "restarts")]),
        panel("Metric points ingested/s",
              [(f"rate(gauntlet_metric_points_total[{rate}])", "points/s")], unit="ops"),
        row("Workers and devices"),
        panel("Workers by state", [("sum by (state) (gauntlet_workers)", "{{state}}")],
              stack=True),
        panel("Devices by kind and state",
              [("sum by (kind, state) (gauntlet_devices)", "{{kind}} {{state}}")], stack=True),
        panel("Free GPUs", [('sum(gauntlet_devices{kind="gpu", state="free"})', "free")],
              kind="stat", width=6),
        panel("GPU utilization by the scheduler",
              # clamp_min: 0, not NaN (0/0), on a cluster without GPUs.
              [('sum(gauntlet_devices{kind="gpu", state="busy"}) '
                '/ clamp_min(sum(gauntlet_devices{kind="gpu"}), 1)', "busy")],
              unit="percentunit", kind="stat", width=6),
        panel("Alive workers", [('sum(gauntlet_workers{state="alive"})', "alive")],
              kind="stat", width=6),
        panel("Lost workers", [('sum(gauntlet_workers{state="lost"})', "lost")],
              kind="stat", width=6),
        row("Coordinator"),
        panel("RPC requests/s by method and code",
              [(f"sum by (method, code) (rate(gauntlet_rpc_requests_total[{rate}]))",
                "{{method}} {{code}}")], unit="reqps"),
        panel("RPC latency p99 by method",
              [(f"histogram_quantile(0.99, sum by (le, method) "
                f"(rate(gauntlet_rpc_latency_seconds_bucket[{rate}])))", "{{method}}")],
              unit="s"),
        panel("Coordinator up", [('up{job="gauntlet-coordinator"}', "{{instance}}")],
              kind="stat", width=12),
        panel("Build", [("gauntlet_build_info", "{{version}}")], kind="stat", width=12),
    ]
    return dashboard("gauntlet-cluster", "Gauntlet / Cluster",
                     "Control plane: trial states, queue, scheduling latency, workers and "
                     "devices, RPCs.", [datasource_variable()], items)


DASHBOARDS = {
    "gauntlet-training.json": training_dashboard,
    "gauntlet-cluster.json": cluster_dashboard,
}


def render(builder):
    return json.dumps(builder(), indent=2, ensure_ascii=False) + "\n"


def main():
    out_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "grafana", "dashboards")
    if len(sys.argv) > 1:
        out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for name, builder in DASHBOARDS.items():
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            f.write(render(builder))


if __name__ == "__main__":
    main()
