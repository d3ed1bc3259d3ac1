"""promtool accepts the demo config and the rules, the alert unit tests pass, and the rules name
only metric families the coordinator exports."""

import unittest

import yaml

from deploy.tools import promql_names
from tests.deploy import deploylib

CONFIG = "deploy/prometheus/prometheus.yml"
RULES = "deploy/prometheus/rules/gauntlet.rules.yml"
RULE_TESTS = "deploy/prometheus/tests/gauntlet.rules.test.yml"


def promtool(*args):
    result = deploylib.run([deploylib.tool("promtool"), *args])
    return result.returncode, result.stdout + result.stderr


class PromtoolTest(unittest.TestCase):

    def test_check_config(self):
        code, out = promtool("check", "config", deploylib.runfile(CONFIG))
        self.assertEqual(0, code, out)

    def test_demo_scrapes_the_coordinator_metrics_port(self):
        with open(deploylib.runfile(CONFIG)) as f:
            config = yaml.safe_load(f)
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        targets = jobs["gauntlet-coordinator"]["static_configs"][0]["targets"]
        self.assertEqual(["127.0.0.1:9464"], targets)

    def test_check_rules(self):
        code, out = promtool("check", "rules", deploylib.runfile(RULES))
        self.assertEqual(0, code, out)

    def test_alert_unit_tests(self):
        code, out = promtool("test", "rules", deploylib.runfile(RULE_TESTS))
        self.assertEqual(0, code, out)

    def test_required_alerts_exist(self):
        with open(deploylib.runfile(RULES)) as f:
            groups = yaml.safe_load(f)["groups"]
        alerts = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
        for name in ("GauntletCoordinatorDown", "GauntletWorkerLost",
                     "GauntletTrialStuckWithoutMetrics"):
            self.assertIn(name, alerts)

    def test_rules_use_only_exported_families(self):
        with open(deploylib.runfile(RULES)) as f:
            groups = yaml.safe_load(f)["groups"]
        for group in groups:
            for rule in group["rules"]:
                for name in promql_names.metric_names(rule["expr"]):
                    family = promql_names.family_of(name, deploylib.HISTOGRAMS)
                    if family in promql_names.SYNTHETIC_METRICS:
                        continue
                    self.assertIn(family, deploylib.CONTRACT,
                                  f"rule {rule.get('alert') or rule.get('record')}")


class YamllintTest(unittest.TestCase):

    def test_deploy_tree_is_clean(self):
        root = deploylib.runfile("deploy")
        result = deploylib.run([deploylib.tool("yamllint"), "--strict", "-c",
                                deploylib.runfile("deploy/.yamllint"), root])
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)


if __name__ == "__main__":
    unittest.main()
