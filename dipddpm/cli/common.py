"""What every CLI module shares: the user-error wrapper, --json output, the output-image check.

Commands parse options, call a plain tested function and turn a `DipddpmError` or an `OSError`
(the file system said no: read-only, no space, not a folder) into one line on stderr and exit
status 2 (no traceback). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import typer

from dipddpm._compat import moved_names
from dipddpm.errors import DipddpmError

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}  # context_settings of every app


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for commands: DipddpmError or OSError -> 'error: ...' on stderr, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DipddpmError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        except OSError as e:  # the file system (or a socket) said no: not a bug of ours
            from dipddpm.outputs import os_error_line

            typer.echo(f"error: {os_error_line(e)}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def print_json(obj: Any) -> None:
    """One JSON object on stdout (NaN/inf as null), for --json."""

    def clean(v):
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    sys.stdout.write(json.dumps(clean(obj)) + "\n")


__getattr__ = moved_names(__name__)  # names that moved out: _compat.MOVED_NAMES
