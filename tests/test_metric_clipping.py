"""PSNR and SSIM (docs/methods.md, Conventions) on predictions outside [0, 1]: the prediction
is clipped first, the target is not touched. Expected values come from numpy and scikit-image
directly."""

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from dipddpm.metrics import BestTracker, psnr, ssim, ssim_each


def pair(channels=3, size=24, spread=0.6, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(channels, size, size, generator=g, dtype=torch.float64)
    pred = target + spread * torch.randn(target.shape, generator=g, dtype=torch.float64)
    assert pred.min() < -0.3 and pred.max() > 1.3  # well outside [0, 1]
    return pred, target


def numpy_psnr(pred: np.ndarray, target: np.ndarray) -> float:
    return 10 * np.log10(1.0 / np.mean((np.clip(pred, 0, 1) - target) ** 2))


@pytest.mark.parametrize("batch", [False, True])
def test_psnr_clips_the_prediction(batch):
    pred, target = pair()
    if batch:
        pred, target = torch.stack([pred, pred.flip(-1)]), torch.stack([target, target.flip(-1)])
    want = numpy_psnr(pred.numpy(), target.numpy())
    assert psnr(pred, target) == pytest.approx(want, abs=1e-9)
    unclipped = 10 * np.log10(1.0 / np.mean((pred.numpy() - target.numpy()) ** 2))
    assert want - unclipped > 1.0  # the clip matters here


def test_psnr_uint8_truncates_both_images():
    pred, target = pair(spread=0.2)
    q = lambda v: np.floor(np.clip(v, 0, 1) * 255) / 255  # noqa: E731
    want = 10 * np.log10(1.0 / np.mean((q(pred.numpy()) - q(target.numpy())) ** 2))
    assert psnr(pred.float(), target.float(), uint8=True) == pytest.approx(want, abs=1e-3)
    assert psnr(target, target) == float("inf")


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_clips_the_prediction(channels):
    pred, target = pair(channels)
    want = structural_similarity(target.permute(1, 2, 0).numpy(),
                                 np.clip(pred.permute(1, 2, 0).numpy(), 0, 1), data_range=1.0,
                                 channel_axis=-1)
    assert ssim(pred, target) == pytest.approx(want, abs=1e-9)
    unclipped = structural_similarity(target.permute(1, 2, 0).numpy(),
                                      pred.permute(1, 2, 0).numpy(), data_range=1.0,
                                      channel_axis=-1)
    assert abs(want - unclipped) > 0.01


def test_ssim_of_a_structured_image_against_skimage():
    """A smooth image with a small error: every term of the SSIM formula matters."""
    y, x = np.mgrid[0:32, 0:32] / 31.0
    target = torch.tensor(np.stack([0.5 + 0.4 * np.sin(6 * x) * np.cos(4 * y), x * y]))
    pred = (target + 0.05 * torch.randn(target.shape, generator=torch.Generator().manual_seed(1),
                                        dtype=torch.float64)) * 1.1 - 0.02
    want = structural_similarity(target.permute(1, 2, 0).numpy(),
                                 np.clip(pred.permute(1, 2, 0).numpy(), 0, 1), data_range=1.0,
                                 channel_axis=-1)
    assert ssim(pred, target) == pytest.approx(want, abs=1e-9)
    assert 0.3 < want < 0.99
    assert ssim(target, target) == pytest.approx(1.0, abs=1e-12)


def test_ssim_each_of_a_colour_batch_clips_and_matches_skimage_per_image():
    """ssim_each: (B, C, H, W) -> (B,), each image's SSIM over its own channels, the
    prediction clipped to [0, 1] first (here it leaves both ends)."""
    pairs = [pair(3, seed=s) for s in (0, 1)]
    pred, target = torch.stack([p for p, _ in pairs]), torch.stack([t for _, t in pairs])
    got = ssim_each(pred, target)
    assert got.shape == (2,) and got.dtype == torch.float64
    for i, (p, t) in enumerate(pairs):
        want = structural_similarity(t.permute(1, 2, 0).numpy(),
                                     np.clip(p.permute(1, 2, 0).numpy(), 0, 1), data_range=1.0,
                                     channel_axis=-1)
        assert got[i].item() == pytest.approx(want, abs=1e-9)
        assert got[i].item() == pytest.approx(ssim(p, t), abs=1e-12)


def test_best_tracker_state_round_trips_every_field():
    t = BestTracker(threshold=20.0)
    for it, v in ((10, 18.0), (20, 21.0), (30, 20.5), (40, 22.0)):
        t.update(it, v)
    assert (t.best, t.best_iter, t.first_reach_iter) == (22.0, 40, 20)
    back = BestTracker(threshold=20.0)
    back.load_state_dict(t.state_dict())
    assert (back.best, back.best_iter, back.first_reach_iter) == (22.0, 40, 20)


def test_best_tracker_keeps_the_first_best_and_reaches_at_equality():
    t = BestTracker(threshold=20.0)
    for it, v in ((1, 19.0), (2, 20.0), (3, 20.0), (4, 19.5)):
        t.update(it, v)
    assert (t.best, t.best_iter) == (20.0, 2)  # a tie later does not move the best
    assert t.first_reach_iter == 2  # reaching is >= the threshold
