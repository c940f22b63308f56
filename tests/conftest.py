import base64
import hashlib
import hmac
import os
import sys
import uuid

import pytest
from flask.testing import FlaskClient

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import contract  # noqa: E402
from app import create_app  # noqa: E402
from server import fresh_database_url  # noqa: E402

API = "/api/v1/private"
ROOT = "/v1/private"


class ContractClient(FlaskClient):
    """A test client that checks every response against the contract."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        if response.request is not None and not kwargs.get("buffered") is False:
            contract.validate(response.request, response)
        return response


@pytest.fixture
def make_app(tmp_path):
    """Build an app on a fresh SQLite file; keyword arguments override config."""

    def make(**overrides):
        overrides.setdefault("DATABASE_URL", fresh_database_url(tmp_path))
        overrides.setdefault("OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT", "0.3")
        app = create_app(**overrides)
        app.test_client_class = ContractClient
        app.config["TESTING"] = True
        return app

    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


def activation_hmac(session_id, key_bytes, runner_name):
    message = uuid.UUID(str(session_id)).bytes + hashlib.sha256(runner_name.encode()).digest()
    return base64.b64encode(hmac.new(key_bytes, message, hashlib.sha256).digest()).decode()


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
        json={"runner_name": name, "hmac": activation_hmac(session_id, key, name)},
        headers=headers,
    )
    assert response.status_code == 201, response.data
    return runner_id, project_id


AGENT = {
    "description": "Answer a question n times.",
    "language": "python",
    "params": [
        {"name": "question", "type": "string", "presence": "required"},
        {"name": "n", "type": "integer", "presence": "optional"},
    ],
    "timeout": 0,
}


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
        f"{contract.checked['undocumented']} with statuses the contract omits (error shape checked)"
    )
