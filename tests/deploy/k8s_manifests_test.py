"""The dev and prod overlays render (with the default load restrictor: the base loads nothing
from outside its folder), validate against the Kubernetes 1.30 schemas (CRDs against local
schemas), and say what the deployment design needs them to say."""

import json
import os
import re
import subprocess
import unittest

import jsonschema
import kubernetes_validate
import yaml

from tests.deploy import deploylib

# Pinned: kubernetes-validate 1.37 ships schemas for 1.25..1.37; 1.30 has GA gRPC probes and is
# the oldest release still common on managed clusters.
KUBERNETES_VERSION = "1.30.0"
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
}
EXAMPLE_SPECS = ("ci_tiny.yaml", "seed_reproduction.yaml", "seed_protocol.yaml", "scaled_up.yaml")
CHECKPOINTS = "/var/lib/gauntlet-checkpoints"
# The worker flag of issue 11's shared checkpoint store; rename with that branch's flag.
CHECKPOINT_DIR_FLAG = "--checkpoint_store"


def built_images():
    """Image names deploy/build_images.sh builds (its ALL_IMAGES) and the tag it gives them."""
    with open(deploylib.runfile("deploy/build_images.sh")) as f:
        names = re.search(r'^readonly ALL_IMAGES="([^"]+)"', f.read(), re.M).group(1).split(",")
    version = subprocess.run(["bash", deploylib.runfile("deploy/image_version.sh"),
                              deploylib.runfile("server/coordinator")],
                             capture_output=True, text=True, check=True).stdout.strip()
    return {f"localhost/gauntlet/{name}" for name in names}, version


