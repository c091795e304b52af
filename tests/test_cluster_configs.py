"""The cluster/ files: launcher YAMLs validate against Ray's own schema, KubeRay manifests carry
what the operator requires and token authentication, every place that installs or runs Ray
pins the exact Ray version of pyproject.toml (`ray[tune]==X`), the packing claims in the
comments are what Ray would do, and every submit example is runnable as written."""

from __future__ import annotations

import json
import re
import shlex
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


def pyproject_ray_pin(text: str) -> str:
    """X of the one `ray[...]==X` dependency in pyproject.toml text (Python 3.10 has no tomllib,
    so the dependency strings are read with a regex); fails the test unless it is exact."""
    deps = re.findall(r'^\s*"(ray(?:\[[^\]]*\])?(?:\s*[<>=!~][^"]*)?)"', text, re.M)
    pins = [m.group(1) for d in deps
            if (m := re.fullmatch(r"ray\[[^\]]*\]\s*==\s*([0-9][0-9A-Za-z.]*)", d.strip()))]
    if len(deps) != 1 or len(pins) != 1:
        pytest.fail(f"pyproject.toml must depend on ray exactly once with an exact pin such as "
                    f'"ray[tune]==2.60.0" (cluster nodes must all run that version); found '
                    f"{deps or 'no ray dependency'}")
    return pins[0]


@pytest.fixture(scope="module")
def ray_pin() -> str:
    return pyproject_ray_pin((ROOT / "pyproject.toml").read_text())


def test_pyproject_pin_is_read_and_a_loose_one_fails():
    assert pyproject_ray_pin('dependencies = [\n    "ray[tune]==2.60.0",  # c\n]') == "2.60.0"
    for loose in ('    "ray[tune]>=2.40",', '    "torch>=2.4",'):
        with pytest.raises(pytest.fail.Exception, match="exact pin"):
            pyproject_ray_pin(loose)


def test_the_installed_ray_is_the_pinned_one(ray_pin):
    import ray

    assert ray.__version__ == ray_pin, "reinstall: pip install -e '.[test]'"


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
    gpus = gpu_types(c)
    assert sorted(v["resources"]["GPU"] for v in gpus.values()) == [1, 8]
    for v in gpus.values():  # autoscaling bounds: from zero up to a cap within the total
        assert v["min_workers"] == 0 < v["max_workers"] <= c["max_workers"]
    assert sum(v["max_workers"] for v in gpus.values()) >= c["max_workers"]


@pytest.mark.parametrize("name", LAUNCHERS)
def test_setup_commands_pin_the_projects_ray_version(name, ray_pin):
    c = load(name)
    commands = " ".join(c["setup_commands"] + c.get("head_setup_commands", [])
                        + c.get("worker_setup_commands", []))
    pins = PIN.findall(commands)
    assert pins and set(pins) == {ray_pin}, pins
    assert "-e ~/dipddpm" in commands and c["file_mounts"]["~/dipddpm"] == "."
    if name in CLOUDS:  # the cloud images have no venv module until it is installed
        assert "python3-venv" in c["setup_commands"][0]
        assert "python3 -m venv" in " ".join(c["setup_commands"][1:])


def gpu_types(c: dict) -> dict:
    return {k: v for k, v in c["available_node_types"].items()
            if v["resources"].get("GPU", 0) > 0}


@pytest.mark.parametrize("name", CLOUDS)
def test_packing_claims_in_the_header_are_what_ray_would_do(name):
    """The header's table: trials per node of each GPU type for reach_fast_f16 as bundled and
    with --set resources.cpu=1, computed as doctor does (whole request on ONE node)."""
    from dipddpm.cluster.doctor import Node, fits_on, trial_request
    from dipddpm.sweep.spec import load_spec

    spec = ROOT / "sweeps" / "reach_fast_f16.yaml"
    image = ["problem.image=skimage:camera"]  # the packing does not depend on the image
    requests = [trial_request(load_spec(spec, sets=image)),
                trial_request(load_spec(spec, sets=[*image, "resources.cpu=1"]))]
    assert requests[0] == {"CPU": 4.0, "GPU": 0.25}  # what the header says it assumes
    claims = {}
    for line in (CLUSTER / name).read_text().splitlines():
        m = re.match(r"#\s+(gpu_\w+)\s", line)
        if m:
            claims[m.group(1)] = [int(n) for n in re.findall(r"(\d+) trials?\b", line)]
    types = gpu_types(load(name))
    assert set(claims) == set(types)
    for t, v in types.items():
        node = Node(t, "x", "x", True, False, v["resources"]["CPU"], v["resources"]["GPU"], None)
        assert claims[t] == [fits_on(node, r) for r in requests], t


