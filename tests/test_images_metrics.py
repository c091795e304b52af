"""Images, degradations and metrics (docs/methods.md, Conventions)."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from dipddpm.data.images import (
    crop_to_multiple,
    gaussian_noise,
    load_image,
    make_image_problem,
    resize_square,
    save_image,
)
from dipddpm.errors import DipddpmError
from dipddpm.metrics import BestTracker, psnr, ssim


def test_builtin_images_rgb_and_grey():
    rgb = load_image("skimage:astronaut")
    assert rgb.shape == (3, 512, 512) and rgb.dtype == torch.float32
    assert 0 <= rgb.min() and rgb.max() <= 1
    assert load_image("skimage:astronaut", grey=True).shape == (1, 512, 512)
    assert load_image("skimage:camera").shape == (3, 512, 512)  # grey photo as RGB


def test_missing_and_unreadable_images(tmp_path):
    with pytest.raises(DipddpmError, match="image not found: .*nope.png"):
        load_image(str(tmp_path / "nope.png"))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DipddpmError, match="cannot read image"):
        load_image(str(bad))
    with pytest.raises(DipddpmError, match="unknown built-in image"):
        load_image("skimage:nope")


def test_png_round_trip(tmp_path):
    img = resize_square(load_image("skimage:chelsea"), 40)
    save_image(img, tmp_path / "a.png")
    back = load_image(str(tmp_path / "a.png"))
    assert back.shape == img.shape and (back - img).abs().max() <= 1 / 255 + 1e-6


def test_crop_and_resize():
    img = torch.rand(3, 70, 50)
    assert crop_to_multiple(img, 32).shape == (3, 64, 32)
    assert resize_square(img, 20).shape == (3, 20, 20)
    with pytest.raises(DipddpmError, match="multiple 64"):
        crop_to_multiple(torch.rand(3, 40, 40), 64)


def test_noise_is_seeded_and_has_sigma():
    x = torch.full((3, 64, 64), 0.5)
    a, b, c = gaussian_noise(x, 25, 0), gaussian_noise(x, 25, 0), gaussian_noise(x, 25, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - x).std().item() == pytest.approx(25 / 255, rel=0.05)
    p = make_image_problem("skimage:camera", size=32, sigma=25, seed=3, multiple=32)
    assert p.observed.shape == p.clean.shape == (3, 32, 32)


def test_forward_observation_is_noisier_at_larger_t():
    lo = make_image_problem("skimage:astronaut", size=64, observation="forward", observation_t=10)
    hi = make_image_problem("skimage:astronaut", size=64, observation="forward", observation_t=200)
    assert psnr(lo.observed, lo.clean) > psnr(hi.observed, hi.clean)


def test_psnr_matches_skimage():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 32, 32, generator=g)
    y = (x + 0.1 * torch.randn(3, 32, 32, generator=g)).clamp(0, 1)
    ref = peak_signal_noise_ratio(x.numpy(), y.numpy(), data_range=1.0)
    assert psnr(y, x) == pytest.approx(ref, abs=1e-6)
    assert psnr(y, x, uint8=True) == pytest.approx(psnr(y, x), abs=0.3)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_skimage(channels):
    g = torch.Generator().manual_seed(channels)
    x = torch.rand(channels, 40, 36, generator=g)
    y = (x + 0.2 * torch.randn(channels, 40, 36, generator=g)).clamp(0, 1)
    ref = structural_similarity(x.permute(1, 2, 0).numpy(), y.permute(1, 2, 0).numpy(),
                                data_range=1.0, channel_axis=-1)
    assert ssim(y, x) == pytest.approx(float(ref), abs=1e-5)


def test_best_tracker():
    t = BestTracker(threshold=2.5)
    for it, v in enumerate([1.0, 3.0, 2.0, 4.0, np.nan], 1):
        t.update(it, v)
    assert (t.best, t.best_iter, t.first_reach_iter) == (4.0, 4, 2)
