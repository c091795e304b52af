"""`dipddpm data list|fetch`: the benchmark images protocols name as data:SET/IMAGE."""

from __future__ import annotations

import typer

from dipddpm.cli.app import RegistryHelpGroup, app
from dipddpm.cli.common import HELP_OPTIONS, print_json, user_errors
from dipddpm.errors import DipddpmError

data_app = typer.Typer(help="The benchmark images specs name as data:SET/IMAGE: list them, "
                       "fetch them into the data cache.", no_args_is_help=True,
                       cls=RegistryHelpGroup, context_settings=HELP_OPTIONS)
app.add_typer(data_app, name="data")


def _in_cache(ds) -> int:
    from dipddpm.data.fetch import cache_root

    return sum((cache_root() / ds.folder / i.file).is_file() for i in ds.images)


@data_app.command("list", help="The registered data sets, their images, what the data cache "
                  "($DIPDDPM_DATA, else ~/.cache/dipddpm/data) holds, and where each comes "
                  "from.")
@user_errors
def list_command(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")
                 ) -> None:
    from dipddpm.data.catalog import DATA
    from dipddpm.data.fetch import cache_root

    rows = [{"set": n, "images": [i.name for i in ds.images], "folder": ds.folder,
             "in_cache": _in_cache(ds), "about": ds.help, "source": ds.source}
            for n, ds in DATA.items()]
    if as_json:
        print_json({"cache": str(cache_root()), "sets": rows})
        return
    typer.echo(f"data cache: {cache_root()}")
    for r in rows:
        typer.echo(f"{r['set']:<10} {r['in_cache']}/{len(r['images'])} in cache  "
                   f"{r['about']}; images: {', '.join(r['images'])}; from {r['source']}")


@data_app.command("fetch", help="Download a data set's images from their public source into "
                  "the data cache, each checked against its pinned SHA-256 (a mismatch is "
                  "refused and nothing is kept); images already there are kept. --mirror (or "
                  "$DIPDDPM_DATA_MIRROR) reads a folder or URL holding SET_FOLDER/FILE "
                  "instead, offline. Specs then name them as data:SET/IMAGE.")
@user_errors
def fetch_command(
    names: list[str] = typer.Argument(..., metavar="NAME...", help="Data sets, one or more "
                                      "of {names:data_sets} (`dipddpm data list`)."),
    mirror: str | None = typer.Option(None, "--mirror", help="A folder or http(s) URL "
                                      "holding the files as FOLDER/FILE (e.g. cset9/F16.png "
                                      "or cset9/F16_clean.npz); nothing else is contacted."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    from dipddpm.data.catalog import DATA
    from dipddpm.data.fetch import CACHE_ENV, cache_root, fetch
    from dipddpm.outputs import check_output

    sets = [DATA.get(n) for n in names]  # an unknown name: refused before any download
    if mirror is not None and not mirror.strip():
        raise DipddpmError(f"--mirror is empty ({mirror!r}); give a folder or an http(s) URL")
    for ds in sets:
        check_output(cache_root() / ds.folder, f"the data cache (${CACHE_ENV})", kind="folder")
    done = [fetch(n, mirror) for n in names]
    if as_json:
        print_json({"cache": str(cache_root()), "sets": [d.as_dict() for d in done]})
        return
    for d in done:
        got = f"fetched {', '.join(d.fetched)}" if d.fetched else "nothing to fetch"
        kept = f"; already there: {', '.join(d.present)}" if d.present else ""
        typer.echo(f"{d.name}: {got} from {d.source}{kept} -> {d.folder}")
