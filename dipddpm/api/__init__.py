"""The Python API for notebooks and scripts: `load`, `run` and `fit`.

    import dipddpm
    results = dipddpm.run("sweeps/quick.yaml", smoke=True)   # a sweep -> Results
    results = dipddpm.load("results/quick")                   # a results folder -> Results
    results = dipddpm.resume("results/quick")                 # continue a stopped sweep
    results.trials, results.metrics, results.best(n=5)       # pandas DataFrames
    v = results.effect(a={"stages": 1}, b={"stages": 4})      # a paired verdict
    c = dipddpm.compare("results/a", "results/b")             # tables across sweeps
    r = dipddpm.fit("dip", image="skimage:astronaut", preset="tiny", iters=100)  # no Ray
    r = dipddpm.fit_request(dipddpm.FitRequest("dip", image="F16.png", sigma=50, replicates=4))

They return what the `dipddpm` commands print (the same analysis code), as objects.
"""

from dipddpm.api.fit_image import FitResult, fit
from dipddpm.api.fit_request import FitRequest, fit_request
from dipddpm.api.results import Results, Verdict, compare, load
from dipddpm.api.run_spec import resume, run

__all__ = ["FitRequest", "FitResult", "Results", "Verdict", "compare", "fit", "fit_request",
           "load", "resume", "run"]
