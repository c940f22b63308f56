"""Real servers for the acceptance tests (opik_runners.testing.Server) and what they share:
a fresh database per test, on SQLite or on the PostgreSQL of TEST_DATABASE_URL."""
import os
import time

import requests

from helpers import AGENT
from opik_runners.client.testing import Server, child_pids, free_port  # noqa: F401 - the tests' import point
from opik_runners.protocol import activation_hmac_text, encode_base64

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Set by .ci/run for the second pass: the whole suite against PostgreSQL.
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "")


def fresh_database_url(tmp_path, name="test"):
    """An empty database: a new SQLite file, or the PostgreSQL test database wiped clean."""
    if not POSTGRES_URL:
        return f"sqlite:///{tmp_path / (name + '.db')}"
    import psycopg2

    conn = psycopg2.connect(POSTGRES_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    conn.close()
    return POSTGRES_URL


def waiting_on_locks(database_url, like="%"):
    """How many sessions of the test database wait for a lock now in a statement LIKE `like` (on
    a connection of its own: a transaction sees pg_stat_activity as it first read it)."""
    import psycopg2

    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE %s", (like,))
        return cur.fetchone()[0]


def wait_until(check, timeout=30, interval=0.1):
    """Poll `check()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


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
