"""`python -m opik_runners` is the `opik-runners` command."""
from .cli import main

main(prog_name="opik-runners")
