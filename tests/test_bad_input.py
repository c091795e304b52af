"""The mistakes new users make, one table: every case must end in exit 2, exactly one line on
stderr, no traceback, the offending key, value or path named, and no file left behind.

A case is argv after `dipddpm` (with `{tmp}` for the case's own folder), the files to create
there first, the environment, and the words stderr must hold. The run is in-process (typer's
CliRunner), so the table costs what the commands cost, not 60 interpreter starts. The folder
is listed before and after: anything new in it is a half-written output.

Sections by kind; add a case to the kind it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dipddpm.cli import app

# a small valid spec the cases below break one key at a time (plain DIP, tiny net, 32²)
BASE_SPEC = {
    "name": "bad", "method": "dip", "preset": "tiny",
    "problem": {"image": "skimage:astronaut", "size": 32, "sigma": 25, "seed": 0},
    "metric": "psnr_best", "mode": "max",
    "fixed": {"iters": 20, "report_every": 5},
    "search": {"lr": {"loguniform": [0.001, 0.01]}},
    "searcher": {"type": "optuna", "sampler": "tpe", "seed": 0, "max_concurrent": 1},
    "scheduler": {"type": "asha", "grace_period": 5, "reduction_factor": 2},
    "resources": {"cpu": 1, "gpu": 0}, "num_samples": 2, "storage": "results",
    "smoke": {"num_samples": 1},
}


def spec(*drop: str, **changes) -> str:
    """BASE_SPEC as YAML, with top-level `changes` (a dotted key as `a__b`) and `drop`ped keys."""
    data = yaml.safe_load(yaml.safe_dump(BASE_SPEC))
    for key, value in changes.items():
        *parents, last = key.split("__")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    for key in drop:
        *parents, last = key.split("__")
        node = data
        for p in parents:
            node = node[p]
        node.pop(last)
    return yaml.safe_dump(data, sort_keys=False)


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]  # argv after `dipddpm`; `{tmp}` is the case's folder
    names: tuple[str, ...]  # what stderr must hold (the key, value or path at fault)
    files: Mapping[str, str | bytes] = field(default_factory=dict)  # made under {tmp} first
    env: Mapping[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None  # more set-up than files (modes, folders)
    marks: tuple = ()



# --- set-ups the boundary cases share ---------------------------------------------------------
def png_bytes() -> bytes:
    import imageio.v3 as iio
    import numpy as np

    return iio.imwrite("<bytes>", np.zeros((8, 8, 3), np.uint8), extension=".png")


def torch_pickle() -> bytes:
    """A torch file holding more than tensors (a numpy array): not one dipddpm wrote."""
    import io

    import numpy as np
    import torch

    buf = io.BytesIO()
    torch.save({"weights": np.zeros(3)}, buf)
    return buf.getvalue()


def folder(*rels: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        for rel in rels:
            (tmp / rel).mkdir(parents=True, exist_ok=True)
    return setup


def read_only(rel: str) -> Callable[[Path], None]:
    """Make folder `rel` refuse new files: its mode bits for a user; for root, which ignores
    them, the immutable attribute (chattr +i, lifted again when the tests end)."""
    def setup(tmp: Path) -> None:
        import atexit
        import os
        import shutil
        import subprocess

        d = tmp / rel
        d.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            d.chmod(0o555)
            return
        if shutil.which("chattr") is None or subprocess.run(
                ["chattr", "+i", str(d)], capture_output=True).returncode != 0:
            pytest.skip("root ignores mode bits, and chattr +i does not work here")
        atexit.register(subprocess.run, ["chattr", "-i", str(d)], capture_output=True)
    return setup


_SWEEP: list[Path] = []


def a_sweep(rel: str = "sweep") -> Callable[[Path], None]:
    """A copy of a small real sweep result (tests/results_data.py, made once) at `rel`."""
    def setup(tmp: Path) -> None:
        import atexit
        import shutil
        import tempfile

        if not _SWEEP:
            from results_data import make_sweep

            base = Path(tempfile.mkdtemp(prefix="bad-input-sweep-"))
            atexit.register(shutil.rmtree, base, True)
            _SWEEP.append(make_sweep(base / "fixture", study=False))
        shutil.copytree(_SWEEP[0], tmp / rel)
    return setup


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        for s in setups:
            s(tmp)
    return setup


_OPEN: list = []  # loopback sockets that accept and never answer (closed when the tests end)


def silent_gs_spec(tmp: Path) -> None:
    """spec gs.yaml: storage on gs://, its endpoint a loopback port that never answers."""
    import atexit
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    _OPEN.append(s)
    atexit.register(s.close)
    (tmp / "gs.yaml").write_text(spec(storage="gs://bkt/sweeps", storage_options={
        "endpoint_url": f"http://127.0.0.1:{s.getsockname()[1]}", "anonymous": "true"}))


