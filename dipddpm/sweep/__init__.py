"""Sweeps: YAML spec -> Ray Tune (Optuna searcher that tells the truth, ASHA) -> Parquet.

The only package that imports ray, optuna and pyarrow (lazily where it can). Files, in the
order a run uses them: spec (parse + validate), space (domains -> Optuna define-by-run / Tune),
search (the Optuna searcher), trainable (the one adapter over METHODS), recorder + results
(the Parquet dataset), storage (local / NFS / s3 / gs), local_ray (the embedded loopback Ray),
console (quiet output), runner (run / resume), status.
"""
