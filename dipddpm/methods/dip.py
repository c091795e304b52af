"""Method 1, Deep Image Prior (Ulyanov et al., CVPR 2018): fit a randomly initialised CNN to
one observation.

The loop itself lives in `fitting.py` and is shared with guided DIP; plain DIP is the one-stage
case whose target is the observation y.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dipddpm.config import check, check_name
from dipddpm.methods.base import Report, Result, no_report
from dipddpm.methods.fitting import Stage, StagePlan, fit


@dataclass(frozen=True)
class DipConfig:
    iters: int = 3000  # fitting iterations N (original 3000; staged-DIP baseline 2000; paper 1800)
    lr: float = 0.01  # Adam learning rate, on the net's weights only
    net: str = "skip"  # net name: skip, skip_snail, skip_small, unet, segnet
    width: int | None = None  # channels per scale; null = the net preset's own (skip: 128)
    depth: int | None = None  # scales; null = the preset's own (skip: 5); H, W % 2^depth == 0
    net_sigmoid: bool | None = None  # sigmoid output; null = the net's own (segnet: none)
    input_depth: int = 32  # channels of the fixed input z
    input_noise: Literal["uniform", "normal"] = "uniform"  # z ~ U(0, input_scale) or N(0, s^2)
    input_scale: float = 0.1  # z's range (uniform) or std (normal); original U(0, 0.1)
    reg_noise_std: float = 1.0 / 30  # std of the fresh N(0,I) added to z each iteration; 0 = off
    smoothing: float = 0.99  # o_sm <- s o_sm + (1-s) o_j; 0 = no smoothing (o_sm = o_j)
    backtracking: bool = True  # restore the last saved weights when psnr_noisy drops
    backtrack_mode: Literal["original", "clean"] = "original"  # original still applies the step
    backtrack_drop_db: float = 5.0  # a fall of psnr_noisy larger than this (dB) backtracks
    backtrack_every: int = 100  # no check and no save at iterations j % this == 0 (source's)
    eval_metrics: bool = False  # metrics from an extra eval-mode forward of z (guided-DIP source)
    oracle: bool = False  # true: the returned image is the best-psnr_gt one (uses ground truth)
    report_every: int = 10  # report metrics every this many iterations (and at the last)
    psnr_threshold: float | None = None  # record the first iteration with psnr_gt >= this (dB)
    psnr_uint8: bool = False  # PSNR on uint8-truncated images, as one source does (~0.1 dB off)
    # GT-free early stopping (early_stop.py): emv = the constant-memory exponential variant of
    # ES-WMV (DEFAULT: a checkpoint holds one mean image), wmv = ES-WMV itself (the variance of
    # the last es_window outputs: the window is in every checkpoint), none = off; the pick is
    # final after es_patience iterations without a new variance minimum
    es_rule: Literal["wmv", "emv", "none"] = "emv"
    es_window: int = 100
    es_patience: int = 1000
    # the output the fit reports (psnr_output; methods/output_rules.py): last, smoothed, es (the
    # rule's pick of the raw outputs), es_sm (of the smoothed ones) or ensemble (the mean over
    # a study's replicates of one observation, or of fit --replicates K)
    output: str = "last"

    def __post_init__(self) -> None:
        from dipddpm.methods.output_rules import OUTPUTS
        from dipddpm.nn import NETS

        check(self.iters >= 1, f"iters must be >= 1, got {self.iters}")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}; e.g. lr=0.01")
        check_name("net", self.net, NETS)
        check_name("output", self.output, OUTPUTS)
        check(self.input_depth >= 1, f"input_depth must be >= 1, got {self.input_depth}")
        check(self.input_scale >= 0, f"input_scale must be >= 0, got {self.input_scale}")
        check(self.reg_noise_std >= 0, f"reg_noise_std must be >= 0, got {self.reg_noise_std}")
        check(0 <= self.smoothing < 1, f"smoothing must be in [0, 1), got {self.smoothing}")
        check(self.backtrack_drop_db > 0,
              f"backtrack_drop_db must be > 0 dB, got {self.backtrack_drop_db}")
        check(self.backtrack_every >= 1,
              f"backtrack_every must be >= 1, got {self.backtrack_every}")
        check(self.report_every >= 1, f"report_every must be >= 1, got {self.report_every}")
        check(self.es_window >= 2, f"es_window must be >= 2 outputs, got {self.es_window}")
        check(self.es_patience >= 1, f"es_patience must be >= 1, got {self.es_patience}")


PRESETS = {
    # the original DIP denoising notebook: skip net, 3000 iterations, backtracking
    "dip_original": {},
    # the DIP paper's dataset number (CSet9, sigma 25): 1800 iterations
    "dip_paper": {"iters": 1800},
    # a CPU-sized variant for tests, CI and quick sweeps: not comparable to the papers
    "tiny": {"iters": 200, "width": 16, "depth": 3, "input_depth": 8, "report_every": 10},
}


def dip_plan(cfg: DipConfig, problem) -> StagePlan:
    """Plain DIP: one stage of cfg.iters iterations whose target is the observation."""
    return StagePlan([Stage(t=0, iters=cfg.iters, target=lambda g: problem.observed)])


def run_dip(cfg: DipConfig, problem, report: Report = no_report, seed: int = 0,
            resume: dict | None = None, device=None) -> Result:
    """Fit DIP to problem.observed for cfg.iters iterations; see `fitting.fit`."""
    return fit(cfg, problem, dip_plan(cfg, problem), report=report, seed=seed, resume=resume,
               device=device)
