import base64
import os
import pathlib
import uuid

import pytest
from flask.testing import FlaskClient

import contract
from browser import browser  # noqa: F401 - Chromium for the page tests (the pairing page, the console)
from helpers import AGENT  # noqa: F401 - the tests import it from here
from opik_runners.store import db
from opik_runners.app import create_app
from opik_runners.store.models import database
from opik_runners.protocol import activation_hmac_text
from opik_runners.settings import load_settings
from server import fresh_database_url

API = "/api/v1/private"
ROOT = "/v1/private"
HERE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(items):
    """tests/acceptance starts real servers, the CLI, PostgreSQL or a browser: `slow`, so
    that `pytest -m "not slow"` runs the rest (domain, schemas, the API through Flask's
    test client) in well under a minute."""
    for item in items:
        if HERE / "acceptance" in item.path.parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def settings(tmp_path):
    """A fresh database, migrated and opened without an app, and the settings for it: what the
    domain rules take (tests/unit)."""
    url = fresh_database_url(tmp_path)
    backend = db.open_and_migrate(url)
    with database.connection_context():
        yield load_settings({}, DATABASE_URL=url)
    backend.shut()


class ContractClient(FlaskClient):
    """A test client that checks every response against the contract."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        if response.request is not None and not kwargs.get("buffered") is False:
            contract.validate(response.request, response)
        return response


_BUILT = {}  # apps by the settings they were built with (see make_app)


@pytest.fixture
def make_app(tmp_path):
    """An app on a fresh database (a new SQLite file, or the PostgreSQL test database wiped);
    keyword arguments override settings, by variable name.

    Building an app costs ~30 ms (werkzeug compiles every route), more than most tests take,
    so an app built for one set of overrides serves each later test with the same ones, on
    that test's own fresh database: the database is all the state an app holds. A test that
    names its DATABASE_URL gets an app built for it."""

    def make(**overrides):
        overrides.setdefault("OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT", "0.05")
        # No background reaper: a test runs a cycle when it means to (reap below).
        overrides.setdefault("OPIK_RUNNER_REAPER_INTERVAL", "0")
        if "DATABASE_URL" in overrides:
            return build(**overrides)
        url = fresh_database_url(tmp_path)
        key = tuple(sorted(overrides.items()))
        app = _BUILT.get(key)
        if app is None:
            app = _BUILT[key] = build(DATABASE_URL=url, **overrides)
        else:
            db.open_and_migrate(url).start_watcher()
            app.extensions["opik_runners"] = app.extensions["opik_runners"]._replace(database_url=url)
        return app

    def build(**overrides):
        app = create_app(**overrides)
        app.test_client_class = ContractClient
        app.config["TESTING"] = True
        return app

    return make


def reap(app):
    """One reaper cycle now, as the background reaper runs it (the test apps run none)."""
    from opik_runners.domain import maintenance
    from opik_runners.store import models

    with models.database.connection_context():
        return maintenance.reap(app.extensions["opik_runners"])


def lapse(*runner_ids, ago=1.0):
    """Let runners' heartbeats lapse `ago` seconds ago, as if their TTL had run out then (tests
    of what a lapsed runner does; test_runners also waits for a real TTL to run out)."""
    from opik_runners.store.models import SECOND, Runner, database, now_us

    with database.connection_context():
        Runner.update(heartbeat_expires_at=now_us() - int(ago * SECOND)).where(
            Runner.id.in_([uuid.UUID(str(runner_id)) for runner_id in runner_ids])
        ).execute()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


def ensure_project(client, name="demo", headers=None):
    found = client.post(f"{API}/projects/retrieve", json={"name": name}, headers=headers)
    if found.status_code == 404:
        assert client.post(f"{API}/projects", json={"name": name}, headers=headers).status_code == 201
        found = client.post(f"{API}/projects/retrieve", json={"name": name}, headers=headers)
    assert found.status_code == 200, found.data
    return found.json["id"]


def create_session(client, project_id, runner_type="endpoint", headers=None, ttl=300, key=None):
    key = key or os.urandom(32)
    response = client.post(
        f"{API}/pairing/sessions",
        json={
            "project_id": project_id,
            "activation_key": base64.b64encode(key).decode(),
            "ttl_seconds": ttl,
            "type": runner_type,
        },
        headers=headers,
    )
    assert response.status_code == 201, response.data
    return response.json["session_id"], response.json["runner_id"], key


def pair(client, project="demo", runner_type="endpoint", name="runner-1", headers=None):
    """Pair a runner the way the headless CLI does; return (runner_id, project_id)."""
    project_id = ensure_project(client, project, headers)
    session_id, runner_id, key = create_session(client, project_id, runner_type, headers)
    response = client.post(
        f"{API}/pairing/sessions/{session_id}/activate",
        json={"runner_name": name, "hmac": activation_hmac_text(session_id, key, name)},
        headers=headers,
    )
    assert response.status_code == 201, response.data
    return runner_id, project_id


def register(client, runner_id, agents=None, headers=None):
    response = client.put(f"{API}/local-runners/{runner_id}/agents", json=agents or {"answer": AGENT}, headers=headers)
    assert response.status_code == 204, response.data


def create_job(client, project_id, agent="answer", headers=None, **extra):
    response = client.post(
        f"{API}/local-runners/jobs", json={"agent_name": agent, "project_id": project_id, **extra}, headers=headers
    )
    assert response.status_code == 201, response.data
    return response.headers["Location"].rsplit("/", 1)[1]


@pytest.fixture
def endpoint_runner(client):
    """A paired endpoint runner with the `answer` agent: (runner_id, project_id)."""
    runner_id, project_id = pair(client)
    register(client, runner_id)
    return runner_id, project_id


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(
        f"contract: {contract.checked['validated']} responses validated against the contract, "
        f"{contract.checked['undocumented']} with statuses the contract omits (error shape checked); "
        f"{contract.checked['admin']} control-plane responses validated against admin-openapi.yaml"
    )
