"""Real servers for the acceptance tests (opik_runners.testing.Server) and what they share:
a fresh database per test, on SQLite or on the PostgreSQL of TEST_DATABASE_URL."""
import base64
import os
import time

import requests

from helpers import AGENT
from opik_runners.client.testing import Server, child_pids, free_port  # noqa: F401 - the tests' import point
from opik_runners.protocol import activation_hmac_text

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


def pair(url, workspace, name, agents=None):
    """Pair an endpoint runner over HTTP, as the headless CLI does, with the `answer` agent (or
    `agents`) in `workspace`; returns its ids and the headers to call as its owner."""
    api = f"{url}/api/v1/private"
    headers = {"Comet-Workspace": workspace}
    assert requests.post(f"{api}/projects", json={"name": "demo"}, headers=headers, timeout=5).status_code == 201
    project_id = requests.post(f"{api}/projects/retrieve", json={"name": "demo"}, headers=headers, timeout=5).json()["id"]
    key = os.urandom(32)
    session = requests.post(
        f"{api}/pairing/sessions",
        json={"project_id": project_id, "activation_key": base64.b64encode(key).decode(), "type": "endpoint"},
        headers=headers,
        timeout=5,
    ).json()
    activated = requests.post(
        f"{api}/pairing/sessions/{session['session_id']}/activate",
        json={"runner_name": name, "hmac": activation_hmac_text(session["session_id"], key, name)},
        headers=headers,
        timeout=5,
    )
    assert activated.status_code == 201
    runner_id = session["runner_id"]
    registered = requests.put(f"{api}/local-runners/{runner_id}/agents", json=agents or {"answer": AGENT},
                              headers=headers, timeout=5)
    assert registered.status_code == 204
    return {"runner_id": runner_id, "project_id": project_id, "headers": headers, "result": None}
