"""`python -m dipddpm ...`: the same command line as `dipddpm ...`."""

from dipddpm.cli import main

if __name__ == "__main__":  # not when a tool imports every module (doctests, import checks)
    main()
