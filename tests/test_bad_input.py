"""The mistakes new users make, one table: every case must end in exit 2, exactly one line on
stderr, no traceback, the offending key, value or path named, and no file left behind.

A case is argv after `dipddpm` (with `{tmp}` for the case's own folder), the files to create
there first, the environment, and the words stderr must hold. The run is in-process (typer's
CliRunner), so the table costs what the commands cost, not 60 interpreter starts. The folder
is listed before and after: anything new in it is a half-written output.

Sections by kind; add a case to the kind it belongs to.
"""

from __future__ import annotations

import os
import socket
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
    # run in a process of its own: a case whose command connects to Ray ($RAY_ADDRESS) would
    # otherwise meet the Ray another test of this session started in this process
    isolated: bool = False



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
    Case("spec-sigma-not-a-number", ("sweep", "validate", "{tmp}/s.yaml"),
         ("problem.sigma", "25dB"), files={"s.yaml": spec(problem__sigma="25dB")}),
    Case("set-sigma-not-a-number", ("sweep", "validate", "{tmp}/s.yaml", "--set",
                                    "problem.sigma=abc"), ("problem.sigma", "abc"),
         files={"s.yaml": spec()}),
    Case("spec-sigma-nan", ("sweep", "validate", "{tmp}/s.yaml"), ("problem.sigma", "nan"),
         files={"s.yaml": spec(problem__sigma=float("nan"))}),
    Case("spec-sigma-inf", ("sweep", "show", "{tmp}/s.yaml"), ("problem.sigma", "inf"),
         files={"s.yaml": spec(problem__sigma=float("inf"))}),
    Case("search-bound-inf", ("sweep", "validate", "{tmp}/s.yaml"), ("search.lr", "inf"),
         files={"s.yaml": spec(search={"lr": {"loguniform": [0.001, float("inf")]}})}),
    Case("fixed-input-scale-inf", ("sweep", "validate", "{tmp}/s.yaml"),
         ("fixed.input_scale", "inf"), files={"s.yaml": spec(fixed__input_scale=float("inf"))}),
    Case("resources-cpu-nan", ("sweep", "validate", "{tmp}/s.yaml"), ("cpu", "nan"),
         files={"s.yaml": spec(resources__cpu=float("nan"))}),
    Case("num-samples-fraction", ("sweep", "validate", "{tmp}/s.yaml"), ("num_samples", "2.5"),
         files={"s.yaml": spec(num_samples=2.5)}),
    Case("time-budget-inf", ("sweep", "validate", "{tmp}/s.yaml"), ("time_budget_s", "inf"),
         files={"s.yaml": spec(time_budget_s=float("inf"))}),
    Case("search-int-bound-fraction", ("sweep", "validate", "{tmp}/s.yaml"),
         ("search.iters", "20.5"), files={"s.yaml": spec(
             "fixed__iters", search={"iters": {"int": [10, 20.5]}})}),
    Case("fault-at-iter-word", ("sweep", "validate", "{tmp}/s.yaml"), ("at_iter", "x"),
         files={"s.yaml": spec(faults=[{"at_iter": "x"}])}),
    Case("scheduler-reduction-nan", ("sweep", "validate", "{tmp}/s.yaml"),
         ("reduction_factor", "nan"),
         files={"s.yaml": spec(scheduler__reduction_factor=float("nan"))}),
    Case("race-one-pair", ("sweep", "validate", "{tmp}/s.yaml"), ("nothing to race", "1 pair"),
         files={"s.yaml": spec(scheduler={"type": "race"})}),
    Case("race-alpha-one", ("sweep", "validate", "{tmp}/s.yaml"), ("scheduler.alpha", "1.5"),
         files={"s.yaml": spec(scheduler={"type": "race", "alpha": 1.5},
                               problem__replicates=2)}),
    Case("race-block-over-pairs", ("sweep", "validate", "{tmp}/s.yaml"),
         ("scheduler.block", "(3)", "2 pairs"),
         files={"s.yaml": spec(scheduler={"type": "race", "block": 3},
                               problem__replicates=2)}),
    Case("searcher-seed-word", ("sweep", "show", "{tmp}/s.yaml", "--set", "searcher.seed=abc"),
         ("seed", "abc"), files={"s.yaml": spec()}),
    Case("set-unclosed-bracket", ("sweep", "validate", "{tmp}/s.yaml", "--set",
                                  "fixed.lr=[0.1"), ("fixed.lr", "[0.1"),
         files={"s.yaml": spec()}),
    Case("fit-sigma-inf", ("fit", "dip", "--image", "skimage:astronaut", "--sigma", "inf"),
         ("--sigma", "inf")),
    Case("fit-sigma-nan", ("fit", "dip", "--image", "skimage:astronaut", "--sigma", "nan"),
         ("--sigma", "nan")),
    Case("fit-set-lr-inf", ("fit", "guided-dip", "--image", "skimage:astronaut", "--set",
                            "lr=.inf"), ("lr", "inf")),
    Case("fit-min-beta-above-one", ("fit", "guided-dip", "--image", "skimage:astronaut",
                                    "--set", "min_beta=2"), ("min_beta", "2")),
    Case("fit-problem-size-zero", ("fit", "dip", "--image", "skimage:astronaut", "--problem",
                                   "size=0"), ("problem.size", "0")),
    Case("fit-noop-field-nan", ("fit", "noop", "--x", "nan"), ("x", "nan")),
    Case("fit-ddpm-data-word", ("fit", "ddpm", "--dataset", "skimage-patches", "--out",
                                "{tmp}/o", "--data", "count=many"), ("count", "many")),
    Case("fit-dip-prior-sigma-inf", ("fit", "dip-prior-ddpm", "--checkpoint", "{tmp}/d.pt",
                                     "--image", "skimage:camera", "--sigma", "inf"),
         ("--sigma", "inf")),
    Case("sample-eta-nan", ("sample", "--checkpoint", "{tmp}/d.pt", "--out", "{tmp}/g.png",
                            "--eta", "nan"), ("--eta", "nan")),
    Case("inspect-scale-with-t-maybe", ("inspect", "betas", "--schedule", "linear",
                                        "--timesteps", "100", "--set", "scale_with_T=maybe"),
         ("scale_with_T", "maybe")),
    Case("inspect-min-beta-above-one", ("inspect", "betas", "--schedule", "cosine",
                                        "--timesteps", "100", "--set", "min_beta=2"),
         ("min_beta", "2")),
    Case("spec-seed-fraction", ("sweep", "validate", "{tmp}/s.yaml"), ("seed", "1.5"),
         files={"s.yaml": spec(seed=1.5)}),
    Case("show-set-size-word", ("sweep", "show", "{tmp}/s.yaml", "--set", "problem.size=big"),
         ("problem.size", "big"), files={"s.yaml": spec()}),
    Case("run-set-gpu-nan", ("sweep", "run", "{tmp}/s.yaml", "--set", "resources.gpu=.nan"),
         ("resources.gpu", "nan"), files={"s.yaml": spec()}),
    Case("summarize-threshold-nan", ("results", "summarize", "{tmp}/nope", "--threshold", "nan"),
         ("--threshold", "nan")),
]