def no_ray_here(tmp: Path) -> None:
    """RAY_ADDRESS cases connect: not where another test's Ray runs in this process."""
    import sys

    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        pytest.skip("a Ray session of another test is up in this process")


FIT = ("fit", "dip", "--image", "skimage:astronaut", "--size", "64", "--iters", "5")
NOT_SLOW_S3 = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true", "DIPDDPM_STORAGE_TIMEOUT": "2"}

# --- the file system says no ------------------------------------------------------------------
FILESYSTEM: list[Case] = [
    Case("fit-save-parent-is-a-file", (*FIT, "--save", "{tmp}/afile/out.png"),
         ("--save", "{tmp}/afile is a file"), files={"afile": "x"}),
    Case("fit-save-is-a-folder", (*FIT, "--save", "{tmp}/shots.png"),
         ("--save", "shots.png is a folder"), setup=folder("shots.png")),
    Case("fit-save-read-only", (*FIT, "--save", "{tmp}/ro/out.png"),
         ("--save", "{tmp}/ro"), setup=read_only("ro")),
    Case("fit-noop-save-read-only", ("fit", "noop", "--save", "{tmp}/ro/x.png"),
         ("--save", "{tmp}/ro"), setup=read_only("ro")),
    Case("fit-ddpm-out-is-a-file", ("fit", "ddpm", "--dataset", "skimage-patches", "--set",
                                    "iters=2", "--out", "{tmp}/afile"),
         ("--out", "afile is a file"), files={"afile": "x"}),
    Case("fit-ddpm-out-read-only", ("fit", "ddpm", "--dataset", "skimage-patches", "--set",
                                    "iters=2", "--out", "{tmp}/ro/run"),
         ("--out", "{tmp}/ro"), setup=read_only("ro")),
    Case("dip-prior-save-is-a-folder", ("fit", "dip-prior-ddpm", "--checkpoint",
                                        "{tmp}/ddpm.pt", "--image", "skimage:camera",
                                        "--resize", "--save", "{tmp}/out.png"),
         ("--save", "out.png is a folder"), setup=folder("out.png")),
    Case("sample-out-parent-is-a-file", ("sample", "--checkpoint", "{tmp}/ddpm.pt", "--out",
                                         "{tmp}/afile/grid.png"),
         ("--out", "{tmp}/afile is a file"), files={"afile": "x"}),
    Case("sample-out-read-only", ("sample", "--checkpoint", "{tmp}/ddpm.pt", "--out",
                                  "{tmp}/ro/grid.png"), ("--out", "{tmp}/ro"),
         setup=read_only("ro")),
    Case("inspect-stages-plot-read-only", ("inspect", "stages", "--scheduler", "uniform",
                                           "--iters", "20", "--stages", "2", "--plot",
                                           "{tmp}/ro/stages.png"),
         ("--plot", "{tmp}/ro"), setup=read_only("ro")),
    Case("inspect-betas-plot-parent-is-a-file", ("inspect", "betas", "--schedule", "linear",
                                                 "--timesteps", "100", "--plot",
                                                 "{tmp}/afile/betas.png"),
         ("--plot", "afile is a file"), files={"afile": "x"}),
    Case("results-plot-out-read-only", ("results", "plot", "{tmp}/sweep", "--kind", "curves",
                                        "--out", "{tmp}/ro/curves.png"),
         ("--out", "{tmp}/ro"), setup=both(a_sweep(), read_only("ro")), marks=(pytest.mark.slow,)),
    Case("results-export-out-parent-is-a-file", ("results", "export", "{tmp}/sweep",
                                                 "--format", "csv", "--out",
                                                 "{tmp}/afile/trials.csv"),
         ("--out", "afile is a file"), files={"afile": "x"}, setup=a_sweep(),
         marks=(pytest.mark.slow,)),
    Case("results-export-out-is-a-folder", ("results", "export", "{tmp}/sweep", "--format",
                                            "json", "--out", "{tmp}/sweep"),
         ("--out", "sweep is a folder"), setup=a_sweep(), marks=(pytest.mark.slow,)),
    Case("results-report-out-is-a-folder", ("results", "report", "{tmp}/sweep", "--out",
                                            "{tmp}/report.html"),
         ("--out", "report.html is a folder"), setup=both(a_sweep(), folder("report.html")),
         marks=(pytest.mark.slow,)),
    Case("results-compact-read-only-sweep", ("results", "compact", "{tmp}/sweep"),
         ("results compact DIR", "{tmp}/sweep"), setup=both(a_sweep(), read_only("sweep")),
         marks=(pytest.mark.slow,)),
    Case("sweep-run-storage-read-only", ("sweep", "run", "{tmp}/s.yaml", "--storage",
                                         "{tmp}/ro/results"),
         ("{tmp}/ro/results is not writable",), files={"s.yaml": spec()},
         setup=read_only("ro")),
    Case("data-fetch-cache-is-a-file", ("data", "fetch", "f16", "--mirror", "{tmp}/mirror"),
         ("data cache", "DIPDDPM_DATA", "afile"), files={"afile": "x"},
         env={"DIPDDPM_DATA": "{tmp}/afile"}),
]

