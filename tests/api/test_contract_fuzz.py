"""Property-based run over the contract (schemathesis): no input may produce a 5xx."""
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings

from tests.support import contract
from tests.support.in_app import InApp

spec = yaml.safe_load(contract.CONTRACT.read_text())
schema = schemathesis.openapi.from_dict(spec)


class _Target:
    """The WSGI app under test, rebuilt per test on a fresh database."""

    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


target = _Target()
schema.app = target


@pytest.fixture
def seeded(make_app):
    app = make_app(OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="0.05")
    # A real runner with an agent, so some generated requests get past the lookups.
    client = app.test_client()
    in_app = InApp(client)
    runner_id, _ = in_app.pair()
    in_app.register(runner_id)
    target.app = app
    return app


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case, seeded):
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