# --- YAML that is not quite YAML ----------------------------------------------------------------
SPEC_TEXT = spec()

YAML: list[Case] = [
    Case("spec-missing", ("sweep", "validate", "{tmp}/nope.yaml"), ("nope.yaml",)),
    Case("spec-is-a-directory", ("sweep", "validate", "{tmp}/sweeps"),
         ("sweeps", "is a directory"), files={"sweeps/a.yaml": SPEC_TEXT}),
    Case("show-spec-is-a-directory", ("sweep", "show", "{tmp}"), ("is a directory",)),
    Case("top-key-twice", ("sweep", "validate", "{tmp}/s.yaml"), ("'method'", "twice"),
         files={"s.yaml": SPEC_TEXT + "method: guided_dip\n"}),
    Case("nested-key-twice", ("sweep", "validate", "{tmp}/s.yaml"), ("'sigma'", "twice"),
         files={"s.yaml": SPEC_TEXT.replace("  sigma: 25\n", "  sigma: 25\n  sigma: 50\n")}),
    Case("syntax-error-line", ("sweep", "validate", "{tmp}/s.yaml"), ("s.yaml:3:7", "2:10"),
         files={"s.yaml": "name: x\nproblem: {image: a\nmetric: psnr_best\n"}),
    Case("latin1-byte", ("sweep", "validate", "{tmp}/s.yaml"), ("0xe9", "line 1"),
         files={"s.yaml": b"description: caf\xe9\n" + SPEC_TEXT.encode()}),
    Case("empty-spec", ("sweep", "validate", "{tmp}/s.yaml"), ("s.yaml", "mapping"),
         files={"s.yaml": ""}),
    Case("smoke-typo", ("sweep", "validate", "{tmp}/s.yaml"), ("smoke", "num_samplez"),
         files={"s.yaml": spec(smoke={"num_samplez": 1})}),
    Case("smoke-not-a-mapping", ("sweep", "show", "{tmp}/s.yaml"), ("smoke",),
         files={"s.yaml": spec(smoke=3)}),
    Case("smoke-bad-fixed", ("sweep", "validate", "{tmp}/s.yaml"), ("smoke", "report_every"),
         files={"s.yaml": spec(smoke={"fixed": {"report_every": 0}})}),
    Case("fit-set-unclosed-bracket", ("fit", "dip", "--image", "skimage:astronaut", "--set",
                                      "lr=[0.1"), ("--set lr", "[0.1")),
    Case("show-set-unclosed-brace", ("sweep", "show", "{tmp}/s.yaml", "--set",
                                     "search={lr"), ("--set search", "{lr"),
         files={"s.yaml": SPEC_TEXT}),
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
# `sweep run` cases share the test session's one Ray (as conftest's `ray_local` starts it: 2
# CPUs, no GPU, 127.0.0.2; pytest.param cannot request a fixture, so the case's set-up starts
# it the same way when no test has yet, and `ray_local` then reuses it and shuts it down at the
# end of the session). The runner reuses an initialised Ray and never shuts it down, and the
# check refuses before any trial or file exists: each case costs a spec's validation, not a
# Ray start.
def shared_ray(_tmp: Path) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, _node_ip_address="127.0.0.2", include_dashboard=False,
                 log_to_driver=False)


