"""The Tune scheduler contract (dipddpm/trial_schedulers/), for every registered entry and for
a toy entry registered here: its section validates itself (an unknown key, a bad value: one
line naming `scheduler.KEY`), its rungs are where the trial reporter sends results at once,
`sweep show` prints its line, and the smallest sweep with it goes through `sweep validate`,
one Ray run and `results summarize` with no other edit. PBT's exploit is checked on a real
population: a bottom trial continues a top trial's checkpoint under a changed config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from contract_sweep import cli, noop_spec, shipped, through_everything, write_spec

from dipddpm.errors import ConfigError
from dipddpm.trial_schedulers import TUNE_SCHEDULERS, TuneScheduler

# the smallest study: what an entry that races over a study's pairs needs (noop has no pairs)
STUDY = {"method": "dip", "metric": "psnr_best",
         "problem": {"images": ["skimage:astronaut", "skimage:coffee"], "size": 32, "sigma": 25},
         "fixed": {"iters": 12, "width": 8, "depth": 3, "input_depth": 4, "report_every": 4},
         "search": {"lr": {"grid": [0.01, 0.001]}}}


def spec_with(name: str, tmp_path, **over) -> dict:
    entry = TUNE_SCHEDULERS.get(name)
    races = entry.pair_block(entry.section(**entry.example)) is not None
    return noop_spec(f"sched-{name}", tmp_path / "results",
                     **{"scheduler": {"type": name, **entry.example}, **(STUDY if races else {}),
                        **over})


def parsed(raw: dict):
    from dipddpm.sweep.spec import parse_spec

    return parse_spec(raw, load_problem=False)


# ---------------------------------------------------------------- every entry, no Ray
@pytest.mark.parametrize("name", TUNE_SCHEDULERS.names())
def test_its_section_checks_itself_and_round_trips(name, tmp_path):
    entry = TUNE_SCHEDULERS.get(name)
    assert dataclasses.is_dataclass(entry.section) and entry.help
    spec = parsed(spec_with(name, tmp_path))
    assert isinstance(spec.scheduler.options, entry.section)
    again = parsed({**spec.resolved_dict(), "name": spec.name})  # as spec.resolved.yaml
    assert again.scheduler == spec.scheduler
    with pytest.raises(ConfigError, match=r"scheduler: unknown config key 'no_such_key'"):
        parsed(spec_with(name, tmp_path, scheduler={"type": name, **entry.example,
                                                    "no_such_key": 1}))


@pytest.mark.parametrize("name", TUNE_SCHEDULERS.names())
def test_its_rungs_are_where_the_reporter_sends_at_once(name, tmp_path):
    from dipddpm.sweep.trainable import milestones

    spec = parsed(spec_with(name, tmp_path))
    rungs = milestones(spec)
    assert rungs == spec.scheduler.entry.rungs(spec.scheduler.options) == sorted(rungs)
    assert all(0 < r <= 12 for r in rungs)
    out = cli("sweep", "show", str(write_spec(tmp_path, spec_with(name, tmp_path))))
    assert spec.scheduler.entry.describe(spec.scheduler.options) in out


@pytest.mark.parametrize("raw, message", [
    ({"type": "asha", "grace_period": 0}, "scheduler.grace_period must be >= 1"),
    ({"type": "asha", "rung_rule": "finl"}, "scheduler.rung_rule: unknown rung rule 'finl'"),
    ({"type": "pbt", "mutate": []}, "scheduler.mutate must name at least one searched key"),
    ({"type": "pbt", "mutate": ["x"], "quantile_fraction": 0.9},
     "scheduler.quantile_fraction must be in"),
    ({"type": "pbt", "mutate": ["iters"]}, "scheduler.mutate: 'iters' is not a searched key"),
    ({"type": "none", "grace_period": 5}, "unknown config key 'grace_period'"),
    ({"type": "hyperband"}, "unknown Tune scheduler 'hyperband'"),
])
def test_a_bad_section_is_one_line_naming_the_key(raw, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        parsed(noop_spec("bad", tmp_path, scheduler=raw))


def test_pbt_refuses_what_it_cannot_explore_honestly(tmp_path):
    """A key the method keeps in its checkpoint (DIP's lr in Adam's state), or a searcher
    that holds each trial's params (Optuna's study), is refused before Ray starts."""
    with pytest.raises(ConfigError, match="keeps 'report_every' in its checkpoint"):
        parsed(noop_spec("bad", tmp_path, search={"report_every": {"grid": [1, 2]}},
                         fixed={"iters": 12}, scheduler={"type": "pbt",
                                                         "mutate": ["report_every"]}))
    with pytest.raises(ConfigError, match="records each trial's params"):
        parsed(noop_spec("bad", tmp_path, search={"x": {"uniform": [0, 1]}},
                         searcher={"type": "optuna"},
                         scheduler={"type": "pbt", "mutate": ["x"]}))


def test_an_old_resolved_spec_with_ashas_keys_under_none_still_loads(tmp_path):
    """spec.resolved.yaml written before each scheduler had its own section held ASHA's keys
    under every type; a sweep directory like that is still read."""
    from dipddpm.sweep.runner import legacy_sections, same_spec

    spec = parsed(noop_spec("old", tmp_path))
    old = {**spec.resolved_dict(), "scheduler": {"type": "none", "grace_period": 50,
                                                  "reduction_factor": 3.0, "max_t": None,
                                                  "brackets": 1, "rung_rule": None}}
    assert parsed(legacy_sections(old)).scheduler == spec.scheduler
    import yaml

    assert same_spec(yaml.safe_dump(old), spec)


def test_pbt_mutations_follow_the_domains(tmp_path):
    """A key with values moves among them; a range is scaled, then clipped into it."""
    from dipddpm.trial_schedulers.pbt import mutations

    pbt = {"type": "pbt", "mutate": ["x"]}
    spec = parsed(noop_spec("m", tmp_path, search={"x": {"uniform": [0.0, 1.0]}},
                            scheduler=pbt))
    mutate, clip = mutations(spec.scheduler.options, spec)
    assert clip({"x": 1.2}) == {"x": 1.0} and clip({"x": -0.5}) == {"x": 0.0}
    assert clip({"x": 0.5}) == {"x": 0.5}
    spec = parsed(noop_spec("m", tmp_path, search={"x": {"grid": [0.1, 0.6]}}, scheduler=pbt))
    mutate, clip = mutations(spec.scheduler.options, spec)
    assert mutate == {"x": [0.1, 0.6]} and clip.bounds == ()


# ---------------------------------------------------------------- a toy, registered here
@dataclass(frozen=True)
class MedianSection:
    grace: int = 2  # iterations before a trial may be stopped

    def __post_init__(self) -> None:
        if self.grace < 1:
            raise ConfigError(f"scheduler.grace must be >= 1, got {self.grace}")


def make_median(section: MedianSection, spec):
    from ray.tune.schedulers import MedianStoppingRule

    return MedianStoppingRule(time_attr="iter", grace_period=section.grace,
                              min_samples_required=1)


@pytest.fixture
def toy():
    TUNE_SCHEDULERS.register("median_toy")(TuneScheduler(
        section=MedianSection, make=make_median, help="a test toy: Tune's median stopping",
        describe=lambda s: f"median stopping after {s.grace} it", example={"grace": 3}))
    with shipped(__name__):
        yield TUNE_SCHEDULERS.get("median_toy")
    TUNE_SCHEDULERS.unregister("median_toy")
    assert "median_toy" not in TUNE_SCHEDULERS


def test_a_toy_section_checks_itself(toy, tmp_path):
    assert parsed(spec_with("median_toy", tmp_path)).scheduler.options == MedianSection(3)
    with pytest.raises(ConfigError, match="scheduler.grace must be >= 1, got 0"):
        parsed(noop_spec("bad", tmp_path, scheduler={"type": "median_toy", "grace": 0}))


# ---------------------------------------------------------------- through Ray
@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("name", TUNE_SCHEDULERS.names())
def test_every_scheduler_runs_a_sweep(name, ray_local, tmp_path):
    checked, outcome, summary = through_everything(tmp_path, spec_with(name, tmp_path))
    assert checked["scheduler"] == name and outcome.spec.scheduler.type == name
    assert len(outcome.rows) == 2


@pytest.mark.ray
@pytest.mark.slow
def test_a_toy_scheduler_runs_a_sweep_with_no_other_edit(toy, ray_local, tmp_path):
    checked, outcome, _ = through_everything(tmp_path, spec_with("median_toy", tmp_path))
    assert checked["scheduler"] == "median_toy" and len(outcome.rows) == 2


@pytest.mark.ray
@pytest.mark.slow
def test_pbt_clones_a_top_trials_checkpoint_into_a_bottom_trial(ray_local, tmp_path):
    """Four noop trials at once (x = 0.3 scores best; 0.25 s an iteration, so they overlap):
    at each perturbation point the bottom half continues a top trial's checkpoint with x
    moved to a neighbouring grid value. A clone records its donor and the iteration it
    continued from (a perturbation point), and its last score is that of its final config."""
    import pandas as pd

    spec = noop_spec("pbt", tmp_path / "results", search={"x": {"grid": [0.0, 0.2, 0.4, 0.9]}},
                     fixed={"iters": 24, "report_every": 1, "sleep_s": 0.25},
                     searcher={"type": "grid", "max_concurrent": 4},
                     scheduler={"type": "pbt", "perturbation_interval": 4, "mutate": ["x"],
                                "quantile_fraction": 0.5, "resample_probability": 0.0},
                     resources={"cpu": 0.5})
    _, outcome, _ = through_everything(tmp_path, spec)
    trials = pd.DataFrame(outcome.rows).set_index("trial_id")
    assert (trials["status"] == "COMPLETED").all() and len(trials) == 4
    clones = trials[trials["cloned_from"].notna()]
    assert len(clones) >= 1, trials[["config.x", "cloned_from"]]
    assert set(clones["cloned_from"]) <= set(trials.index)
    assert (clones["resumed_from_iter"] % 4 == 0).all() and (clones["resumed_from_iter"] > 0).all()
    assert clones["reproduce"].isna().all()  # (noop has no fit command: none has one here)
    from dipddpm.methods.noop import score  # the clone ran on under its new config

    for _, row in trials.iterrows():
        assert row["last.score"] == pytest.approx(score(row["config.x"], 24))
