"""The DIP-prior DDPM study benchmark's own logic (benchmarks/dip_prior_ddpm.py): its pairs,
its paired verdicts and its training-budget extrapolation. The benchmark itself is too long
for a test; these pieces are what its .md's conclusions rest on."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        import dip_prior_ddpm
    finally:
        sys.path.remove(str(BENCH))
    return dip_prior_ddpm


@pytest.fixture(scope="module")
def ckpt(tiny_ddpm):
    return tiny_ddpm  # one grey channel, 16x16


def _pairs(bench, tmp_path, patches, replicates: int, seed: int = 0, ckpt=None):
    files = bench.patch_files(patches, tmp_path / "set", "patch")
    dip = {**bench.TINY_DIP, "dip_depth": 1}
    return bench.observations(bench.study_spec(files, replicates, seed, dip, ckpt))


def test_observations_are_the_study_pairs(bench, tmp_path, ckpt):
    """The benchmark's observations are the product's study pairs: replicate r of every
    patch is noised with seed `seed + r` (the same rule as a sweep's study trial) and fitted
    with seed `seed + r`; the PNG round trip keeps the patch exactly."""
    from dipddpm.data.images import gaussian_noise

    patches = (torch.arange(3 * 16 * 16).reshape(3, 1, 16, 16) * 7 % 256).to(torch.uint8)
    obs = _pairs(bench, tmp_path, patches, replicates=2, seed=5, ckpt=ckpt)
    assert [(bench.image_of(p.spec.image), p.spec.replicate, p.seed) for p in obs] == [
        (f"patch{i}", r, 5 + r) for i in range(3) for r in (0, 1)]
    for p in obs:
        i = int(bench.image_of(p.spec.image)[5:])
        assert torch.equal(p.problem.clean, patches[i].float() / 255)
        assert torch.equal(p.problem.observed,
                           gaussian_noise(p.problem.clean, 25.0, 5 + p.spec.replicate))


def test_bm3d_rows_are_the_studys_baseline_on_the_same_observations(bench, tmp_path, ckpt):
    from dipddpm.methods.bm3d import Bm3dConfig, run_bm3d
    from dipddpm.metrics import psnr

    patches = (torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 255)
    files = bench.patch_files(patches.to(torch.uint8), tmp_path / "set", "patch")
    spec = bench.study_spec(files, 2, 0, {**bench.TINY_DIP, "dip_depth": 1}, ckpt)
    rows = bench.bm3d_rows(spec)
    obs = bench.observations(spec)
    assert [(r["image"], r["replicate"]) for r in rows] == [
        (bench.image_of(p.spec.image), p.spec.replicate) for p in obs]
    for r, p in zip(rows, obs, strict=True):
        out = run_bm3d(Bm3dConfig(), p.problem).images["output"]
        assert r["psnr"] == pytest.approx(psnr(out, p.problem.clean))


def test_verdicts_pair_arms_by_image_and_replicate(bench, tmp_path, ckpt):
    """B has half of A's noise on every pair, A's noise level differs 20-fold across pairs:
    paired by (image, replicate), every delta is about +6 dB; mispaired, they scatter."""
    clean = torch.full((1, 16, 16), 0.5)
    obs = _pairs(bench, tmp_path, (clean * 255).to(torch.uint8)[None].expand(4, -1, -1, -1),
                 replicates=2, ckpt=ckpt)
    idx = list(range(len(obs)))
    std = torch.linspace(0.01, 0.2, len(obs)).view(-1, 1, 1, 1)
    noise = torch.randn(len(obs), 1, 16, 16, generator=torch.Generator().manual_seed(0))
    x = torch.stack([p.problem.clean for p in obs])
    arms = bench.Arms(obs)
    arms.add("A", x + std * noise, idx, 0, 0.0)
    arms.add("B", (x + std / 2 * noise).flip(0), idx[::-1], 0, 0.0)  # rows in another order
    (v,) = bench.verdicts(arms, [("A", "B")])
    assert v["n_pairs"] == 8 and (v["wins"], v["ties"], v["losses"]) == (8, 0, 0)
    assert v["mean_delta"] == pytest.approx(20 * math.log10(2), abs=0.3)  # psnr clamps [0,1]
    assert v["ci95"][1] - v["ci95"][0] < 0.6
    assert v["ci95"][0] <= v["mean_delta"] <= v["ci95"][1] and v["p_wilcoxon"] < 0.01


def test_budget_need_extrapolates_log_linearly(bench):
    half = {"DIP alone": 28.0, "BM3D": 31.0, "arm": 26.0, "flat": 25.0, "ahead": 32.0}
    full = {"DIP alone": 28.0, "BM3D": 31.0, "arm": 27.0, "flat": 25.01, "ahead": 32.5}
    rows = {r["method"]: r for r in bench.budget_need(half, full, steps=1000, s_per_step=0.36)}
    assert set(rows) == {"arm", "flat", "ahead"}
    arm = rows["arm"]  # +1 dB per doubling: 1 dB short of DIP = 2N, 4 dB short of BM3D = 16N
    assert arm["gain_per_doubling_db"] == pytest.approx(1.0)
    assert (arm["steps_to_dip"], arm["steps_to_bm3d"]) == (2000, 16000)
    assert arm["steps_to_bm3d_cpu_h"] == pytest.approx(16000 * 0.36 / 3600)
    assert rows["flat"]["steps_to_dip"] is None  # 0.01 dB per doubling: no estimate
    assert rows["ahead"]["steps_to_bm3d"] == 1000  # already past both