ON_RAY = (pytest.mark.ray,)

FEASIBILITY: list[Case] = [
    Case("run-cpu-beyond-every-node", ("sweep", "run", "{tmp}/s.yaml", "--storage",
                                       "{tmp}/results"), ("resources.cpu", "1e+06"),
         files={"s.yaml": spec(resources__cpu=1e6)}, setup=shared_ray, marks=ON_RAY),
    Case("run-gpu-without-gpus", ("sweep", "run", "{tmp}/s.yaml", "--storage", "{tmp}/results"),
         ("resources.gpu",), files={"s.yaml": spec(resources__gpu=1)}, setup=shared_ray,
         marks=ON_RAY),
    Case("run-memory-beyond-every-node", ("sweep", "run", "{tmp}/s.yaml", "--storage",
                                          "{tmp}/results"), ("memory", "GiB"),
         files={"s.yaml": spec("preset", problem__size=4096)}, setup=shared_ray,
         marks=(*ON_RAY, pytest.mark.slow)),
    Case("validate-memory-beyond-this-machine", ("sweep", "validate", "{tmp}/s.yaml"),
         ("memory", "GiB", "RAM"), files={"s.yaml": spec("preset", problem__size=4096)},
         marks=(pytest.mark.slow,)),
]

# --- two options that disagree ------------------------------------------------------------------
FIT = ("fit", "dip", "--image", "skimage:astronaut")

