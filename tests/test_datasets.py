"""Datasets: offline sets, deterministic splits, image folder, clear errors."""

import numpy as np
import pytest
import skimage.io
import torch

from dipddpm.data.datasets import DATASETS, load_dataset
from dipddpm.errors import ConfigError, DipddpmError


def test_registry_has_the_five_datasets():
    assert set(DATASETS.names()) == {"mnist", "cifar10", "folder", "skimage-patches", "lfw"}


@pytest.mark.parametrize("grey,channels", [(True, 1), (False, 3)])
def test_skimage_patches_shapes_and_any_size(grey, channels):
    d = load_dataset("skimage-patches", size=20, grey=grey, count=24, eval_count=6)
    assert d.train.shape == (24, channels, 20, 20) and d.train.dtype == torch.uint8
    assert d.val.shape == d.test.shape == (6, channels, 20, 20)
    assert (d.channels, d.image_size) == (channels, 20)
    batch = d.as_float(d.train[:2])
    assert batch.dtype == torch.float32 and 0 <= batch.min() and batch.max() <= 1


def test_skimage_patches_are_seeded():
    a = load_dataset("skimage-patches", size=16, count=16, eval_count=4, seed=1)
    b = load_dataset("skimage-patches", size=16, count=16, eval_count=4, seed=1)
    c = load_dataset("skimage-patches", size=16, count=16, eval_count=4, seed=2)
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    assert not torch.equal(a.train, c.train)


def test_skimage_patches_skip_flat_crops():
    d = load_dataset("skimage-patches", size=16, count=32, eval_count=4, min_std=0.05)
    assert (d.as_float(d.train).flatten(1).std(1) >= 0.05 - 1e-3).all()


def test_lfw_splits_are_deterministic_and_disjoint():
    a, b = load_dataset("lfw"), load_dataset("lfw")
    assert torch.equal(a.test, b.test)
    assert a.train.shape[0] + a.val.shape[0] + a.test.shape[0] == 200
    assert a.train.shape[1:] == (1, 25, 25)
    rows = {bytes(x.numpy()) for x in torch.cat([a.train, a.val, a.test])}
    assert len(rows) == 200  # no image in two splits
    assert load_dataset("lfw", size=32, grey=False).train.shape[1:] == (3, 32, 32)


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):
        skimage.io.imsave(tmp_path / f"im{i}.png", rng.integers(0, 255, (40, 50, 3),
                                                                dtype=np.uint8))
    d = load_dataset("folder", path=str(tmp_path), size=16)
    assert d.train.shape[1:] == (3, 16, 16)
    assert d.train.shape[0] + d.val.shape[0] + d.test.shape[0] == 6
    with pytest.raises(DipddpmError, match="give size=N"):
        load_dataset("folder", path=str(tmp_path))
    with pytest.raises(DipddpmError, match="needs path=DIR"):
        load_dataset("folder", path=str(tmp_path / "missing"))


def test_torchvision_sets_absent_say_where_to_put_them(tmp_path):
    with pytest.raises(DipddpmError, match=f"{tmp_path}/MNIST/raw.*download=true"):
        load_dataset("mnist", data_root=str(tmp_path))
    with pytest.raises(DipddpmError, match="cifar-10-batches-py"):
        load_dataset("cifar10", data_root=str(tmp_path))
    assert not any(tmp_path.iterdir())  # nothing fetched without download=true


def test_unknown_dataset_and_option():
    with pytest.raises(ConfigError, match="unknown dataset 'mnsit'.*did you mean 'mnist'"):
        load_dataset("mnsit")
    with pytest.raises(ConfigError, match="unknown option 'cout'.*count"):
        load_dataset("skimage-patches", cout=3)
