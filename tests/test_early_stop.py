"""GT-free early stopping (ES-WMV and its exponential variant) on synthetic output sequences
with a known variance minimum: the rule picks the iteration an independent computation of the
formula gives, the output of that iteration, and stops looking after `patience`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dipddpm.early_stop import ES_RULES, EsParams


def sequence(n: int = 400, low: int = 150, seed: int = 0) -> np.ndarray:
    """Outputs whose spread is smallest around iteration `low` (a DIP-like settle, then drift)."""
    rng = np.random.default_rng(seed)
    scale = 0.01 + np.abs(np.arange(n) - low) / 2000
    return 0.5 + scale[:, None, None, None] * rng.normal(size=(n, 3, 8, 8))


def wmv_by_hand(o: np.ndarray, W: int) -> np.ndarray:
    out = np.full(len(o), np.inf)
    for t in range(W - 1, len(o)):
        out[t] = o[t - W + 1:t + 1].var(axis=0).mean()
    return out


def emv_by_hand(o: np.ndarray, W: int) -> np.ndarray:
    a, mean, var = 2 / (W + 1), o[0].copy(), 0.0
    out = np.full(len(o), np.inf)
    for t in range(1, len(o)):
        delta = o[t] - mean
        mean = mean + a * delta
        var = (1 - a) * (var + a * (delta ** 2).mean())
        if t + 1 >= W:
            out[t] = var
    return out


def run(rule: str, o: np.ndarray, params: EsParams):
    """One member: outputs (n, C, H, W) fed as batches of K = 1."""
    x = torch.from_numpy(o).float()[:, None]
    es = ES_RULES.get(rule)(params, x[0])
    for t in range(len(x)):
        es.update(t + 1, x[t])
    return es, x[:, 0]


@pytest.mark.parametrize("rule,by_hand", [("wmv", wmv_by_hand), ("emv", emv_by_hand)])
def test_picks_the_variance_minimum(rule, by_hand):
    o = sequence()
    es, x = run(rule, o, EsParams(window=20, patience=10_000))
    var = by_hand(o.astype(np.float32).astype(np.float64), 20)
    t_star = int(np.argmin(var))
    assert int(es.best_iter) == t_star + 1  # iterations count from 1
    assert float(es.best_var) == pytest.approx(var[t_star], rel=1e-6)
    assert torch.equal(es.pick[0], x[t_star])
    assert 140 <= t_star <= 190  # near the true low of the spread (150), after its window


def test_patience_keeps_the_first_minimum():
    """A deeper minimum after `patience` quiet iterations does not replace the pick."""
    o = np.concatenate([sequence(300, 100, 1), sequence(300, 150, 2) * 0 + 0.5
                        + (sequence(300, 150, 2) - 0.5) * 0.1])
    es, _ = run("wmv", o, EsParams(window=20, patience=60))
    assert bool(es.stopped) and int(es.best_iter) < 300
    late, _ = run("wmv", o, EsParams(window=20, patience=10_000))
    assert int(late.best_iter) > 300  # without the patience the later minimum wins


def test_state_round_trip_resumes_exactly():
    o = torch.from_numpy(sequence()).float()[:, None]
    for rule in ES_RULES:
        a = ES_RULES.get(rule)(EsParams(window=20, patience=50), o[0])
        b = ES_RULES.get(rule)(EsParams(window=20, patience=50), o[0])
        for t in range(200):
            a.update(t + 1, o[t])
            b.update(t + 1, o[t])
        c = ES_RULES.get(rule)(EsParams(window=20, patience=50), o[0])
        c.load_state_dict(b.state_dict())
        for t in range(200, 400):
            a.update(t + 1, o[t])
            c.update(t + 1, o[t])
        assert int(a.best_iter) == int(c.best_iter) and torch.equal(a.pick, c.pick)


@pytest.mark.parametrize("rule", ["wmv", "emv"])
def test_members_are_independent(rule):
    """K = 3 members at once pick what each picks alone."""
    seqs = [sequence(300, low, seed) for low, seed in ((60, 0), (150, 1), (240, 2))]
    both = torch.from_numpy(np.stack(seqs, axis=1)).float()  # (n, K, C, H, W)
    es = ES_RULES.get(rule)(EsParams(window=20, patience=10_000), both[0])
    for t in range(len(both)):
        es.update(t + 1, both[t])
    for i, o in enumerate(seqs):
        alone, x = run(rule, o, EsParams(window=20, patience=10_000))
        assert int(es.best_iter[i]) == int(alone.best_iter[0])
        assert torch.equal(es.pick[i], alone.pick[0])