def test_gcp_project_placeholder_is_filled_by_the_readme_command():
    """cluster/README.md: `sed 's/YOUR-GCP-PROJECT/my-project/g'` fills every place."""
    text = (CLUSTER / "gcp.yaml").read_text()
    code = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    assert code.count("YOUR-GCP-PROJECT") == 2  # project_id and the workers' account, once
    assert "sed 's/YOUR-GCP-PROJECT/my-project/g' cluster/gcp.yaml" in (
        CLUSTER / "README.md").read_text()
    c = yaml.safe_load(text.replace("YOUR-GCP-PROJECT", "my-project"))
    assert c["provider"]["project_id"] == "my-project"
    for t, v in gpu_types(c).items():
        (sa,) = v["node_config"]["serviceAccounts"]
        assert sa["email"] == "ray-autoscaler-sa-v1@my-project.iam.gserviceaccount.com", t


def test_aws_workers_profile_needs_pass_role_and_the_readme_grants_it():
    """Ray's default head role gets AmazonEC2FullAccess + AmazonS3FullAccess, which do not let
    it pass the role of the profile the workers launch with; cluster/README.md adds exactly
    that permission. Ray's AWS config module imports boto3, so its source is read instead."""
    import importlib.util

    source = Path(importlib.util.find_spec("ray.autoscaler._private.aws.config").origin)
    code = source.read_text()
    prefix = re.search(r'^RAY = "([^"]+)"', code, re.M).group(1)
    suffix = {k: re.search(rf'^{k} = RAY \+ "([^"]+)"', code, re.M).group(1)
              for k in ("DEFAULT_RAY_INSTANCE_PROFILE", "DEFAULT_RAY_IAM_ROLE")}
    profile, role = (prefix + suffix[k] for k in suffix)
    policies = set(re.findall(r'"arn:aws:iam::aws:policy/(\w+)"', code))
    assert policies == {"AmazonEC2FullAccess", "AmazonS3FullAccess"}  # no iam:PassRole
    workers = {v["node_config"]["IamInstanceProfile"]["Name"]
               for v in gpu_types(load("aws.yaml")).values()}
    assert workers == {profile} and role == profile == "ray-autoscaler-v1"
    readme = " ".join((CLUSTER / "README.md").read_text().split())
    assert f"--role-name {role}" in readme and '"Action": "iam:PassRole"' in readme
    assert f':role/{role}"' in readme


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


def test_kuberay_cluster_specs_have_what_the_operator_requires(ray_pin):
    specs = list(cluster_specs())
    assert len(specs) == 2
    for name, spec in specs:
        assert spec["rayVersion"] == ray_pin, name
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


def ray_containers(spec: dict):
    """(where, container, pod spec) of every Ray container of a RayCluster spec."""
    head = spec["headGroupSpec"]["template"]["spec"]
    yield "head", head["containers"][0], head
    for g in spec["workerGroupSpecs"]:
        pod = g["template"]["spec"]
        yield g["groupName"], pod["containers"][0], pod


