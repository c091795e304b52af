"""The reproduction protocols: which fits to run, and the numbers the sources published.

A protocol is a list of rows; a row is one fit (method, preset, config overrides, image,
problem keys) plus the source's numbers for it, transcribed from the papers and reports that
docs/methods.md lists (its Reference numbers). Source numbers
live here and only here; our numbers only ever come from a run (`reproduce.py`).

Full-size protocols match the sources' setups (image size, net, iterations) and need a GPU.
Their `_mini` versions shrink the image, the net and the iterations so they finish on 2 CPU
cores in minutes; they are NOT comparable to the papers (`comparable=False`) and carry no
source numbers, only our own noisy-input baseline.

This module is pure data: it imports nothing heavy, so the ledger can list open rows anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Row:
    name: str  # unique within the protocol, e.g. "dip", "log10_linspace"
    method: str  # dip | guided_dip
    preset: str  # a preset of the method (dip.PRESETS / guided_dip.PRESETS)
    image: str  # path relative to the data dir, e.g. "cset9/F16.png"
    overrides: dict = field(default_factory=dict)  # config keys on top of the preset
    problem: dict = field(default_factory=dict)  # problem keys (size, observation, ...)
    source: dict = field(default_factory=dict)  # metric -> published number (docs/methods.md)
    label: str = ""  # what the row is, for the ledger

    @property
    def net_key(self) -> str:
        """The backbone the row uses, for per-net mini settings."""
        return self.overrides.get("net", "skip")


@dataclass(frozen=True)
class Aggregate:
    """A mean over all rows of a protocol, e.g. the DIP paper's 9-image average."""

    name: str  # e.g. "mean_psnr_gt_final"
    metric: str  # the row metric averaged
    source: float | None  # published number, or None
    label: str = ""


@dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    source_ref: str  # where the source numbers come from
    rows: tuple[Row, ...]
    comparable: bool = True  # False for the _mini versions
    aggregates: tuple[Aggregate, ...] = ()
    headline: tuple[str, str] = ("", "")  # (row or aggregate name, metric) for the summary
    reach_baseline: str | None = None  # row whose max psnr_gt the others try to reach fast
    shown: tuple[str, ...] = ("psnr_gt_best", "psnr_best_iter")  # metrics in a ledger cell
    note: str = ""


# --- staged_dip_f16: plain DIP vs the staged-DIP source's schedulers on F16, sigma 25 -------
F16 = "cset9/F16.png"
_STAGED_PROBLEM = {"sigma": 25, "seed": 0}  # full 512x512, no resize
STAGED_DIP_F16 = Protocol(
    name="staged_dip_f16",
    title="Staged DIP on F16 (512², σ 25, 2000 iterations): max psnr_gt and its iteration",
    source_ref="staged-DIP report (docs/methods.md, Reference numbers): 'steps' of 10 "
               "iterations converted to iterations",
    rows=(
        Row("dip", "dip", "dip_original", F16, {"iters": 2000}, _STAGED_PROBLEM,
            {"psnr_gt_best": 30.32, "psnr_best_iter": 1960, "psnr_noisy_input": 20.35},
            "plain DIP baseline (original notebook settings, 2000 iterations)"),
        Row("uniform", "guided_dip", "staged_dip", F16, {"scheduler": "uniform"},
            _STAGED_PROBLEM, {"psnr_gt_best": 30.34, "psnr_best_iter": 1950},
            "staged DIP, K 9 (t 888..111, 0), uniform scheduler"),
        Row("sharp_linear", "guided_dip", "staged_dip", F16, {"scheduler": "sharp_linear"},
            _STAGED_PROBLEM, {"psnr_gt_best": 30.26, "psnr_best_iter": 870},
            "staged DIP, K 9, sharp_linear (10 iterations per early stage)"),
        Row("log10_linspace", "guided_dip", "staged_dip", F16, {"scheduler": "log10_linspace"},
            _STAGED_PROBLEM, {"psnr_gt_best": 30.65, "psnr_best_iter": 790},
            "staged DIP, K 9, log10_linspace"),
        Row("sharp_linear_k50", "guided_dip", "staged_dip", F16,
            {"scheduler": "sharp_linear", "stages": 50}, _STAGED_PROBLEM,
            {"psnr_gt_best": 30.73, "psnr_best_iter": 1520},
            "staged DIP, K 50, sharp_linear (the source's best F16 number)"),
    ),
    headline=("sharp_linear_k50", "psnr_gt_best"),
    reach_baseline="dip",
    note="Stage timesteps reconstructed from the source's plots (docs/methods.md, Stage "
         "timesteps and backbones).",
)

