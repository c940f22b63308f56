"""The API through Flask's test client (tests/api): its two path prefixes, the steps most tests
start from (a project, a pairing session, a paired runner, its agents, a job), each asserting
that it worked, and a reaper cycle run now.

conftest.py's `in_app` fixture is InApp on the test's `client`; a test with a client of its own
(another app's) makes one: `InApp(client)`."""
import os

from opik_runners.domain import maintenance
from opik_runners.protocol import activation_hmac_text, encode_base64
from opik_runners.store import models
from tests.support.data import AGENT

API = "/api/v1/private"
ROOT = "/v1/private"  # the same API at the domain's root, as Opik serves it too


class InApp:
    """Steps through one test client; `headers` (a workspace, an API key) as a caller sends them."""

    def __init__(self, client):
        self.client = client

    def ensure_project(self, name="demo", headers=None):
        """The project's id, created when missing."""
        found = self.client.post(f"{API}/projects/retrieve", json={"name": name}, headers=headers)
        if found.status_code == 404:
            assert self.client.post(f"{API}/projects", json={"name": name}, headers=headers).status_code == 201
            found = self.client.post(f"{API}/projects/retrieve", json={"name": name}, headers=headers)
        assert found.status_code == 200, found.data
        return found.json["id"]

    def create_session(self, project_id, runner_type="endpoint", headers=None, ttl=300, key=None):
        """A pairing session: (session_id, runner_id, activation key)."""
        key = key or os.urandom(32)
        response = self.client.post(
            f"{API}/pairing/sessions",
            json={
                "project_id": project_id,
                "activation_key": encode_base64(key),
                "ttl_seconds": ttl,
                "type": runner_type,
            },
            headers=headers,
        )
        assert response.status_code == 201, response.data
        return response.json["session_id"], response.json["runner_id"], key

    def pair(self, project="demo", runner_type="endpoint", name="runner-1", headers=None):
        """Pair a runner the way the headless CLI does; return (runner_id, project_id)."""
        project_id = self.ensure_project(project, headers)
        session_id, runner_id, key = self.create_session(project_id, runner_type, headers)
        response = self.client.post(
            f"{API}/pairing/sessions/{session_id}/activate",
            json={"runner_name": name, "hmac": activation_hmac_text(session_id, key, name)},
            headers=headers,
        )
        assert response.status_code == 201, response.data
        return runner_id, project_id

    def register(self, runner_id, agents=None, headers=None):
        """Declare the runner's agents (the `answer` agent unless `agents`)."""
        response = self.client.put(f"{API}/local-runners/{runner_id}/agents", json=agents or {"answer": AGENT},
                                   headers=headers)
        assert response.status_code == 204, response.data

    def create_job(self, project_id, agent="answer", headers=None, **extra):
        """A job for `agent` in the project; its id."""
        response = self.client.post(
            f"{API}/local-runners/jobs", json={"agent_name": agent, "project_id": project_id, **extra}, headers=headers
        )
        assert response.status_code == 201, response.data
        return response.headers["Location"].rsplit("/", 1)[1]


def reap(app):
    """One reaper cycle now, as the background reaper runs it (the test apps run none)."""
    with models.database.connection_context():
        return maintenance.reap(app.extensions["opik_runners"])