def test_kuberay_manifests_use_token_authentication():
    """RayCluster: every Ray container (and the autoscaler sidecar) runs RAY_AUTH_MODE=token
    with RAY_AUTH_TOKEN_PATH a file of the token Secret mounted in its pod. RayJob: the
    operator's authOptions (it must hold the token to follow the job and feeds the submitter)."""
    readme = (CLUSTER / "README.md").read_text()
    checked = 0
    for name, spec in cluster_specs():
        if name == "rayjob.yaml":
            assert spec["authOptions"] == {"mode": "token"}
            checked += 1
            continue
        scaler = spec["autoscalerOptions"]
        head_pod = spec["headGroupSpec"]["template"]["spec"]
        sidecar = {"name": "autoscaler", "env": scaler["env"],
                   "volumeMounts": scaler["volumeMounts"]}
        for where, c, pod in [*ray_containers(spec), ("autoscaler", sidecar, head_pod)]:
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            assert env.get("RAY_AUTH_MODE") == "token", f"{name} {where}"
            token = Path(env["RAY_AUTH_TOKEN_PATH"])
            mounts = {m["name"]: m for m in c["volumeMounts"]}
            secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"]
                       if "secret" in v}
            (vol,) = [n for n, m in mounts.items() if Path(m["mountPath"]) == token.parent]
            assert mounts[vol].get("readOnly") is True and vol in secrets, f"{name} {where}"
            # the README tells how to create exactly this Secret with exactly this key
            assert (f"kubectl create secret generic {secrets[vol]} "
                    f"--from-file={token.name}=") in readme
            checked += 1
    assert checked == 1 + 3  # the RayJob; head, GPU group and autoscaler of the RayCluster


def submit_examples() -> list[tuple[str, list[str], list[str]]]:
    """Every `ray job submit ... -- dipddpm ...` in cluster/ (comments of the YAMLs, the README's
    code): (file, submit options, the dipddpm command), continuation lines joined."""
    out = []
    for path in sorted(CLUSTER.rglob("*")):
        if path.suffix == ".yaml":
            lines = [re.sub(r"^#\s?", "", ln.strip()) for ln in path.read_text().splitlines()]
        elif path.suffix == ".md":  # the fenced code blocks
            lines = re.findall(r"^```\w*\n(.*?)^```", path.read_text(), re.M | re.S)
        else:
            continue
        text = re.sub(r"\\\n\s*", " ", "\n".join(lines))
        for line in text.splitlines():
            if "ray job submit" not in line or "dipddpm" not in line:
                continue
            argv = shlex.split(line[line.index("ray job submit"):].strip("`"), comments=True)
            sep = argv.index("--")
            out.append((path.name, argv[3:sep], argv[sep + 1:]))
    return out


def test_every_submit_example_uploads_the_working_dir_and_names_a_reachable_image():
    """Trials open the image on their node: it must be a built-in photo, a path inside the
    uploaded working dir, or a path on shared storage (/mnt/sweeps)."""
    from dipddpm.sweep.spec import load_spec

    examples = submit_examples()
    assert {f for f, _, _ in examples} >= {"aws.yaml", "gcp.yaml", "local.yaml",
                                           "raycluster.yaml", "README.md"}
    for where, opts, cmd in examples:
        assert opts[:2] == ["--working-dir", "."] or opts[-2:] == ["--working-dir", "."], where
        assert cmd[0] == "dipddpm" and (ROOT / cmd[3]).is_file(), (where, cmd)
        sets = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--set"]
        image = next((v.split("=", 1)[1] for v in sets if v.startswith("problem.image=")),
                     None)
        if image is None:  # no override: the spec's own image must be usable as it stands
            image = yaml.safe_load((ROOT / cmd[3]).read_text())["problem"].get("image", "")
        rel = Path(image)
        assert (image.startswith("skimage:") or image.startswith("/mnt/sweeps/")
                or not (rel.is_absolute() or ".." in rel.parts)), (where, image)
        if cmd[1:3] == ["sweep", "run"] or cmd[1:3] == ["cluster", "doctor"]:
            others = [v for v in sets if not v.startswith("problem.image=")]
            load_spec(ROOT / cmd[3], sets=[*others, "problem.image=skimage:camera"])


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


def test_dockerfile_pins_the_projects_ray_version(ray_pin):
    text = (CLUSTER / "Dockerfile").read_text()
    assert re.search(rf"FROM rayproject/ray:{re.escape(ray_pin)}-", text)
    assert set(PIN.findall(text)) == {ray_pin}


def test_local_cluster_script_never_stops_ray_globally():
    script = (CLUSTER / "local-cluster.sh").read_text()
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    assert "ray stop" not in code and "pkill" not in code and "killall" not in code
    assert "127.0.0.1" not in code