CONFLICTS: list[Case] = [
    Case("fit-iters-and-set-iters", (*FIT, "--iters", "5", "--set", "iters=10"),
         ("--iters 5", "iters=10")),
    Case("fit-sigma-and-problem-sigma", (*FIT, "--sigma", "10", "--problem", "sigma=50"),
         ("--sigma 10", "sigma=50")),
    Case("fit-size-and-problem-size", (*FIT, "--size", "32", "--problem", "size=64"),
         ("--size 32", "size=64")),
    Case("fit-noise-seed-and-problem-seed", (*FIT, "--noise-seed", "1", "--problem", "seed=2"),
         ("--noise-seed 1", "seed=2")),
    Case("fit-grey-and-problem-grey", (*FIT, "--grey", "--problem", "grey=false"),
         ("--grey", "grey=False")),
    Case("fit-image-and-problem-image", (*FIT, "--problem", "image=skimage:camera"),
         ("--image skimage:astronaut", "image=skimage:camera")),
    Case("fit-set-twice", ("fit", "guided-dip", "--image", "skimage:astronaut", "--set",
                           "lr=0.1", "--set", "lr=0.2"), ("lr=0.1", "lr=0.2")),
    Case("fit-noop-problem-twice", ("fit", "noop", "--problem", "a=1", "--problem", "a=2"),
         ("a=1", "a=2")),
    Case("fit-ddpm-size-and-data-size", ("fit", "ddpm", "--dataset", "skimage-patches", "--out",
                                         "{tmp}/o", "--size", "16", "--data", "size=32"),
         ("--size 16", "size=32")),
    Case("fit-ddpm-dataset-and-data-dataset", ("fit", "ddpm", "--dataset", "skimage-patches",
                                               "--out", "{tmp}/o", "--data", "dataset=lfw"),
         ("--dataset skimage-patches", "dataset=lfw")),
    Case("fit-dip-prior-t0-and-set-t0", ("fit", "dip-prior-ddpm", "--checkpoint", "{tmp}/d.pt",
                                         "--image", "skimage:camera", "--t0", "5", "--set",
                                         "t0=10"), ("--t0 5", "t0=10")),
    Case("run-num-samples-and-set", ("sweep", "run", "{tmp}/s.yaml", "--num-samples", "3",
                                     "--set", "num_samples=4"),
         ("--num-samples 3", "num_samples=4"), files={"s.yaml": SPEC_TEXT}),
    Case("run-storage-and-set", ("sweep", "run", "{tmp}/s.yaml", "--storage", "{tmp}/a",
                                 "--set", "storage={tmp}/b"), ("--storage", "storage="),
         files={"s.yaml": SPEC_TEXT}),
    Case("validate-set-twice", ("sweep", "validate", "{tmp}/s.yaml", "--set", "fixed.iters=5",
                                "--set", "fixed.iters=6"), ("fixed.iters=5", "fixed.iters=6"),
         files={"s.yaml": SPEC_TEXT}),
]

# --- quantities with no meaning -----------------------------------------------------------------
GUIDED = {"method": "guided_dip", "fixed": {"iters": 10, "report_every": 5}}

