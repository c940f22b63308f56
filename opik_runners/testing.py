"""`from opik_runners.testing import RunnerServer`, as the documentation shows it (docs/reference/python-api.md). The helpers
live with the package's other clients, in `client/testing.py`."""
from .client.testing import Fault, RunnerServer, RunnerServerError, Server, child_pids, free_port  # noqa: F401
