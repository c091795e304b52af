"""Every script in benchmarks/ runs in its smallest real form: here, one smoke test per script
(CPU, offline, seconds to a minute: bundled scikit-image photos or an image set the test
makes, never the benchmark images), each writing its JSON into tmp and checked for its
provenance (git sha, date, the command that made it, and the hardware where it measures) and
its main figures. Scripts whose smoke run lives in another test file are named in ELSEWHERE
with that file; a test checks every script is in one of the two tables, so a new script comes
with its smoke test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
PROVENANCE = ("git_sha", "date", "command")


@dataclass(frozen=True)
class Smoke:
    argv: Callable[[Path], list[str]]  # the script's arguments (tmp: the test's folder)
    out: str  # the JSON it writes, relative to tmp
    figures: Callable[[dict], object]  # the main figures, read from the JSON (must not raise)
    hardware: bool = True  # it records the hardware it ran on
    prepare: Callable[[Path], None] | None = None  # makes its inputs in tmp
    marks: tuple = field(default=(pytest.mark.slow,))


def run(script: str, args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    p = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{script} {args}: exit {p.returncode}\n{p.stderr[-3000:]}"
    return p


# ---------------------------------------------------------------- inputs the tests make


def noop_spec(tmp: Path) -> None:
    """A sweep spec of the noop method (no fitting): ASHA stops the weak trials at once."""
    (tmp / "noop.yaml").write_text(
        "name: noop_search\nmethod: noop\nproblem: {}\nmetric: score\nmode: max\n"
        "fixed: {iters: 12}\nsearch: {x: {uniform: [0.0, 1.0]}}\n"
        "searcher: {type: optuna, sampler: random, seed: 0, max_concurrent: 2}\n"
        "scheduler: {type: asha, grace_period: 2, reduction_factor: 2}\nnum_samples: 6\n")


def f16_set(tmp: Path) -> None:
    """A stand-in for the benchmark images: cset9/F16.png made from a bundled photo."""
    from dipddpm.data.images import load_image, resize_square, save_image

    (tmp / "data" / "cset9").mkdir(parents=True)
    save_image(resize_square(load_image("skimage:astronaut"), 64),
               tmp / "data" / "cset9" / "F16.png")


def study_sweep(tmp: Path) -> None:
    """A small real study of sweeps/study_guided_vs_dip.yaml's shape, run by `sweep run`:
    stages 1, 4 and 8 on 2 images x 2 replicates, with its bm3d baseline."""
    import yaml

    spec = {"name": "study_smoke", "method": "guided_dip", "preset": "tiny",
            "metric": "psnr_best", "mode": "max",
            "problem": {"images": ["skimage:astronaut", "skimage:coffee"], "replicates": 2,
                        "size": 32, "sigma": 25},
            "fixed": {"width": 8, "depth": 2, "input_depth": 4, "report_every": 4,
                      "iters": 24},
            "search": {"stages": {"grid": [1, 4, 8]}}, "searcher": {"type": "grid"},
            "scheduler": {"type": "none"}, "num_samples": 1, "baselines": ["bm3d"],
            "checkpoint_every": 1000, "storage": str(tmp / "results")}
    (tmp / "study.yaml").write_text(yaml.safe_dump(spec))
    p = subprocess.run([sys.executable, "-m", "dipddpm", "sweep", "run", str(tmp / "study.yaml")],
                       cwd=REPO, capture_output=True, text=True, timeout=900,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 0, p.stderr[-3000:]


# ---------------------------------------------------------------- the scripts


def _rows(key: str) -> Callable[[dict], list]:
    def get(doc: dict) -> list:
        rows = doc["rows"]
        assert rows and all(r[key] > 0 for r in rows), rows
        return rows
    return get


RAY = (pytest.mark.slow, pytest.mark.ray)
SMOKES: dict[str, Smoke] = {
    "dip_speed": Smoke(
        lambda t: ["--iters", "3", "--repeats", "1", "--sizes", "64", "--device", "cpu",
                   "--out", str(t / "dip_speed.json")],
        "dip_speed.json", _rows("ratio")),
    "dip_modes": Smoke(
        lambda t: ["--tiny", "--sizes", "32", "--iters", "3", "--warmup", "1", "--device",
                   "cpu", "--out", str(t / "dip_modes.json")],
        "dip_modes.json", _rows("bare_it_s")),
    "fusion": Smoke(  # with --packing: benchmarks/packing.py's K processes too
        lambda t: ["--device", "cpu", "--ks", "1", "2", "--sizes", "32", "--nets", "small",
                   "--iters", "3", "--packing", "--packing-at", "small:32", "--packing-ks", "2",
                   "--packing-iters", "3", "--packing-warmup", "1", "--out",
                   str(t / "fusion.json")],
        "fusion.json", lambda d: [r["packed_trial_it_s"] for r in _rows("trial_it_s")(d)
                                  if r["K"] == 2]),
    "es_smoothed": Smoke(  # the loop's own psnr_es_sm equals the offline pick (it asserts)
        lambda t: ["--iters", "24", "--size", "32", "--replicates", "1", "--out",
                   str(t / "es_smoothed.json")],
        "es_smoothed.json", lambda d: (d["verdict"]["mean_at_raw_stop"], len(d["pairs"]))),
    "main_job": Smoke(  # the README's main job from a fresh clone of HEAD, its smoke block
        lambda t: ["--smoke", "--out", str(t / "main_job.json")], "main_job.json",
        lambda d: (d["wall_s"] > 0 and sum(d["by_status"].values()) == 3
                   or pytest.fail(str(d["by_status"])), d["quoted_line"]),
        marks=RAY),
    "dip_prior_ddpm": Smoke(
        lambda t: ["--tiny", "--out", str(t)], "dip_prior_ddpm-cpu.json",
        lambda d: ([r["psnr"] for r in d["table"]], d["verdicts"][0]["mean_delta"],
                   d["method_check"]["same"] or pytest.fail("method check differs"))),
    "rung_fidelity": Smoke(
        lambda t: ["--tiny", "--images", "1", "--size", "32", "--iters", "30", "--grace", "5",
                   "--seeds", "0", "--trials", "3", "--workers", "1", "--out", str(t)],
        "rung_fidelity.json",
        lambda d: [d["searches"][r]["median_compute_fraction"] for r in ("total", "final",
                                                                            "gated")]),
    "search": Smoke(  # two worker processes sharing one study and one sweep scheduler
        lambda t: [str(t / "noop.yaml"), "--device", "cpu", "--jobs", "2", "--threads", "1",
                   "--out", str(t)],
        "search-noop_search.json",
        lambda d: (d["best"]["value"], d["states"]["PRUNED"] > 0 or pytest.fail(d["states"]),
                   d["scheduler"]["time_attr"] == "iter" or pytest.fail(d["scheduler"])),
        prepare=noop_spec),
    "reproduce": Smoke(
        lambda t: ["staged_dip_f16_mini", "--only", "dip", "--device", "cpu", "--data",
                   str(t / "data"), "--out", str(t)],
        "staged_dip_f16_mini.json",
        lambda d: d["rows"][0]["metrics"]["psnr_gt_best"], hardware=False, prepare=f16_set),
    "time_plan": Smoke(  # a plan, not a measurement: the committed one must equal the code's
        lambda t: ["--write", "--out", str(t / "time_plan.json")], "time_plan.json",
        lambda d: (d["calls"]["A"]["estimate_s"], d["device_s"]), hardware=False),
    "search_efficiency": Smoke(
        lambda t: ["--samples", "2", "--iters", "60", "--seeds", "0", "--out", str(t)],
        "search_efficiency.json",
        lambda d: (d["grid_best"], d["runs"][0]["sweep_total_iters"], d["rung_rule"]),
        marks=RAY),
    "storage_cost": Smoke(
        lambda t: ["--smoke", "--trials", "1", "--out", str(t / "storage_cost.json")],
        "storage_cost.json", lambda d: (d["s3_over_local_wall"], d["runs"][1]["requests"]),
        marks=RAY),
    "gpu_packing": Smoke(
        lambda t: ["--fake-gpus", "2", "--fractions", "1", "0.5", "--num-samples", "2",
                   "--cpu", "1", "--set", "problem.image=skimage:astronaut",
                   "--set", "problem.size=32", "--out", str(t / "gpu_packing.json")],
        "gpu_packing.json", lambda d: [r["trials_per_hour"] for r in d["rows"]],
        hardware=False, marks=RAY),
    "driver_scale": Smoke(
        lambda t: ["--trials", "12", "--fake-cpus", "2", "--iters", "2", "--out",
                   str(t / "driver_scale.json")],
        "driver_scale.json",
        lambda d: (d["driver"]["trials_per_s"], d["best_summarize_cli_s"]), marks=RAY),
    "study_verdict": Smoke(
        lambda t: [str(t / "results" / "study_smoke"), "--out", str(t / "verdict.json")],
        "verdict.json",
        lambda d: [v["mean_delta"] for v in d["verdicts"]] + [d["study_run"]["completed"]],
        hardware=True, prepare=study_sweep, marks=RAY),
    "tune_overhead": Smoke(  # one direct fit and one Tune trial per repeat
        lambda t: ["--iters", "20", "--repeats", "2", "--size", "32", "--out", str(t)],
        "tune_overhead.json",
        lambda d: (d["median_ratio"], d["ci95"], len(d["paired_ratios"]) == 2
                   or pytest.fail(d["paired_ratios"])), marks=RAY),
}

# scripts whose smoke run is another test file's: (that test, the file it runs, which runs the
# script or is it)
ELSEWHERE = {
    "device_preflight": ("tests/test_device_rehearsal.py", "benchmarks/device_run.sh"),
    "gpu_suite": ("tests/test_device_rehearsal.py", "benchmarks/device_run.sh"),
    "device_wheels": ("tests/test_device_rehearsal.py", "benchmarks/device_prepare.sh"),
    "device_unpack": ("tests/test_device_rehearsal.py", "benchmarks/device_unpack.py"),
    "device_venv": ("tests/test_device_rehearsal.py", "benchmarks/device_venv.py"),
    # the family study's driver (its --smoke run on the methods that exist) and its README table
    "family_study": ("tests/test_family_study.py", "benchmarks/family_study.py"),
    "family_table": ("tests/test_family_study.py", "benchmarks/family_table.py"),
    "ledger": ("tests/test_reproduce.py", "benchmarks/ledger.py"),  # the committed RESULTS.md
    "racing": ("tests/test_benchmark_racing.py", "benchmarks/racing.py"),  # --tiny, replayed
    "packing": ("tests/test_benchmark_smoke.py", "benchmarks/fusion.py"),  # --packing rows
    "precision": ("tests/test_benchmark_smoke.py", "benchmarks/precision.py"),
}
# scripts without a smoke run yet, each with the reason (empty it as they gain one)
PENDING: dict[str, str] = {}


def scripts() -> set[str]:
    return {p.stem for p in BENCH.glob("*.py") if '__name__ == "__main__"' in p.read_text()}


def test_every_script_has_a_smoke_test():
    covered = set(SMOKES) | set(ELSEWHERE) | set(PENDING)
    assert scripts() - covered == set(), "give these a smoke test (SMOKES)"
    assert covered - scripts() == set(), "these are no longer scripts in benchmarks/"
    for name, (test, runner) in ELSEWHERE.items():
        assert Path(runner).stem in (REPO / test).read_text(), f"{test} does not run {runner}"
        assert name in (REPO / runner).read_text(), f"{runner} does not run {name}"


@pytest.mark.parametrize("name", [pytest.param(n, marks=s.marks) for n, s in SMOKES.items()])
def test_smoke(name, tmp_path):
    smoke = SMOKES[name]
    if smoke.prepare:
        smoke.prepare(tmp_path)
    run(f"{name}.py", smoke.argv(tmp_path))
    doc = json.loads((tmp_path / smoke.out).read_text())
    prov = doc.get("meta", doc) if "git_sha" not in doc else doc
    if name == "time_plan":
        assert doc == json.loads((BENCH / "time_plan.json").read_text())
    elif name == "reproduce":  # a protocol's rows carry their own provenance
        prov = doc["rows"][0]["run"]
        assert "hardware" in prov
    else:
        missing = [k for k in PROVENANCE + (("hardware",) if smoke.hardware else ())
                   if not prov.get(k)]
        assert not missing, f"{name}: no {missing} in {sorted(prov)}"
        assert prov["command"].startswith(f"python benchmarks/{name}.py")
    smoke.figures(doc)


@pytest.mark.slow
def test_precision_wrapper_runs_the_cli():
    p = run("precision.py", ["fp32", "--", "fit", "noop", "--iters", "2", "--json"])
    flags = json.loads(p.stdout.split("precision: ", 1)[1].splitlines()[0])
    assert flags["precision"] == "fp32" and flags["tf32_matmul"] is False
    assert json.loads(p.stdout.strip().splitlines()[-1])["iters"] == 2