def render(overlay):
    root = deploylib.source_root()
    missing = [name for name in EXAMPLE_SPECS
               if not os.path.exists(os.path.join(root, "configs", name))]
    if missing:
        raise AssertionError(f"configs/{', configs/'.join(missing)} missing: the base's "
                             "gauntlet-example-specs ConfigMap is generated from them")
    result = deploylib.run([deploylib.tool("kubectl"), "kustomize",
                            os.path.join(root, "deploy", "k8s", "overlays", overlay)])
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {overlay} failed: {result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(docs, kind, name):
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    if len(matches) != 1:
        raise AssertionError(f"expected one {kind} {name}, found {len(matches)}")
    return matches[0]


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


class OverlayTestBase:
    overlay = ""

    @classmethod
    def setUpClass(cls):
        cls.docs = render(cls.overlay)

    def test_every_resource_validates(self):
        for doc in self.docs:
            key = (doc["apiVersion"], doc["kind"])
            where = f"{self.overlay}: {doc['kind']}/{doc['metadata']['name']}"
            if key in CRD_SCHEMAS:
                with open(deploylib.runfile(f"deploy/k8s/schemas/{CRD_SCHEMAS[key]}")) as f:
                    schema = json.load(f)
                try:
                    jsonschema.validate(doc, schema)
                except jsonschema.ValidationError as e:
                    self.fail(f"{where}: {e.message} at {list(e.absolute_path)}")
                continue
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                self.fail(f"{where}: {e.message} at {list(e.path)}")

    def test_images_are_the_built_ones(self):
        names, version = built_images()
        for doc in self.docs:
            if doc["kind"] not in ("Deployment", "DaemonSet"):
                continue
            for container in doc["spec"]["template"]["spec"]["containers"]:
                name, _, tag = container["image"].rpartition(":")
                self.assertIn(name, names, doc["metadata"]["name"])
                self.assertEqual(version, tag, f"{doc['metadata']['name']}: the tag must be "
                                 "the version the coordinator reports (base kustomization.yaml)")

    def test_checkpoint_store_shared_by_coordinator_and_workers(self):
        claims = {}
        for kind, name in (("Deployment", "gauntlet-coordinator"),
                           ("DaemonSet", "gauntlet-worker")):
            pod = find(self.docs, kind, name)["spec"]["template"]["spec"]
            container = pod["containers"][0]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in pod["volumes"]}
            claims[kind] = volumes[mounts[CHECKPOINTS]]["persistentVolumeClaim"]["claimName"]
            if kind == "DaemonSet":
                self.assertIn(f"{CHECKPOINT_DIR_FLAG}={CHECKPOINTS}", container["args"])
        self.assertEqual({"gauntlet-checkpoints"}, set(claims.values()))
        find(self.docs, "PersistentVolumeClaim", "gauntlet-checkpoints")

    def test_everything_in_the_gauntlet_namespace(self):
        for doc in self.docs:
            if doc["kind"] != "Namespace":
                self.assertEqual("gauntlet", doc["metadata"].get("namespace"),
                                 f"{doc['kind']}/{doc['metadata']['name']}")

    def test_coordinator_deployment(self):
        deployment = find(self.docs, "Deployment", "gauntlet-coordinator")
        spec = deployment["spec"]
        self.assertEqual(1, spec["replicas"])
        self.assertEqual("Recreate", spec["strategy"]["type"])
        pod = spec["template"]["spec"]
        container = pod["containers"][0]
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            self.assertEqual({"port": 50051}, container[probe]["grpc"], probe)
        self.assertIn("cpu", container["resources"]["requests"])
        self.assertIn("memory", container["resources"]["requests"])
        args = container["args"]
        for flag in ("--listen=0.0.0.0:50051", "--metrics_listen=0.0.0.0:9464",
                     "--db=/var/lib/gauntlet/gauntlet.db",
                     "--auth_token_file=/etc/gauntlet/token/token"):
            self.assertIn(flag, args)
        # $(VAR) in args must name a variable the container gets from the (hashed) ConfigMap.
        config = find(self.docs, "ConfigMap", "gauntlet-coordinator-config")
        self.assertEqual(config["metadata"]["name"],
                         container["envFrom"][0]["configMapRef"]["name"])
        self.assertEqual("15", config["data"]["GAUNTLET_LEASE_SECONDS"])
        self.assertEqual("2", config["data"]["GAUNTLET_HEARTBEAT_INTERVAL_SECONDS"])
        self.assertIn("--lease_seconds=$(GAUNTLET_LEASE_SECONDS)", args)
        self.assertIn("--heartbeat_interval_seconds=$(GAUNTLET_HEARTBEAT_INTERVAL_SECONDS)", args)
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        self.assertEqual("gauntlet-coordinator-data",
                         volumes[mounts["/var/lib/gauntlet"]]["persistentVolumeClaim"]
                         ["claimName"])
        self.assertEqual("gauntlet-api-token",
                         volumes[mounts["/etc/gauntlet/token"]]["secret"]["secretName"])
        annotations = spec["template"]["metadata"]["annotations"]
        self.assertEqual("9464", annotations["prometheus.io/port"])
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        find(self.docs, "PersistentVolumeClaim", "gauntlet-coordinator-data")

    def test_service_ports(self):
        service = find(self.docs, "Service", "gauntlet-coordinator")
        ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
        self.assertEqual({"grpc": 50051, "metrics": 9464}, ports)

    def test_worker_daemonset_networking_and_nccl(self):
        pod = find(self.docs, "DaemonSet", "gauntlet-worker")["spec"]["template"]["spec"]
        self.assertTrue(pod["hostNetwork"])
        self.assertEqual("ClusterFirstWithHostNet", pod["dnsPolicy"])
        container = pod["containers"][0]
        self.assertEqual("0", env_of(container)["NCCL_NVLS_ENABLE"])
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        self.assertEqual("Memory", volumes[mounts["/dev/shm"]]["emptyDir"]["medium"])
        self.assertIn("--coordinator=gauntlet-coordinator.gauntlet.svc.cluster.local:50051",
                      container["args"])
        self.assertIn("--address=$(NODE_IP)", container["args"])
        self.assertIn("--auth_token_file=/etc/gauntlet/token/token", container["args"])

    def test_pods_reference_only_objects_that_exist(self):
        names = {(d["kind"], d["metadata"]["name"]) for d in self.docs}
        for doc in self.docs:
            if doc["kind"] not in ("Deployment", "DaemonSet"):
                continue
            pod = doc["spec"]["template"]["spec"]
            refs = []
            for volume in pod.get("volumes", []):
                if "configMap" in volume:
                    refs.append(("ConfigMap", volume["configMap"]["name"]))
                if "secret" in volume:
                    refs.append(("Secret", volume["secret"]["secretName"]))
                if "persistentVolumeClaim" in volume:
                    refs.append(("PersistentVolumeClaim",
                                 volume["persistentVolumeClaim"]["claimName"]))
            for container in pod["containers"]:
                for source in container.get("envFrom", []):
                    refs.append(("ConfigMap", source["configMapRef"]["name"]))
                for env in container.get("env", []):
                    if "secretKeyRef" in env.get("valueFrom", {}):
                        refs.append(("Secret", env["valueFrom"]["secretKeyRef"]["name"]))
                self.assertNotIn(":latest", container["image"])
                self.assertIn(":", container["image"])
            for ref in refs:
                if ref in self.externally_created:
                    self.assertNotIn(ref, names)
                    continue
                self.assertIn(ref, names, f"{doc['kind']}/{doc['metadata']['name']}")

    def test_base_copies_are_in_sync(self):
        result = deploylib.run(["bash", os.path.join(deploylib.source_root(), "deploy", "k8s",
                                                     "sync_base_files.sh"), "--check"])
        self.assertEqual(0, result.returncode, result.stderr)

    def test_example_specs_and_dashboards_are_the_files(self):
        specs = find(self.docs, "ConfigMap", "gauntlet-example-specs")["data"]
        self.assertEqual(set(EXAMPLE_SPECS), set(specs))
        with open(os.path.join(deploylib.source_root(), "configs", "ci_tiny.yaml")) as f:
            self.assertEqual(f.read(), specs["ci_tiny.yaml"])
        dashboards = find(self.docs, "ConfigMap", "gauntlet-grafana-dashboards")
        self.assertEqual("1", dashboards["metadata"]["labels"]["grafana_dashboard"])
        for name, text in dashboards["data"].items():
            with open(deploylib.runfile(f"deploy/grafana/dashboards/{name}")) as f:
                self.assertEqual(f.read(), text)


