"""A raced study trial (trial_schedulers/race.py): its pairs fitted a block at a time.

Each block is a study of its own pairs run by run_study (study_run.py: fused into one net
where the study fuses, else chunked or single), to the end of the iteration budget. After a
block, `on_block(done)` gets the trial's state over every pair fitted so far: the set's
reports replayed from the pairs' own reports (SetCurve over all pairs done, at every
iteration, as a lockstep study of those pairs would have reported them), their rows and
summary. The trainable sends it to Tune, whose race scheduler may stop the trial there; a
trial that is not stopped ends with every pair, its reports and summary those of the unraced
study of the same pairs (each pair's fit depends on its own seed and observation only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dipddpm.errors import DipddpmError
from dipddpm.methods.study_pairs import Pair
from dipddpm.methods.study_run import StudyResult, run_study
from dipddpm.methods.study_set import SetCurve

ROW_KEYS = ("image", "replicate", "seed", "noise_seed", "height", "width")  # not metrics


@dataclass
class Blocks:
    """The pairs fitted so far: each block's per-iteration pair reports and its result."""

    reports: list[list[tuple[int, list[dict]]]]  # per block: (iter, that block's pair metrics)
    results: list[StudyResult]
    total: int  # the trial's pairs

    @property
    def done(self) -> int:
        return sum(len(r.pairs) for r in self.results)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [row for r in self.results for row in r.pairs]

    @property
    def images(self) -> list[dict[str, Any]]:
        return [im for r in self.results for im in r.images]

    def set_reports(self) -> tuple[list[dict[str, Any]], SetCurve]:
        """The set's report at every iteration over every pair done (pairs in `pairs`)."""
        its = [it for it, _ in self.reports[0]]
        if any([it for it, _ in b] != its for b in self.reports):
            raise DipddpmError("the blocks of a raced study reported at different iterations;"
                               " racing needs one report schedule for all pairs")
        curve, out = SetCurve(), []
        for n, it in enumerate(its):
            pairs = [p for b in self.reports for p in b[n][1]]
            m = curve(it, [{k: v for k, v in p.items() if k not in ("image", "replicate")}
                           for p in pairs])
            out.append({**m, "iter": it, "pairs": pairs})
        return out, curve

    def summary(self, curve: SetCurve) -> dict[str, Any]:
        return curve.summary([{k: v for k, v in row.items() if k not in ROW_KEYS}
                              for row in self.rows])


def run_blocks(method, cfg, pairs: list[Pair], block: int, on_block: Callable[[Blocks], None],
               device=None, sync_every: int = 100, mode: str = "auto") -> Blocks:
    """Fit `cfg` to `pairs`, `block` pairs at a time, calling `on_block` after each."""
    done = Blocks([], [], len(pairs))
    for start in range(0, len(pairs), block):
        seen: list[tuple[int, list[dict]]] = []

        def report(it, metrics, state, seen=seen):
            seen.append((it, [dict(p) for p in metrics["pairs"]]))

        result = run_study(method, cfg, pairs[start:start + block], report=report,
                           device=device, sync_every=sync_every, mode=mode)
        done.reports.append(seen)
        done.results.append(result)
        on_block(done)
    return done
