"""`python -m dipddpm ...`: the same command line as `dipddpm ...`."""

from dipddpm.cli import main

main()
