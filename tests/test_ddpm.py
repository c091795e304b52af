"""DDPM training: the loss falls, objectives and weights, exact resume, the method contract."""

import math

import pytest
import torch

from dipddpm.config import build
from dipddpm.data.datasets import load_dataset
from dipddpm.diffusion import DiffusionProcess
from dipddpm.diffusion.loss import loss_weight
from dipddpm.errors import ConfigError
from dipddpm.methods import METHODS
from dipddpm.methods.ddpm import train_ddpm
from dipddpm.methods.ddpm_config import PRESETS, DdpmConfig

TINY = {**PRESETS["tiny"], "sample_count": 0}


@pytest.fixture(scope="module")
def patches():
    return load_dataset("skimage-patches", size=16, count=64, eval_count=16)


def run(patches, overrides=None, keep_state_at=None, **kw):
    """Train; returns (trained, [(it, metrics, state dict or None)])."""
    reports = []
    cfg = build(DdpmConfig, {**TINY, **(overrides or {})})

    def report(it, m, state):
        reports.append((it, m, state() if it == keep_state_at else None))

    trained = train_ddpm(cfg, patches, report=report, **kw)
    return trained, reports


def test_loss_falls_within_a_few_dozen_steps(patches):
    trained, reports = run(patches, {"iters": 40, "lr": 3e-3})
    first, last = reports[0][1], reports[-1][1]
    assert last["train_loss"] < 0.7 * first["train_loss"]
    assert last["val_loss"] < first["val_loss"]
    assert set(first) == {"iter", "epoch", "step", "train_loss", "val_loss"}
    assert [it for it, _, _ in reports] == [10, 20, 30, 40]
    assert first["epoch"] == pytest.approx(10 / (64 // 16))
    assert trained.result.metrics["steps"] == 40


@pytest.mark.parametrize("objective", ["x0", "v"])
def test_other_objectives_train(patches, objective):
    _, reports = run(patches, {"objective": objective, "iters": 20, "min_snr_gamma": 5.0})
    assert [it for it, _, _ in reports] == [10, 20]  # not vacuous: both reports came
    assert all(math.isfinite(m["train_loss"]) and m["train_loss"] > 0 for _, m, _ in reports)


def test_loss_weights_follow_lucidrains():
    proc = DiffusionProcess.from_schedule("linear", 1000)
    t = torch.tensor([0, 100, 900])
    snr = proc.snr[t]
    assert torch.allclose(loss_weight(proc, t, "eps", None), torch.ones(3, dtype=snr.dtype))
    assert torch.allclose(loss_weight(proc, t, "x0", None), snr)
    assert torch.allclose(loss_weight(proc, t, "v", None), snr / (snr + 1))
    assert torch.allclose(loss_weight(proc, t, "x0", 5.0), snr.clamp(max=5.0))


def test_epochs_set_the_number_of_steps(patches):
    trained, _ = run(patches, {"epochs": 2})
    assert trained.step == 2 * (64 // 16)


def test_resume_gives_the_identical_next_step_loss(patches):
    """Every step reported; resuming from step 6 repeats steps 7.. exactly (EMA, clip on)."""
    over = {"iters": 9, "report_every": 1, "ema_decay": 0.9, "ema_every": 2, "grad_clip": 1.0}
    whole, reports = run(patches, over, keep_state_at=6, seed=3)
    again, resumed = run(patches, over, seed=3, resume=reports[5][2])
    assert [it for it, _, _ in resumed] == [7, 8, 9]
    for (_, a, _), (_, b, _) in zip(reports[6:], resumed, strict=True):
        assert a["train_loss"] == b["train_loss"] and a["val_loss"] == b["val_loss"]
    for p, q in zip(whole.ema.parameters(), again.ema.parameters(), strict=True):
        assert torch.equal(p, q)


def test_samples_and_fid_skipped_note(patches, monkeypatch, tmp_path):
    monkeypatch.setenv("DIPDDPM_INCEPTION_WEIGHTS", str(tmp_path / "absent.pth"))
    trained, _ = run(patches, {"iters": 10, "sample_count": 4, "fid_samples": 8})
    assert trained.result.images["samples"].shape[0] == 1
    assert "fid" not in trained.result.metrics
    assert "FID/KID skipped" in trained.result.extra["fid"]


def test_method_contract_and_presets():
    m = METHODS.get("ddpm")
    assert {"mnist_source", "lucidrains"} <= set(m.presets)
    src = build(m.config_cls, m.presets["mnist_source"])
    assert (src.lr, src.batch_size, src.epochs, src.ema_decay, src.net) == (
        1e-3, 128, 20, None, "mnist")
    luc = build(m.config_cls, m.presets["lucidrains"])
    assert (luc.lr, luc.adam_betas, luc.grad_clip, luc.ema_decay, luc.ema_every) == (
        1e-4, (0.9, 0.99), 1.0, 0.995, 10)
    problem = m.make_problem({"dataset": "lfw", "size": 16}, build(m.config_cls, TINY))
    result = m.run(build(m.config_cls, {**TINY, "iters": 10}), problem)
    assert result.metrics["steps"] == 10
    with pytest.raises(ConfigError, match="unknown config key"):
        build(m.config_cls, {"lr_rate": 1})
    with pytest.raises(ConfigError, match="net must be one of"):
        build(m.config_cls, {"net": "huge"})
