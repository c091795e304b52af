"""`dipddpm fit ...` commands (placeholder module, filled in below)."""
