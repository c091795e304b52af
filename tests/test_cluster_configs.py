"""The cluster/ files: launcher YAMLs validate against Ray's own schema, KubeRay manifests carry
what the operator requires, and every place that installs or runs Ray pins the Ray version
this project is tested with (the one installed here, allowed by pyproject.toml)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
LAUNCHERS = ["aws.yaml", "gcp.yaml", "local.yaml"]
CLOUDS = ["aws.yaml", "gcp.yaml"]
PIN = re.compile(r"ray\[[^\]]*\]==([0-9][^\s\"']*)")


def load(name: str):
    return yaml.safe_load((CLUSTER / name).read_text())


def ray_version() -> str:
    import ray

    return ray.__version__


def pyproject_ray_spec() -> str:
    """The version specifier of ray in pyproject.toml's dependencies (no tomllib on 3.10)."""
    text = (ROOT / "pyproject.toml").read_text()
    (dep,) = re.findall(r'^\s*"ray(?:\[[^\]]*\])?((?:[<>=!~][^"]*)?)",', text, re.M)
    return dep.strip()


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_yaml_validates_against_rays_schema(name):
    import jsonschema
    import ray.autoscaler
    from ray.autoscaler._private.util import validate_config

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    config = load(name)
    jsonschema.validate(config, schema)
    validate_config(config)  # what `ray up` runs: schema + head type + worker bounds


@pytest.mark.parametrize("name", CLOUDS)
def test_cloud_yaml_has_cpu_head_and_two_gpu_worker_types(name):
    c = load(name)
    types = c["available_node_types"]
    head = types[c["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"]["CPU"] == 0
    gpu_types = {k: v for k, v in types.items() if v["resources"].get("GPU", 0) > 0}
    assert sorted(v["resources"]["GPU"] for v in gpu_types.values()) == [1, 8]
    for v in gpu_types.values():  # autoscaling bounds: from zero up to a cap within the total
        assert v["min_workers"] == 0 < v["max_workers"] <= c["max_workers"]
    assert sum(v["max_workers"] for v in gpu_types.values()) >= c["max_workers"]


@pytest.mark.parametrize("name", LAUNCHERS)
def test_setup_commands_pin_the_projects_ray_version(name):
    from packaging.specifiers import SpecifierSet

    c = load(name)
    commands = " ".join(c["setup_commands"] + c.get("head_setup_commands", [])
                        + c.get("worker_setup_commands", []))
    pins = PIN.findall(commands)
    assert pins and set(pins) == {ray_version()}, pins
    assert ray_version() in SpecifierSet(pyproject_ray_spec())
    assert "-e ~/dipddpm" in commands and c["file_mounts"]["~/dipddpm"] == "."


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_yaml_holds_no_secrets_and_uses_token_auth(name):
    text = (CLUSTER / name).read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}|aws_secret_access_key|private_key\s*:\s*-----",
                         text, re.I)
    c = load(name)
    assert c["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"  # the token stays a file
    for cmd in c["head_start_ray_commands"] + c["worker_start_ray_commands"]:
        if "ray start" in cmd:
            assert "RAY_AUTH_MODE=token" in cmd


def kuberay_docs():
    out = []
    for path in sorted((CLUSTER / "kuberay").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((path.name, doc))
    return out


def cluster_specs():
    for name, doc in kuberay_docs():
        if doc["kind"] == "RayCluster":
            yield name, doc["spec"]
        elif doc["kind"] == "RayJob":
            yield name, doc["spec"]["rayClusterSpec"]


def test_kuberay_manifests_parse_with_known_kinds():
    kinds = {doc["kind"] for _, doc in kuberay_docs()}
    assert {"RayCluster", "RayJob"} <= kinds
    for name, doc in kuberay_docs():
        assert doc["metadata"]["name"], name
        if doc["kind"] in ("RayCluster", "RayJob"):
            assert doc["apiVersion"] == "ray.io/v1", name


def _check_pod(template: dict, where: str) -> dict:
    containers = template["spec"]["containers"]
    assert containers and all(c.get("name") and c.get("image") for c in containers), where
    volumes = {v["name"] for v in template["spec"].get("volumes", [])}
    for m in containers[0].get("volumeMounts", []):
        assert m["name"] in volumes, f"{where}: mount {m['name']} has no volume"
    return containers[0]


def test_kuberay_cluster_specs_have_what_the_operator_requires():
    specs = list(cluster_specs())
    assert len(specs) == 2
    for name, spec in specs:
        assert spec["rayVersion"] == ray_version(), name
        head = spec["headGroupSpec"]
        # rayStartParams is map[string]string in the CRD: a bare number is rejected
        assert all(isinstance(v, str) for v in head["rayStartParams"].values()), name
        c = _check_pod(head["template"], f"{name} head")
        assert {p["name"] for p in c["ports"]} >= {"gcs-server", "dashboard"}
        groups = spec["workerGroupSpecs"]
        assert groups and len({g["groupName"] for g in groups}) == len(groups)
        gpu_groups = 0
        for g in groups:
            assert g["minReplicas"] <= g["replicas"] <= g["maxReplicas"], name
            assert all(isinstance(v, str) for v in g["rayStartParams"].values())
            c = _check_pod(g["template"], f"{name} {g['groupName']}")
            limits = c["resources"]["limits"]
            gpu_groups += int(limits.get("nvidia.com/gpu", "0")) > 0
        assert gpu_groups >= 1, f"{name}: no GPU worker group"


def test_rayjob_runs_a_bundled_sweep_that_validates():
    from dipddpm.sweep.spec import load_spec

    (job,) = [d for _, d in kuberay_docs() if d["kind"] == "RayJob"]
    argv = job["spec"]["entrypoint"].split()
    assert argv[:3] == ["dipddpm", "sweep", "run"]
    spec_path = ROOT / argv[3]
    assert spec_path.is_file()
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    storage = argv[argv.index("--storage") + 1]
    spec = load_spec(spec_path, sets=sets, storage=storage)
    assert spec.resources.gpu > 0 and spec.storage == "/mnt/sweeps"
    pvc = [d for _, d in kuberay_docs() if d["kind"] == "PersistentVolumeClaim"]
    claim = pvc[0]["metadata"]["name"]
    vols = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["volumes"]
    assert vols[0]["persistentVolumeClaim"]["claimName"] == claim
    assert "ReadWriteMany" in pvc[0]["spec"]["accessModes"]


def test_dockerfile_pins_the_projects_ray_version():
    text = (CLUSTER / "Dockerfile").read_text()
    assert re.search(rf"FROM rayproject/ray:{re.escape(ray_version())}-", text)
    assert set(PIN.findall(text)) == {ray_version()}


def test_local_cluster_script_never_stops_ray_globally():
    script = (CLUSTER / "local-cluster.sh").read_text()
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    assert "ray stop" not in code and "pkill" not in code and "killall" not in code
    assert "127.0.0.1" not in code
