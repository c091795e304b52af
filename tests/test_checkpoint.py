"""Checkpoints: round trip, EMA, refusing corrupt, foreign and mismatched files."""

import json

import pytest
import torch

from dipddpm.checkpoint import check_expected, read_checkpoint, save_checkpoint
from dipddpm.config import build
from dipddpm.data.datasets import load_dataset
from dipddpm.errors import DipddpmError
from dipddpm.methods.ddpm import train_ddpm
from dipddpm.methods.ddpm_checkpoint import load_ddpm
from dipddpm.methods.ddpm_config import PRESETS, DdpmConfig


@pytest.fixture(scope="module")
def trained():
    data = load_dataset("skimage-patches", size=16, count=32, eval_count=8)
    cfg = build(DdpmConfig, {**PRESETS["tiny"], "iters": 20, "ema_decay": 0.9, "ema_every": 1,
                             "sample_count": 0})
    return train_ddpm(cfg, data, seed=1)


def test_round_trip_gives_the_same_net_and_ema(trained, tmp_path):
    path = trained.save(tmp_path / "ddpm.pt")
    assert json.loads(path.with_suffix(".json").read_text())["net"]["widths"] == [8, 16]
    loaded = load_ddpm(path, device="cpu")
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([3, 70])
    with torch.no_grad():
        assert torch.equal(loaded.net(x, t), trained.net.eval()(x, t))
        assert torch.equal(loaded.model(x, t), trained.ema.module.eval()(x, t))
    assert loaded.cfg.objective == trained.cfg.objective and loaded.process.T == 100
    raw = load_ddpm(path, device="cpu", use_ema=False)
    assert raw.ema is None and raw.model is raw.net


def test_missing_and_corrupt_files_are_one_line_errors(trained, tmp_path):
    with pytest.raises(DipddpmError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "nope.pt")
    path = trained.save(tmp_path / "ddpm.pt")
    blob = path.read_bytes()
    for name, data in (("truncated.pt", blob[: len(blob) // 2]), ("garbage.pt", b"\x00" * 64)):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DipddpmError, match="corrupt or not a torch file") as e:
            load_ddpm(tmp_path / name)
        assert "\n" not in str(e.value)


def test_foreign_torch_file_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(DipddpmError, match="not a dipddpm checkpoint"):
        load_ddpm(tmp_path / "other.pt")


def test_config_that_does_not_match_the_weights_is_refused(trained, tmp_path):
    config = trained.checkpoint_config()
    config["net"]["widths"] = [8, 24]  # the stored weights are for (8, 16)
    save_checkpoint(tmp_path / "bad.pt", config, {"net": trained.net.state_dict()})
    with pytest.raises(DipddpmError, match="weights do not match the net its config"):
        load_ddpm(tmp_path / "bad.pt")
    config["net"]["widths"] = [8, 10]  # not divisible by the 4 groups: an invalid config
    save_checkpoint(tmp_path / "bad2.pt", config, {"net": trained.net.state_dict()})
    with pytest.raises(DipddpmError, match="invalid config"):
        load_ddpm(tmp_path / "bad2.pt")


def test_expected_config_mismatch_is_refused(tmp_path):
    save_checkpoint(tmp_path / "s.pt", {"ddpm": {"lr": 0.001}, "seed": 0}, {"x": torch.ones(1)},
                    kind="ddpm-train")
    config, tensors = read_checkpoint(tmp_path / "s.pt", kind="ddpm-train")
    check_expected("s.pt", config, {"ddpm": {"lr": 0.001}})
    with pytest.raises(DipddpmError, match="lr is 0.001 in the file, expected 0.002"):
        check_expected("s.pt", config, {"ddpm": {"lr": 0.002}})
    with pytest.raises(DipddpmError, match="holds a 'ddpm-train' state"):
        read_checkpoint(tmp_path / "s.pt")
