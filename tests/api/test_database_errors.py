"""A database that will not take a write answers 503 with what it said, never a 500, and
writes nothing; the same call goes through once it will."""
import sqlite3

import pytest

from opik_runners.store import sqlite
from tests.support.databases import POSTGRES_URL
from tests.support.in_app import API


@pytest.mark.skipif(bool(POSTGRES_URL), reason="another SQLite connection holds the file's write lock")
def test_a_write_the_database_refuses_is_a_503_and_changes_nothing(client, app, monkeypatch):
    monkeypatch.setattr(sqlite, "BUSY_TIMEOUT_SECONDS", 0.2)  # wait 0.2 s for the lock, not 30
    path = app.extensions["opik_runners"].database_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        response = client.post(f"{API}/projects", json={"name": "refused"})
    finally:
        holder.rollback()
        holder.close()
    assert response.status_code == 503
    assert response.json == {"code": 503, "message": "The database is unavailable; try again: database is locked"}
    assert response.headers["Retry-After"] == "1"
    assert client.post(f"{API}/projects/retrieve", json={"name": "refused"}).status_code == 404
    assert client.post(f"{API}/projects", json={"name": "refused"}).status_code == 201
    assert 'opik_runners_database_errors_total{error="OperationalError"}' in client.get("/metrics").get_data(True)


@pytest.mark.skipif(not POSTGRES_URL, reason="ends PostgreSQL sessions")
def test_a_connection_postgresql_dropped_is_a_503_then_the_next_request_is_served(client, endpoint_runner):
    """The pool hands out connections without a round trip to check them (store/postgres.py): a
    request on one whose session the server ended answers 503, not 500, and writes nothing;
    the next request is served on a new connection."""
    import psycopg2

    runner_id, project_id = endpoint_runner
    job = {"agent_name": "answer", "project_id": project_id}
    assert client.post(f"{API}/local-runners/jobs", json=job).status_code == 201  # a connection in the pool
    killer = psycopg2.connect(POSTGRES_URL)
    killer.autocommit = True
    with killer.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    killer.close()
    response = client.post(f"{API}/local-runners/jobs", json=job)
    assert response.status_code == 503, response.get_data(True)
    assert response.json["message"].startswith("The database is unavailable; try again: ")
    listed = client.get(f"{API}/local-runners/{runner_id}/jobs").json
    assert listed["total"] == 1  # the refused job is not there
    assert client.post(f"{API}/local-runners/jobs", json=job).status_code == 201