# --- numbers that are not numbers ---------------------------------------------------------------
NUMBERS: list[Case] = [
]

# --- YAML that is not quite YAML ----------------------------------------------------------------
YAML: list[Case] = [
    Case("spec-missing", ("sweep", "validate", "{tmp}/nope.yaml"), ("nope.yaml",)),
]

# --- storage URIs -------------------------------------------------------------------------------
STORAGE: list[Case] = [
    Case("storage-ftp-scheme", ("sweep", "validate", "{tmp}/s.yaml", "--storage",
                                "ftp://host/x"),
         ("ftp://host/x", "unknown scheme 'ftp://'", "s3://", "gs://"), files={"s.yaml": spec()}),
    Case("storage-scheme-typo", ("sweep", "validate", "{tmp}/s.yaml", "--storage", "s4://b/x"),
         ("s4://b/x", "did you mean 's3://'"), files={"s.yaml": spec()}),
    Case("storage-empty-option", ("sweep", "validate", "{tmp}/s.yaml", "--storage", ""),
         ("storage is empty",), files={"s.yaml": spec()}),
    Case("storage-empty-in-spec", ("sweep", "validate", "{tmp}/s.yaml"),
         ("storage is empty",), files={"s.yaml": spec(storage="")}),
    Case("storage-ftp-in-spec-run", ("sweep", "run", "{tmp}/s.yaml"),
         ("ftp://host/x", "unknown scheme"), files={"s.yaml": spec(storage="ftp://host/x")}),
    Case("storage-gs-endpoint-silent", ("sweep", "validate", "{tmp}/gs.yaml"),
         ("gs://bkt/sweeps", "cannot reach the endpoint http://127.0.0.1:", "no answer in 1 s"),
         setup=silent_gs_spec, env={"DIPDDPM_STORAGE_TIMEOUT": "1"}),
    Case("storage-s3-endpoint-refuses", ("sweep", "validate", "{tmp}/s.yaml", "--storage",
                                         "s3://bkt/sweeps"),
         ("s3://bkt/sweeps", "cannot reach the endpoint http://127.0.0.1:1"),
         files={"s.yaml": spec()}, env=NOT_SLOW_S3),
    Case("storage-options-of-another-backend", ("sweep", "validate", "{tmp}/s.yaml"),
         ("storage_options.region does not apply to gs://bkt/x",),
         files={"s.yaml": spec(storage="gs://bkt/x", storage_options={"region": "eu"})}),
    Case("storage-timeout-not-a-number", ("sweep", "validate", "{tmp}/s.yaml", "--storage",
                                          "gs://bkt/x"),
         ("DIPDDPM_STORAGE_TIMEOUT", "'soon'"), files={"s.yaml": spec()},
         env={"DIPDDPM_STORAGE_TIMEOUT": "soon"}),
    Case("doctor-storage-empty", ("cluster", "doctor", "--storage", ""),
         ("--storage is empty",)),
    Case("results-dir-ftp", ("results", "summarize", "ftp://host/sweeps/x"),
         ("ftp://host/sweeps/x", "unknown scheme")),
    Case("status-dir-unknown-scheme", ("sweep", "status", "ftps://host/x"),
         ("ftps://host/x", "unknown scheme")),
]

