"""User-facing errors: each states the rule, the value received and the fix.

Anything raised as a `DipddpmError` is the user's to fix; the CLI prints it as one line and
exits with status 2. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class DipddpmError(Exception):
    """An error in the user's input (config, spec, path, CLI option)."""


class ConfigError(DipddpmError):
    """A config key or value breaks a rule."""


def closest(name: str, valid: list[str]) -> str:
    """A ' (did you mean X?)' hint, or '' when nothing is close."""
    import difflib

    match = difflib.get_close_matches(name, valid, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def first_line(e: BaseException) -> str:
    """An exception's message cut to its first non-empty line (for one-line user errors)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__
