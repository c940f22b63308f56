"""Real servers for the acceptance tests (opik_runners.client.testing's Server, child_pids and
free_port, imported from here), a runner paired over HTTP on one, and its API over HTTP (HttpApi)."""
import os

import requests

from opik_runners.client.testing import Server, child_pids, free_port  # noqa: F401 - the tests' import point
from opik_runners.protocol import activation_hmac_text, encode_base64
from tests.support.data import AGENT
from tests.support.waiting import wait_until


def pair_over_http(url, workspace, name, agents=None, runner_type="endpoint", capabilities=None):
    """Pair a runner over HTTP as the CLI does, in `workspace`'s project "demo" (made when
    missing): an endpoint runner gets the `answer` agent (or `agents`); a heartbeat then
    declares `capabilities` (if any). Returns its ids and the headers to call as its owner."""
    api = f"{url}/api/v1/private"
    headers = {"Comet-Workspace": workspace}
    found = requests.post(f"{api}/projects/retrieve", json={"name": "demo"}, headers=headers, timeout=10)
    if found.status_code == 404:
        assert requests.post(f"{api}/projects", json={"name": "demo"}, headers=headers, timeout=10).status_code == 201
        found = requests.post(f"{api}/projects/retrieve", json={"name": "demo"}, headers=headers, timeout=10)
    assert found.status_code == 200, found.text
    project_id = found.json()["id"]
    key = os.urandom(32)
    session = requests.post(
        f"{api}/pairing/sessions",
        json={"project_id": project_id, "activation_key": encode_base64(key), "type": runner_type},
        headers=headers,
        timeout=10,
    )
    assert session.status_code == 201, session.text
    session = session.json()
    activated = requests.post(
        f"{api}/pairing/sessions/{session['session_id']}/activate",
        json={"runner_name": name, "hmac": activation_hmac_text(session["session_id"], key, name)},
        headers=headers,
        timeout=10,
    )
    assert activated.status_code == 201, activated.text
    runner_id = session["runner_id"]
    if runner_type == "endpoint":
        registered = requests.put(f"{api}/local-runners/{runner_id}/agents", json=agents or {"answer": AGENT},
                                  headers=headers, timeout=10)
        assert registered.status_code == 204, registered.text
    if capabilities is not None:
        beat = requests.post(f"{api}/local-runners/{runner_id}/heartbeats", json={"capabilities": capabilities},
                             headers=headers, timeout=10)
        assert beat.status_code == 200, beat.text
    return {"runner_id": runner_id, "project_id": project_id, "headers": headers, "result": None}


class HttpApi:
    """The Opik API of a real server, over HTTP (requests)."""

    def __init__(self, url):
        self.base = f"{url}/api/v1/private"

    def get(self, path, **kwargs):
        return requests.get(f"{self.base}{path}", timeout=10, **kwargs)

    def post(self, path, **kwargs):
        return requests.post(f"{self.base}{path}", timeout=10, **kwargs)

    def put(self, path, **kwargs):
        return requests.put(f"{self.base}{path}", timeout=10, **kwargs)

    def create_job(self, project_id, agent, inputs):
        response = self.post("/local-runners/jobs", json={"agent_name": agent, "project_id": project_id, "inputs": inputs})
        assert response.status_code == 201, response.text
        return response.headers["Location"].rsplit("/", 1)[1]

    def finished_job(self, job_id, timeout=30):
        def done():
            job = self.get(f"/local-runners/jobs/{job_id}").json()
            return job if job["status"] in ("completed", "failed", "cancelled") else None

        return wait_until(done, timeout)
