"""The CUDA paths of the core: `pytest -m gpu` on a GPU machine (the GPU suite's first part).

With DIPDDPM_TEST_DEVICE=cpu the same bodies run on CPU (the suite's dry run does this, so no
line here first runs on a GPU); without CUDA and without that variable they skip. What only
CUDA can run (graph capture, capturable Adam) skips on CPU with its reason.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from dipddpm.config import build
from dipddpm.data.datasets import load_dataset
from dipddpm.methods import METHODS, dip
from dipddpm.methods.ddpm import train_ddpm
from dipddpm.methods.ddpm_config import PRESETS, DdpmConfig
from dipddpm.methods.device import pick_device
from dipddpm.methods.fitting import Member, fit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import dip_modes  # noqa: E402

DEVICE = os.environ.get("DIPDDPM_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(),
    reason="needs a CUDA device (or DIPDDPM_TEST_DEVICE=cpu to run these bodies on CPU)")]
needs_cuda = pytest.mark.skipif(DEVICE != "cuda", reason="CUDA only (graph capture, "
                                "capturable Adam); listed in benchmarks/gpu_suite.py")

TINY = {"width": 16, "depth": 3, "input_depth": 8, "report_every": 10}
# The tolerance of a resumed fit at its first report after the resume (10 iterations on).
# CPU kernels are deterministic: the resumed fit is the uninterrupted one, bit for bit. On CUDA
# the backward passes of ReflectionPad2d and bilinear upsampling add with atomics, in an order
# that changes from run to run, so two runs from one state differ by float32 rounding from
# the first backward on. Compared 10 iterations after the resume, that rounding (~1e-7
# relative per gradient, carried through 10 Adam steps) moves psnr_gt by far less than 0.01
# dB; 100 iterations on (the old comparison) a DIP fit's chaotic dynamics can amplify it past
# any small tolerance, so a correct resume could fail by chance.
RESUME_TOL_DB = {"cpu": 0.0, "cuda": 0.01}


@pytest.fixture
def dev():
    d = torch.device(DEVICE)
    return pick_device("auto") if d.type == "cuda" and d.index is None else pick_device(d)


@pytest.fixture
def cudnn_flags():
    before = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before


@pytest.mark.parametrize("method", ["dip", "guided_dip"])
def test_fit_improves_and_resumes_to_the_first_report_after(tiny_image_problem, method, dev,
                                                            cudnn_flags):
    m = METHODS.get(method)
    staged = {"stages": 3, "t_max": 200} if method == "guided_dip" else {}
    over = {**TINY, "iters": 200, "lr": 0.02, **staged}
    cfg = build(m.config_cls, over)
    states, whole_at = {}, {}

    def report(it, metrics, state):
        whole_at[it] = dict(metrics)
        if it == 100:
            states["s"] = state()

    whole = m.run(cfg, tiny_image_problem, report=report, seed=3, device=dev)
    assert whole.metrics["psnr_gt_best"] > whole.metrics["psnr_noisy_input"]
    first = {}

    def first_report(it, metrics, state):
        first.setdefault("it", it)
        first.setdefault("m", dict(metrics))

    m.run(cfg, tiny_image_problem, report=first_report, seed=3, device=dev, resume=states["s"])
    assert first["it"] == 110
    tol = RESUME_TOL_DB[dev.type]
    for key in ("psnr_gt", "psnr_noisy"):
        assert first["m"][key] == pytest.approx(whole_at[110][key], abs=tol), key


def test_device_auto_is_the_current_device(dev):
    got = pick_device("auto")
    if dev.type == "cuda":
        assert got.type == "cuda" and got.index == torch.cuda.current_device()
    else:
        assert got.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_fused_members_equal_separate_fits(tiny_image_problem, dev, cudnn_flags):
    """float32: grouped and plain convolutions round differently, so 10 iterations agree to
    about 1e-2 dB (tests/test_fusion.py compares tightly in float64)."""
    from dipddpm.methods.fusion import resolve_mode, run_members

    cfg = build(dip.DipConfig, {**TINY, "width": 8, "iters": 10, "report_every": 5})
    seeds = [3, 4, 5]
    members = [Member(tiny_image_problem, dip.dip_plan(cfg, tiny_image_problem), s)
               for s in seeds]
    if dev.type == "cuda":
        assert resolve_mode(cfg, members, dev) == "fused"  # the policy on CUDA
    res = run_members(cfg, members, device=dev, mode="fused")
    for s, r in zip(seeds, res, strict=True):
        own = fit(cfg, tiny_image_problem, dip.dip_plan(cfg, tiny_image_problem), seed=s,
                  device=dev)
        assert r.metrics["psnr_gt_final"] == pytest.approx(own.metrics["psnr_gt_final"],
                                                           abs=1e-2)


def test_ddpm_amp_training_sampling_and_resume(dev):
    """bf16 autocast (on CPU too with amp_cpu): the loss falls, samples are finite, and a
    resumed run's first report matches the uninterrupted one's closely."""
    patches = load_dataset("skimage-patches", size=16, count=64, eval_count=16)
    cfg = build(DdpmConfig, {**PRESETS["tiny"], "iters": 40, "lr": 3e-3, "report_every": 10,
                             "sample_count": 4, "ema_decay": 0.9, "ema_every": 1,
                             "amp": True, "amp_cpu": True})
    reports = []

    def report(it, m, state):
        reports.append((it, m, state() if it == 20 else None))

    trained = train_ddpm(cfg, patches, report=report, device=dev, seed=5)
    assert next(trained.net.parameters()).device.type == dev.type
    assert reports[-1][1]["train_loss"] < reports[0][1]["train_loss"]
    assert torch.isfinite(trained.result.images["samples"]).all()
    resumed = []
    train_ddpm(cfg, patches, report=lambda it, m, s: resumed.append((it, m)), device=dev,
               seed=5, resume=reports[1][2])
    assert resumed[0][0] == 30
    assert resumed[0][1]["train_loss"] == pytest.approx(reports[2][1]["train_loss"], rel=1e-2)


def test_autocast_runs_in_bf16_on_the_tensor_s_device(dev):
    from dipddpm.diffusion.loss import diffusion_loss
    from dipddpm.methods.ddpm_config import autocast_on

    cfg = build(DdpmConfig, {**PRESETS["tiny"], "amp": True, "amp_cpu": True})
    assert autocast_on(cfg, dev)
    assert not autocast_on(build(DdpmConfig, {"amp": True}), torch.device("cpu"))
    seen = []
    net = torch.nn.Conv2d(1, 1, 3, padding=1).to(dev)
    net.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    model = lambda x, t: net(x)  # noqa: E731
    x0 = torch.rand(2, 1, 8, 8, device=dev)
    diffusion_loss(model, cfg.process(), x0, torch.tensor([1, 2], device=dev),
                   torch.randn_like(x0), "eps", amp=True)
    assert seen == [torch.bfloat16]


def _step_parts(dev, channels_last: bool, autocast: bool, capturable: bool):
    from dipddpm.data.images import make_image_problem

    cfg = build(dip.DipConfig, TINY)
    problem = make_image_problem("skimage:astronaut", size=32, sigma=25, multiple=8)
    net, y, z = dip_modes.setup(cfg, problem, dev, channels_last=channels_last)
    opt = (torch.optim.Adam(net.parameters(), lr=cfg.lr, capturable=True) if capturable
           else None)
    return dip_modes.make_step(net, opt, y, z, cfg.reg_noise_std, autocast), net


@pytest.mark.parametrize("channels_last,autocast", [(False, False), (True, True)])
def test_the_captured_step_has_no_host_sync(dev, channels_last, autocast):
    """What CUDA graphs capture (dip_modes.make_step) reads nothing back to the host and has
    no data-dependent shape. On CPU without the optimizer step: Adam's capturable form needs
    CUDA, and the CPU form reads its step count on the host (on CUDA it is checked too)."""
    step, _ = _step_parts(dev, channels_last, autocast, capturable=dev.type == "cuda")
    step()  # Adam's state exists before the check, as after the warm-up before a capture
    with dip_modes.NoHostSync():
        step()


def test_the_host_sync_guard_catches_item_and_data_dependent_shapes(dev):
    x = torch.rand(8, device=dev)
    with pytest.raises(RuntimeError, match="host sync"), dip_modes.NoHostSync():
        x.sum().item()
    with pytest.raises(RuntimeError, match="host sync"), dip_modes.NoHostSync():
        torch.nonzero(x > 0.5)


def test_channels_last_layout_is_measured_mid_net(dev):
    from dipddpm.data.images import make_image_problem

    cfg = build(dip.DipConfig, TINY)
    problem = make_image_problem("skimage:astronaut", size=32, sigma=25, multiple=8)
    got = dip_modes.layout(cfg, problem, dev)
    assert 0 < got["channels_last_share"] <= 1 and isinstance(got["channels_last_mid"], bool)
    assert got["channels_last_lost_at"] is None or isinstance(got["channels_last_lost_at"], str)


@needs_cuda
def test_cuda_graph_replays_the_step(dev):
    step, net = _step_parts(dev, False, False, capturable=True)
    before = [p.detach().clone() for p in net.parameters()]
    replay = dip_modes.capture(step, dev)
    replay()
    torch.cuda.synchronize(dev)
    assert any(not torch.equal(a, p) for a, p in zip(before, net.parameters(), strict=True))
