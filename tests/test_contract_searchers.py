"""The searcher contract (dipddpm/sweep/searchers.py), for every registered entry and for a toy
entry registered here (Tune's basic variant generator drawing at random, no grid): the
smallest noop sweep with it goes through `sweep validate` (its `sweep show` line), one Ray
run and `results summarize` with no other edit; a misspelt type is one line with "did you
mean"."""

from __future__ import annotations

import pytest
from contract_sweep import cli, noop_spec, shipped, through_everything, write_spec

from dipddpm.errors import ConfigError
from dipddpm.sweep.searcher_entry import Searcher, SearchSetup
from dipddpm.sweep.searchers import SEARCHERS


def spec_with(name: str, tmp_path) -> dict:
    """Two trials: a grid of two where the entry takes grids, else two draws of a range."""
    entry = SEARCHERS.get(name)
    search = {"x": {"grid": [0.1, 0.6]}} if entry.grid else {"x": {"uniform": [0.0, 1.0]}}
    return noop_spec(f"search-{name}", tmp_path / "results", search=search,
                     searcher={"type": name, "max_concurrent": 2},
                     num_samples=1 if entry.grid else 2)


def parsed(raw: dict):
    from dipddpm.sweep.spec import parse_spec

    return parse_spec(raw, load_problem=False)


@pytest.mark.parametrize("name", SEARCHERS.names())
def test_it_validates_and_shows_its_line(name, tmp_path):
    spec = parsed(spec_with(name, tmp_path))
    entry = SEARCHERS.get(name)
    assert spec.searcher.type == name and entry.help
    out = cli("sweep", "show", str(write_spec(tmp_path, spec_with(name, tmp_path))))
    assert entry.describe(spec) in out


def test_a_misspelt_searcher_is_one_line_with_did_you_mean(tmp_path):
    raw = {**spec_with("grid", tmp_path), "searcher": {"type": "gird"}}
    with pytest.raises(ConfigError, match="did you mean 'grid'"):
        parsed(raw)


# ---------------------------------------------------------------- a toy, registered here
def random_variants(spec, sweep) -> SearchSetup:
    from ray.tune.search import BasicVariantGenerator

    from dipddpm.sweep.spec.space import tune_space

    return SearchSetup(BasicVariantGenerator(random_state=7, max_concurrent=2),
                       tune_space(spec.search))


@pytest.fixture
def toy():
    SEARCHERS.register("random_toy")(Searcher(
        make=random_variants, describe=lambda spec: "random_toy", help="a test toy"))
    with shipped(__name__):
        yield SEARCHERS.get("random_toy")
    SEARCHERS.unregister("random_toy")
    assert "random_toy" not in SEARCHERS


def test_a_toy_searcher_validates(toy, tmp_path):
    assert parsed(spec_with("random_toy", tmp_path)).searcher.type == "random_toy"
    with pytest.raises(ConfigError):  # it takes no grid (its entry says so)
        parsed(noop_spec("bad", tmp_path, searcher={"type": "random_toy"}))


# ---------------------------------------------------------------- through Ray
@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("name", SEARCHERS.names())
def test_every_searcher_runs_a_sweep(name, ray_local, tmp_path):
    checked, outcome, summary = through_everything(tmp_path, spec_with(name, tmp_path))
    assert outcome.spec.searcher.type == name and len(outcome.rows) == 2
    xs = {r["config.x"] for r in outcome.rows}
    assert len(xs) == 2 and all(0.0 <= x <= 1.0 for x in xs)


@pytest.mark.ray
@pytest.mark.slow
def test_a_toy_searcher_runs_a_sweep_with_no_other_edit(toy, ray_local, tmp_path):
    _, outcome, _ = through_everything(tmp_path, spec_with("random_toy", tmp_path))
    assert len(outcome.rows) == 2 and len({r["config.x"] for r in outcome.rows}) == 2