MEANING: list[Case] = [
    Case("fit-more-stages-than-iterations", ("fit", "guided-dip", "--image",
                                             "skimage:astronaut", "--iters", "10", "--set",
                                             "stages=11"), ("stages", "11", "10")),
    Case("fit-sharp-linear-empty-stages", ("fit", "guided-dip", "--image", "skimage:astronaut",
                                           "--iters", "20", "--set", "stages=4", "--set",
                                           "scheduler=sharp_linear", "--set",
                                           "sharp_linear_x=0"), ("sharp_linear", "stage 1")),
    Case("inspect-more-stages-than-iterations", ("inspect", "stages", "--scheduler", "uniform",
                                                 "--iters", "10", "--stages", "11"),
         ("11", "10")),
    Case("search-corner-more-stages-than-iterations", ("sweep", "validate", "{tmp}/s.yaml"),
         ("stages=12",), files={"s.yaml": spec(
             **GUIDED, search={"stages": {"int": [2, 12]}})}),
    Case("empty-search-several-samples", ("sweep", "validate", "{tmp}/s.yaml"),
         ("num_samples", "identical"), files={"s.yaml": spec("search")}),
    Case("grid-repeated-identically", ("sweep", "show", "{tmp}/s.yaml"),
         ("num_samples", "identical"), files={"s.yaml": spec(
             searcher={"type": "grid"}, search={"lr": {"grid": [0.001, 0.01]}})}),
    Case("mode-typo", ("sweep", "validate", "{tmp}/s.yaml"), ("maxx", "'max'"),
         files={"s.yaml": spec(mode="maxx")}),
    Case("sampler-typo", ("sweep", "validate", "{tmp}/s.yaml"), ("tpee", "'tpe'"),
         files={"s.yaml": spec(searcher__sampler="tpee")}),
    Case("observation-typo", ("sweep", "show", "{tmp}/s.yaml"), ("gausian", "'gaussian'"),
         files={"s.yaml": spec(problem__observation="gausian")}),
    Case("observation-schedule-typo", (*FIT, "--problem", "observation=forward", "--problem",
                                       "observation_schedule=cosin"), ("cosin", "'cosine'")),
    Case("validate-tracking-server-down", ("sweep", "validate", "{tmp}/s.yaml"),
         ("http://127.0.0.2:1", "does not answer", "drop mlflow"),
         files={"s.yaml": spec(tracking=[{"mlflow": {"tracking_uri": "http://127.0.0.2:1",
                                                     "timeout_s": 2}}])}),
    Case("fixed-bool-maybe", ("sweep", "validate", "{tmp}/s.yaml"), ("backtracking", "maybe"),
         files={"s.yaml": spec(fixed__backtracking="maybe")}),
    Case("fixed-literal-typo", ("sweep", "validate", "{tmp}/s.yaml"),
         ("input_noise", "unifrom", "'uniform'"),
         files={"s.yaml": spec(fixed__input_noise="unifrom")}),
    Case("problem-replicates-zero", ("sweep", "validate", "{tmp}/s.yaml"),
         ("problem.replicates", "0"), files={"s.yaml": spec(problem__replicates=0)}),
    Case("fit-fusion-typo", (*FIT, "--fusion", "fusde"), ("--fusion", "fusde", "'fused'")),
    Case("fit-iters-bool", (*FIT, "--set", "iters=true"), ("iters", "True")),
    Case("spec-compact-maybe", ("sweep", "validate", "{tmp}/s.yaml"), ("compact", "maybe"),
         files={"s.yaml": spec(compact="maybe")}),
    Case("fit-device-unknown", (*FIT, "--device", "gpu"), ("device", "'gpu'")),
    Case("fit-method-device-absent", ("fit", "noop", "--device", "cuda:7"), ("cuda:7",)),
    Case("show-fixed-net-typo", ("sweep", "show", "{tmp}/s.yaml"), ("net", "skp", "'skip'"),
         files={"s.yaml": spec(fixed__net="skp")}),
    Case("fit-ddpm-beta-schedule-typo", ("fit", "ddpm", "--dataset", "skimage-patches", "--out",
                                         "{tmp}/o", "--set", "beta_schedule=cosin"),
         ("beta_schedule", "cosin", "'cosine'")),
    Case("fit-bm3d-refuses-iters", ("fit", "bm3d", "--image", "skimage:astronaut", "--set",
                                    "iters=3"), ("iters", "3")),
    # the DIP family (issue 25): an ensemble needs replicates; SURE needs sigma; aSeqDIP's m
    # and DIP-TV's weight have ranges
    Case("fit-ensemble-one-replicate", ("fit", "dip", "--image", "skimage:astronaut", "--set",
                                        "output=ensemble"),
         ("output: ensemble", "--replicates is 1")),
    Case("sweep-ensemble-one-replicate", ("sweep", "validate", "{tmp}/s.yaml"),
         ("output: ensemble", "problem.replicates is 1"),
         files={"s.yaml": spec(fixed__output="ensemble")}),
    Case("fit-dip-sure-no-sigma", ("fit", "dip-sure", "--image", "skimage:astronaut", "--size",
                                   "64", "--problem", "observation=forward", "--set",
                                   "estimate_sigma=false"), ("estimate_sigma", "sigma")),
    Case("fit-aseq-m-zero", ("fit", "aseq-dip", "--image", "skimage:astronaut", "--set",
                             "aseq_every=0"), ("aseq_every", "0")),
    Case("fit-tv-weight-negative", ("fit", "dip-tv", "--image", "skimage:astronaut", "--set",
                                    "tv_weight=-0.5"), ("tv_weight", "-0.5")),
    Case("fit-nlm-grey-image-colour-axis", ("fit", "nlm", "--image", "skimage:camera", "--grey",
                                            "--size", "32", "--set", "channel_axis=-1"),
         ("channel_axis=-1", "greyscale", "channel_axis=null")),
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
         files={"s.yaml": spec()}, env={"RAY_ADDRESS": "garbage"}, isolated=True),
    Case("ray-address-variable-doctor", ("cluster", "doctor"),
         ("RAY_ADDRESS variable", "RAY_ADDRESS=garbage"), env={"RAY_ADDRESS": "garbage"},
         isolated=True),
    Case("ray-address-option-wins", ("sweep", "run", "{tmp}/s.yaml", "--storage", "{tmp}/res",
                                     "--address", "junk"),
         ("--address junk", "overrides RAY_ADDRESS=garbage"), files={"s.yaml": spec()},
         env={"RAY_ADDRESS": "garbage"}, isolated=True),
    Case("ray-address-nothing-listens", ("sweep", "run", "{tmp}/s.yaml", "--storage",
                                         "{tmp}/res", "--address", "127.0.0.2:1"),
         ("--address 127.0.0.2:1", "nothing answers at 127.0.0.2:1", "ray start --head"),
         files={"s.yaml": spec()}, isolated=True),
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
# a sweep directory `sw` as `sweep run` leaves it (a resolved noop spec of 3 trials), with
# trials written and Tune's state as each case needs
RESOLVED = {"name": "sw", "method": "noop", "problem": {}, "metric": "score", "mode": "max",
            "fixed": {"iters": 4}, "search": {"x": {"uniform": [0.0, 1.0]}},
            "searcher": {"type": "optuna", "sampler": "random", "seed": 0,
                         "max_concurrent": 1},
            "scheduler": {"type": "none"}, "num_samples": 3}


