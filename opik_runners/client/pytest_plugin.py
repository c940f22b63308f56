"""The pytest plugin (registered through the `pytest11` entry point, so installing the package
is enough): a real opik-runners server for the tests of code that talks to Opik's local-runner
API, such as an `opik endpoint` agent.

- `opik_runners_server` (session): one RunnerServer, started by the first test that asks for
  it, on a free loopback port and a temporary SQLite database, stopped at the end of the run.
  Override this fixture in a conftest.py to start it with other settings.
- `opik_runners` (function): the same server, reset before the test (no runners, jobs,
  projects, journal entries or fault rules; the clock at real time). It is the RunnerServer:
  `url` (the /api base, for OPIK_URL_OVERRIDE), `seed`, `provider_state`, `requests`, `wait_for`,
  `fault`, `advance_clock`, `create_job`, ...

A test run that uses neither fixture starts no server: this module imports the package's
testing helpers only when a fixture is first set up."""
import pytest


@pytest.fixture(scope="session")
def opik_runners_server():
    """A real server for the test session: a `RunnerServer` on a free loopback port, with a
    temporary SQLite database and the control plane on, started by the first test that asks for
    it and stopped (its database removed) at the end of the run. Override this fixture in a
    conftest.py to start it with other settings."""
    from .testing import RunnerServer

    server = RunnerServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def opik_runners(opik_runners_server):
    """The session's server, reset before the test: no runners, jobs, projects, traces, journal
    entries or fault rules, and the clock at real time. It is the `RunnerServer`: `url` for
    OPIK_URL_OVERRIDE, and the helpers `seed`, `provider_state`, `requests`, `wait_for`, `fault`,
    `advance_clock`, `create_job`, ..."""
    # A whole reset also deletes the fault rules and returns the clock to real time.
    opik_runners_server.reset()
    yield opik_runners_server
