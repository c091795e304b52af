"""Sweeps: YAML spec -> Ray Tune (Optuna searcher that tells the truth, ASHA) -> Parquet.

The Tune adapter. Files, in the order a run uses them: spec/ (parse, validate, the search
space, rung rules, estimates), searchers (their entries: optuna_searcher + search + samplers,
Tune's variant generator), trainable + trial_reporter (the one adapter over METHODS),
recorder + rows (Tune reports -> the dataset's rows), checkpoints + continuation (resume),
console (quiet output), runner (run / resume), status. The dataset it writes is
`dipddpm.dataset`; Ray plumbing is `dipddpm.cluster`; the Tune schedulers' entries are
`dipddpm.trial_schedulers`.
"""
