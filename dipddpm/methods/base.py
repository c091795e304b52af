"""The method contract shared by DIP, guided DIP, DDPM and DIP-prior DDPM.

A method is a frozen config dataclass plus a plain loop:

    run(config, problem, report=None, seed=0, resume=None, device=None) -> Result

- `report(it, metrics, state)` is called every `config.report_every` iterations (and at the
  last one) with `it` = iterations done so far (1-based count), `metrics` a flat dict of floats
  and `state` a zero-argument callable returning a torch-saveable checkpoint of the whole loop
  (weights, optimizer, RNG, loop variables). The caller decides whether to call `state()`.
- `resume` is a dict returned by `state()`; the loop continues from it and, for the same seed,
  produces the same metrics as an uninterrupted run.
- The loop never imports Ray. A report callback may raise to stop the loop early.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

StateFn = Callable[[], dict]


class Report(Protocol):
    def __call__(self, it: int, metrics: Mapping[str, float], state: StateFn) -> None: ...


def no_report(it: int, metrics: Mapping[str, float], state: StateFn) -> None:
    """The default report callback: does nothing."""


@dataclass
class Result:
    """What a method returns: summary metrics and named output images (C,H,W) in [0,1]."""

    metrics: dict[str, float]
    images: dict[str, torch.Tensor] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """A registered method: what the CLI and the sweep runner need to know about it."""

    name: str
    config_cls: type
    run: Callable[..., Result]
    make_problem: Callable[[Mapping[str, Any]], Any]  # problem spec -> problem object
    metrics: tuple[str, ...]  # keys present in every report
    presets: Mapping[str, Mapping[str, Any]]  # preset name -> config overrides
    iters_key: str = "iters"  # the config field that sets the length of a run
    # rules joining a trial's config and the problem (net size, channels), checked for every
    # corner of a sweep's search space before Ray starts: (config, problem) -> None or raise
    check_trial: Callable[[Any, Any], None] | None = None
    # (config, problem) -> StagePlan for the fitting loop: the method's fits can run as the
    # members of one fused net (replicates, a study's pairs); None: they cannot
    plan: Callable[[Any, Any], Any] | None = None
    # the smallest real run (seconds on CPU): config values and a problem spec. The contract
    # suite (tests/test_contract_methods.py) runs every registered method on it; a config
    # field `checkpoint` is given a tiny trained DDPM there
    example_config: Mapping[str, Any] = field(default_factory=dict)
    example_problem: Mapping[str, Any] = field(default_factory=dict)
    # preset name -> problem spec keys that preset implies (guided_dip: its 128x128 forward
    # noise); a spec's or command line's own problem keys win
    problem_presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # config -> iterations of its final stage (the observation itself), for a staged method:
    # what the `final` rung rule counts (sweep validate warns when ASHA could judge no trial)
    final_stage_iters: Callable[[Any], int] | None = None
    # a problem spec's keys and types checked without loading anything (no image, dataset or
    # checkpoint read): `sweep show`/`validate` and fit's options use it; None: not checked
    check_problem_spec: Callable[[Mapping[str, Any]], Any] | None = None
    # the summary metrics every run returns (the keys of Result.metrics), declared once where
    # several methods share them (methods/keys.py: the image fits and their baselines); the
    # contract suite (tests/test_contract_methods.py) holds every run to them; (): undeclared
    summary: tuple[str, ...] = ()
    # the rung rule a spec's `scheduler.rung_rule: null` means for it (sweep/spec/rung_rules.py;
    # a staged method: `final`, judged once it fits the observation)
    rung_rule: str = "total"
    # the command re-running one trial without Ray (a sweep's `reproduce` column): its words
    # before the options (sweep/reproduce.py adds the problem, preset, seed and every config
    # value), e.g. "dipddpm fit guided-dip"; None: the method has no one-image command
    reproduce: str | None = None
    # the help text of `dipddpm fit NAME` as an image form (--image, --size, --sigma ...:
    # cli/fit.py); None: the generic form (its config fields as options, cli/fit_method.py)
    image_form: str | None = None
    # its config values as a study's baseline (a spec's `baselines: [NAME]`, run once on the
    # study's observations: sweep/baselines.py); None: it may not serve as a baseline
    baseline: Mapping[str, Any] | None = None
    help: str = ""  # one line: what it does (help texts, the list of baselines)
    # config keys a run resumed from a checkpoint takes from its new config (the rest lives in
    # the checkpoint, e.g. a learning rate in Adam's state): what a Tune scheduler that
    # changes a running trial's config (PBT) may change
    mutable: tuple[str, ...] = ()
    # its Result holds images["output"], which `fit --save` writes; False: fit offers no --save
    image_output: bool = True

    @property
    def can_fuse(self) -> bool:
        """Whether its fits can run as the members of one fused net (it has a stage plan)."""
        return self.plan is not None

    def preset_values(self, preset: str | None) -> dict[str, Any]:
        """The config values of `preset` (None: none); an unknown name is an error that lists
        the valid ones."""
        from dipddpm.errors import ConfigError, closest

        if preset is None:
            return {}
        if preset not in self.presets:
            raise ConfigError(f"unknown preset {preset!r} for {self.name}"
                              f"{closest(str(preset), list(self.presets))}; valid presets: "
                              f"{', '.join(sorted(self.presets))}")
        return dict(self.presets[preset])

    def problem_preset(self, preset: str | None) -> dict[str, Any]:
        """The problem keys `preset` implies ({} for none)."""
        return dict(self.problem_presets.get(preset, {})) if preset else {}