class DevOverlayTest(OverlayTestBase, unittest.TestCase):
    overlay = "dev"
    externally_created = set()

    def test_cpu_workers_anywhere(self):
        pod = find(self.docs, "DaemonSet", "gauntlet-worker")["spec"]["template"]["spec"]
        container = pod["containers"][0]
        self.assertNotIn("nodeSelector", pod)
        self.assertNotIn("tolerations", pod)
        self.assertNotIn("nvidia.com/gpu", json.dumps(container["resources"]))
        self.assertIn("--gpus=none", container["args"])
        self.assertTrue(container["image"].startswith("localhost/gauntlet/worker-cpu:"))
        self.assertTrue(any(a.startswith("--cpu_slots=") for a in container["args"]))

    def test_dev_token_secret(self):
        secret = find(self.docs, "Secret", "gauntlet-api-token")
        self.assertEqual("gauntlet-api-token", secret["metadata"]["name"])
        self.assertIn("token", secret["data"])

    def test_no_operator_crds(self):
        self.assertFalse([d for d in self.docs if d["apiVersion"].startswith("monitoring.")])


class ProdOverlayTest(OverlayTestBase, unittest.TestCase):
    overlay = "prod"
    # The operator creates the token Secret by hand, so no token is in the repository.
    externally_created = {("Secret", "gauntlet-api-token")}

    def test_gpu_workers_on_gpu_nodes(self):
        pod = find(self.docs, "DaemonSet", "gauntlet-worker")["spec"]["template"]["spec"]
        container = pod["containers"][0]
        self.assertEqual("true", pod["nodeSelector"]["nvidia.com/gpu.present"])
        self.assertIn("nvidia.com/gpu", [t["key"] for t in pod["tolerations"]])
        resources = container["resources"]
        self.assertEqual(resources["limits"]["nvidia.com/gpu"],
                         resources["requests"]["nvidia.com/gpu"])
        self.assertGreater(int(resources["requests"]["nvidia.com/gpu"]), 0)
        self.assertIn("--gpus=auto", container["args"])
        self.assertEqual("0", env_of(container)["NCCL_NVLS_ENABLE"])
        self.assertTrue(container["image"].startswith("localhost/gauntlet/worker-cuda:"))
        access = find(self.docs, "PersistentVolumeClaim", "gauntlet-checkpoints")["spec"]
        self.assertEqual(["ReadWriteMany"], access["accessModes"])

    def test_service_monitor_selects_the_coordinator_service(self):
        monitor = find(self.docs, "ServiceMonitor", "gauntlet-coordinator")
        service = find(self.docs, "Service", "gauntlet-coordinator")
        selector = monitor["spec"]["selector"]["matchLabels"]
        self.assertLessEqual(selector.items(), service["metadata"]["labels"].items())
        port_names = [p["name"] for p in service["spec"]["ports"]]
        for endpoint in monitor["spec"]["endpoints"]:
            self.assertIn(endpoint["port"], port_names)

    def test_prometheus_rule_matches_the_rules_file(self):
        rule = find(self.docs, "PrometheusRule", "gauntlet")
        with open(deploylib.runfile("deploy/prometheus/rules/gauntlet.rules.yml")) as f:
            self.assertEqual(yaml.safe_load(f), rule["spec"])


if __name__ == "__main__":
    unittest.main()
