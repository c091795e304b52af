"""Sweep specs: YAML (safe-loaded) -> a frozen, fully validated `SweepSpec`.

A spec names a method and its problem, the metric to optimise, `fixed:` config values,
`search:` domains, the searcher, the scheduler, resources, the number of trials, storage and a
`smoke:` override block. Everything is checked here, before Ray starts: each bad input is one
`ConfigError` naming the key and the fix.

    name: quick
    method: guided_dip
    preset: tiny
    problem: {image: "skimage:astronaut", size: 64}   # a study: images: [...], replicates: S
    metric: psnr_best          # must be a key the method reports; mode max|min
    fixed: {iters: 300}
    search:
      scheduler: {choice: [uniform, log10_linspace, exp_weighted]}
      exp_c: {loguniform: [50, 1000], when: {scheduler: exp_weighted}}
    searcher: {type: optuna, sampler: tpe, seed: 0, max_concurrent: 2}
    scheduler: {type: asha, grace_period: 50, reduction_factor: 3}  # rung_rule: the method's
                               # default (guided_dip: final, rungs in final-stage iterations)
    smoke: {num_samples: 2, fixed: {iters: 20}}

The parts: `schema.py` (the sections, each checking itself; the top-level keys derived from
the fields), `load.py` (YAML, smoke block, --set), `search_space.py` (the `search:` domains)
and `validate.py` (`parse_spec`: what joins sections, method and problem); beside them,
`space.py` (the domains as Optuna define-by-run and Tune search spaces), `corners.py` (the
space's corner trials), `rung_rules.py` (what a rung counts) and `estimate.py` (a trial's time
and memory before it runs).
"""

from dipddpm._compat import moved_names
from dipddpm.sweep.spec.load import load_spec, load_yaml, merge, overrides, set_override
from dipddpm.sweep.spec.schema import (
    DOMAIN_KINDS,
    FAULT_KINDS,
    RESOURCE_GRANULARITY,
    TOP_KEYS,
    TRIAL_KEYS,
    Domain,
    Fault,
    Resources,
    SchedulerSpec,
    SearcherSpec,
    SweepSpec,
)
from dipddpm.sweep.spec.search_space import NAMED_FIELDS, check_named, condition_order, parse_search
from dipddpm.sweep.spec.validate import (
    check_problem,
    check_space,
    max_budget,
    parse_faults,
    parse_spec,
    parse_storage_options,
    problem_preset,
)

__all__ = ["DOMAIN_KINDS", "FAULT_KINDS", "NAMED_FIELDS", "RESOURCE_GRANULARITY",
           "TOP_KEYS", "TRIAL_KEYS", "Domain", "Fault", "Resources", "SchedulerSpec",
           "SearcherSpec", "SweepSpec", "check_named", "check_problem", "check_space",
           "condition_order", "load_spec", "load_yaml", "max_budget", "merge", "overrides",
           "parse_faults", "parse_search", "parse_spec", "parse_storage_options",
           "problem_preset", "set_override"]
__getattr__ = moved_names(__name__)  # names that moved out: _compat.MOVED_NAMES
