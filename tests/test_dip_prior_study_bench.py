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


def test_observations_share_the_clean_image_and_differ_in_noise(bench):
    patches = (torch.arange(3 * 16 * 16, dtype=torch.float32).reshape(3, 1, 16, 16) % 256)
    obs = bench.observations(patches.to(torch.uint8), images=3, replicates=2)
    assert [(p.name, p.seed) for p in obs] == [(f"patch{i}", r) for r in (0, 1)
                                               for i in range(3)]
    a, b = obs[0], obs[3]  # patch0, replicates 0 and 1
    assert torch.equal(a.clean, b.clean) and not torch.equal(a.observed, b.observed)


def test_verdicts_pair_arms_by_image_and_replicate(bench):
    """B has half of A's noise on every pair, A's noise level differs 20-fold across pairs:
    paired by (image, replicate), every delta is about +6 dB; mispaired, they scatter."""
    clean = torch.full((1, 8, 8), 0.5)
    obs = bench.observations((clean * 255).to(torch.uint8)[None].expand(4, -1, -1, -1),
                             images=4, replicates=2)
    idx = list(range(len(obs)))
    std = torch.linspace(0.01, 0.2, len(obs)).view(-1, 1, 1, 1)
    noise = torch.randn(len(obs), 1, 8, 8, generator=torch.Generator().manual_seed(0))
    x = torch.stack([p.clean for p in obs])
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
