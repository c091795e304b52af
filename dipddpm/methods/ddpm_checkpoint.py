"""A DDPM's checkpoints: the sampling checkpoint of a trained DDPM (`Trained.save`,
`load_ddpm`) and the whole training state that `--resume` continues from (`StateSaver`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from torch import nn
from torch.optim.swa_utils import AveragedModel

from dipddpm.checkpoint import load_model, load_weights, save_checkpoint
from dipddpm.config import build, to_dict
from dipddpm.diffusion import DiffusionProcess
from dipddpm.methods.base import Report, Result
from dipddpm.methods.ddpm_config import DdpmConfig
from dipddpm.methods.device import pick_device
from dipddpm.nn.time_unet import TimeUNet, UNetSpec


@dataclass
class Trained:
    """A trained DDPM: the net (and EMA), the noise process and what built them."""

    net: nn.Module
    ema: AveragedModel | None
    process: DiffusionProcess
    cfg: DdpmConfig
    spec: UNetSpec
    data_spec: dict
    step: int
    result: Result | None = None

    @property
    def model(self) -> nn.Module:
        """The net used for sampling: the EMA's when there is one and sample_with_ema."""
        if self.ema is not None and self.cfg.sample_with_ema:
            return self.ema.module
        return self.net

    def checkpoint_config(self) -> dict:
        return {"ddpm": to_dict(self.cfg), "net": to_dict(self.spec), "dataset": self.data_spec,
                "step": self.step}

    def save(self, path: str | Path) -> Path:
        """The sampling checkpoint: net, EMA net (if any) and the resolved config."""
        tensors = {"net": self.net.state_dict()}
        if self.ema is not None:
            tensors["ema"] = self.ema.module.state_dict()
        return save_checkpoint(path, self.checkpoint_config(), tensors)


def _spec_from(config: dict) -> UNetSpec:
    net = {k: tuple(v) if isinstance(v, list) else v for k, v in config["net"].items()}
    return UNetSpec(**net)


def load_ddpm(path: str | Path, device=None, use_ema: bool | None = None) -> Trained:
    """A DDPM checkpoint, ready to sample (eval mode, on `device`). use_ema None: the
    checkpoint's own sample_with_ema; the EMA weights are used only when the file has them."""
    net, config, tensors = load_model(path, lambda c: TimeUNet(_spec_from(c)))
    cfg = build(DdpmConfig, config["ddpm"])
    spec = _spec_from(config)
    ema = None
    if "ema" in tensors and (use_ema if use_ema is not None else cfg.sample_with_ema):
        ema_net = TimeUNet(spec)
        load_weights(path, ema_net, tensors["ema"], "ema")
        ema = AveragedModel(ema_net)  # a holder: .module is (a copy of) the EMA net
    cfg = dataclasses.replace(cfg, sample_with_ema=ema is not None)
    dev = pick_device(device)
    if ema is not None:
        ema.to(dev).eval()
    return Trained(net=net.to(dev).eval(), ema=ema, process=cfg.process(), cfg=cfg, spec=spec,
                   data_spec=config.get("dataset", {}), step=config.get("step", 0))


class StateSaver:
    """A report callback that passes each report on and writes the whole training state
    (`kind` ddpm-train) to `path` at the first report at least `every` steps after the last
    write, and at the last step: what `--resume` continues from."""

    def __init__(self, report: Report, path: Path, run_config: dict, every: int,
                 total: int) -> None:
        self.report, self.path, self.run_config = report, path, run_config
        self.every, self.total, self.saved_at = every, total, 0

    def __call__(self, it: int, metrics, state) -> None:
        self.report(it, metrics, state)
        if it - self.saved_at >= self.every or it == self.total:
            self.saved_at = it
            save_checkpoint(self.path, self.run_config, {"state": state()}, kind="ddpm-train")
