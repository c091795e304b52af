"""The output checks' old home: they live in dipddpm/outputs.py (below the CLI, so the API
uses them too)."""

from dipddpm.outputs import FIX, check_output, os_error_line, probe_writable  # noqa: F401
