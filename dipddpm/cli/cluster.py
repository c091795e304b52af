"""`dipddpm cluster doctor`: what a Ray cluster offers a sweep, and why trials would wait."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from dipddpm.cli.app import cluster_app
from dipddpm.cli.common import print_json, user_errors


@cluster_app.command(
    "doctor",
    help=("Connect to a Ray cluster and print its nodes with the CPUs and GPUs Ray sees; with a "
          "SPEC, each trial's request, how many trials fit at once on the nodes up now and why "
          "trials would wait PENDING; whether every node up now reads the spec's input image "
          "and reaches the storage (the spec's, or --storage). Nodes an autoscaler adds later "
          "are not seen. Exit 0 when all is well, 1 when it found a problem (including a "
          "request that does not fit the nodes up now), 2 on bad input."))
@user_errors
def doctor_command(
    spec: Path | None = typer.Argument(None, help="Sweep spec to check, e.g. sweeps/quick.yaml."),
    address: str | None = typer.Option(None, "--address", help="Cluster to inspect: auto, "
                                       "host:port or ray://host:10001. Default: $RAY_ADDRESS "
                                       "if set, else an embedded local Ray (this machine)."),
    storage: str | None = typer.Option(None, "--storage", help="Storage to check from every "
                                       "node (default: the spec's storage:)."),
    smoke: bool = typer.Option(False, "--smoke", help="Check the spec's smoke: variant."),
    sets: list[str] | None = typer.Option(None, "--set", help="Override a spec key as `sweep "
                                          "run --set` does, e.g. --set resources.gpu=0.25."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for each node's "
                                  "storage probe."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    from dipddpm.cli.sweep import cluster_address
    from dipddpm.cluster.doctor import doctor
    from dipddpm.cluster.local_ray import ray_session
    from dipddpm.dataset.storage_backends import backend_for
    from dipddpm.sweep.spec import load_spec

    if storage is not None:
        backend_for(storage, "--storage")  # an empty value or an unknown scheme: refused now
    s = load_spec(spec, smoke=smoke, sets=sets, storage=storage) if spec is not None else None
    where = storage if storage is not None else (s.storage if s is not None else None)
    address = cluster_address(address)
    with ray_session(address):
        report = doctor(s, where, timeout_s=timeout)
    report["address"] = address or "embedded local Ray"
    if as_json:
        print_json(report)
    else:
        _print(report)
    if not report["ok"]:
        raise typer.Exit(1)


def _print(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=None if os.isatty(1) else 120)
    table = Table(title=f"Ray cluster at {r['address']}: {r['alive']} node(s) alive, "
                  f"{r['cpus']:g} CPUs, {r['gpus']:g} GPUs", title_justify="left")
    for col in ("node", "hostname", "state", "CPUs", "GPUs", "GPU type"):
        table.add_column(col, justify="right" if col in ("CPUs", "GPUs") else "left")
    for n in r["nodes"]:
        table.add_row(n["ip"] + (" (head)" if n["head"] else ""), n["hostname"],
                      "alive" if n["alive"] else "DEAD", f"{n['cpus']:g}", f"{n['gpus']:g}",
                      n["gpu_type"] or "-")
    con.print(table)
    if "spec" in r:
        sp = r["spec"]
        req = ", ".join(f"{v:g} {k}" for k, v in sp["request"].items())
        con.print(f"spec {sp['name']}: each trial asks for {req}; {sp['fit']} fit at once "
                  f"(" + ", ".join(f"{ip}: {k}" for ip, k in sp["per_node"].items())
                  + f"); {sp['concurrent']} will run at once (max_concurrent "
                  f"{sp['max_concurrent']}, {sp['num_samples']} trials)", highlight=False)
        verdict = "[green]fits the nodes up now[/]" if sp["schedulable"] else \
            "[bold red]does not fit the nodes up now: trials would wait PENDING[/]"
        con.print(verdict)
        for why in sp["pending_reasons"]:
            con.print(f"  - {why}", highlight=False)
    if r.get("inputs", {}).get("files"):
        files, missing = r["inputs"]["files"], r["inputs"]["missing"]
        if not missing:
            con.print(f"input {', '.join(files)}: [green]readable[/] on every node",
                      highlight=False)
        for ip, paths in missing.items():
            con.print(f"input: [bold red]{ip} cannot read {paths}[/] (trials read inputs on "
                      f"their node: use a path inside the `ray job submit --working-dir` "
                      f"(relative to it) or an absolute path on storage every node mounts)",
                      highlight=False)
    if "storage" in r:
        st = r["storage"]
        if st["ok"]:
            con.print(f"storage {st['uri']}: [green]reachable[/] from the driver and every "
                      f"node ({', '.join(st['nodes'])})", highlight=False)
        else:
            con.print(f"storage: [bold red]problem[/]: {st['error']}", highlight=False)
    con.print("[green]ok[/]" if r["ok"] else "[bold red]problems found[/]")