# --- guided_dip_butterfly: the guided-DIP source's table, backbone x beta schedule ----------
BUTTERFLY = "butterfly/Image_1.jpg"
# The source's observation is the clean image forward-noised to t = 40 with the shifted noise
# 0.5 eps + 0.5. Its table says the observation alone is ~25.6 dB; in [0,1] space that is what
# the COSINE schedule's t = 40 gives (25.67 dB here), while linear t = 40 gives 20.3 dB. So the
# observation is drawn with the cosine schedule for every row (one observation, as in the table).
_GUIDED_PROBLEM = {"size": 128, "observation": "forward", "observation_t": 40,
                   "observation_schedule": "cosine", "sigma": 25, "seed": 0}
_PLAIN = {"stages": 1, "t_max": 0, "t_min": 0}  # the guided preset's DIP with one t = 0 stage
GUIDED_DIP_BUTTERFLY = Protocol(
    name="guided_dip_butterfly",
    title="Guided DIP on the butterfly (128², forward-noised observation at t 40, 2000 "
          "iterations): final and best psnr_gt",
    source_ref="guided-DIP report's table (docs/methods.md, Reference numbers); PSNR in "
               "eval mode; stage targets from "
               "the clean image (oracle, as the source does)",
    rows=(
        Row("dip_unet", "guided_dip", "guided_dip", BUTTERFLY, {**_PLAIN, "net": "unet"},
            _GUIDED_PROBLEM, {"psnr_gt_final": 21.29, "psnr_gt_best": 21.48,
                              "psnr_best_iter": 1491, "psnr_noisy_input": 25.6},
            "plain DIP, UNet backbone, guided preset's optimiser settings"),
        Row("dip_segnet", "guided_dip", "guided_dip", BUTTERFLY, {**_PLAIN, "net": "segnet"},
            _GUIDED_PROBLEM, {"psnr_gt_final": 26.06, "psnr_gt_best": 26.94,
                              "psnr_best_iter": 378},
            "plain DIP, SegNet backbone"),
        Row("unet_linear", "guided_dip", "guided_dip", BUTTERFLY,
            {"net": "unet", "beta_schedule": "linear"}, _GUIDED_PROBLEM,
            {"psnr_gt_final": 19.65, "psnr_gt_best": 19.65, "psnr_best_iter": 1999},
            "guided DIP, UNet, linear betas (exp_weighted c 250)"),
        Row("unet_cosine", "guided_dip", "guided_dip", BUTTERFLY,
            {"net": "unet", "beta_schedule": "cosine"}, _GUIDED_PROBLEM,
            {"psnr_gt_final": 21.35, "psnr_gt_best": 23.91, "psnr_best_iter": 1857},
            "guided DIP, UNet, cosine betas (exp_weighted c 400)"),
        Row("segnet_linear", "guided_dip", "guided_dip", BUTTERFLY,
            {"net": "segnet", "beta_schedule": "linear"}, _GUIDED_PROBLEM,
            {"psnr_gt_final": 21.26, "psnr_gt_best": 22.62, "psnr_best_iter": 1761},
            "guided DIP, SegNet, linear betas"),
        Row("segnet_cosine", "guided_dip", "guided_dip", BUTTERFLY,
            {"net": "segnet", "beta_schedule": "cosine"}, _GUIDED_PROBLEM,
            {"psnr_gt_final": 26.95, "psnr_gt_best": 26.96, "psnr_best_iter": 1981},
            "guided DIP, SegNet, cosine betas"),
    ),
    headline=("segnet_cosine", "psnr_gt_final"),
    shown=("psnr_gt_final", "psnr_gt_best", "psnr_best_iter"),
    note="Observation drawn with the cosine schedule at t 40 (matches the source's ~25.6 dB).",
)

# --- dip_cset9: the DIP paper's dataset number ----------------------------------------------
CSET9 = ("Baboon", "F16", "House", "Lena", "Peppers", "kodim01", "kodim02", "kodim03", "kodim12")
DIP_CSET9 = Protocol(
    name="dip_cset9",
    title="DIP on the 9 colour images (512², σ 25, 1800 iterations, one run): last and "
          "smoothed output",
    source_ref="Deep Image Prior paper (Ulyanov et al., CVPR 2018): 9-image averages only",
    rows=tuple(Row(n, "dip", "dip_paper", f"cset9/{n}.png", {}, {"sigma": 25, "seed": 0},
                   {}, f"DIP on {n}") for n in CSET9),
    aggregates=(
        Aggregate("mean_psnr_gt_final", "psnr_gt_final", 29.22, "last output, 9-image mean"),
        Aggregate("mean_psnr_gt_sm_final", "psnr_gt_sm_final", 30.43,
                  "smoothed output, 9-image mean"),
        Aggregate("mean_psnr_noisy_input", "psnr_noisy_input", None, "noisy input, mean"),
    ),
    headline=("mean_psnr_gt_final", "psnr_gt_final"),
    shown=("psnr_gt_final", "psnr_gt_sm_final"),
)