def sweep_dir(trials: int = 0, tune: Mapping[str, bytes] | None = None, lock: bool = False,
              spec: Mapping | None = None, storage_spec: bool = False):
    """A set-up making {tmp}/sw: its spec.resolved.yaml, `trials` part files, tune/ files,
    a driver lock held by this (live) process, and a spec file {tmp}/sw.yaml whose storage is
    {tmp} (for `sweep run --resume`)."""

    def make(tmp: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from dipddpm.dataset.lock import LOCK_FILE, Holder
        from dipddpm.sweep.runner import resolved_yaml
        from dipddpm.sweep.spec import load_spec

        sw = tmp / "sw"
        (sw / "trials").mkdir(parents=True)
        (sw / "spec.resolved.yaml").write_text(yaml.safe_dump(dict(spec or RESOLVED)))
        if storage_spec:  # and the sweep as that spec runs it
            (tmp / "sw.yaml").write_text(yaml.safe_dump({**RESOLVED, "storage": str(tmp)}))
            (sw / "spec.resolved.yaml").write_text(resolved_yaml(load_spec(tmp / "sw.yaml")))
        for i in range(trials):
            pq.write_table(pa.table({"sweep": ["sw"], "trial_id": [f"t{i}"],
                                     "status": ["COMPLETED"]}),
                           sw / "trials" / f"part-t{i}.parquet")
        for name, content in (tune or {}).items():
            (sw / "tune").mkdir(exist_ok=True)
            (sw / "tune" / name).write_bytes(content)
        if lock:
            (sw / LOCK_FILE).write_bytes(Holder.me(str(sw)).dump())

    return make


SWEEPS: list[Case] = [
    Case("resume-not-a-sweep", ("sweep", "resume", "{tmp}"), ("{tmp}", "not a sweep directory")),
    Case("resume-no-such-dir", ("sweep", "resume", "{tmp}/nope"),
         ("{tmp}/nope", "no such directory")),
    Case("resume-a-spec-file", ("sweep", "resume", "{tmp}/quick.yaml"),
         ("{tmp}/quick.yaml", "is a file, not a sweep directory"),
         files={"quick.yaml": "name: quick\n"}),
    Case("status-of-a-file", ("sweep", "status", "{tmp}/x.txt"),
         ("{tmp}/x.txt", "is a file"), files={"x.txt": "hello\n"}),
    Case("status-empty-dir", ("sweep", "status", "{tmp}/empty"),
         ("{tmp}/empty", "no spec.resolved.yaml"),
         setup=lambda tmp: (tmp / "empty").mkdir()),
    Case("status-no-such-dir", ("sweep", "status", "{tmp}/gone"), ("{tmp}/gone",)),
    Case("resume-spec-not-yaml", ("sweep", "resume", "{tmp}/sw"),
         ("{tmp}/sw/spec.resolved.yaml", "not valid YAML at line"),
         files={"sw/spec.resolved.yaml": "name: sw\nmethod: [noop\n"}),
    Case("resume-spec-not-a-mapping", ("sweep", "resume", "{tmp}/sw"),
         ("{tmp}/sw/spec.resolved.yaml", "holds a list"),
         files={"sw/spec.resolved.yaml": "- name\n- sw\n"}),
    Case("status-spec-latin1", ("sweep", "status", "{tmp}/sw"),
         ("{tmp}/sw/spec.resolved.yaml", "not UTF-8"),
         files={"sw/spec.resolved.yaml": b"name: caf\xe9\n"}),
    Case("resume-spec-bad-method", ("sweep", "resume", "{tmp}/sw"),
         ("{tmp}/sw/spec.resolved.yaml", "nosuch"),
         setup=sweep_dir(spec={**RESOLVED, "method": "nosuch"})),
    Case("resume-spec-is-a-folder", ("sweep", "resume", "{tmp}/sw"),
         ("{tmp}/sw", "no spec.resolved.yaml file"),
         setup=lambda tmp: (tmp / "sw" / "spec.resolved.yaml").mkdir(parents=True)),
    Case("resume-tune-missing-trials-left", ("sweep", "resume", "{tmp}/sw"),
         ("{tmp}/sw/tune is missing", "1 of the sweep's 3 trials ended",
          "Put the tune/ folder back"),
         setup=sweep_dir(trials=1)),
    Case("run-resume-tune-missing-trials-left", ("sweep", "run", "{tmp}/sw.yaml", "--resume"),
         ("{tmp}/sw/tune is missing", "2 of the sweep's 3 trials"),
         setup=sweep_dir(trials=2, storage_spec=True)),
    Case("resume-tune-unreadable", ("sweep", "resume", "{tmp}/sw"),
         ("{tmp}/sw/tune is unreadable", "1 of the sweep's 3 trials"),
         setup=sweep_dir(trials=1, tune={"tuner.pkl": b"not a pickle",
                                         "experiment_state-2026-01-01_00-00-00.json": b"{"})),
    Case("resume-tune-without-tuner-pkl", ("sweep", "resume", "{tmp}/sw", "--drop-orphans"),
         ("{tmp}/sw/tune is incomplete (no tuner.pkl)",),
         setup=sweep_dir(trials=2, tune={"search_gen_state-x.json": b"{}"})),
    Case("resume-held-by-a-live-driver", ("sweep", "resume", "{tmp}/sw"),
         ("{tmp}/sw is held by driver pid", f"pid {os.getpid()} on {socket.gethostname()}"),
         setup=sweep_dir(trials=1, lock=True)),
    Case("run-held-by-a-live-driver", ("sweep", "run", "{tmp}/sw.yaml"),
         ("{tmp}/sw is held by driver pid", f"pid {os.getpid()}"),
         setup=sweep_dir(lock=True, storage_spec=True)),
    Case("resume-no-room-for-the-reserve", ("sweep", "resume", "{tmp}/sw"),
         ("no space for the sweep in {tmp}/sw", "DIPDDPM_MIN_FREE_MIB"),
         setup=sweep_dir(), env={"DIPDDPM_MIN_FREE_MIB": "1e12"}),
    Case("resume-reserve-not-a-number", ("sweep", "resume", "{tmp}/sw"),
         ("DIPDDPM_MIN_FREE_MIB", "'lots'"),
         setup=sweep_dir(), env={"DIPDDPM_MIN_FREE_MIB": "lots"}),
    Case("resume-reserve-nan", ("sweep", "resume", "{tmp}/sw"),
         ("DIPDDPM_MIN_FREE_MIB", "'nan'"), setup=sweep_dir(), env={"DIPDDPM_MIN_FREE_MIB": "nan"}),
]

# --- the tools' own options ---------------------------------------------------------------------
TOOLS: list[Case] = [
    # click's own usage errors: one line naming the option, command or argument, and the help
    Case("option-value-not-an-integer", ("fit", "dip", "--iters", "abc"),
         ("--iters", "dipddpm fit dip -h")),
    Case("option-unknown", ("fit", "dip", "--iterz", "5"), ("No such option: --iterz",)),
    Case("command-unknown", ("sweep", "runn", "x.yaml"), ("No such command 'runn'",)),
    Case("fit-save-without-an-output-image", ("fit", "noop", "--save", "{tmp}/out/x.png"),
         ("No such option: --save",)),  # refused before the run, not after it
    Case("argument-missing", ("results", "summarize"), ("Missing argument 'DIR'",)),
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


@dataclass(frozen=True)
class Ran:
    exit_code: int
    stdout: str
    stderr: str


def run_isolated(args: list[str], env: Mapping[str, str], cwd: Path) -> Ran:
    """The command in a fresh interpreter (the `dipddpm` entry point), with `env` added."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", "from dipddpm.cli import main; main()", *args],
                       cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True,
                       timeout=120)
    return Ran(p.returncode, p.stdout, p.stderr)


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
    r = run_isolated(args, env, tmp_path) if case.isolated else CliRunner().invoke(app, args,
                                                                                      env=env)
    lines = r.stderr.strip().splitlines()
    shown = f"exit {r.exit_code}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert r.exit_code == 2, shown
    assert getattr(r, "exception", None) is None or isinstance(r.exception, SystemExit), shown
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
