"""`python -m archspec`: the `archspec` command."""

from archspec.cli import main

main()
