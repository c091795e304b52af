"""`--replicates K`: K fits of one observation with seeds seed..seed+K-1, run as the members of
one fused net or one after the other (methods/fusion.py decides which), and the summary block
that reports them (the mode used, every member's metrics, their mean, and the ensemble of
their outputs where the config's output rule asks for it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class MembersProgress:
    """run_members' report callback: a history row per member report, and the bar advanced
    by the first member reporting (in serial mode, member i's iterations after the i before
    it, so the bar counts K x iters)."""

    def __init__(self, progress: Callable[..., Any] | None, iters: int, serial: bool) -> None:
        self.progress, self.iters, self.serial = progress, iters, serial
        self.rows: list[dict[str, Any]] = []

    def __call__(self, it: int, metrics: list[Mapping[str, float]], state: Any) -> None:
        self.rows += [{"member": k, "iter": it, **{n: v for n, v in m.items() if n != "iter"}}
                      for k, m in enumerate(metrics) if m]
        if self.progress is not None:
            i = next(k for k, m in enumerate(metrics) if m)
            self.progress(i * self.iters + it if self.serial else it, metrics[i], state)


def member_summary(results: list, seed: int) -> tuple[list[dict], dict[str, float]]:
    """Every member's metrics (with its seed) and their mean over the numeric ones."""
    each = [{"seed": seed + i, **r.metrics} for i, r in enumerate(results)]
    mean = {k: sum(m[k] for m in each) / len(each) for k, v in each[0].items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "seed"
            and all(isinstance(m[k], int | float) for m in each)}
    return each, mean


def run_replicates(method, cfg, problem, request, bar) -> tuple[list, dict, list[dict]]:
    """K seeds of one problem as the members of one run: their results, the summary's
    replicates block, and a history row per member report."""
    from dipddpm.api.fit_image import progress_bar
    from dipddpm.methods.device import pick_device
    from dipddpm.methods.fitting import Member
    from dipddpm.methods.fusion import fusion_mode, run_members
    from dipddpm.methods.study_ensemble import output_rule

    K, seed = request.replicates, request.seed
    members = [Member(problem, method.plan(cfg, problem), seed + i) for i in range(K)]
    dev = pick_device(request.device)
    mode = fusion_mode(cfg, members, dev, request.fusion)  # the mode run_members will run
    serial = mode == "serial"
    total = cfg.iters * (K if serial else 1)
    with progress_bar(bar, total, ("psnr_gt", "psnr_best"), f"{K} {mode} fits") as bar_report:
        report = MembersProgress(bar_report, cfg.iters, serial)
        results = run_members(cfg, members, report, device=dev, mode=mode)
    each, mean = member_summary(results, seed)
    out = {"replicates": K, "fusion": mode, "members": each, "mean": mean}
    rule = output_rule(cfg)
    if rule.ensemble:  # the mean of the K fits' outputs (one observation)
        from dipddpm.methods.output_rules import ensemble_metrics

        out["ensemble"] = ensemble_metrics([r.images for r in results], problem.clean,
                                           problem.observed, rule, cfg.psnr_uint8)
    return results, out, report.rows