# --- the _mini versions: for CI and development on 2 CPU cores; not comparable -------------
TINY_SKIP = {"width": 16, "depth": 3, "input_depth": 8}


def mini(p: Protocol, iters: int, size: int, net: dict | None = None,
         per_row: dict | None = None) -> Protocol:
    """A shrunken copy of `p`: image resized to size², `iters` iterations, small nets, no
    source numbers (our noisy input is the only reference). sharp_linear's x scales with N."""
    rows = []
    for r in p.rows:
        ov = {**r.overrides, "iters": iters, **(net or {}), **(per_row or {}).get(r.net_key, {})}
        if ov.get("scheduler") == "sharp_linear":
            ov["sharp_linear_x"] = max(1, round(10 * iters / 2000))
        rows.append(replace(r, overrides=ov, problem={**r.problem, "size": size}, source={},
                            label=f"{r.label} [mini: {size}², {iters} it]"))
    aggs = tuple(replace(a, source=None) for a in p.aggregates)
    return replace(p, name=p.name + "_mini", rows=tuple(rows), aggregates=aggs,
                   comparable=False,
                   title=f"MINI (NOT comparable to the papers): {size}² resize, {iters} "
                         f"iterations, small nets — {p.name} shrunk for CI",
                   note="CI/development smoke of the full protocol's pipeline; compare only "
                        "with our own noisy-input PSNR.")


PROTOCOLS: dict[str, Protocol] = {}
for _p in (STAGED_DIP_F16, GUIDED_DIP_BUTTERFLY, DIP_CSET9):
    PROTOCOLS[_p.name] = _p
PROTOCOLS["staged_dip_f16_mini"] = mini(STAGED_DIP_F16, iters=240, size=64, net=TINY_SKIP)
PROTOCOLS["guided_dip_butterfly_mini"] = mini(
    GUIDED_DIP_BUTTERFLY, iters=200, size=64,
    per_row={"unet": {"width": 8, "depth": 4}, "segnet": {"width": 8, "depth": 3}})
PROTOCOLS["dip_cset9_mini"] = mini(DIP_CSET9, iters=150, size=32, net=TINY_SKIP)


FULL = ("staged_dip_f16", "guided_dip_butterfly", "dip_cset9")
MINI = tuple(n + "_mini" for n in FULL)


# --- search studies: the goals the sweeps/*.yaml studies try to reach ------------------------
REACH_FRACTION = 0.40  # the goal: reach the baseline's best in <= 40% of its iterations


@dataclass(frozen=True)
class Study:
    """A search study's goal. Two kinds, each compared in its own unit:

    beat:  the best trial's max psnr_gt (dB) must exceed `source` (a published dB number).
    reach: the fastest trial's first iteration at or above the baseline's max psnr_gt, divided
           by the baseline's best iteration, must be <= `max_fraction`. The baseline is the
           `reach_baseline` row of protocol `baseline`, measured by reproduce.py and passed to
           search.py with --target-from.
    """

    name: str  # = the spec's name
    spec: str  # path of the spec, relative to the repo root
    goal: str
    kind: str = "beat"  # beat | reach
    source: float | None = None  # beat: the published number to beat (dB)
    max_fraction: float | None = None  # reach: the goal, a fraction of the baseline's best iter
    baseline: str | None = None  # reach: the protocol whose reach_baseline row is the target
    comparable: bool = True


STUDIES = {
    "beat_staged_f16": Study(
        "beat_staged_f16", "sweeps/beat_staged_f16.yaml",
        "staged/guided DIP config whose max psnr_gt on F16 (512², σ 25) beats the best "
        "source number (sharp_linear, 50 stages)", source=30.73),
    "reach_fast_f16": Study(
        "reach_fast_f16", "sweeps/reach_fast_f16.yaml",
        "reach our plain-DIP baseline's max psnr_gt on F16 (staged_dip_f16 `dip` row) in at "
        "most 40% of the baseline's best iteration", kind="reach", max_fraction=REACH_FRACTION,
        baseline="staged_dip_f16"),
    "beat_staged_f16_mini": Study(
        "beat_staged_f16_mini", "sweeps/beat_staged_f16_mini.yaml",
        "MINI (NOT comparable): the beat_staged_f16 search on a 64² F16 with a tiny net, CPU",
        comparable=False),
    "reach_fast_f16_mini": Study(
        "reach_fast_f16_mini", "sweeps/reach_fast_f16_mini.yaml",
        "MINI (NOT comparable): the reach_fast_f16 search against our staged_dip_f16_mini "
        "`dip` row (64², tiny net, CPU)", kind="reach", max_fraction=REACH_FRACTION,
        baseline="staged_dip_f16_mini", comparable=False),
}
