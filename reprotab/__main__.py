"""`python -m reprotab` is the `reprotab` command."""

from reprotab.cli import main

main()
