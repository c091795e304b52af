"""`dipddpm inspect ...` commands."""
