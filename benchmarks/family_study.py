"""The DIP-family study with one command: every arm's sweep, then one verdict and the README's
table (the arms: benchmarks/family.py; the verdict: benchmarks/family_verdict.py; the table:
benchmarks/family_table.py).

    python benchmarks/family_study.py sweeps/study_dip_family.yaml            # the study
    python benchmarks/family_study.py sweeps/study_dip_family.yaml --check    # validate only
    python benchmarks/family_study.py sweeps/study_dip_family.yaml --smoke --storage /tmp/f
    python benchmarks/family_study.py sweeps/study_dip_family.yaml --arms dip,guided_dip \\
        --storage /tmp/f                                                       # a subset
    python benchmarks/family_study.py sweeps/study_dip_family.yaml --verdict-only

Every arm is validated (and its smoke block) before the first sweep starts. Each arm's sweep
runs through the library (`dipddpm.run`, an embedded local Ray per arm, or $RAY_ADDRESS), one
after the other, the reference (plain DIP, with the baselines) first; an arm whose sweep has
finished is not run again, one that stopped is resumed. Then the verdict: only a whole run
(every arm, no smoke block) writes benchmarks/results/<name>.json and the README's table; a
smoke run or a subset writes <storage>/<name>-verdict.json and prints its table, and is
marked incomplete (the README's table refuses it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from family import Family, load_arm, load_family  # noqa: E402
from provenance import ensure_repo_on_path, stamp, write_json  # noqa: E402

ensure_repo_on_path()
from dipddpm.errors import DipddpmError  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SCHEMA = "dipddpm.family/1"


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", type=Path, help="the family's base spec, e.g. "
                    "sweeps/study_dip_family.yaml (its arms: the folder of the same name)")
    ap.add_argument("--arms", help="comma-separated arms to run (default: all)")
    ap.add_argument("--smoke", action="store_true", help="every arm's smoke block")
    ap.add_argument("--storage", help="results root (default: the spec's storage:)")
    ap.add_argument("--check", action="store_true", help="validate every arm; run nothing")
    ap.add_argument("--verdict-only", action="store_true", help="no sweep: the verdict of "
                    "the stored sweeps")
    ap.add_argument("--out", type=Path, help="where the verdict goes (default: see above)")
    return ap.parse_args(argv)


def runnable(family: Family, explicit: bool) -> None:
    """Every arm asked for must be runnable: a pending one (its method not registered) is an
    error naming it, so no study runs short of an arm by accident."""
    if family.pending:
        missing = ", ".join(f"{a} (method {m})" for a, m in family.pending.items())
        hint = "" if explicit else "; run the others with --arms"
        raise DipddpmError(f"arms whose method is not registered: {missing}: install the "
                           f"method (dipddpm fit --help lists those registered){hint}")


def sweep_uri(spec) -> str:
    return f"{spec.storage.rstrip('/')}/{spec.name}"


def run_arms(family: Family, specs: dict, smoke: bool, storage: str | None) -> None:
    import dipddpm

    for name, arm in family.arms.items():
        print(f"== arm {name}: sweep {specs[name].name} ({specs[name].trials} trial(s))",
              flush=True)
        dipddpm.run(arm.raw, smoke=smoke, storage=storage, resume=True)


def verdict_doc(family: Family, specs: dict, args: argparse.Namespace, argv: list[str],
                complete: bool) -> dict:
    from family_verdict import family_verdict

    from dipddpm.analysis.load import load_sweep

    sweeps = {n: (a.method, specs[n].metric, load_sweep(sweep_uri(specs[n])))
              for n, a in family.arms.items()}
    ref = specs[family.reference]
    return {"schema": SCHEMA, **stamp("benchmarks/family_study.py", argv),
            "study": family.name, "spec": str(args.spec), "complete": complete,
            "smoke": args.smoke, "arms": list(family.arms), "pending": family.pending,
            "protocol": {"problem": dict(ref.problem), "budget": ref.base_values.get("iters"),
                         "baselines": list(family.baselines)},
            **family_verdict(sweeps, family.reference, family.baselines)}


def main(argv: list[str] | None = None) -> int:
    import family_table

    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    try:
        only = args.arms.split(",") if args.arms else None
        family = load_family(args.spec, only)
        runnable(family, only is not None)
        load = args.smoke or not args.check  # --check alone reads no image (none fetched yet)
        specs = {n: load_arm(a, args.smoke, args.storage, load) for n, a in family.arms.items()}
        if args.check:
            for n, s in specs.items():
                print(f"ok: arm {n}: {s.method}, {s.trials} trial(s), metric {s.metric}")
            return 0
        if not args.verdict_only:
            run_arms(family, specs, args.smoke, args.storage)
        complete = not args.smoke and only is None
        doc = verdict_doc(family, specs, args, argv, complete)
    except DipddpmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ref = specs[family.reference]
    out = args.out or (RESULTS / f"{family.name}.json" if complete else
                       Path(ref.storage) / f"{ref.name}-verdict.json")
    write_json(out, doc)
    print(family_table.render(doc, readme=False))
    print(f"wrote {out}")
    if out.resolve() == family_table.SOURCE.resolve():  # the README's table follows it
        family_table.write_readme(doc)
        print(f"wrote the table into {family_table.README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
