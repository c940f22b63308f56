"""The shared scenarios, one module per area: each registers its scenarios with
`scenario.scenario`, in the order a reader meets them (../scenario.py is their frame)."""
from ..scenario import SCENARIOS
from . import bridge, errors, health, heartbeats, jobs, listing, pairing, projects, runners  # noqa: F401 - registering

__all__ = ["SCENARIOS"]
