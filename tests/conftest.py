"""Shared fixtures. Ray tests share ONE local Ray instance per test session, pinned to a
loopback address other than 127.0.0.1 (which Ray rewrites to the machine's address)."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _data_cache(tmp_path_factory):
    """The session's own data cache (fetched images, checkpoint recipes such as the smoke
    blocks' recipe:tiny-ddpm): tests never read or fill the user's ~/.cache/dipddpm/data."""
    saved = os.environ.get("DIPDDPM_DATA")
    os.environ["DIPDDPM_DATA"] = str(tmp_path_factory.mktemp("data-cache"))
    yield
    if saved is None:
        os.environ.pop("DIPDDPM_DATA", None)
    else:
        os.environ["DIPDDPM_DATA"] = saved


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray for the whole test session (2 CPUs, loopback only, no dashboard)."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if not ray.is_initialized():
        ray.init(num_cpus=2, _node_ip_address="127.0.0.2", include_dashboard=False,
                 log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def float64():
    """float64 as torch's default dtype for one test (fused = separate to 1e-9)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.fixture
def tiny_image_problem():
    """A 32x32 RGB crop of a bundled photo with sigma 25 noise."""
    from dipddpm.data.images import make_image_problem

    return make_image_problem("skimage:astronaut", size=32, sigma=25, seed=0, multiple=8)


@pytest.fixture(scope="session")
def tiny_ddpm(tmp_path_factory):
    """A DDPM checkpoint trained for a few steps on bundled patches (for dip_prior_ddpm):
    one grey channel, 16x16, T = 100."""
    from dipddpm.config import build
    from dipddpm.methods.ddpm import dataset_problem, train_ddpm
    from dipddpm.methods.ddpm_config import PRESETS, DdpmConfig

    cfg = build(DdpmConfig, {**PRESETS["tiny"], "iters": 4, "val_max": 0, "sample_count": 0})
    data = dataset_problem({"dataset": "skimage-patches", "size": 16, "count": 32}, cfg)
    path = tmp_path_factory.mktemp("ddpm") / "ddpm.pt"
    train_ddpm(cfg, data, device="cpu").save(path)
    return path


@pytest.fixture(scope="session")
def results_sweep(tmp_path_factory):
    """The `dipddpm results` fixture sweep (tests/results_data.py), made once per session."""
    from results_data import shared_sweep

    return shared_sweep(tmp_path_factory)


@pytest.fixture(scope="session")
def sweep_dir(results_sweep):
    """The fixture sweep's directory, read only (the `dipddpm results` tests' one fixture)."""
    return results_sweep


@pytest.fixture
def sweep(results_sweep, tmp_path):
    """A copy of the fixture sweep (12 trials, one part file each in trials/ and metrics/),
    for tests that change it."""
    import shutil

    d = tmp_path / "fixture"
    shutil.copytree(results_sweep, d)
    return d
