"""A sweep's dataset on disk: the Parquet tables, images and records of a sweep directory.

`dipddpm.sweep` writes it and `dipddpm.analysis` reads it; this package imports neither.
Files: storage (local / NFS / s3 / gs locations) and storage_backends (their registry),
columns (every column declared once), parquet (the tables' writers and readers), artifacts
(the output images), compaction, lifecycle (driver.json: is a driver running), lock (the
driver's lock record), optuna_study (the Optuna study file).
"""