# --- requests the machine cannot meet -----------------------------------------------------------
FEASIBILITY: list[Case] = [
]

# --- two options that disagree ------------------------------------------------------------------
CONFLICTS: list[Case] = [
]

# --- quantities with no meaning -----------------------------------------------------------------
MEANING: list[Case] = [
]

# --- messages that name what happened -----------------------------------------------------------
MESSAGES: list[Case] = [
    Case("image-is-a-folder", ("fit", "dip", "--image", "{tmp}/imgs/"),
         ("{tmp}/imgs", "is a folder"), setup=folder("imgs")),
    Case("image-empty-png", ("fit", "dip", "--image", "{tmp}/empty.png"),
         ("empty.png", "is empty"), files={"empty.png": b""}),
    Case("sample-checkpoint-is-a-png", ("sample", "--checkpoint", "{tmp}/x.png", "--out",
                                        "{tmp}/out/g.png"),
         ("x.png", "is not a torch checkpoint", "PNG image"), files={"x.png": png_bytes()}),
    Case("sample-checkpoint-is-a-folder", ("sample", "--checkpoint", "{tmp}/runs", "--out",
                                           "{tmp}/out/g.png"),
         ("{tmp}/runs is a folder",), setup=folder("runs")),
    Case("sample-checkpoint-empty", ("sample", "--checkpoint", "{tmp}/ddpm.pt", "--out",
                                     "{tmp}/out/g.png"),
         ("ddpm.pt is empty",), files={"ddpm.pt": b""}),
    Case("sample-checkpoint-foreign-pickle", ("sample", "--checkpoint", "{tmp}/other.pt",
                                              "--out", "{tmp}/out/g.png"),
         ("other.pt", "holding more than tensors"), files={"other.pt": torch_pickle()}),
    Case("ray-address-variable", ("sweep", "run", "{tmp}/s.yaml", "--storage", "{tmp}/res"),
         ("RAY_ADDRESS variable", "RAY_ADDRESS=garbage", "unset RAY_ADDRESS"),
         files={"s.yaml": spec()}, env={"RAY_ADDRESS": "garbage"}, setup=no_ray_here),
    Case("ray-address-variable-doctor", ("cluster", "doctor"),
         ("RAY_ADDRESS variable", "RAY_ADDRESS=garbage"), env={"RAY_ADDRESS": "garbage"},
         setup=no_ray_here),
    Case("ray-address-option-wins", ("sweep", "run", "{tmp}/s.yaml", "--storage", "{tmp}/res",
                                     "--address", "junk"),
         ("--address junk", "overrides RAY_ADDRESS=garbage"), files={"s.yaml": spec()},
         env={"RAY_ADDRESS": "garbage"}, setup=no_ray_here),
    Case("data-image-not-fetched", ("fit", "dip", "--image", "data:butterfly/Image_1"),
         ("data:butterfly/Image_1", "dipddpm data fetch butterfly"),
         env={"DIPDDPM_DATA": "{tmp}/cache"}),
    Case("data-image-name-typo", ("fit", "dip", "--image", "data:cset9/F17"),
         ("data:cset9/F17", "did you mean 'F16'")),
    Case("data-spec-image-not-fetched", ("sweep", "validate", "{tmp}/s.yaml"),
         ("data:cset9/F16", "dipddpm data fetch f16"),
         files={"s.yaml": spec(problem__image="data:cset9/F16")},
         env={"DIPDDPM_DATA": "{tmp}/cache"}),
]

