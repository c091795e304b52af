"""A fused trial plans its memory on its own share of a fractional GPU, not on the device's
free memory (methods/fusion.py `GpuMemory`), and runs its members one after the other where
the fused net would not fit. The decision is plain arithmetic, tested here with the numbers
given; the CUDA reading of those numbers (`fusion.gpu_memory`) is replaced only in the two
tests of the fallback's wiring, since this machine has no GPU to read."""

from __future__ import annotations

import pytest
import torch

from dipddpm.config import build
from dipddpm.errors import DipddpmError
from dipddpm.methods import METHODS, dip, fusion
from dipddpm.methods.fitting import Member
from dipddpm.methods.fusion import GpuMemory, fused_fits

GiB = 2**30
TINY = {"width": 8, "depth": 2, "input_depth": 4, "iters": 6, "report_every": 3,
        "es_window": 4, "es_patience": 10}


def test_without_a_cap_the_budget_is_the_free_memory():
    mem = GpuMemory(total=80 * GiB, free=70 * GiB)
    assert mem.budget == 70 * GiB
    assert fused_fits(int(62 * GiB), mem) and not fused_fits(int(64 * GiB), mem)


def test_four_quarter_gpu_trials_that_start_together_each_plan_on_a_quarter():
    """The issue's case: four trials at gpu 0.25 start on an empty 80 GiB device; each sees
    79 GiB free. A 30 GiB fused run fits the free memory but not a quarter of the device."""
    mem = GpuMemory(total=80 * GiB, free=79 * GiB, fraction=0.25, context=GiB // 2)
    assert mem.budget == 20 * GiB - GiB // 2
    assert fused_fits(30 * GiB, GpuMemory(total=80 * GiB, free=79 * GiB))  # the old rule
    assert not fused_fits(30 * GiB, mem)
    assert fused_fits(17 * GiB, mem) and not fused_fits(18 * GiB, mem)  # 0.9 x 19.5 GiB


def test_the_budget_is_the_smaller_of_the_cap_and_the_free_memory_less_what_it_holds():
    assert GpuMemory(80 * GiB, 5 * GiB, 0.5, 0).budget == 5 * GiB  # neighbours took the rest
    assert GpuMemory(80 * GiB, 60 * GiB, 0.5, GiB, 3 * GiB).budget == 36 * GiB
    assert GpuMemory(8 * GiB, 8 * GiB, 0.05, GiB).budget == 0  # the context alone exceeds it


def test_a_capped_refusal_is_one_line_naming_the_cap_and_the_largest_k():
    cfg = build(dip.DipConfig, {"width": 16, "depth": 3, "input_depth": 8})
    one = fusion.member_bytes(cfg, 3, 256, 256)
    total = 400 * one
    mem = GpuMemory(total=total, free=total, fraction=0.02, context=0)  # room for 7
    fusion.check_memory(cfg, 3, 256, 256, 7, None, free=mem)
    with pytest.raises(DipddpmError) as e:
        fusion.check_memory(cfg, 3, 256, 256, 8, None, free=mem)
    msg = str(e.value)
    assert "\n" not in msg and "largest K that fits is 7" in msg
    assert "its cap 0.02 x" in msg and "free on the device" in msg


def _members(n: int):
    from dipddpm.data.images import make_image_problem

    cfg = build(dip.DipConfig, TINY)
    problem = make_image_problem("skimage:astronaut", size=32, sigma=25, seed=0, multiple=8)
    return cfg, [Member(problem, dip.dip_plan(cfg, problem), s) for s in range(n)]


def test_auto_runs_one_after_the_other_where_the_capped_budget_is_too_small(monkeypatch):
    cfg, members = _members(2)
    monkeypatch.setitem(fusion.CPU_FUSED_FASTER, ("small", 64), True)  # policy: fused here
    monkeypatch.setattr(fusion, "gpu_memory", lambda dev: GpuMemory(
        total=10 * GiB, free=10 * GiB, fraction=1e-4, context=0))  # 1 MiB: < 1 member
    seen = []
    out = fusion.run_members(cfg, members, lambda it, ms, st: seen.append(
        [bool(m) for m in ms]), device="cpu")
    assert len(out) == 2
    assert [True, False] in seen and [False, True] in seen  # serial: one member at a time
    with pytest.raises(DipddpmError, match="largest K that fits is 0"):
        fusion.run_members(cfg, members, device="cpu", mode="fused")


def test_a_study_falls_back_to_chunked_pairs_under_a_tight_cap(monkeypatch):
    from dipddpm.methods.study_pairs import build_pairs
    from dipddpm.methods.study_run import run_study

    m = METHODS.get("dip")
    cfg = build(m.config_cls, TINY)
    pairs = build_pairs(m, {"images": ["skimage:astronaut", "skimage:coffee"], "size": 32,
                            "sigma": 25}, cfg, 0)
    monkeypatch.setitem(fusion.CPU_FUSED_FASTER, ("small", 64), True)  # policy: fused here
    assert run_study(m, cfg, pairs, device="cpu").mode == "fused"
    monkeypatch.setattr(fusion, "gpu_memory", lambda dev: GpuMemory(
        total=10 * GiB, free=10 * GiB, fraction=1e-4, context=0))
    assert run_study(m, cfg, pairs, device="cpu").mode == "serial"
    with pytest.raises(DipddpmError, match="largest K that fits is 0"):  # the one decision:
        run_study(m, cfg, pairs, device="cpu", mode="fused")  # fused asked for is refused


def test_one_fusion_decision_resumes_fused_and_refuses_a_resume_that_no_longer_fits(
        monkeypatch):
    """`fusion.fusion_mode` is the one decision (run_members and a study ask it); a fused run
    resumed through `run_members` equals the uninterrupted one, and where its fused net no
    longer fits the resume is refused in one line (its state is one fused net's)."""
    cfg, members = _members(2)
    kept, rows = {}, []

    def report(it, ms, state):
        rows.append((it, [dict(m) for m in ms]))
        if it == 3:
            kept["state"] = state()

    full = fusion.run_members(cfg, members, report, device="cpu", mode="fused")
    after = [r for r in rows if r[0] > 3]
    rows.clear()
    again = fusion.run_members(cfg, members, report, device="cpu", mode="auto",
                               resume=kept["state"])  # auto on CPU: resumed fused all the same
    assert rows == after
    for a, b in zip(full, again, strict=True):
        assert torch.equal(a.images["output"], b.images["output"])
    monkeypatch.setattr(fusion, "gpu_memory", lambda dev: GpuMemory(
        total=10 * GiB, free=10 * GiB, fraction=1e-4, context=0))
    assert fusion.fusion_mode(cfg, members, torch.device("cpu")) == "serial"  # auto: serial
    with pytest.raises(DipddpmError, match="largest K that fits is 0"):
        fusion.fusion_mode(cfg, members, torch.device("cpu"), resuming=True)
