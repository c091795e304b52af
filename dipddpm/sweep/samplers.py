"""The spec's Optuna sampler (tpe, cmaes, gp, random), seeded; no Ray here, so the Ray-free
search benchmark builds its studies with the same samplers as the sweep runner."""

from __future__ import annotations

from dipddpm.sweep.spec import SweepSpec


def make_sampler(spec: SweepSpec, trials_before: int = 0):
    """The spec's seeded sampler. A study that already holds `trials_before` trials (a
    resumed sweep) gets the seed shifted by that count: the same seed would replay the
    suggestions the first driver already ran."""
    import optuna

    s = spec.searcher
    seed = s.seed + trials_before
    if s.sampler == "tpe":
        startup = max(2, min(10, spec.num_samples // 4))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup,
                                          constant_liar=True)
    if s.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if s.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)