# --- sweep directories: resume, status, locks ---------------------------------------------------
SWEEPS: list[Case] = [
]

# --- the tools' own options ---------------------------------------------------------------------
TOOLS: list[Case] = [
    Case("data-fetch-unknown-set", ("data", "fetch", "cset10"),
         ("unknown data set 'cset10'", "did you mean 'cset9'")),
    Case("data-fetch-mirror-empty", ("data", "fetch", "f16", "--mirror", ""),
         ("--mirror is empty",), env={"DIPDDPM_DATA": "{tmp}/cache"}),
    Case("data-fetch-mirror-lacks-the-file", ("data", "fetch", "f16", "--mirror",
                                              "{tmp}/mirror"),
         ("{tmp}/mirror has no cset9/F16_clean.npz or cset9/F16.png",),
         setup=folder("mirror/cset9"), env={"DIPDDPM_DATA": "{tmp}/cache"}),
    Case("data-fetch-mirror-checksum", ("data", "fetch", "f16", "--mirror", "{tmp}/mirror"),
         ("cset9/F16.png does not match its pinned SHA-256", "nothing was written"),
         files={"mirror/cset9/F16.png": png_bytes()}, env={"DIPDDPM_DATA": "{tmp}/cache"}),
    Case("checkpoint-recipe-typo", ("fit", "dip-prior-ddpm", "--checkpoint", "recipe:tiny",
                                    "--image", "skimage:camera", "--resize"),
         ("unknown checkpoint recipe 'tiny'", "did you mean 'tiny-ddpm'"),
         env={"DIPDDPM_DATA": "{tmp}/cache"}),
]

CASES = [*FILESYSTEM, *NUMBERS, *YAML, *STORAGE, *FEASIBILITY, *CONFLICTS, *MEANING, *MESSAGES,
         *SWEEPS, *TOOLS]


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.id, marks=list(c.marks)) for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, monkeypatch) -> None:
    for rel, content in case.files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    if case.setup is not None:
        case.setup(tmp_path)
    monkeypatch.chdir(tmp_path)  # relative outputs (results/, ./x.png) land in the case's folder
    before = listing(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in case.args]
    env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in case.env.items()}
    r = CliRunner().invoke(app, args, env=env)
    lines = r.stderr.strip().splitlines()
    shown = f"exit {r.exit_code}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert r.exit_code == 2, shown
    assert r.exception is None or isinstance(r.exception, SystemExit), shown
    assert "Traceback" not in r.stdout + r.stderr, shown
    assert len(lines) == 1, shown
    for name in case.names:
        assert name.replace("{tmp}", str(tmp_path)) in r.stderr, shown
    left = listing(tmp_path) - before
    assert not left, f"left behind: {sorted(left)}\n{shown}"


def test_every_kind_has_cases() -> None:
    """The table covers each kind of mistake, and no two cases share an id."""
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
